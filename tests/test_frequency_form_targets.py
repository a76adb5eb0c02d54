"""The frequency (DFT) form of a block-circulant model on the targets: the Atom and Jetson
emulators run it; the MA2450 (NCSDK v1, no DFT) refuses it and names the operator."""

from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("sigdl_compress_fft")
pytest.importorskip("sigdl_target_atom")
pytest.importorskip("sigdl_target_jetson")
pytest.importorskip("sigdl_target_movidius")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from sigdl_core.structured_weights import expand_circulant, nearest_circulant_vectors  # noqa: E402

from sigdl_compress_fft.onnx_frequency import frequency_form  # noqa: E402


def _circulant_mlp() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w1 = expand_circulant(nearest_circulant_vectors(rng.standard_normal((300, 784)), 16), (300, 784), 16)
    w2 = (rng.standard_normal((10, 300)) / 17).astype(np.float32)
    inits = [numpy_helper.from_array(w1.astype(np.float32), "fc1.weight"),
             numpy_helper.from_array(np.zeros(300, np.float32), "fc1.bias"),
             numpy_helper.from_array(w2, "fc2.weight"), numpy_helper.from_array(np.zeros(10, np.float32), "fc2.bias")]
    nodes = [helper.make_node("Gemm", ["input", "fc1.weight", "fc1.bias"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "fc2.weight", "fc2.bias"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 784])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.slow
def test_atom_and_jetson_run_the_frequency_form_and_the_ma2450_names_dft(sigdl_cli, tmp_path) -> None:
    freq, replaced = frequency_form(_circulant_mlp())
    assert replaced and replaced[0]["block"] == 16
    path = tmp_path / "mlp.frequency.onnx"
    onnx.save(freq, path)
    result = sigdl_cli(["test", str(path), "--target", "atom-x5-e3930", "--target", "jetson-tx2",
                        "--target", "movidius-ma2450", "--dataset", "synthetic:1x784", "--json"])
    targets = json.loads(result.stdout)["targets"]
    for name in ("atom-x5-e3930", "jetson-tx2"):
        assert targets[name]["fits"] and targets[name]["latency_ms_p50"] > 0
    ma2450 = targets["movidius-ma2450"]
    assert not ma2450["fits"] and ma2450["latency_ms_p50"] is None
    assert "DFT" in {u["op_type"] for u in ma2450["extra"]["unsupported"]}
