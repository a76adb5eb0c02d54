"""Magnitude pruning: thresholds, exact sparsities, masks, projection, chaining."""

from __future__ import annotations

import numpy as np
import pytest
from sigdl_compress_prune import (
    MaskProjection,
    prune_by_magnitude,
    prune_globally,
    prune_to_sparsity,
    sparsity_of,
)
from sigdl_core.artifact import encode_float_layer
from sigdl_core.errors import InvalidValueError, UnknownNameError


def _toy(seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    rng = np.random.default_rng(seed)
    weights = {
        "conv1.weight": rng.standard_normal((8, 3, 3, 3)).astype(np.float32),
        "conv1.bias": rng.standard_normal(8).astype(np.float32),
        "bn1.weight": rng.standard_normal(8).astype(np.float32),
        "fc1.weight": (rng.standard_normal((20, 72)) * 0.1).astype(np.float32),
        "fc1.bias": rng.standard_normal(20).astype(np.float32),
        "fc2.weight": (rng.standard_normal((10, 20)) * 3).astype(np.float32),
    }
    kinds = {"conv1.weight": "conv", "conv1.bias": "bias", "bn1.weight": "norm",
             "fc1.weight": "fc", "fc1.bias": "bias", "fc2.weight": "fc"}
    return weights, kinds


def test_prune_quality_threshold_is_quality_times_std():
    weights, kinds = _toy()
    result = prune_by_magnitude(weights, kinds, 0.7)
    for name in ("conv1.weight", "fc1.weight", "fc2.weight"):
        w = weights[name]
        threshold = 0.7 * float(np.std(w, dtype=np.float64))
        expected = np.abs(w) > threshold
        np.testing.assert_array_equal(result.state["masks"][name], expected)
        np.testing.assert_array_equal(result.weights[name], np.where(expected, w, 0))
        assert result.layers[name].details["threshold"] == pytest.approx(threshold)
    # non-compressible kinds are untouched and get no mask
    for name in ("conv1.bias", "bn1.weight", "fc1.bias"):
        np.testing.assert_array_equal(result.weights[name], weights[name])
        assert name not in result.state["masks"]
    # the inputs were not modified
    assert np.count_nonzero(weights["fc1.weight"]) == weights["fc1.weight"].size


def test_prune_quality_per_layer_pattern_leaves_others_dense():
    weights, kinds = _toy()
    result = prune_by_magnitude(weights, kinds, {"fc*": 1.0})
    assert set(result.state["masks"]) == {"fc1.weight", "fc2.weight"}
    assert np.count_nonzero(result.weights["conv1.weight"]) == weights["conv1.weight"].size
    # ~68 % of a normal layer lies within one standard deviation
    assert 0.6 < 1 - np.count_nonzero(result.weights["fc1.weight"]) / 1440 < 0.76


@pytest.mark.parametrize("target", [0.0, 0.13, 0.5, 0.9, 0.999])
def test_prune_sparsity_per_layer_is_exact(target):
    weights, kinds = _toy(1)
    result = prune_to_sparsity(weights, kinds, target)
    for name in ("conv1.weight", "fc1.weight", "fc2.weight"):
        n = weights[name].size
        zeros = n - np.count_nonzero(result.weights[name])
        assert abs(zeros - target * n) <= 1, (name, zeros, target * n)
        kept = result.state["masks"][name]
        assert result.layers[name].kept == np.count_nonzero(kept) == n - zeros
        # the bits reported are those the .sigdl sparse layer of this mask takes (before stream headers)
        gap_bits = 8 if kinds[name] == "conv" else 5
        stored = encode_float_layer(name, result.weights[name], mask=kept, gap_bits=gap_bits,
                                    coder="fixed").report()
        assert result.layers[name].weight_bits == stored["value_fixed_bits"]
        assert result.layers[name].index_bits == stored["index_fixed_bits"]
        # every kept weight is at least as large as every pruned one
        w = np.abs(weights[name])
        if 0 < zeros < n:
            assert w[kept].min() >= w[~kept].max()


def test_prune_sparsity_mapping_exact_name_beats_pattern():
    weights, kinds = _toy()
    result = prune_to_sparsity(weights, kinds, {"fc2.weight": 0.5, "fc*": 0.9, "conv1": 0.25})
    sparsity = {n: 1 - np.count_nonzero(m) / m.size for n, m in result.state["masks"].items()}
    assert sparsity["fc2.weight"] == pytest.approx(0.5)
    assert sparsity["fc1.weight"] == pytest.approx(0.9, abs=1 / 1440)
    assert sparsity["conv1.weight"] == pytest.approx(0.25, abs=1 / 216)


def test_prune_global_sparsity_is_exact_and_one_threshold():
    weights, kinds = _toy()
    result = prune_globally(weights, kinds, 0.8)
    names = ["conv1.weight", "fc1.weight", "fc2.weight"]
    total = sum(weights[n].size for n in names)
    zeros = sum(weights[n].size - np.count_nonzero(result.weights[n]) for n in names)
    assert abs(zeros - 0.8 * total) <= 1
    assert sparsity_of(result) == pytest.approx(zeros / total)
    kept = np.concatenate([np.abs(weights[n])[result.state["masks"][n]] for n in names])
    pruned = np.concatenate([np.abs(weights[n])[~result.state["masks"][n]] for n in names])
    assert kept.min() >= pruned.max()
    # the layers differ: fc2 (scale 3) loses far less than fc1 (scale 0.1)
    per = {n: 1 - np.count_nonzero(result.state["masks"][n]) / weights[n].size for n in names}
    assert per["fc1.weight"] > 0.95 and per["fc2.weight"] < 0.3


def test_prune_projection_edits_in_place_views():
    weights, kinds = _toy()
    result = prune_to_sparsity(weights, kinds, 0.75)
    assert isinstance(result.projection, MaskProjection)
    store = np.ones(weights["fc1.weight"].size * 2, np.float32)
    view = store[::2].reshape(weights["fc1.weight"].shape)  # non-contiguous, like a framework view
    live = {"fc1.weight": view}
    result.projection(live)
    mask = result.state["masks"]["fc1.weight"]
    assert np.all(view[~mask] == 0) and np.all(view[mask] == 1)
    assert np.count_nonzero(store[::2]) == np.count_nonzero(mask)
    assert np.all(store[1::2] == 1)
    # a subset of weights is fine; a changed shape is reported
    result.projection({})
    with pytest.raises(InvalidValueError, match="pruning mask has shape"):
        result.projection({"fc1.weight": np.ones((3, 3), np.float32)})


def test_prune_chain_never_revives():
    weights, kinds = _toy(2)
    first = prune_to_sparsity(weights, kinds, 0.6)
    # make pruned positions large, as retraining without a projection would
    poked = {n: a.copy() for n, a in first.weights.items()}
    for name, mask in first.state["masks"].items():
        poked[name][~mask] = 100.0
    second = prune_to_sparsity(poked, kinds, 0.8, previous=first)
    for name, mask in first.state["masks"].items():
        assert not np.any(second.state["masks"][name][~mask])
        assert np.all(second.weights[name][~mask] == 0)
        assert abs((1 - np.count_nonzero(second.state["masks"][name]) / mask.size) - 0.8) <= 1 / mask.size
    # a lower target keeps the higher sparsity already reached
    third = prune_to_sparsity(second.weights, kinds, 0.3, previous=second)
    for name, mask in second.state["masks"].items():
        np.testing.assert_array_equal(third.state["masks"][name], mask)
    # quality and global modes respect previous masks too
    for result in (prune_by_magnitude(poked, kinds, 0.1, previous=first),
                   prune_globally(poked, kinds, 0.2, previous=first)):
        for name, mask in first.state["masks"].items():
            assert np.all(result.weights[name][~mask] == 0)


def test_prune_chain_keeps_other_stages_state_and_layers():
    weights, kinds = _toy()
    first = prune_to_sparsity(weights, kinds, {"fc1.weight": 0.5})
    first.state["note"] = "kept"
    second = prune_to_sparsity(first.weights, kinds, {"fc2.weight": 0.5}, previous=first)
    assert set(second.state["masks"]) == {"fc1.weight", "fc2.weight"}
    assert set(second.layers) == {"fc1.weight", "fc2.weight"}
    assert second.state["note"] == "kept"
    assert len(second.state["pruning"]) == 2


def test_prune_layers_and_kinds_restrict_the_choice():
    weights, kinds = _toy()
    only_fc2 = prune_to_sparsity(weights, kinds, 0.5, layers=["fc2.weight"])
    assert set(only_fc2.state["masks"]) == {"fc2.weight"}
    with_bias = prune_to_sparsity(weights, kinds, {"fc1.bias": 0.5},
                                  allowed_kinds={"fc", "bias"})
    assert set(with_bias.state["masks"]) == {"fc1.bias"}
    assert np.count_nonzero(with_bias.weights["fc1.bias"]) == 10


def test_prune_bad_inputs_name_the_problem():
    weights, kinds = _toy()
    with pytest.raises(InvalidValueError, match="out of range"):
        prune_to_sparsity(weights, kinds, 1.5)
    with pytest.raises(InvalidValueError, match="out of range"):
        prune_to_sparsity(weights, kinds, 1.0)
    with pytest.raises(InvalidValueError, match="out of range"):
        prune_by_magnitude(weights, kinds, -0.5)
    with pytest.raises(UnknownNameError, match="fc3.weight") as info:
        prune_to_sparsity(weights, kinds, {"fc3.weight": 0.5})
    assert "fc1.weight" in info.value.hint or "fc2.weight" in info.value.hint
    with pytest.raises(UnknownNameError, match="classifier"):
        prune_to_sparsity(weights, kinds, {"classifier.*": 0.5})
    with pytest.raises(InvalidValueError, match="kinds not pruned"):
        prune_to_sparsity(weights, kinds, {"fc1.bias": 0.5})
    bad = dict(weights)
    bad["fc1.weight"] = bad["fc1.weight"].copy()
    bad["fc1.weight"][0, 0] = np.nan
    with pytest.raises(InvalidValueError, match="NaN"):
        prune_to_sparsity(bad, kinds, 0.5)
    with pytest.raises(InvalidValueError, match="no layer"):
        prune_globally(weights, {n: "other" for n in weights}, 0.5)
