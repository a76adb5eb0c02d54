"""FP16 rounding of an FP32 model, and the report builder's provenance rule."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sigdl_core.emulation import ReportBuilder, missing_provenance, round_to_fp16
from sigdl_core.interfaces import Accuracy, EmulationReport, Method


def two_layer_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((32, 16)) * 0.3).astype(np.float32)
    w2 = (rng.standard_normal((10, 32)) * 0.3).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("Gemm", ["input", "w1"], ["h"], transB=1),
         helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("Gemm", ["r", "w2"], ["logits"], transB=1)],
        "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def test_round_to_fp16_rounds_weights_and_activations():
    ort = pytest.importorskip("onnxruntime")
    model = two_layer_model()
    half = round_to_fp16(model)
    onnx.checker.check_model(half)
    assert [o.name for o in half.graph.output] == ["logits"]
    for init in half.graph.initializer:
        a = numpy_helper.to_array(init)
        assert np.array_equal(a, a.astype(np.float16).astype(np.float32))
    assert sum(n.op_type == "Cast" for n in half.graph.node) == 2 * 3  # input, h, logits
    x = np.random.default_rng(1).standard_normal((64, 16)).astype(np.float32)
    so = ort.SessionOptions()
    so.log_severity_level = 4
    y32 = ort.InferenceSession(model.SerializeToString(), so).run(None, {"input": x})[0]
    y16 = ort.InferenceSession(half.SerializeToString(), so).run(None, {"input": x})[0]
    assert np.array_equal(y16, y16.astype(np.float16).astype(np.float32))  # outputs are FP16 values
    assert not np.array_equal(y16, y32)  # the rounding survived onnxruntime's optimiser
    np.testing.assert_allclose(y16, y32, rtol=0.02, atol=0.02)
    # the original is untouched
    assert not np.array_equal(numpy_helper.to_array(model.graph.initializer[0]),
                              numpy_helper.to_array(model.graph.initializer[0]).astype(np.float16).astype(np.float32))


def test_report_builder_requires_provenance_for_every_number():
    rb = ReportBuilder("t", "e")
    rb.set("latency_ms_p50", 3.0, Method.ANALYTICAL, "roofline")
    rb.set("fits", True, Method.ANALYTICAL, "weights fit")
    rb.set("accuracy", Accuracy(0.9, 1.0, 10), Method.EXECUTED, "host")
    rb.warn("power is an estimate")
    rb.warn("power is an estimate")
    report = rb.finish()
    assert report.warnings == ["power is an estimate"]
    assert report.provenance["latency_ms_p50"].method is Method.ANALYTICAL
    bare = EmulationReport("t", "e", latency_ms_p50=1.0)
    assert set(missing_provenance(bare)) == {"latency_ms_p50", "fits"}
    with pytest.raises(ValueError):
        rb.set("latency_ms_p50", float("nan"), Method.ANALYTICAL, "x")
    with pytest.raises(ValueError):
        rb.set("not_a_field", 1, Method.ANALYTICAL, "x")
    rb2 = ReportBuilder("t", "e")
    rb2.report.power_w = 2.0  # set behind the builder's back
    rb2.set("fits", True, Method.ANALYTICAL, "x")
    with pytest.raises(ValueError):
        rb2.finish()
