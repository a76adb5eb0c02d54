"""int8 QDQ and fp16 ONNX emission, run in onnxruntime and compared with the float32 model.

Skipped where the plugin's ``[onnx]`` extra (onnx, onnxruntime; onnxconverter-common for the
fp16 test) is not installed. The models are built here with ``onnx.helper``: the trained digits perceptron,
and a small convolutional network whose last layer is fitted on the digits (ridge regression), so that top-1
agreement is measured on a model with meaningful margins.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from sigdl_core.errors import InvalidValueError, ModelFileError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from sigdl_compress_quant.onnx_export import emit_fp16_onnx, emit_int8_qdq_onnx  # noqa: E402


def _save(nodes, inits, in_shape, out_dim, path: Path, output="logits") -> Path:
    graph = helper.make_graph(
        nodes, "model", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", out_dim])],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _mlp_onnx(w: dict[str, np.ndarray], path: Path) -> Path:
    nodes = [helper.make_node("Gemm", ["input", "fc1.weight", "fc1.bias"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "fc2.weight", "fc2.bias"], ["logits"], transB=1)]
    return _save(nodes, w, [64], 10, path)


def _conv_nodes():
    return [helper.make_node("Conv", ["input", "c1.weight", "c1.bias"], ["a"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["a"], ["b"]),
            helper.make_node("Conv", ["b", "c2.weight", "c2.bias"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["d"]),
            helper.make_node("MaxPool", ["d"], ["e"], kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("Flatten", ["e"], ["features"])]


def _run(path: Path, x: np.ndarray, output: str = "logits", optimize: bool = True) -> np.ndarray:
    """Runs a model; ``optimize=False`` keeps the graph as written (QDQ computed exactly as
    the operators define it, not by onnxruntime's fused integer kernels)."""
    options = ort.SessionOptions()
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run([output], {"input": x})[0]


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory, quant_mlp):
    """A conv net with random filters and a last layer fitted by ridge regression."""
    data = quant_mlp.data
    rng = np.random.default_rng(0)
    inits = {"c1.weight": rng.normal(0, 0.5, (8, 1, 3, 3)), "c1.bias": np.zeros(8),
             "c2.weight": rng.normal(0, 0.2, (16, 8, 3, 3)), "c2.bias": np.full(16, 0.01)}
    folder = tmp_path_factory.mktemp("conv")
    feat_path = _save(_conv_nodes(), inits, [1, 8, 8], 256, folder / "features.onnx", output="features")
    x_train = data.x_train.reshape(-1, 1, 8, 8)
    feats = _run(feat_path, x_train, "features")
    mu, sd = feats.mean(0), feats.std(0) + 0.1 * feats.std()
    f = np.hstack([(feats - mu) / sd, np.ones((len(feats), 1))]).astype(np.float64)
    onehot = np.eye(10)[data.y_train]
    # Ridge regression onto one-hot targets: a closed-form linear classifier.
    coef = np.linalg.solve(f.T @ f + 1.0 * np.eye(f.shape[1]), f.T @ onehot)
    wt, b = coef[:-1].T, coef[-1]
    inits["fc.weight"] = wt / sd  # fold the standardisation into the last layer
    inits["fc.bias"] = b - (wt / sd) @ mu
    nodes = _conv_nodes() + [helper.make_node("Gemm", ["features", "fc.weight", "fc.bias"], ["logits"], transB=1)]
    return _save(nodes, inits, [1, 8, 8], 10, folder / "conv.onnx")


def _batches(x: np.ndarray, size: int = 100) -> list[np.ndarray]:
    return [x[i:i + size] for i in range(0, min(len(x), 500), size)]


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a.argmax(1) == b.argmax(1)))


def test_qdq_mlp_agrees_with_float32(tmp_path, quant_mlp, quant_trained) -> None:
    data = quant_mlp.data
    fp32 = _mlp_onnx(quant_trained, tmp_path / "mlp.onnx")
    out = emit_int8_qdq_onnx(fp32, tmp_path / "mlp_int8.onnx", _batches(data.x_train))
    model = onnx.load(str(out))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8_inits = [t for t in model.graph.initializer if t.data_type == TensorProto.INT8]
    assert any(tuple(t.dims) == (64, 64) for t in int8_inits)  # fc1's weight stored as int8
    a, b = _run(fp32, data.x_test), _run(out, data.x_test, optimize=False)
    assert _agreement(a, b) >= 0.98
    acc32 = float(np.mean(a.argmax(1) == data.y_test))
    acc8 = float(np.mean(b.argmax(1) == data.y_test))
    assert acc8 >= acc32 - 0.02
    # onnxruntime's fused kernels saturate on CPUs without VNNI; 7-bit weights avoid it.
    narrow = emit_int8_qdq_onnx(fp32, tmp_path / "mlp_int8_rr.onnx", _batches(data.x_train), reduce_range=True)
    assert _agreement(a, _run(narrow, data.x_test)) >= 0.98


@pytest.mark.parametrize("per_channel, symmetric", [(True, True), (False, False), (False, True)])
def test_qdq_conv_agrees_with_float32(tmp_path, conv_model, quant_mlp, per_channel, symmetric) -> None:
    x = quant_mlp.data.x_test.reshape(-1, 1, 8, 8)
    out = emit_int8_qdq_onnx(conv_model, tmp_path / "conv_int8.onnx",
                             _batches(quant_mlp.data.x_train.reshape(-1, 1, 8, 8)), per_channel, symmetric)
    a, b = _run(conv_model, x), _run(out, x, optimize=False)
    acc32 = float(np.mean(a.argmax(1) == quant_mlp.data.y_test))
    assert acc32 > 0.8  # a real classifier, so that agreement means something
    assert _agreement(a, b) >= 0.96
    act_type = TensorProto.INT8 if symmetric else TensorProto.UINT8
    zps = [t for t in onnx.load(str(out)).graph.initializer if t.name.endswith("zero_point")]
    assert any(t.data_type == act_type for t in zps)


def test_fp16_model_keeps_a_float32_interface(tmp_path, conv_model, quant_mlp) -> None:
    pytest.importorskip("onnxconverter_common")
    out = emit_fp16_onnx(conv_model, tmp_path / "conv_fp16.onnx")
    model = onnx.load(str(out))
    weights = [t for t in model.graph.initializer if t.name.endswith("weight")]
    assert weights and all(t.data_type == TensorProto.FLOAT16 for t in weights)
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    x = quant_mlp.data.x_test.reshape(-1, 1, 8, 8)
    a, b = _run(conv_model, x), _run(out, x)
    assert b.dtype == np.float32
    assert _agreement(a, b) >= 0.99
    assert np.max(np.abs(a - b)) <= 0.05 * np.max(np.abs(a))


def test_bad_inputs_are_reported(tmp_path, quant_mlp, quant_trained) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        emit_int8_qdq_onnx(tmp_path / "none.onnx", tmp_path / "o.onnx", [np.zeros((1, 64), np.float32)])
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model" * 10)
    with pytest.raises(ModelFileError, match="not a valid ONNX model"):
        emit_int8_qdq_onnx(junk, tmp_path / "o.onnx", [np.zeros((1, 64), np.float32)])
    fp32 = _mlp_onnx(quant_trained, tmp_path / "mlp.onnx")
    with pytest.raises(InvalidValueError, match="calibration"):
        emit_int8_qdq_onnx(fp32, tmp_path / "o.onnx", [])
    with pytest.raises(InvalidValueError, match="NaN"):
        emit_int8_qdq_onnx(fp32, tmp_path / "o.onnx", [np.full((2, 64), np.nan, np.float32)])
    assert not (tmp_path / "o.onnx").exists()


def test_test_data_is_scikit_learns_digits() -> None:
    spec = importlib.util.find_spec("sklearn")  # found without importing it (slow)
    if spec is None or spec.origin is None:
        pytest.skip("scikit-learn is not installed")
    ours = Path(__file__).parent / "data" / "digits.csv.gz"
    theirs = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(ours) as a, gzip.open(theirs) as b:
        assert a.read() == b.read()
