"""The ONNX cost model: MACs, FLOPs and bytes against hand counts."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from sigdl_core.emulation import analyze_model
from sigdl_core.emulation.cost import _conv_out
from sigdl_core.errors import ModelFileError, UnsupportedModelError


def _declared(name: str, shape: tuple[int, ...], dtype: int = TensorProto.FLOAT) -> onnx.TensorProto:
    """An initializer with its shape but no payload (external data never read)."""
    t = onnx.TensorProto()
    t.name, t.data_type = name, dtype
    t.dims.extend(shape)
    t.data_location = TensorProto.EXTERNAL
    e = t.external_data.add()
    e.key, e.value = "location", "not-there.bin"
    return t


def _model(nodes, inits, in_shape, out_name="logits", in_type=TensorProto.FLOAT) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", in_type, in_shape)],
                          [helper.make_tensor_value_info(out_name, in_type, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def lenet5() -> onnx.ModelProto:
    """Caffe's LeNet-5: conv 20@5×5, pool, conv 50@5×5, pool, fc 800→500, ReLU, fc 500→10."""
    nodes, inits = [], []

    def conv(x, out, cin, cout, k, name):
        inits.extend([_declared(f"{name}.w", (cout, cin, k, k)), _declared(f"{name}.b", (cout,))])
        nodes.append(helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [out], name=name, kernel_shape=[k, k]))

    conv("input", "c1", 1, 20, 5, "conv1")
    nodes.append(helper.make_node("MaxPool", ["c1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]))
    conv("p1", "c2", 20, 50, 5, "conv2")
    nodes.append(helper.make_node("MaxPool", ["c2"], ["p2"], name="pool2", kernel_shape=[2, 2], strides=[2, 2]))
    nodes.append(helper.make_node("Flatten", ["p2"], ["f"], name="flatten"))
    inits.extend([_declared("fc1.w", (500, 800)), _declared("fc1.b", (500,))])
    nodes.append(helper.make_node("Gemm", ["f", "fc1.w", "fc1.b"], ["g1"], name="fc1", transB=1))
    nodes.append(helper.make_node("Relu", ["g1"], ["r1"], name="relu1"))
    inits.extend([_declared("fc2.w", (10, 500)), _declared("fc2.b", (10,))])
    nodes.append(helper.make_node("Gemm", ["r1", "fc2.w", "fc2.b"], ["logits"], name="fc2", transB=1))
    return _model(nodes, inits, ["N", 1, 28, 28])


def vgg16() -> onnx.ModelProto:
    nodes, inits = [], []
    x, cin = "input", 3
    for stage, (ch, n) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)), 1):
        for i in range(n):
            name = f"conv{stage}_{i}"
            inits.extend([_declared(f"{name}.w", (ch, cin, 3, 3)), _declared(f"{name}.b", (ch,))])
            nodes.append(helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [name], name=name,
                                          kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
            nodes.append(helper.make_node("Relu", [name], [name + ".r"], name=name + ".relu"))
            x, cin = name + ".r", ch
        nodes.append(helper.make_node("MaxPool", [x], [f"pool{stage}"], name=f"pool{stage}",
                                      kernel_shape=[2, 2], strides=[2, 2]))
        x = f"pool{stage}"
    nodes.append(helper.make_node("Flatten", [x], ["flat"], name="flatten"))
    x, n_in = "flat", 512 * 7 * 7
    for name, n_out in (("fc6", 4096), ("fc7", 4096), ("fc8", 1000)):
        inits.extend([_declared(f"{name}.w", (n_out, n_in)), _declared(f"{name}.b", (n_out,))])
        out = "logits" if name == "fc8" else name
        nodes.append(helper.make_node("Gemm", [x, f"{name}.w", f"{name}.b"], [out], name=name, transB=1))
        if name != "fc8":
            nodes.append(helper.make_node("Relu", [out], [out + ".r"], name=name + ".relu"))
            x = out + ".r"
        n_in = n_out
    return _model(nodes, inits, ["N", 3, 224, 224])


def test_lenet5_macs_equal_the_hand_count():
    cost = analyze_model(lenet5())
    by_name = {n.name: n for n in cost.nodes}
    # conv1: 20 maps of 24×24, each output 1×5×5 MACs
    assert by_name["conv1"].macs == 20 * 24 * 24 * 25 == 288_000
    # conv2: 50 maps of 8×8, each output 20×5×5 MACs
    assert by_name["conv2"].macs == 50 * 8 * 8 * 20 * 25 == 1_600_000
    assert by_name["fc1"].macs == 800 * 500
    assert by_name["fc2"].macs == 500 * 10
    assert cost.macs == 288_000 + 1_600_000 + 400_000 + 5_000 == 2_293_000
    assert cost.params == 431_080  # Caffe LeNet-5's parameter count
    assert cost.weight_bytes == 431_080 * 4
    assert by_name["conv1"].output_shapes == ((1, 20, 24, 24),)
    # FLOPs: 2 per MAC plus a bias add per output, pool windows, one per ReLU
    assert by_name["conv1"].flops == 2 * 288_000 + 20 * 24 * 24
    assert by_name["pool1"].flops == 20 * 12 * 12 * 4
    assert by_name["relu1"].flops == 500
    assert by_name["relu1"].fuses_into == "fc1"
    assert by_name["flatten"].op_class == "view" and by_name["flatten"].bytes == 0


def test_vgg16_macs_equal_the_published_15_47_gmacs():
    cost = analyze_model(vgg16())
    convs = [(64, 3, 224), (64, 64, 224), (128, 64, 112), (128, 128, 112), (256, 128, 56),
             (256, 256, 56), (256, 256, 56), (512, 256, 28), (512, 512, 28), (512, 512, 28),
             (512, 512, 14), (512, 512, 14), (512, 512, 14)]
    hand = sum(co * ci * 9 * s * s for co, ci, s in convs) + 25088 * 4096 + 4096 * 4096 + 4096 * 1000
    assert cost.macs == hand == 15_470_264_320
    assert round(cost.macs / 1e9, 2) == 15.47
    assert cost.params == 138_357_544  # VGG-16's published parameter count


def test_batch_scales_work_and_activations_not_weights():
    one = analyze_model(lenet5(), batch_size=1)
    eight = analyze_model(lenet5(), batch_size=8)
    assert eight.macs == 8 * one.macs and eight.flops == 8 * one.flops
    assert eight.activation_bytes == 8 * one.activation_bytes
    assert eight.weight_bytes == one.weight_bytes
    assert eight.input_shapes["input"] == (8, 1, 28, 28)
    assert one.for_batch(8).macs == eight.macs


def test_fixed_batch_axis_is_rescaled():
    m = lenet5()
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 4  # batch fixed at export
    cost = analyze_model(m, batch_size=2)
    assert cost.batch_size == 2 and cost.macs == 2 * 2_293_000


def test_depthwise_and_grouped_convs_are_classified_and_counted():
    inits = [_declared("dw", (32, 1, 3, 3)), _declared("gw", (64, 8, 3, 3))]
    nodes = [
        helper.make_node("Conv", ["input", "dw"], ["d"], name="dw", group=32, kernel_shape=[3, 3], pads=[1] * 4),
        helper.make_node("Conv", ["d", "gw"], ["logits"], name="grouped", group=4, kernel_shape=[3, 3], pads=[1] * 4),
    ]
    cost = analyze_model(_model(nodes, inits, [1, 32, 10, 10]))
    dw, gr = cost.nodes
    assert dw.op_class == "depthwise" and dw.macs == 32 * 10 * 10 * 9
    assert gr.op_class == "grouped" and gr.macs == 64 * 10 * 10 * 8 * 9
    assert gr.group == 4 and gr.kernel_shape == (3, 3)


def test_fp16_model_counts_two_bytes_and_in_format_converts():
    inits = [numpy_helper.from_array(np.zeros((10, 20), np.float16), "w")]
    nodes = [helper.make_node("MatMul", ["input", "w"], ["logits"], name="mm")]
    cost = analyze_model(_model(nodes, inits, [1, 20], in_type=TensorProto.FLOAT16))
    (mm,) = cost.nodes
    assert mm.fmt == "fp16" and mm.weight_bytes == 10 * 20 * 2 and mm.input_bytes == 40
    cost32 = analyze_model(lenet5())
    half = cost32.in_format("fp16")
    assert half.weight_bytes == cost32.weight_bytes // 2
    assert all(n.fmt == "fp16" for n in half.nodes)
    assert half.macs == cost32.macs


def test_qdq_int8_model_counts_int8():
    w = numpy_helper.from_array(np.ones((8, 4, 3, 3), np.int8), "w_q")
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    zp = numpy_helper.from_array(np.array(0, np.int8), "zp")
    nodes = [
        helper.make_node("QuantizeLinear", ["input", "s", "zp"], ["xq"], name="qx"),
        helper.make_node("DequantizeLinear", ["xq", "s", "zp"], ["xd"], name="dqx"),
        helper.make_node("DequantizeLinear", ["w_q", "s", "zp"], ["wd"], name="dqw"),
        helper.make_node("Conv", ["xd", "wd"], ["y"], name="conv", kernel_shape=[3, 3]),
        helper.make_node("QuantizeLinear", ["y", "s", "zp"], ["yq"], name="qy"),
        helper.make_node("DequantizeLinear", ["yq", "s", "zp"], ["logits"], name="dqy"),
    ]
    cost = analyze_model(_model(nodes, [w, scale, zp], [1, 4, 8, 8]))
    conv = next(n for n in cost.nodes if n.name == "conv")
    assert conv.fmt == "int8"
    assert conv.weight_bytes == 8 * 4 * 9  # one byte per weight
    assert conv.input_bytes == 4 * 8 * 8 and conv.output_bytes == 8 * 6 * 6
    assert conv.macs == 8 * 6 * 6 * 4 * 9
    assert next(n for n in cost.nodes if n.name == "dqw").constant  # folded before inference
    assert cost.formats == ("int8",)


def test_shape_arithmetic_reshape_is_followed():
    # the torch-export pattern: Shape → Gather → Unsqueeze → Concat → Reshape
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1"),
             _declared("w", (10, 48))]
    nodes = [
        helper.make_node("Shape", ["input"], ["shp"], name="shape"),
        helper.make_node("Gather", ["shp", "zero"], ["n"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["n", "zero"], ["n1"], name="unsq"),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], name="cat", axis=0),
        helper.make_node("Reshape", ["input", "target"], ["flat"], name="reshape"),
        helper.make_node("Gemm", ["flat", "w"], ["logits"], name="fc", transB=1),
    ]
    cost = analyze_model(_model(nodes, inits, ["N", 3, 4, 4]))
    fc = next(n for n in cost.nodes if n.name == "fc")
    assert fc.macs == 48 * 10 and not cost.warnings
    assert next(n for n in cost.nodes if n.name == "shape").constant


@settings(max_examples=40, deadline=None)
@given(h=st.integers(5, 40), k=st.integers(1, 5), s=st.integers(1, 3), p=st.integers(0, 2),
       d=st.integers(1, 2), ceil=st.booleans())
def test_own_window_arithmetic_matches_onnxruntime(h, k, s, p, d, ceil):
    """Our pooling/conv output sizes equal what onnxruntime really produces (ONNX's own
    shape inference disagrees with the runtime on some ceil-mode edge cases)."""
    ort = pytest.importorskip("onnxruntime")
    if d * (k - 1) + 1 > h + 2 * p or p >= k:
        return
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[k, k], strides=[s, s],
                            pads=[p] * 4, dilations=[d, d], ceil_mode=int(ceil))
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, h, h])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    so = ort.SessionOptions()
    so.log_severity_level = 4
    y = ort.InferenceSession(m.SerializeToString(), so).run(None, {"x": np.zeros((1, 1, h, h), np.float32)})[0]
    got = _conv_out((h, h), (k, k), {"strides": [s, s], "pads": [p] * 4, "dilations": [d, d]}, ceil)
    assert list(got) == list(y.shape[2:])


def test_peak_activations_track_liveness():
    cost = analyze_model(lenet5())
    # largest moment: pool1 writes its 20×12×12 output while conv1's 20×24×24 is alive
    # (the input, freed after conv1, made a smaller pair with conv1's output)
    assert cost.peak_activation_bytes == (20 * 24 * 24 + 20 * 12 * 12) * 4
    assert cost.peak_activation_bytes > (20 * 24 * 24 + 28 * 28) * 4


def test_bad_inputs_are_bad_input_errors(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not protobuf \x00\xff" * 10)
    with pytest.raises(ModelFileError):
        analyze_model(bad)
    with pytest.raises(ModelFileError):
        analyze_model(tmp_path / "missing.onnx")
    m = lenet5()
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    with pytest.raises(UnsupportedModelError):
        analyze_model(m)
    cost = analyze_model(m, input_shapes={"input": [1, 1, 28, 28]})
    assert cost.macs == 2_293_000


def test_summary_is_json_ready():
    import json

    s = analyze_model(lenet5()).summary()
    assert json.loads(json.dumps(s))["macs"] == 2_293_000
    assert math.isclose(s["by_op_class"]["conv"]["macs"], 1_888_000)
