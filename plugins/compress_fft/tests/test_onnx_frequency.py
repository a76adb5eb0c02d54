"""The DFT (frequency) form of a block-circulant ONNX model: onnxruntime gives the dense
model's outputs to 1e-4, so does the torch FFT path, and the cost model counts the DFTs."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from sigdl_core.errors import InvalidValueError  # noqa: E402
from sigdl_core.structured_weights import expand_circulant, nearest_circulant_vectors  # noqa: E402

from sigdl_compress_fft.onnx_frequency import frequency_form, main  # noqa: E402

LAYERS = [(784, 300, 16), (300, 100, 16), (100, 10, 0)]  # LeNet-300-100, the output layer dense


def _weights(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for fan_in, fan_out, block in LAYERS:
        w = (rng.standard_normal((fan_out, fan_in)) / np.sqrt(fan_in)).astype(np.float32)
        if block:
            w = expand_circulant(nearest_circulant_vectors(w, block), w.shape, block) * np.float32(4.0)
        out.append((w, (0.1 * rng.standard_normal(fan_out)).astype(np.float32)))
    return out


def _dense_model(weights, opset: int = 17):
    nodes, inits, x = [], [], "input"
    for i, (w, b) in enumerate(weights):
        inits += [numpy_helper.from_array(w, f"fc{i}.weight"), numpy_helper.from_array(b, f"fc{i}.bias")]
        y = f"h{i}"
        nodes.append(helper.make_node("Gemm", [x, f"fc{i}.weight", f"fc{i}.bias"], [y], transB=1, name=f"fc{i}"))
        if i < len(weights) - 1:
            nodes.append(helper.make_node("Relu", [y], [y + "r"]))
            y += "r"
        x = y
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 784])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _run(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


@pytest.mark.parametrize("opset", [17, 20])
def test_dft_form_matches_the_dense_model_in_onnxruntime(opset) -> None:
    dense = _dense_model(_weights(), opset)
    freq, replaced = frequency_form(dense)
    assert [(r["weight"], r["block"]) for r in replaced] == [("fc0.weight", 16), ("fc1.weight", 16)]
    ops = [n.op_type for n in freq.graph.node]
    assert ops.count("DFT") == 4 and ops.count("Gemm") == 1  # two DFTs per circulant layer; fc2 stays
    assert {i.name for i in freq.graph.initializer}.isdisjoint({"fc0.weight", "fc1.weight"})
    x = np.random.default_rng(1).standard_normal((5, 784)).astype(np.float32)
    np.testing.assert_allclose(_run(freq, x), _run(dense, x), atol=1e-4, rtol=1e-4)
    assert freq.ByteSize() < dense.ByteSize() / 4


def test_dft_form_matches_the_torch_fft_path() -> None:
    torch = pytest.importorskip("torch")
    fft = pytest.importorskip("sigdl_framework_torch.fft")
    weights = _weights(2)
    layers = []
    for (w, b), (_, _, block) in zip(weights, LAYERS):
        linear = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(w))
            linear.bias.copy_(torch.from_numpy(b))
        layers.append(fft.CirculantLinear.from_linear(linear, block) if block else linear)
    x = np.random.default_rng(3).standard_normal((4, 784)).astype(np.float32)
    with torch.no_grad():
        h = torch.from_numpy(x)
        for i, layer in enumerate(layers):
            h = layer(h)
            if i < len(layers) - 1:
                h = torch.relu(h)
    freq, _ = frequency_form(_dense_model(weights))
    np.testing.assert_allclose(_run(freq, x), h.numpy(), atol=1e-4, rtol=1e-4)


def test_the_cost_model_counts_dft_work() -> None:
    from sigdl_core.emulation import analyze_model

    freq, _ = frequency_form(_dense_model(_weights()))
    cost = analyze_model(freq, batch_size=1)
    dfts = [n for n in cost.nodes if n.op_type == "DFT"]
    assert len(dfts) == 4 and all(n.op_class == "fft" for n in dfts)
    # forward DFT of fc0: 49 real transforms of 16 points, 5 n log2 n / 2 each
    assert dfts[0].flops == 49 * 5 * 16 * 4 // 2
    # the frequency-domain products: four real [1, 49] x [49, 19] matmuls per bin, 16 bins
    products = [n for n in cost.nodes if n.op_type == "MatMul"]
    assert sum(n.macs for n in products[:4]) == 4 * 16 * 49 * 19


def test_old_opsets_are_refused_and_the_command_writes_a_file(tmp_path, capsys) -> None:
    with pytest.raises(InvalidValueError, match="opset 13"):
        frequency_form(_dense_model(_weights(), 13))
    src, dst = tmp_path / "m.onnx", tmp_path / "m.freq.onnx"
    onnx.save(_dense_model(_weights()), src)
    assert main([str(src), "-o", str(dst)]) == 0
    assert "blocks of 16" in capsys.readouterr().out and dst.stat().st_size > 0
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    assert main([str(tmp_path / "bad.onnx"), "-o", str(dst)]) == 2


def _conv_model(opset: int = 17):
    rng = np.random.default_rng(4)
    w1 = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    w2 = rng.standard_normal((5, 4, 5, 5)).astype(np.float32)
    w3 = rng.standard_normal((2, 5, 3, 3)).astype(np.float32)
    inits = [numpy_helper.from_array(w1, "c1.weight"), numpy_helper.from_array(rng.standard_normal(4).astype(np.float32),
                                                                               "c1.bias"),
             numpy_helper.from_array(w2, "c2.weight"), numpy_helper.from_array(w3, "c3.weight")]
    nodes = [helper.make_node("Conv", ["input", "c1.weight", "c1.bias"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Conv", ["b", "c2.weight"], ["c"], pads=[2, 1, 2, 1]),
             helper.make_node("Conv", ["c", "c3.weight"], ["out"], strides=[2, 2])]
    graph = helper.make_graph(nodes, "convs", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 11, 9])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 2, 5, 3])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), (w1, w2)


@pytest.mark.parametrize("opset", [17, 20])
def test_convolutions_in_dft_form_match_onnxruntime_and_the_torch_fft_path(opset) -> None:
    dense, (w1, w2) = _conv_model(opset)
    freq, replaced = frequency_form(dense, convolutions=True)
    assert [r["weight"] for r in replaced] == ["c1.weight", "c2.weight"]  # the strided one stays a Conv
    assert [n.op_type for n in freq.graph.node].count("Conv") == 1
    x = np.random.default_rng(5).standard_normal((1, 3, 11, 9)).astype(np.float32)
    np.testing.assert_allclose(_run(freq, x), _run(dense, x), atol=1e-4, rtol=1e-4)
    torch = pytest.importorskip("torch")
    fft = pytest.importorskip("sigdl_framework_torch.fft")
    conv = torch.nn.Conv2d(4, 5, 5, padding=(2, 1), bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(w2))
    h = np.random.default_rng(6).standard_normal((1, 4, 11, 9)).astype(np.float32)
    single = helper.make_model(helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["y"], pads=[2, 1, 2, 1])], "one",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4, 11, 9])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, 11, 7])], [numpy_helper.from_array(w2, "w")]),
        opset_imports=[helper.make_opsetid("", opset)])
    one, _ = frequency_form(single, convolutions=True)
    with torch.no_grad():
        expected = fft.FFTConv2d(conv, 16)(torch.from_numpy(h)).numpy()
    np.testing.assert_allclose(_run(one, h), expected, atol=1e-4, rtol=1e-4)
