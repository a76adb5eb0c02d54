"""freq-prune then quant with its defaults: quant shares the kept DCT coefficients (a codebook
per layer), keeps them shared and pruned through retraining steps, and the artifact stores
them in the dct-sparse layout with codebook values, decoding to the weights bit-exactly."""

from __future__ import annotations

import numpy as np
import pytest
from sigdl_core.artifact import decode_weights, read_artifact, write_artifact
from sigdl_core.compression import build_artifact_layers, chain_compressors, summary
from sigdl_core.plugins import load_plugins
from sigdl_core.structured_weights import dct2

pytest.importorskip("sigdl_compress_quant")
from sigdl_compress_quant import plugin as quant  # noqa: E402

from sigdl_compress_fft import plugin  # noqa: E402

KINDS = {"conv1.weight": "conv", "conv1.bias": "bias", "conv2.weight": "conv", "fc.weight": "fc"}


def _weights(seed=0):
    rng = np.random.default_rng(seed)
    return {"conv1.weight": rng.standard_normal((8, 1, 5, 5)).astype(np.float32),
            "conv1.bias": rng.standard_normal(8).astype(np.float32),
            "conv2.weight": rng.standard_normal((16, 8, 5, 5)).astype(np.float32),
            "fc.weight": rng.standard_normal((10, 40)).astype(np.float32)}


@pytest.fixture(scope="module")
def registry():
    loaded = load_plugins(entry_points=False, extra=[("compress_fft", plugin), ("compress_quant", quant)])
    assert not loaded.failed
    return loaded.registry


def _noisy_steps(weights, projection, steps=5, seed=1):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        for name, array in weights.items():
            array += (0.01 * rng.standard_normal(array.shape)).astype(np.float32)
        projection(weights)
    return weights


@pytest.mark.parametrize("values", ["f16", "f32"])
def test_quant_shares_the_kept_dct_coefficients_through_retraining(registry, tmp_path, values) -> None:
    original = _weights()
    chain = [("freq-prune", {"values": values}), ("quant", {}), ("encode", {})]
    result = chain_compressors(registry, original, KINDS, chain,
                               retrain=lambda w, projection: _noisy_steps(w, projection))
    w = result.weights
    freq = result.state["frequency"]
    for name in ("conv1.weight", "conv2.weight"):
        mask, coefficients = freq[name]["mask"], freq[name]["coefficients"]
        spectrum = dct2(w[name])
        assert np.allclose(spectrum[~mask], 0, atol=1e-5)  # pruned coefficients stayed pruned
        kept = np.unique(coefficients[mask])
        assert len(kept) <= 256  # quant's default 8 bits for conv layers
        assert np.allclose(spectrum[mask], coefficients[mask], atol=1e-5)
        if values == "f16":
            assert np.array_equal(kept.astype(np.float16).astype(np.float32), kept)
        assert result.layers[name].details["domain"] == "dct"
    assert len(np.unique(w["fc.weight"])) <= 32  # the fc layer is shared spatially, 5 bits
    layers = build_artifact_layers(result, w, KINDS)
    by_name = {layer.name: layer for layer in layers}
    for name in ("conv1.weight", "conv2.weight"):
        assert by_name[name].layout == "dct-sparse" and by_name[name].values == "codebook"
        assert "retied" not in by_name[name].details
    path = tmp_path / "m.sigdl"
    write_artifact(path, layers, {})
    back, _ = read_artifact(path)
    decoded = decode_weights(back)
    for name, array in w.items():
        np.testing.assert_array_equal(decoded[name], array)
    report = summary(layers, path, original)["layers"]["conv2.weight"]
    assert report["layout"] == "dct-sparse"
    assert report["kept"] == int(freq["conv2.weight"]["mask"].sum())


def test_the_shared_projection_is_idempotent(registry) -> None:
    chain = [("freq-prune", {}), ("quant", {})]
    result = chain_compressors(registry, _weights(), KINDS, chain)
    w = {n: a.copy() for n, a in result.weights.items()}
    result.projection(w)
    once = {n: a.copy() for n, a in w.items()}
    result.projection(w)
    for name in w:
        np.testing.assert_array_equal(w[name], once[name])
        np.testing.assert_array_equal(w[name], result.weights[name])


@pytest.mark.parametrize("quantizer", ["int8", "fp16"])
def test_int8_and_fp16_leave_frequency_pruned_layers_in_their_coefficients(registry, quantizer) -> None:
    original = _weights()
    pruned = chain_compressors(registry, original, KINDS, [("freq-prune", {})])
    result = registry.compressor(quantizer).compress(pruned.weights, KINDS, {}, previous=pruned)
    for name in ("conv1.weight", "conv2.weight"):
        np.testing.assert_array_equal(result.weights[name], pruned.weights[name])
        assert "frequency-pruned" in result.layers[name].details[quantizer]
        assert name not in (result.state.get("representation") or {})
        assert quantizer not in pruned.layers[name].details  # the earlier stage's encodings are untouched
    assert result.state["representation"]["fc.weight"] == quantizer
    by_name = {layer.name: layer for layer in build_artifact_layers(result, result.weights, KINDS)}
    assert by_name["conv2.weight"].layout == "dct-sparse"
