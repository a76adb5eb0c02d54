"""The search's timing reuse: a graph is timed once per run, a different graph again.

Real ONNX models run by the real execution harness (a child process with onnxruntime).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sigdl_core.emulation.harness import HarnessLimits, run_limited
from sigdl_core.emulation.timing_reuse import graph_signature, timing_reuse

pytest.importorskip("onnxruntime")


def gemm(path, weight: np.ndarray) -> str:
    g = helper.make_graph(
        [helper.make_node("Gemm", ["input", "w"], ["logits"], transB=1)],
        "gemm", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", weight.shape[1]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(weight.astype(np.float32), "w")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


def _data(n: int = 200):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, n)
    x = (np.eye(10, dtype=np.float32)[y] + 0.1 * rng.random((n, 10), dtype=np.float32)).astype(np.float32)
    return x, y


def test_the_signature_ignores_weight_values_but_not_shapes(tmp_path) -> None:
    eye = gemm(tmp_path / "eye.onnx", np.eye(10))
    pruned = gemm(tmp_path / "pruned.onnx", np.where(np.arange(10)[:, None] < 5, np.eye(10), 0.0))
    wider = gemm(tmp_path / "wider.onnx", np.eye(12, 10))
    assert graph_signature(eye) == graph_signature(pruned)
    assert graph_signature(eye) != graph_signature(wider)


def test_an_identical_graph_reuses_the_timing_and_its_accuracy_is_executed(tmp_path) -> None:
    x, y = _data()
    eye = gemm(tmp_path / "eye.onnx", np.eye(10))
    # half the classes pruned away: same graph, other weights, other accuracy
    half = gemm(tmp_path / "half.onnx", np.where(np.arange(10)[:, None] < 5, np.eye(10), 0.0))  # w_half
    wider = gemm(tmp_path / "wider.onnx", np.eye(12, 10))
    limits = HarnessLimits(cores=1)
    with timing_reuse() as cache:
        first = run_limited(eye, limits, x, y, repeats=5, max_seconds=5)
        second = run_limited(half, limits, x, y, repeats=5, max_seconds=5)
        other = run_limited(wider, limits, x, y, repeats=5, max_seconds=5)
        other_args = run_limited(half, limits, x, y, repeats=6, max_seconds=5)  # another measurement
    assert len([k for k in cache if k != "reused"]) == 3 and len(cache["reused"]) == 1
    assert first.timing_reused is None and other.timing_reused is None and other_args.timing_reused is None
    assert second.timing_reused is not None and second.timing_reused.startswith("eye.onnx")
    assert any("reused from eye.onnx" in w for w in second.warnings)
    assert second.to_dict()["timing_reused"] == second.timing_reused
    # the timing is the first model's; the accuracy is the second model's own
    assert second.latency_ms_p50 == first.latency_ms_p50 and second.latencies_ms == first.latencies_ms
    assert first.accuracy.top1 == 1.0
    w_half = np.where(np.arange(10)[:, None] < 5, np.eye(10), 0.0)
    expected = np.mean(np.argmax(x @ w_half.T, axis=1) == y)
    assert second.accuracy.top1 == pytest.approx(expected) and second.accuracy.top1 < 0.9
    assert second.accuracy.correct is not None and second.accuracy.correct.sum() == round(second.accuracy.top1 * len(y))
    # outside a reuse block every model is timed
    again = run_limited(half, limits, x, y, repeats=5, max_seconds=5)
    assert again.timing_reused is None and again.accuracy.top1 == second.accuracy.top1


def test_a_reused_timing_is_said_in_the_provenance_of_the_executed_figures() -> None:
    from sigdl_core.emulation import ReportBuilder
    from sigdl_core.emulation.timing_reuse import mark_reused, reused_since
    from sigdl_core.interfaces import Accuracy, Method

    rb = ReportBuilder("t", "e")
    rb.set("fits", True, Method.ANALYTICAL, "weights fit")
    rb.set("latency_ms_p50", 3.0, Method.EXECUTED, "timed on the host")
    rb.set("power_w", 2.0, Method.ANALYTICAL, "TDP")
    rb.set("accuracy", Accuracy(0.9, 1.0, 10), Method.EXECUTED, "host")
    report = rb.finish()
    cache = {"reused": ["candidate-001.onnx (measurement ab12)"]}
    assert reused_since(cache, 0) == cache["reused"] and reused_since(cache, 1) == []
    mark_reused(report, reused_since(cache, 0))
    assert "identical graph" in report.provenance["latency_ms_p50"].detail
    assert "candidate-001.onnx" in report.provenance["latency_ms_p50"].detail
    assert report.provenance["power_w"].detail == "TDP"  # not timed: unchanged
    assert report.provenance["accuracy"].detail == "host"  # executed for this model itself
