"""The whole chain through the real plugin machinery: prune → quant → code, retrain, artifact.

The pruning stage here is a small compressor registered by this test as a plugin of its own
(the pruning plugin is another distribution; this plugin's tests must pass without it): it
keeps the largest weights of each fc layer and leaves masks in ``state["masks"]``, the
convention both plugins share.
"""

from __future__ import annotations

import numpy as np
import pytest
from sigdl_core import hookimpl
from sigdl_core.artifact import read_artifact, write_artifact
from sigdl_core.artifact import decode_weights as decode
from sigdl_core.compression import build_artifact_layers, chain_compressors, summary
from sigdl_core.errors import InvalidValueError, UnknownNameError
from sigdl_core.interfaces import CompressionResult, Compressor, CompressorSpec, LayerEncoding
from sigdl_core.plugins import load_plugins
from sigdl_compress_quant import plugin


class _KeepLargest(Compressor):
    name = "keep-largest"

    def compress(self, weights, kinds, params, previous=None):
        keep = params.get("keep", 0.1)
        out = {n: np.array(a, copy=True) for n, a in weights.items()}
        masks = {}
        for name, w in out.items():
            if kinds.get(name) == "fc":
                k = max(1, int(round(keep * w.size)))
                threshold = np.sort(np.abs(w).ravel())[-k]
                masks[name] = np.abs(w) >= threshold
                w[~masks[name]] = 0

        def projection(ws):
            for n, m in masks.items():
                if n in ws:
                    np.putmask(ws[n], ~m, 0)

        layers = {n: LayerEncoding(n, m.shape, int(m.sum()), 32 * int(m.sum())) for n, m in masks.items()}
        return CompressionResult(weights=out, projection=projection, layers=layers, state={"masks": masks})


class _PrunerPlugin:
    @hookimpl
    def sigdl_compressors(self):
        return [CompressorSpec("keep-largest", "test pruner", factory=_KeepLargest)]


@pytest.fixture(scope="module")
def registry():
    loaded = load_plugins(entry_points=False, extra=[("compress_quant", plugin), ("test_pruner", _PrunerPlugin())])
    assert not loaded.failed
    return loaded.registry


@pytest.mark.slow
def test_prune_share_code_with_retraining_writes_a_small_exact_artifact(registry, quant_mlp, quant_trained, tmp_path):
    data = quant_mlp.data
    base = quant_mlp.accuracy(quant_trained, data.x_test, data.y_test)
    calls = []

    def retrain(weights, projection):
        calls.append(projection)
        return quant_mlp.train(weights, data, epochs=4, lr=0.02, projection=projection, seed=len(calls))

    chain = [("keep-largest", {"keep": 0.25}), ("quant", {"bits": 4, "centroid_update": "mean"}), ("huffman", {})]
    result = chain_compressors(registry, quant_trained, quant_mlp.kinds, chain, retrain=retrain)
    assert len(calls) == 2  # after pruning and after sharing; the coding stage changes nothing
    assert [s["retrained"] for s in result.state["stages"]] == [True, True, False]
    w = result.weights
    for name in ("fc1.weight", "fc2.weight"):
        mask = result.state["masks"][name]
        assert not w[name][~mask].any()
        assert len(np.unique(w[name][mask])) <= 16
    acc = quant_mlp.accuracy(w, data.x_test, data.y_test)
    assert acc >= base - 0.03

    layers = build_artifact_layers(result, w, quant_mlp.kinds)
    path = tmp_path / "mlp.sigdl"
    size = write_artifact(path, layers, {"accuracy": acc})
    back, meta = read_artifact(path)
    decoded = decode(back)
    assert meta == {"accuracy": acc}
    for name, array in w.items():
        np.testing.assert_array_equal(decoded[name], array)
    s = summary(layers, path, quant_trained)
    assert s["artifact_bytes"] == size == path.stat().st_size
    assert s["original_bytes"] == 4 * sum(a.size for a in quant_trained.values())
    assert s["ratio"] > 8
    fc1 = s["layers"]["fc1.weight"]
    assert fc1["kept"] == int(result.state["masks"]["fc1.weight"].sum())
    assert fc1["layout"] == "sparse" and fc1["gap_bits"] == 5 and fc1["codebook_size"] <= 16
    assert fc1["weight_bits"] > 0 and fc1["index_bits"] > 0
    assert fc1["entropy_bits"] <= fc1["coded_bits"]
    # The coding stage's per-layer figures are the artifact's.
    enc = result.layers["fc1.weight"]
    assert enc.weight_bits == fc1["weight_bits"] and enc.index_bits == fc1["index_bits"]


@pytest.mark.parametrize("quantizer", ["int8", "fp16", "quant"])
@pytest.mark.parametrize("coder", ["encode", "huffman"])
def test_each_representation_round_trips_through_the_artifact(registry, quant_mlp, quant_trained, tmp_path,
                                                              quantizer, coder):
    chain = [("keep-largest", {"keep": 0.3}), (quantizer, {}), (coder, {"others": "f16"})]
    result = chain_compressors(registry, quant_trained, quant_mlp.kinds, chain)
    layers = build_artifact_layers(result, None, quant_mlp.kinds)
    path = tmp_path / "m.sigdl"
    write_artifact(path, layers)
    decoded = decode(read_artifact(path)[0])
    for name in ("fc1.weight", "fc2.weight"):
        np.testing.assert_array_equal(decoded[name], result.weights[name])
    for name in ("fc1.bias", "fc2.bias"):  # stored as float16, as asked
        np.testing.assert_array_equal(decoded[name], result.weights[name].astype(np.float16).astype(np.float32))
    forms = {layer.name: (layer.values, layer.layout) for layer in layers}
    expected = {"int8": "int8", "fp16": "f16", "quant": "codebook"}[quantizer]
    assert forms["fc1.weight"] == (expected, "sparse")
    assert forms["fc1.bias"] == ("f16", "dense")


def test_without_a_coding_stage_streams_are_fixed_width(registry, quant_mlp, quant_trained):
    result = chain_compressors(registry, quant_trained, quant_mlp.kinds, [("keep-largest", {}), ("quant", {"bits": 5})])
    layers = build_artifact_layers(result, None, quant_mlp.kinds)
    assert all(s.coder == "fixed" for layer in layers for s in layer.streams)
    auto = build_artifact_layers(result, None, quant_mlp.kinds, coder="auto", gap_bits="auto")
    assert sum(len(s.payload) for a in auto for s in a.streams) < sum(len(s.payload) for a in layers for s in a.streams)


def test_untied_weights_are_stored_as_their_cluster_means(registry, quant_mlp, quant_trained):
    result = chain_compressors(registry, quant_trained, quant_mlp.kinds, [("quant", {"bits": 3})])
    drifted = {k: v.copy() for k, v in result.weights.items()}
    drifted["fc2.weight"] += np.random.default_rng(0).normal(0, 1e-3, drifted["fc2.weight"].shape).astype(np.float32)
    layers = build_artifact_layers(result, drifted, quant_mlp.kinds)
    layer = next(a for a in layers if a.name == "fc2.weight")
    assert "retied" in layer.details
    assert len(np.unique(layer.decode())) <= 8


def test_chain_errors_are_clear(registry, quant_mlp, quant_trained):
    with pytest.raises(UnknownNameError, match="compressor"):
        chain_compressors(registry, quant_trained, quant_mlp.kinds, [("qaunt", {})])
    with pytest.raises(InvalidValueError, match="empty"):
        chain_compressors(registry, quant_trained, quant_mlp.kinds, [])
    with pytest.raises(InvalidValueError, match="mapping"):
        chain_compressors(registry, quant_trained, quant_mlp.kinds, [("quant", [("bits", 4)])])
    result = chain_compressors(registry, quant_trained, quant_mlp.kinds, [("keep-largest", {})])
    bad = {k: v + 1 for k, v in result.weights.items()}  # pruned weights revived without the projection
    with pytest.raises(InvalidValueError, match="pruning mask"):
        build_artifact_layers(result, bad, quant_mlp.kinds)
