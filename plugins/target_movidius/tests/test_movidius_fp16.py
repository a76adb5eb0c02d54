"""FP16 on the MA2450: the rounding model rounds every tensor, the FP16 ONNX model is valid,
and the emulator measures accuracy in FP16 and warns when FP16 loses accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sigdl_core.emulation import missing_provenance
from sigdl_core.interfaces import ArrayDataset, Method
from sigdl_core.plugins import load_plugins

import sigdl_target_movidius.plugin as movidius_plugin
from sigdl_core.emulation.onnx_tools import run_onnx
from sigdl_target_movidius.fp16 import convert_to_fp16, fold_for_myriad, fp16_rounded_model


def _f16(a) -> np.ndarray:
    with np.errstate(over="ignore"):  # overflow to inf is what fp16 does
        return np.asarray(a, np.float32).astype(np.float16).astype(np.float32)


def _graph(nodes, inits, in_shape, out_shape, name="m") -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", *out_shape])],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    return model


def test_movidius_rounding_model_rounds_every_intermediate_tensor() -> None:
    # y = (x · 1.0001 + 0.0001) · 3: in fp16 1.0001 is 1.0 and 0.0001 is 1.0002e-4, and
    # every intermediate is rounded; compare with numpy doing exactly that
    model = _graph([helper.make_node("Mul", ["input", "a"], ["m"]),
                    helper.make_node("Add", ["m", "b"], ["s"]),
                    helper.make_node("Mul", ["s", "c"], ["logits"])],
                   {"a": [1.0001], "b": [0.0001], "c": [3.0]}, (4,), (4,))
    x = np.array([[1.0001, 3.14159, 1000.3, 1e-5], [2049.0, -0.1, 65000.0, 7.77]], np.float32)
    got = run_onnx(fp16_rounded_model(model), x)
    xa = _f16(x)
    m = _f16(xa * _f16(1.0001))
    s = _f16(m + _f16(0.0001))
    expect = _f16(s * _f16(3.0))
    assert np.array_equal(got, expect)
    assert not np.array_equal(got, run_onnx(model, x))  # fp32 differs: the rounding is real
    assert np.isinf(got[1, 2])  # 65000 · 3 overflows fp16's 65504


def _trained(seed: int = 0, offset: float = 0.0):
    """A CNN with a ridge-fitted classifier on generated 10-class 12×12 patterns; ``offset``
    is added to every logit (it changes nothing in fp32)."""
    rng = np.random.default_rng(1234)
    protos = rng.normal(0, 1, (10, 1, 12, 12)).astype(np.float32)
    r = np.random.default_rng(seed)
    y = r.integers(0, 10, 1500)
    x = (protos[y] + r.normal(0, 2.5, (1500, 1, 12, 12))).astype(np.float32)
    w1 = r.normal(0, 0.4, (8, 1, 3, 3)).astype(np.float32)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))
    feats = np.maximum(np.einsum("nchwij,mcij->nmhw", win, w1), 0)
    feats = feats.reshape(1500, 8, 6, 2, 6, 2).max(axis=(3, 5)).reshape(1500, -1)
    a = np.hstack([feats[:1000], np.ones((1000, 1))])
    coef = np.linalg.solve(a.T @ a + 10 * np.eye(a.shape[1]), a.T @ np.eye(10)[y[:1000]])
    nodes = [helper.make_node("Conv", ["input", "w1"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("BatchNormalization", ["c", "s", "b", "mu", "v"], ["n"], name="bn"),
             helper.make_node("Relu", ["n"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "w2", "b2"], ["logits"], transB=1, name="fc")]
    inits = {"w1": w1, "s": np.ones(8), "b": np.zeros(8), "mu": np.zeros(8), "v": np.ones(8) - 1e-5,
             "w2": coef[:-1].T, "b2": coef[-1] + offset}
    model = _graph(nodes, inits, (1, 12, 12), (10,))
    data = ArrayDataset("patterns", x[:1000], y[:1000], x[1000:], y[1000:], 10)
    return model, data


def test_movidius_fp16_onnx_model_is_valid_and_close_to_fp32() -> None:
    model, data = _trained()
    folded = fold_for_myriad(model)
    assert "BatchNormalization" not in {n.op_type for n in folded.graph.node}  # folded into the conv
    fp16 = convert_to_fp16(folded)
    assert all(i.data_type == TensorProto.FLOAT16 for i in fp16.graph.initializer
               if i.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16))
    assert fp16.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT  # I/O kept fp32
    out16 = run_onnx(fp16, data.x_test[:64])
    out32 = run_onnx(model, data.x_test[:64])
    assert np.allclose(out16, out32, atol=0.05, rtol=0.01)
    assert len(fp16.SerializeToString()) < 0.6 * len(folded.SerializeToString())


@pytest.fixture(scope="module")
def registry():
    return load_plugins(entry_points=False, extra=[("target_movidius", movidius_plugin)]).registry


@pytest.mark.slow
def test_movidius_measures_accuracy_in_fp16(tmp_path: Path, registry) -> None:
    model, data = _trained()
    path = tmp_path / "cnn.onnx"
    onnx.save(model, str(path))
    target = registry.get("target", "movidius-ma2450")
    keep = tmp_path / "cnn.fp16.onnx"
    report = registry.emulator("movidius").emulate(path, target, data, {"fp16_model_path": str(keep)})
    assert report.fits and report.accuracy is not None and report.accuracy.samples == 500
    assert report.provenance["accuracy"].method is Method.EXECUTED
    assert "fp16" in report.provenance["accuracy"].detail.lower()
    assert report.accuracy.top1 > 0.75
    assert abs(report.extra["fp16_top1_drop"]) <= 0.01
    assert 0 < report.extra["fp16_max_abs_logit_error"] < 0.05  # fp16 changed the logits, a little
    assert missing_provenance(report) == []
    assert report.warnings == []  # the dynamic batch being fixed to 1 is a note, not a warning
    assert any("fixed to 1" in n for n in report.extra["notes"])
    assert onnx.load(str(keep)).graph.initializer[0].data_type == TensorProto.FLOAT16


@pytest.mark.slow
def test_movidius_warns_on_fp16_accuracy_loss(tmp_path: Path, registry) -> None:
    # +4096 on every logit: harmless in fp32, but fp16's spacing there is 4, which erases the
    # differences between classes
    model, data = _trained(offset=4096.0)
    path = tmp_path / "offset.onnx"
    onnx.save(model, str(path))
    report = registry.emulator("movidius").emulate(path, registry.get("target", "movidius-ma2450"), data, {})
    assert report.extra["fp32_top1"] > 0.75
    assert report.extra["fp16_top1_drop"] > 0.2
    assert any("FP16 accuracy loss" in w for w in report.warnings), report.warnings


def test_movidius_exports_the_fp16_model_the_stick_runs(tmp_path: Path, registry) -> None:
    model, data = _trained()
    path = tmp_path / "cnn.onnx"
    onnx.save(model, str(path))
    target = registry.get("target", "movidius-ma2450")
    out = registry.emulator("movidius").export_target_model(path, target, data, tmp_path)
    exported = onnx.load(str(out))
    onnx.checker.check_model(exported)
    floats = [i for i in exported.graph.initializer if i.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16)]
    assert floats and all(i.data_type == TensorProto.FLOAT16 for i in floats)
    assert np.allclose(run_onnx(exported, data.x_test[:32]), run_onnx(model, data.x_test[:32]), atol=0.05, rtol=0.01)
