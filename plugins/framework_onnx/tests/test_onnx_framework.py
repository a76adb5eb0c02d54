"""The ``onnx`` framework on models neither SigDL framework made (built with onnx.helper).

Needs only the core and this plugin (and scikit-learn for the digits).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from sigdl_core.errors import InvalidValueError, ModelFileError, UnknownNameError, UnsupportedModelError
from sigdl_core.testing import FrameworkContract
from sigdl_framework_onnx import plugin
from sigdl_framework_onnx.framework import NEEDS_TORCH, OnnxFramework, RetrainingUnavailableError

DATASET = "onnx-digits"  # registered by the digits_plugin fixture (conftest.py)


def _reference_logits(path: Path, x: np.ndarray) -> np.ndarray:
    """relu(x W1 + b1) W2 + b2 from the file's initializers, in NumPy."""
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    h = np.maximum(x.reshape(len(x), -1) @ inits["hidden/W"] + inits["hidden/b"], 0)
    return h @ inits["out/W"] + inits["out/b"]


def _save(graph: onnx.GraphProto, path: Path, opset: int = 17) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_loads_a_hand_made_model_with_kinds_from_the_consuming_ops(mlp_onnx):
    fw = OnnxFramework()
    model = fw.load(mlp_onnx)
    assert model.framework == "onnx" and model.input_shape == (1, 8, 8) and model.num_classes == 10
    assert fw.layer_kinds(model) == {"hidden/W": "fc", "hidden/b": "bias", "out/W": "fc", "out/b": "bias"}
    weights = fw.get_weights(model)
    # MatMul's K×N and Gemm's transB=0 weights are shown output-first, as compressors expect
    assert weights["hidden/W"].shape == (32, 64) and weights["out/W"].shape == (10, 32)
    assert fw.parameter_count(model) == 64 * 32 + 32 + 32 * 10 + 10


def test_evaluate_matches_a_numpy_reference(mlp_onnx, digits):
    fw = OnnxFramework()
    model = fw.load(mlp_onnx)
    acc = fw.evaluate(model, digits, "test")
    expected = (_reference_logits(mlp_onnx, digits.x_test).argmax(1) == digits.y_test).mean()
    assert acc.samples == len(digits.y_test)
    assert acc.top1 == pytest.approx(expected) and acc.top1 > 0.9
    assert acc.top5 >= acc.top1
    with_val = digits.with_validation(0.1)
    assert fw.evaluate(model, with_val, "validation").samples == len(with_val.y_val)


def test_compressed_weights_are_written_back_in_the_file_layout(mlp_onnx, digits, tmp_path):
    fw = OnnxFramework()
    model = fw.load(mlp_onnx)
    w = fw.get_weights(model)
    pruned = w["hidden/W"].copy()
    pruned[:, ::2] = 0.0  # every other input feature, in the shown out×in layout
    fw.set_weights(model, {"hidden/W": pruned})
    out = fw.export_onnx(model, tmp_path / "pruned.onnx")
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == ["input"] and [o.name for o in proto.graph.output] == ["logits"]
    stored = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}["hidden/W"]
    np.testing.assert_array_equal(stored, pruned.T)
    x = digits.x_test[:7]
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    h = np.maximum(x.reshape(7, -1) @ inits["hidden/W"] + inits["hidden/b"], 0)
    logits = h @ inits["out/W"] + inits["out/b"]
    e = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(got, e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)
    # evaluation uses the new weights too
    acc = fw.evaluate(model, digits, "test")
    ref = (np.maximum(digits.x_test.reshape(len(digits.x_test), -1) @ pruned.T + inits["hidden/b"], 0)
           @ inits["out/W"] + inits["out/b"]).argmax(1)
    assert acc.top1 == pytest.approx((ref == digits.y_test).mean())


def test_save_and_load_round_trip_keeps_the_weights(mlp_onnx, tmp_path):
    fw = OnnxFramework()
    model = fw.load(mlp_onnx)
    w = fw.get_weights(model)
    fw.set_weights(model, {"out/b": w["out/b"] + 1.0})
    again = fw.load(fw.save(model, tmp_path / "saved.onnx"))
    np.testing.assert_array_equal(fw.get_weights(again)["out/b"], w["out/b"] + 1.0)
    np.testing.assert_array_equal(fw.get_weights(again)["hidden/W"], w["hidden/W"])


def test_bad_weights_are_refused(mlp_onnx):
    fw = OnnxFramework()
    model = fw.load(mlp_onnx)
    with pytest.raises(InvalidValueError, match=r"has shape \(16, 64\)"):
        fw.set_weights(model, {"hidden/W": np.zeros((16, 64), np.float32)})
    with pytest.raises(UnknownNameError):
        fw.set_weights(model, {"hidden.W": np.zeros((32, 64), np.float32)})
    with pytest.raises(InvalidValueError, match="NaN"):
        fw.set_weights(model, {"out/b": np.full(10, np.nan, np.float32)})


def _conv_graph(batch: int | str, hard_reshape: bool) -> onnx.GraphProto:
    """conv 3×3 (4 filters) → BN → depthwise 3×3 → relu → maxpool (ceil) → flatten/reshape → fc."""
    rng = np.random.default_rng(0)
    f = lambda *s: numpy_helper.from_array(rng.standard_normal(s).astype(np.float32) * 0.3)  # noqa: E731
    inits = []
    for name, t in (("c1.w", f(4, 1, 3, 3)), ("c1.b", f(4)), ("bn.s", f(4)), ("bn.b", f(4)), ("bn.m", f(4)),
                    ("dw.w", f(4, 1, 3, 3)), ("fc.w", f(10, 4 * 4 * 4)), ("fc.b", f(10))):
        t.name = name
        inits.append(t)
    var = numpy_helper.from_array(np.abs(rng.standard_normal(4)).astype(np.float32) + 0.5, "bn.v")
    shape = numpy_helper.from_array(np.array([batch if hard_reshape else 0, -1], np.int64), "shape")
    inits += [var, shape]
    nodes = [
        helper.make_node("Conv", ["x", "c1.w", "c1.b"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["a", "bn.s", "bn.b", "bn.m", "bn.v"], ["b"]),
        helper.make_node("Conv", ["b", "dw.w"], ["c"], group=4, pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["d"]),
        helper.make_node("MaxPool", ["d"], ["e"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        helper.make_node("Reshape", ["e", "shape"], ["g"]),
        helper.make_node("Gemm", ["g", "fc.w", "fc.b"], ["y"], transB=1),
    ]
    return helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 1, 8, 8])],
                             [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])], inits)


def test_conv_depthwise_and_batch_norm_kinds(tmp_path, digits):
    fw = OnnxFramework()
    model = fw.load(_save(_conv_graph("n", hard_reshape=False), tmp_path / "conv.onnx"))
    kinds = fw.layer_kinds(model)
    assert kinds["c1.w"] == "conv" and kinds["dw.w"] == "depthwise" and kinds["fc.w"] == "fc"
    assert kinds["c1.b"] == "bias" and kinds["fc.b"] == "bias"
    assert {kinds[n] for n in ("bn.s", "bn.b", "bn.m", "bn.v")} == {"norm"}
    assert fw.get_weights(model)["fc.w"].shape == (10, 64)  # transB=1: already out×in
    # the running statistics are not trainable parameters
    total = sum(w.size for w in fw.get_weights(model).values())
    assert fw.parameter_count(model) == total - 8
    assert fw.evaluate(model, digits, "test").samples == len(digits.y_test)


def test_a_fixed_batch_model_is_evaluated_in_padded_batches(tmp_path, digits):
    fw = OnnxFramework()
    path = _save(_conv_graph(4, hard_reshape=True), tmp_path / "fixed.onnx")
    model = fw.load(path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = digits.x_test[:10]
    padded = np.concatenate([x, np.zeros((2, 1, 8, 8), np.float32)])
    ref = np.concatenate([sess.run(None, {"x": padded[i:i + 4]})[0] for i in range(0, 12, 4)])[:10]
    np.testing.assert_allclose(model.native.logits(x), ref, rtol=1e-6)
    # its Reshape hard-codes the batch of 4, so the export keeps the fixed batch axis
    out = onnx.load(str(fw.export_onnx(model, tmp_path / "out.onnx")))
    assert out.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4


def test_a_fixed_batch_axis_is_made_dynamic_where_the_graph_allows(tmp_path):
    fw = OnnxFramework()
    model = fw.load(_save(_conv_graph(1, hard_reshape=False), tmp_path / "one.onnx"))
    out = fw.export_onnx(model, tmp_path / "out.onnx")
    dim = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_param == "batch"
    y = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(
        None, {"input": np.zeros((3, 1, 8, 8), np.float32)})[0]
    assert y.shape == (3, 10)


def test_constant_nodes_become_named_weights(tmp_path, digits):
    w = numpy_helper.from_array(np.eye(10, 64, dtype=np.float32), "w")
    nodes = [helper.make_node("Flatten", ["x"], ["f"]),
             helper.make_node("Constant", [], ["fc_weight"], value=w),
             helper.make_node("Gemm", ["f", "fc_weight"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "const", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 10])])
    fw = OnnxFramework()
    model = fw.load(_save(graph, tmp_path / "const.onnx"))
    assert fw.layer_kinds(model) == {"fc_weight": "fc"}
    np.testing.assert_array_equal(fw.get_weights(model)["fc_weight"], np.eye(10, 64))


def test_corrupt_truncated_and_empty_files_are_model_file_errors(mlp_onnx, tmp_path):
    fw = OnnxFramework()
    data = mlp_onnx.read_bytes()
    cases = {"truncated.onnx": data[: len(data) // 2], "garbage.onnx": b"\x8f\xff not onnx \x00" * 50,
             "empty.onnx": b""}
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(ModelFileError):
            fw.load(tmp_path / name)
    with pytest.raises(ModelFileError):
        fw.load(tmp_path / "missing.onnx")


def test_an_op_onnxruntime_lacks_is_one_clear_error(tmp_path):
    nodes = [helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")]
    graph = helper.make_graph(nodes, "custom", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    onnx.save(model, str(tmp_path / "custom.onnx"))
    with pytest.raises((UnsupportedModelError, ModelFileError)) as info:
        OnnxFramework().load(tmp_path / "custom.onnx")
    assert "\n" not in info.value.one_line()


def test_without_the_torch_plugin_training_is_unavailable(mlp_onnx, digits, monkeypatch):
    from sigdl_core.interfaces import TrainSettings

    monkeypatch.setenv("SIGDL_DISABLE_PLUGINS", "framework_torch")
    fw = OnnxFramework()
    model = fw.load(mlp_onnx)
    assert fw.training_unavailable(model).startswith(NEEDS_TORCH)
    with pytest.raises(RetrainingUnavailableError, match=NEEDS_TORCH):
        fw.train(model, digits, TrainSettings(epochs=1))


def test_cli_lists_the_framework_and_tests_an_onnx_file(sigdl_cli, mlp_onnx, digits, digits_plugin):
    listing = sigdl_cli(["frameworks", "--json"], plugins=[plugin])
    assert listing.exit_code == 0, listing.output
    rows = json.loads(listing.stdout)
    assert any(r["name"] == "onnx" and ".onnx" in json.dumps(r) for r in rows)
    result = sigdl_cli(["test", str(mlp_onnx), "--dataset", DATASET, "--json"], plugins=[plugin, digits_plugin])
    assert result.exit_code == 0, result.output
    top1 = json.loads(result.stdout)["accuracy"]["top1"]
    assert top1 == pytest.approx(OnnxFramework().evaluate(OnnxFramework().load(mlp_onnx), digits, "test").top1)


def test_cli_answers_a_truncated_file_with_one_line_and_exit_2(sigdl_cli, mlp_onnx, tmp_path, digits_plugin):
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(mlp_onnx.read_bytes()[:300])
    result = sigdl_cli(["test", str(bad), "--dataset", DATASET], plugins=[plugin, digits_plugin])
    assert result.exit_code == 2
    text = result.output.strip()
    assert "Traceback" not in text and len(text.splitlines()) == 1 and "cut.onnx" in text


class TestOnnxFrameworkContract(FrameworkContract):
    """The core's framework conformance suite, on this plugin alone."""

    frameworks = ["onnx"]
    plugins = [plugin]
