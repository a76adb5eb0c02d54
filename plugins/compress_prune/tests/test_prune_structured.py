"""Structured pruning: channel ranking, choice and thinning, checked against NumPy forwards.

The consistency check: a thinned network computes exactly what the original computes with
the removed channels' producers zeroed (a zero ReLU unit contributes nothing downstream).
"""

from __future__ import annotations

import numpy as np
import pytest
from sigdl_compress_prune import (
    channel_group_to_dict,
    channel_groups_from_data,
    channel_scores,
    choose_channels,
    prune_channels,
    prune_to_sparsity,
    thin_weights,
    validate_channel_groups,
)
from sigdl_core.errors import InvalidValueError, UnknownNameError
from sigdl_core.interfaces import ChannelGroup, ChannelSlice

MLP_GROUPS = [
    ChannelGroup(
        size=48,
        producers=(ChannelSlice("fc1.weight", 0), ChannelSlice("fc1.bias", 0)),
        consumers=(ChannelSlice("fc2.weight", 1),),
    ),
    ChannelGroup(
        size=10,
        producers=(ChannelSlice("fc2.weight", 0), ChannelSlice("fc2.bias", 0)),
        prunable=False,
    ),
]


def _zeroed(weights, groups, keep):
    """The original weights with the removed channels' producers and followers zeroed."""
    out = {n: np.array(a, copy=True) for n, a in weights.items()}
    for group, kept in zip(groups, keep):
        dropped = np.setdiff1d(np.arange(group.size), kept)
        for piece in (*group.producers, *group.followers):
            moved = np.moveaxis(out[piece.name], piece.axis, 0)
            for c in dropped:
                moved[piece.offset + c * piece.span: piece.offset + (c + 1) * piece.span] = 0
    return out


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.9])
def test_prune_thinning_mlp_matches_zeroed_units(mlp, trained_weights, digits, ratio):
    result = prune_channels(trained_weights, mlp.kinds, MLP_GROUPS, ratio)
    kept = result.state["thinning"]["groups"][0]["kept"]
    assert len(kept) == 48 - round(ratio * 48)
    assert result.weights["fc1.weight"].shape == (len(kept), 64)
    assert result.weights["fc1.bias"].shape == (len(kept),)
    assert result.weights["fc2.weight"].shape == (10, len(kept))
    assert result.weights["fc2.bias"].shape == (10,)
    reference = _zeroed(trained_weights, MLP_GROUPS, [np.array(kept), np.arange(10)])
    np.testing.assert_allclose(mlp.logits(result.weights, digits.x_test),
                               mlp.logits(reference, digits.x_test), rtol=1e-5, atol=1e-5)
    # the kept units are the ones of largest L1 norm
    scores = np.abs(trained_weights["fc1.weight"]).sum(axis=1)
    dropped = np.setdiff1d(np.arange(48), kept)
    assert scores[kept].min() >= scores[dropped].max()
    # encodings describe the smaller dense arrays
    assert result.layers["fc1.weight"].shape == (len(kept), 64)
    assert result.layers["fc1.weight"].kept == len(kept) * 64
    assert result.state["thinning"]["original_shapes"]["fc1.weight"] == [48, 64]
    assert result.projection is None


@pytest.mark.slow
def test_prune_thinning_then_retraining_recovers(mlp, trained_weights):
    baseline = mlp.accuracy(trained_weights)
    result = prune_channels(trained_weights, mlp.kinds, MLP_GROUPS, 0.5)
    # the 64-24-10 network trains like any other
    retrained = mlp.train(result.weights, epochs=10, seed=4)
    assert retrained["fc1.weight"].shape == (24, 64)
    assert mlp.accuracy(retrained) > baseline - 0.03


def test_prune_ratio_zero_is_identity(trained_weights, mlp):
    result = prune_channels(trained_weights, mlp.kinds, MLP_GROUPS, 0.0)
    for name, array in trained_weights.items():
        np.testing.assert_array_equal(result.weights[name], array)


def _concat_net():
    """Two 1×1 'convs' (4 and 3 channels) on a 2×2 image, a per-channel scale and shift
    after the first (a batch norm's followers), concatenated, flattened, then an fc layer."""
    rng = np.random.default_rng(5)
    weights = {
        "a.weight": rng.standard_normal((4, 2, 1, 1)).astype(np.float32),
        "a.bias": rng.standard_normal(4).astype(np.float32),
        "bn.weight": rng.standard_normal(4).astype(np.float32),
        "bn.bias": rng.standard_normal(4).astype(np.float32),
        "b.weight": rng.standard_normal((3, 2, 1, 1)).astype(np.float32),
        "fc.weight": rng.standard_normal((5, 28)).astype(np.float32),
        "fc.bias": rng.standard_normal(5).astype(np.float32),
    }
    kinds = {"a.weight": "conv", "a.bias": "bias", "bn.weight": "norm", "bn.bias": "norm",
             "b.weight": "conv", "fc.weight": "fc", "fc.bias": "bias"}
    groups = [
        ChannelGroup(4, producers=(ChannelSlice("a.weight", 0), ChannelSlice("a.bias", 0)),
                     followers=(ChannelSlice("bn.weight", 0), ChannelSlice("bn.bias", 0)),
                     consumers=(ChannelSlice("fc.weight", 1, offset=0, span=4),)),
        ChannelGroup(3, producers=(ChannelSlice("b.weight", 0),),
                     consumers=(ChannelSlice("fc.weight", 1, offset=16, span=4),)),
        ChannelGroup(5, producers=(ChannelSlice("fc.weight", 0), ChannelSlice("fc.bias", 0)),
                     prunable=False),
    ]

    def forward(w, x):
        a = np.einsum("oc,nchw->nohw", w["a.weight"][:, :, 0, 0], x) + w["a.bias"][None, :, None, None]
        a = a * w["bn.weight"][None, :, None, None] + w["bn.bias"][None, :, None, None]
        a = np.maximum(a, 0)
        b = np.maximum(np.einsum("oc,nchw->nohw", w["b.weight"][:, :, 0, 0], x), 0)
        flat = np.concatenate([a, b], axis=1).reshape(len(x), -1)
        return flat @ w["fc.weight"].T + w["fc.bias"]

    return weights, kinds, groups, forward


def test_prune_thinning_concat_and_flatten_use_original_offsets():
    weights, kinds, groups, forward = _concat_net()
    x = np.random.default_rng(6).standard_normal((7, 2, 2, 2)).astype(np.float32)
    keep = [np.array([1, 3]), np.array([0, 2]), np.arange(5)]
    thinned = thin_weights(weights, groups, keep)
    assert thinned["fc.weight"].shape == (5, 16)
    assert thinned["bn.weight"].shape == (2,)
    reference = _zeroed(weights, groups, keep)
    # zeroing a's producers leaves relu(bn.bias) behind, so zero the followers too (done above)
    np.testing.assert_allclose(forward(thinned, x), forward(reference, x), rtol=1e-5, atol=1e-5)
    # the fc columns kept are exactly channels a1, a3 (features 4..7, 12..15) and b0, b2
    cols = [*range(4, 8), *range(12, 16), *range(16, 20), *range(24, 28)]
    np.testing.assert_array_equal(thinned["fc.weight"], weights["fc.weight"][:, cols])
    # through the compressor, by ratio: 50 % of 4 and of 3 channels
    result = prune_channels(weights, kinds, groups, 0.5)
    sizes = [len(g["kept"]) for g in result.state["thinning"]["groups"]]
    assert sizes == [2, 1, 5]  # round(1.5) = 2 removed from b (banker's rounding), output kept


def test_prune_channel_scores_l1_and_l2():
    weights, kinds, groups, _ = _concat_net()
    w = weights["a.weight"].reshape(4, -1)
    np.testing.assert_allclose(channel_scores(weights, groups[0], "l1"), np.abs(w).sum(axis=1))
    np.testing.assert_allclose(channel_scores(weights, groups[0], "l2"),
                               np.sqrt(np.square(w).sum(axis=1)), rtol=1e-6)
    with pytest.raises(UnknownNameError):
        channel_scores(weights, groups[0], "l3")


def test_prune_never_below_one_channel_and_output_kept():
    weights, kinds, groups, _ = _concat_net()
    keep = choose_channels(weights, groups, 0.99)
    assert [len(k) for k in keep] == [1, 1, 5]
    keep = choose_channels(weights, groups, 0.6, min_channels=2)
    assert [len(k) for k in keep] == [2, 2, 5]
    keep = choose_channels(weights, groups, 0.99, mode="global")
    assert [len(k) for k in keep] == [1, 1, 5]


def test_prune_global_ratio_ranks_across_groups(mlp, trained_weights):
    weights, kinds, groups, _ = _concat_net()
    weights = dict(weights)
    weights["b.weight"] = weights["b.weight"].copy()
    weights["b.weight"][1] *= 0.01  # one very weak channel in b
    keep = choose_channels(weights, groups, 2 / 7, mode="global")
    assert sum(len(k) for k in keep[:2]) == 5
    assert 1 not in keep[1]
    with pytest.raises(InvalidValueError, match="one ratio"):
        choose_channels(weights, groups, {"a": 0.5}, mode="global")


def test_prune_ratio_per_layer_by_pattern():
    weights, kinds, groups, _ = _concat_net()
    keep = choose_channels(weights, groups, {"a": 0.5})
    assert [len(k) for k in keep] == [2, 3, 5]
    keep = choose_channels(weights, groups, {"b.weight": 0.7, "*": 0.25})
    assert [len(k) for k in keep] == [3, 1, 5]
    with pytest.raises(UnknownNameError, match="'c'"):
        choose_channels(weights, groups, {"c": 0.5})
    with pytest.raises(InvalidValueError, match="cannot be pruned"):
        choose_channels(weights, groups, {"fc": 0.5})


def test_prune_structured_after_unstructured_cuts_masks_too(mlp, trained_weights, digits):
    sparse = prune_to_sparsity(trained_weights, mlp.kinds, 0.7)
    result = prune_channels(sparse.weights, mlp.kinds, MLP_GROUPS, 0.5, previous=sparse)
    masks = result.state["masks"]
    assert masks["fc1.weight"].shape == result.weights["fc1.weight"].shape == (24, 64)
    assert masks["fc2.weight"].shape == (10, 24)
    for name, mask in masks.items():
        assert np.all(result.weights[name][~mask] == 0)
        assert result.layers[name].kept == np.count_nonzero(mask)
    live = {n: np.ones_like(a) for n, a in result.weights.items()}
    result.projection(live)
    assert np.count_nonzero(live["fc1.weight"]) == np.count_nonzero(masks["fc1.weight"])


def test_prune_channel_groups_round_trip_and_validation():
    weights, kinds, groups, _ = _concat_net()
    data = [channel_group_to_dict(g) for g in groups]
    assert channel_groups_from_data(data) == groups
    validate_channel_groups(weights, groups)
    bad_span = [ChannelGroup(4, producers=(ChannelSlice("a.weight", 0),),
                             consumers=(ChannelSlice("fc.weight", 1, offset=16, span=4),))]
    with pytest.raises(InvalidValueError, match="outside"):
        validate_channel_groups(weights, bad_span)
    overlap = [groups[0], ChannelGroup(3, producers=(ChannelSlice("b.weight", 0),),
                                       consumers=(ChannelSlice("fc.weight", 1, offset=12, span=4),))]
    with pytest.raises(InvalidValueError, match="both claim"):
        validate_channel_groups(weights, overlap)
    with pytest.raises(UnknownNameError, match="conv9.weight"):
        validate_channel_groups(weights, [ChannelGroup(2, producers=(ChannelSlice("conv9.weight", 0),))])
    with pytest.raises(InvalidValueError, match="no axis"):
        validate_channel_groups(weights, [ChannelGroup(2, producers=(ChannelSlice("a.bias", 1),))])
    with pytest.raises(InvalidValueError, match="malformed"):
        channel_groups_from_data([{"producers": []}])
    with pytest.raises(InvalidValueError, match="not a list"):
        channel_groups_from_data("groups")
    with pytest.raises(InvalidValueError, match="keeps channels"):
        thin_weights(weights, groups, [np.array([]), np.arange(3), np.arange(5)])
    with pytest.raises(InvalidValueError, match="cannot be pruned"):
        thin_weights(weights, groups, [np.arange(4), np.arange(3), np.arange(4)])
