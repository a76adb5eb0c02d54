"""The C66x emulation against onnxruntime's own int8 execution of the same QDQ model.

Two claims, each with the rounding made explicit:

* **Within one LSB, layer by layer.** The DSP's requantization rounds ties half up with an
  exact integer multiplier; onnxruntime's CPU kernels multiply in float32 and round half to
  even. On single-layer models (input quantize → one integer layer → output) every output
  code of the ``half-up`` emulation is within one LSB of onnxruntime's.
* **Exactly, where the rounding rules match.** With ``rounding="onnxruntime"`` the
  emulation reproduces onnxruntime's arithmetic (float32 rescale, round half to even, its
  average-pool and add formulas), and a whole network's output codes are identical.
  onnxruntime's u8s8 x86 kernels saturate int16 pair sums on CPUs without VNNI (its
  documentation recommends ``reduce_range`` there); the exact test uses 7-bit weights so
  that onnxruntime itself computes the true integer sums.

The models are built with ``onnx.helper`` and quantized by onnxruntime's ``quantize_static``
(QDQ) on calibration data the test generates.
"""

from __future__ import annotations

import platform
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from sigdl_target_c66x.qdq_program import IntegerProgram, emulate_fixed_point
from sigdl_target_c66x.quantize import quantize_for_c66x

X86 = platform.machine().lower() in ("x86_64", "amd64")


def _model(nodes, inits, in_shape, out_shape) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "t",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", *out_shape])],
        [numpy_helper.from_array(np.asarray(a, np.float32), n) for n, a in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    return model


def _network(rng: np.random.Generator) -> onnx.ModelProto:
    """Conv, grouped conv, depthwise conv, max/avg/global pooling, a residual add, FC."""
    inits = {
        "w1": rng.normal(0, 0.3, (8, 3, 3, 3)), "b1": rng.normal(0, 0.1, 8),
        "w2": rng.normal(0, 0.3, (8, 4, 3, 3)), "b2": rng.normal(0, 0.1, 8),
        "w3": rng.normal(0, 0.3, (8, 1, 3, 3)), "b3": rng.normal(0, 0.1, 8),
        "w4": rng.normal(0, 0.2, (10, 8)), "b4": rng.normal(0, 0.1, 10),
    }
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], group=2),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], pads=[1, 1, 1, 1], group=8, strides=[1, 1]),
        helper.make_node("Relu", ["c3"], ["r3"]),
        helper.make_node("Add", ["r3", "p1"], ["a1"]),
        helper.make_node("AveragePool", ["a1"], ["ap"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["ap"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w4", "b4"], ["logits"], transB=1),
    ]
    return _model(nodes, inits, (3, 16, 16), (10,))


def _single_layers(rng: np.random.Generator) -> dict[str, onnx.ModelProto]:
    c = 6
    conv = lambda g, k, s, d: _model(  # noqa: E731
        [helper.make_node("Conv", ["input", "w", "b"], ["logits"], pads=[1, 1, 1, 1], group=g,
                          strides=[s, s], dilations=[d, d])],
        {"w": rng.normal(0, 0.4, (c, c // g, k, k)), "b": rng.normal(0, 0.2, c)},
        (c, 9, 9), (c, (9 + 2 - d * (k - 1) - 1) // s + 1, (9 + 2 - d * (k - 1) - 1) // s + 1))
    return {
        "conv": conv(1, 3, 1, 1),
        "conv_strided_dilated": conv(1, 3, 2, 2),
        "grouped_conv": conv(3, 3, 1, 1),
        "depthwise_conv": conv(c, 3, 1, 1),
        "fully_connected": _model(
            [helper.make_node("Flatten", ["input"], ["f"]),
             helper.make_node("Gemm", ["f", "w", "b"], ["logits"], transB=1)],
            {"w": rng.normal(0, 0.1, (7, c * 81)), "b": rng.normal(0, 0.2, 7)}, (c, 9, 9), (7,)),
        "max_pool": _model([helper.make_node("MaxPool", ["input"], ["logits"], kernel_shape=[3, 3],
                                             strides=[2, 2], pads=[1, 1, 1, 1])], {}, (c, 9, 9), (c, 5, 5)),
        "avg_pool": _model([helper.make_node("AveragePool", ["input"], ["logits"], kernel_shape=[3, 3],
                                             strides=[2, 2], pads=[1, 1, 1, 1])], {}, (c, 9, 9), (c, 5, 5)),
        "global_avg_pool": _model([helper.make_node("GlobalAveragePool", ["input"], ["logits"])], {},
                                  (c, 9, 9), (c, 1, 1)),
        "add": _model([helper.make_node("Conv", ["input", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
                       helper.make_node("Add", ["c", "input"], ["logits"])],
                      {"w": rng.normal(0, 0.3, (c, c, 3, 3)), "b": rng.normal(0, 0.2, c)}, (c, 9, 9), (c, 9, 9)),
    }


def _ort(path: Path, x: np.ndarray, optimized: bool = True) -> np.ndarray:
    so = ort.SessionOptions()
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimized
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


def _ort_codes(path: Path, x: np.ndarray, optimized: bool = True) -> np.ndarray:
    """onnxruntime's output codes: its float output mapped back through the output DQ."""
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    dq = next(n for n in model.graph.node if n.output[0] == model.graph.output[0].name)
    assert dq.op_type == "DequantizeLinear"
    scale = np.float32(inits[dq.input[1]])
    zp = int(inits[dq.input[2]])
    out = _ort(path, x, optimized)
    return (np.rint(out / scale) + zp).astype(np.int64)


def _quantize(model: onnx.ModelProto, calib: np.ndarray, tmp: Path, name: str, **kw) -> Path:
    src = tmp / f"{name}.onnx"
    onnx.save(model, str(src))
    return quantize_for_c66x(src, calib, tmp / f"{name}.qdq.onnx", **kw)


@pytest.mark.slow
@pytest.mark.skipif(not X86, reason="the exact claim is about onnxruntime's x86 kernels (MLAS SSE/AVX paths)")
@pytest.mark.parametrize("per_channel", [False, True])
def test_c66x_equals_onnxruntime_exactly_in_its_rounding_mode(per_channel: bool) -> None:
    rng = np.random.default_rng(1)
    calib = rng.normal(0, 1, (64, 3, 16, 16)).astype(np.float32)
    x = rng.normal(0, 1, (128, 3, 16, 16)).astype(np.float32)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        qdq = _quantize(_network(rng), calib, tmp, "net", activation_type="uint8",
                        per_channel=per_channel, reduce_range=True)
        # onnxruntime really runs integer kernels here (otherwise the test would compare floats)
        so = ort.SessionOptions()
        so.optimized_model_filepath = str(tmp / "opt.onnx")
        so.log_severity_level = 3
        ort.InferenceSession(str(qdq), so, providers=["CPUExecutionProvider"])
        fused = {n.op_type for n in onnx.load(str(tmp / "opt.onnx")).graph.node}
        assert {"QLinearConv", "QGemm", "QLinearAveragePool", "QLinearGlobalAveragePool"} <= fused
        ref = _ort_codes(qdq, x)
        _, codes, stats = emulate_fixed_point(IntegerProgram(qdq), x, rounding="onnxruntime")
    assert stats.total_overflows == 0
    assert codes.shape == ref.shape
    assert np.array_equal(codes, ref), f"{int(np.count_nonzero(codes != ref))} codes differ"


@pytest.mark.slow
@pytest.mark.parametrize("activation_type,reduce_range,optimized", [
    ("uint8", True, True),   # onnxruntime's fused integer kernels (QLinearConv, QGemm, ...)
    ("int8", True, True),
    # full 8-bit weights: onnxruntime's fused u8s8/s8s8 x86 kernels saturate int16 pair sums
    # (we saw 29-LSB errors on an AVX-512 CPU without VNNI), so compare with its unfused
    # reference path (DequantizeLinear → float op → QuantizeLinear) instead
    ("int8", False, False),
    # 16-bit activations with 8-bit weights (onnxruntime runs these through its float paths)
    ("int16", False, True),
])
def test_c66x_each_layer_within_one_lsb_of_onnxruntime(activation_type: str, reduce_range: bool,
                                                       optimized: bool) -> None:
    rng = np.random.default_rng(2)
    calib = rng.normal(0, 1, (64, 6, 9, 9)).astype(np.float32)
    bits16 = activation_type.endswith("16")
    x = rng.normal(0, 1.2, (96, 6, 9, 9)).astype(np.float32)
    differing: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for name, model in _single_layers(rng).items():
            # pools of the raw input are quantized too (the quantizer would leave them in float)
            qdq = _quantize(model, calib, tmp, name, activation_type=activation_type, reduce_range=reduce_range,
                            extra_options={"ForceQuantizeNoInputCheck": True})
            ref = _ort_codes(qdq, x, optimized)
            program = IntegerProgram(qdq)
            for rounding in ("half-up", "onnxruntime"):
                _, codes, _ = emulate_fixed_point(program, x, rounding=rounding)
                assert codes is not None and codes.shape == ref.shape, name
                diff = np.abs(codes.astype(np.int64) - ref)
                assert int(diff.max()) <= 1, f"{name} ({rounding}): {int(diff.max())} LSB off"
                differing[f"{name}/{rounding}"] = int(np.count_nonzero(diff))
    # the two rounding rules really differ somewhere (ties and float32 rescale); against the
    # fused kernels, the onnxruntime mode (which reproduces them) differs less
    assert sum(v for k, v in differing.items() if k.endswith("half-up")) > 0
    assert not optimized or bits16 or (sum(v for k, v in differing.items() if k.endswith("/onnxruntime"))
            < sum(v for k, v in differing.items() if k.endswith("half-up")))
