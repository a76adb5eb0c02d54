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


def _dense_and_frequency(folder):
    from sigdl_compress_fft.onnx_frequency import write_frequency_form

    dense = folder / "model.onnx"
    onnx.save(_circulant_mlp(), dense)
    freq = folder / "model.freq.onnx"
    assert write_frequency_form(dense, freq)
    return dense, freq


def test_the_ma2450_falls_back_to_the_dense_model_the_frequency_form_names(sigdl_cli, tmp_path) -> None:
    dense, freq = _dense_and_frequency(tmp_path)
    args = ["--target", "movidius-ma2450", "--dataset", "synthetic:1x784", "--json"]
    fell = json.loads(sigdl_cli(["test", str(freq), *args]).stdout)["targets"]["movidius-ma2450"]
    direct = json.loads(sigdl_cli(["test", str(dense), *args]).stdout)["targets"]["movidius-ma2450"]
    assert fell["fits"] and fell["latency_ms_p50"] == direct["latency_ms_p50"] > 0
    assert fell["warnings"][0].startswith("fell back to the dense model model.onnx")
    fallback = fell["extra"]["fallback"]
    assert fallback["requested"] == "model.freq.onnx" and fallback["ran"] == "model.onnx"
    assert "DFT" in fallback["operators"]
    assert "model.onnx" in fell["provenance"]["model_run"]["detail"]
    alone = tmp_path / "alone"  # the dense model it names is not beside it: refused, as before
    alone.mkdir()
    (alone / freq.name).write_bytes(freq.read_bytes())
    refused = json.loads(sigdl_cli(["test", str(alone / freq.name), *args]).stdout)["targets"]["movidius-ma2450"]
    assert not refused["fits"] and "fallback" not in refused["extra"]


@pytest.mark.parametrize("named", ["../model.onnx", "/etc/hostname", "", "model.freq.onnx"])
def test_a_dense_equivalent_is_only_a_file_beside_the_model(tmp_path, named) -> None:
    from sigdl_core.targets import DENSE_EQUIVALENT_KEY, dense_equivalent

    dense, freq = _dense_and_frequency(tmp_path)
    assert dense_equivalent(freq) == dense
    model = onnx.load(str(freq))
    for prop in model.metadata_props:
        if prop.key == DENSE_EQUIVALENT_KEY:
            prop.value = named
    inner = tmp_path / "inner"
    inner.mkdir()
    onnx.save(model, inner / "model.freq.onnx")
    assert dense_equivalent(inner / "model.freq.onnx") is None


def test_compress_writes_the_frequency_form_and_records_the_execution_plan(sigdl_cli, tmp_path) -> None:
    pytest.importorskip("sigdl_framework_torch")
    pytest.importorskip("sigdl_datasets")
    import onnxruntime as ort

    out = tmp_path / "out"
    common = ["--dataset", "synthetic:1x28x28", "--epochs", "0", "--retrain-epochs", "0", "-o", str(out)]
    result = sigdl_cli(["compress", "lenet300100", "--with", "circulant,encode", *common])
    assert result.exit_code == 0, result.output
    freq = out / "model.freq.onnx"
    from sigdl_core.targets import dense_equivalent

    assert dense_equivalent(freq) == out / "model.onnx"
    assert "DFT" in {n.op_type for n in onnx.load(str(freq)).graph.node}
    x = np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype(np.float32)
    outputs = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
               for p in (out / "model.onnx", freq)]
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-4)
    report = json.loads((out / "report.json").read_text())
    chosen = report["chosen"]
    assert report["files"]["frequency_onnx"] == "model.freq.onnx"
    assert [r["weight"] for r in chosen["frequency_form"]["layers"]] == ["fc1.weight", "fc2.weight"]
    plan = {p["layer"]: p for p in chosen["execution_plan"]}
    assert set(plan["fc1"]["timings_ms"]) == {"direct", "fft-circulant-16"}
    assert plan["fc1"]["chosen"] in plan["fc1"]["timings_ms"]
    assert "## Execution plan" in (out / "report.md").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"]["frequency_onnx"] == str(freq)
    # A chain without a frequency-domain compressor: no frequency form (the stale one goes), no plan.
    result = sigdl_cli(["compress", "lenet300100", "--with", "prune,encode", *common])
    assert result.exit_code == 0, result.output
    assert not freq.exists()
    report = json.loads((out / "report.json").read_text())
    assert "execution_plan" not in report["chosen"] and "frequency_onnx" not in report["files"]


@pytest.mark.slow
def test_freq_prune_quant_encode_runs_with_the_defaults(sigdl_cli, tmp_path) -> None:
    pytest.importorskip("sigdl_framework_torch")
    pytest.importorskip("sigdl_datasets")
    pytest.importorskip("sigdl_compress_quant")
    from sigdl_core.artifact import read_artifact

    out = tmp_path / "out"
    result = sigdl_cli(["compress", "lenet5", "--with", "freq-prune,quant,encode", "--dataset", "synthetic:1x28x28",
                        "--epochs", "0", "--retrain-epochs", "0", "-o", str(out)])
    assert result.exit_code == 0, result.output
    layers = {layer.name: layer for layer in read_artifact(out / "model.sigdl")[0]}
    for name in ("conv1.weight", "conv2.weight"):
        assert (layers[name].layout, layers[name].values) == ("dct-sparse", "codebook")
    assert layers["fc1.weight"].values == "codebook"
    freq = json.loads((out / "report.json").read_text())["chosen"]["frequency_form"]
    assert {r["weight"] for r in freq["layers"]} == {"conv1.weight", "conv2.weight"}
