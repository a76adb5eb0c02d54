"""The circulant compressor: the projection is the least-squares nearest block-circulant
matrix, idempotent, kept through retraining, and the chain stores the defining vectors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sigdl_core.artifact import read_artifact, write_artifact
from sigdl_core.artifact import decode_weights as decode
from sigdl_core.compression import build_artifact_layers, chain_compressors, summary
from sigdl_core.errors import InvalidValueError, UnknownNameError
from sigdl_core.plugins import load_plugins
from sigdl_core.structured_weights import (
    circulant_vector_shape,
    circulant_vectors_of,
    expand_circulant,
    nearest_circulant_vectors,
)

from sigdl_compress_fft import plugin
from sigdl_compress_fft.circulant import make_circulant


def _brute_force_nearest(w: np.ndarray, block: int) -> np.ndarray:
    """argmin_V ||expand(V) - W||_F by an explicit least-squares solve over every basis vector."""
    shape = circulant_vector_shape(w.shape, block)
    n = int(np.prod(shape))
    basis = np.zeros((w.size, n))
    for k in range(n):
        e = np.zeros(n)
        e[k] = 1.0
        basis[:, k] = expand_circulant(e.reshape(shape), w.shape, block).ravel()
    v, *_ = np.linalg.lstsq(basis, w.ravel().astype(np.float64), rcond=None)
    return (basis @ v).reshape(w.shape)


@pytest.mark.parametrize("shape, block", [((8, 8), 4), ((10, 7), 4), ((3, 5), 8), ((6, 9, 3, 3), 4), ((16, 4), 2)])
def test_projection_is_the_least_squares_nearest_block_circulant_matrix(shape, block) -> None:
    w = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    nearest = expand_circulant(nearest_circulant_vectors(w, block), shape, block)
    np.testing.assert_allclose(nearest, _brute_force_nearest(w, block), atol=2e-6)
    # every block is circulant: a cyclic shift of row r is row r + 1
    if shape[0] % block == 0 and shape[1] % block == 0:
        blk = nearest[:block, :block]
        np.testing.assert_array_equal(np.roll(blk[0], 1), blk[1])
    assert circulant_vectors_of(w, block) is None  # the random matrix itself is not circulant


@settings(max_examples=40, deadline=None)
@given(p=st.integers(1, 20), q=st.integers(1, 20), log_b=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_projection_is_idempotent_and_exact(p, q, log_b, seed) -> None:
    block = 1 << log_b
    w = np.random.default_rng(seed).standard_normal((p, q)).astype(np.float32)
    once = expand_circulant(nearest_circulant_vectors(w, block), w.shape, block)
    twice = expand_circulant(nearest_circulant_vectors(once, block), w.shape, block)
    np.testing.assert_array_equal(once, twice)
    v = circulant_vectors_of(once, block)
    assert v is not None and np.array_equal(expand_circulant(v, w.shape, block), once)


def test_retraining_with_the_projection_stays_circulant_and_learns(mlp, trained) -> None:
    data = mlp.data
    base = mlp.accuracy(trained, data.x_test, data.y_test)
    result = make_circulant({n: a.copy() for n, a in trained.items()}, mlp.kinds, {"block": {"fc1": 8}})
    assert result.state["circulant"] == {"fc1.weight": 8}
    assert "fc2.weight" in result.state["circulant_dense"]  # 10 x 64 is smaller than a default 16-block
    w = mlp.train(result.weights, data, epochs=15, lr=0.1, projection=result.projection)
    assert circulant_vectors_of(w["fc1.weight"], 8) is not None
    assert mlp.accuracy(w, data.x_test, data.y_test) >= base - 0.04
    assert result.retrain == {"epochs": 16, "lr": 0.05, "schedule": "cosine"}
    enc = result.layers["fc1.weight"]
    assert enc.kept == 8 * 8 * 8 and enc.details["values_ratio"] == 8.0


def test_padding_is_stored_and_counted() -> None:
    w = np.random.default_rng(0).standard_normal((300, 100)).astype(np.float32)
    result = make_circulant({"fc.weight": w}, {"fc.weight": "fc"}, {"block": 16, "min_blocks": 1})
    d = result.layers["fc.weight"].details
    assert d["stored_values"] == 19 * 7 * 16  # 300 -> 304, 100 -> 112
    assert d["padding_values"] == 19 * 7 * 16 - 1875


@pytest.mark.parametrize("params, error, match", [
    ({"block": 12}, InvalidValueError, "power of two"),
    ({"block": {"nope.*": 16}}, UnknownNameError, "nope"),
    ({"blok": 16}, UnknownNameError, "blok"),
    ({"retrain_epochs": -1}, InvalidValueError, "retrain_epochs"),
    ({"kinds": ["fcc"]}, UnknownNameError, "fcc"),
])
def test_bad_parameters_are_named(params, error, match, trained, mlp) -> None:
    with pytest.raises(error, match=match):
        make_circulant(trained, mlp.kinds, params)


@pytest.fixture(scope="module")
def registry():
    quant = pytest.importorskip("sigdl_compress_quant.plugin")
    loaded = load_plugins(entry_points=False, extra=[("compress_fft", plugin), ("compress_quant", quant)])
    assert not loaded.failed
    return loaded.registry


@pytest.mark.slow
def test_circulant_quant_encode_chain_writes_the_defining_vectors_bit_exactly(registry, mlp, trained, tmp_path):
    data = mlp.data
    base = mlp.accuracy(trained, data.x_test, data.y_test)
    seen = []

    def retrain(weights, projection, overrides=None):
        seen.append(overrides)
        return mlp.train(weights, data, epochs=4, lr=0.05, projection=projection, seed=len(seen))

    chain = [("circulant", {"block": {"fc1": 8}, "retrain_epochs": 6}), ("quant", {"bits": 4, "centroid_update": "mean"}),
             ("encode", {})]
    result = chain_compressors(registry, trained, mlp.kinds, chain, retrain=retrain)
    assert seen == [{"epochs": 6, "lr": 0.05, "schedule": "cosine"}, None]
    w = result.weights
    assert circulant_vectors_of(w["fc1.weight"], 8) is not None  # quant kept it circulant
    assert len(np.unique(w["fc1.weight"])) <= 16
    assert mlp.accuracy(w, data.x_test, data.y_test) >= base - 0.06
    layers = build_artifact_layers(result, w, mlp.kinds)
    path = tmp_path / "m.sigdl"
    write_artifact(path, layers, {})
    back, _ = read_artifact(path)
    decoded = decode(back)
    for name, array in w.items():
        np.testing.assert_array_equal(decoded[name], array)
    s = summary(layers, path, trained)
    fc1 = s["layers"]["fc1.weight"]
    assert fc1["layout"] == "circulant" and fc1["block"] == 8 and fc1["stored_values"] == 8 * 8 * 8
    assert fc1["value_stream_bits"] <= 8 * 8 * 8 * 4
    assert s["layers"]["fc2.weight"]["layout"] == "dense"


def test_a_layer_that_lost_its_structure_is_stored_plainly(registry, trained, mlp) -> None:
    result = chain_compressors(registry, trained, mlp.kinds, [("circulant", {"block": {"fc1": 8}})])
    w = {n: a.copy() for n, a in result.weights.items()}
    w["fc1.weight"][0, 0] += 1.0  # no longer circulant: stored as it is, decodes to it
    layers = {layer.name: layer for layer in build_artifact_layers(result, w, mlp.kinds)}
    assert layers["fc1.weight"].layout == "dense"
    np.testing.assert_array_equal(layers["fc1.weight"].decode(), w["fc1.weight"])
    assert build_artifact_layers(result, None, mlp.kinds)[0].layout == "circulant"


def test_int8_per_tensor_stays_circulant_per_channel_falls_back(registry, trained, mlp) -> None:
    for per_channel, layout in ((False, "circulant"), (True, "dense")):
        chain = [("circulant", {"block": {"fc1": 8}}), ("int8", {"per_channel": per_channel})]
        result = chain_compressors(registry, trained, mlp.kinds, chain)
        layer = build_artifact_layers(result, None, mlp.kinds)[0]
        assert layer.layout == layout
        np.testing.assert_array_equal(layer.decode(), result.weights["fc1.weight"])


def test_blocks_shrink_until_the_smaller_side_holds_min_blocks() -> None:
    rng = np.random.default_rng(0)
    w = {"fc1.weight": rng.standard_normal((300, 784)).astype(np.float32),
         "fc2.weight": rng.standard_normal((100, 300)).astype(np.float32),
         "fc3.weight": rng.standard_normal((10, 100)).astype(np.float32)}
    kinds = {n: "fc" for n in w}
    result = make_circulant(w, kinds, {"retrain_epochs": 0})
    assert result.state["circulant"] == {"fc1.weight": 16, "fc2.weight": 8}  # LeNet-300-100's defaults
    assert "fc3.weight" in result.state["circulant_dense"] and result.retrain is None
    assert make_circulant(w, kinds, {"min_blocks": 1}).state["circulant"]["fc3.weight"] == 8


def test_strength_scales_the_block_and_the_kept_fraction() -> None:
    from sigdl_compress_fft.frequency_pruning import prune_frequencies

    w = {"fc.weight": np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)}
    blocks = [make_circulant(w, {"fc.weight": "fc"}, {"strength": s, "retrain_epochs": 0}).state["circulant"]
              for s in (1.0, 0.75, 0.5, 0.25)]
    assert [b["fc.weight"] for b in blocks] == [16, 8, 4, 2]
    k = {"conv.weight": np.random.default_rng(1).standard_normal((4, 4, 3, 3)).astype(np.float32)}
    kept = [int(prune_frequencies(k, {"conv.weight": "conv"}, {"keep": 0.2, "strength": s})
                .state["frequency"]["conv.weight"]["mask"].sum()) for s in (1.0, 0.5)]
    assert kept == [round(0.2 * 144), round(0.6 * 144)]
    assert {s.name: s.role for s in plugin.sigdl_compressors()} == {"circulant": "structure", "freq-prune": "structure"}
