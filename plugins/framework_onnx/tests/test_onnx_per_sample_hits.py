"""evaluate gives the per-sample top-1 hits the search's paired statistic compares."""

from __future__ import annotations


from sigdl_framework_onnx.framework import OnnxFramework


def test_evaluate_gives_per_sample_hits(mlp_onnx, digits):
    fw = OnnxFramework()
    model = fw.load(mlp_onnx)
    acc = fw.evaluate(model, digits, "test")
    assert acc.correct.dtype == bool and acc.correct.shape == (len(digits.y_test),)
    assert acc.correct.mean() == acc.top1 and not acc.correct.all()
    assert "correct" not in acc.to_dict()  # the JSON form stays what it was
