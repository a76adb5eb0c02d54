"""Property tests (hypothesis): masks mean zeros, counts are exact, chains only grow."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sigdl_compress_prune import (
    agp_sparsity,
    choose_channels,
    prune_by_magnitude,
    prune_globally,
    prune_to_sparsity,
    thin_weights,
)
from sigdl_core.interfaces import ChannelGroup, ChannelSlice

# Values include repeats and exact zeros on purpose: ties must still give exact counts.
values = st.one_of(
    st.floats(-4, 4, width=32, allow_nan=False),
    st.sampled_from([0.0, 0.5, -0.5, 1.0]),
)
layer = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=6),
                   elements=values)
fraction = st.floats(0.0, 0.999)

SETTINGS = settings(max_examples=60, deadline=None)


@SETTINGS
@given(w=layer, s=fraction)
def test_prune_property_sparsity_count_and_mask_zeros(w, s):
    result = prune_to_sparsity({"l.weight": w}, {"l.weight": "fc"}, s)
    mask = result.state["masks"]["l.weight"]
    assert mask.shape == w.shape and mask.dtype == bool
    assert np.count_nonzero(~mask) == int(round(s * w.size))
    assert result.layers["l.weight"].kept == np.count_nonzero(mask)
    out = result.weights["l.weight"]
    assert np.all(out[~mask] == 0)
    np.testing.assert_array_equal(out[mask], w[mask])
    if mask.any() and (~mask).any():
        assert np.abs(w[mask]).min() >= np.abs(w[~mask]).max()


@SETTINGS
@given(a=layer, b=layer, s=fraction)
def test_prune_property_global_count_is_exact(a, b, s):
    weights = {"a.weight": a, "b.weight": b}
    result = prune_globally(weights, {"a.weight": "conv", "b.weight": "fc"}, s)
    masks = result.state["masks"]
    pruned = sum(int(np.count_nonzero(~m)) for m in masks.values())
    assert pruned == int(round(s * (a.size + b.size)))
    for name, mask in masks.items():
        assert np.all(result.weights[name][~mask] == 0)


@SETTINGS
@given(w=layer, q=st.floats(0.0, 3.0))
def test_prune_property_quality_mask_is_the_threshold_rule(w, q):
    result = prune_by_magnitude({"l.weight": w}, {"l.weight": "conv"}, q)
    threshold = q * float(np.std(w, dtype=np.float64))
    np.testing.assert_array_equal(result.state["masks"]["l.weight"], np.abs(w) > threshold)


@SETTINGS
@given(w=layer, s1=fraction, s2=fraction, noise=st.integers(0, 2**31 - 1))
def test_prune_property_chained_masks_only_shrink(w, s1, s2, noise):
    first = prune_to_sparsity({"l.weight": w}, {"l.weight": "fc"}, s1)
    retrained = first.weights["l.weight"] + np.random.default_rng(noise).standard_normal(w.shape).astype(np.float32)
    second = prune_to_sparsity({"l.weight": retrained}, {"l.weight": "fc"}, s2, previous=first)
    m1, m2 = first.state["masks"]["l.weight"], second.state["masks"]["l.weight"]
    assert not np.any(m2 & ~m1)
    assert np.count_nonzero(~m2) == max(np.count_nonzero(~m1), int(round(s2 * w.size)))
    live = {"l.weight": np.ones_like(w)}
    second.projection(live)
    second.projection(live)  # idempotent
    np.testing.assert_array_equal(live["l.weight"] != 0, m2)


@SETTINGS
@given(step=st.floats(0, 200), s_f=fraction, share=st.floats(0, 1), n=st.integers(1, 20),
       dt=st.integers(1, 10))
def test_prune_property_agp_stays_between_its_ends_and_never_falls(step, s_f, share, n, dt):
    s_i = s_f * share
    now = agp_sparsity(step, s_f, initial_sparsity=s_i, start_step=10, num_steps=n, interval=dt)
    later = agp_sparsity(step + 1, s_f, initial_sparsity=s_i, start_step=10, num_steps=n, interval=dt)
    assert later >= now - 1e-12
    if step >= 10:
        assert s_i - 1e-12 <= now <= s_f + 1e-12


@SETTINGS
@given(data=st.data())
def test_prune_property_thinning_keeps_exactly_the_chosen_units(data):
    n_in = data.draw(st.integers(1, 6))
    hidden = data.draw(st.integers(1, 8))
    n_out = data.draw(st.integers(1, 5))
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    weights = {
        "fc1.weight": rng.standard_normal((hidden, n_in)).astype(np.float32),
        "fc1.bias": rng.standard_normal(hidden).astype(np.float32),
        "fc2.weight": rng.standard_normal((n_out, hidden)).astype(np.float32),
    }
    group = ChannelGroup(hidden, (ChannelSlice("fc1.weight", 0), ChannelSlice("fc1.bias", 0)),
                         consumers=(ChannelSlice("fc2.weight", 1),))
    ratio = data.draw(fraction)
    (keep,) = choose_channels(weights, [group], ratio)
    assert len(keep) == max(1, hidden - int(round(ratio * hidden)))
    assert np.all(np.diff(keep) > 0)
    thin = thin_weights(weights, [group], [keep])
    np.testing.assert_array_equal(thin["fc1.weight"], weights["fc1.weight"][keep])
    np.testing.assert_array_equal(thin["fc1.bias"], weights["fc1.bias"][keep])
    np.testing.assert_array_equal(thin["fc2.weight"], weights["fc2.weight"][:, keep])
    x = rng.standard_normal((3, n_in)).astype(np.float32)
    zeroed = {k: v.copy() for k, v in weights.items()}
    dropped = np.setdiff1d(np.arange(hidden), keep)
    zeroed["fc1.weight"][dropped] = 0
    zeroed["fc1.bias"][dropped] = 0

    def forward(w):
        return np.maximum(x @ w["fc1.weight"].T + w["fc1.bias"], 0) @ w["fc2.weight"].T

    np.testing.assert_allclose(forward(thin), forward(zeroed), rtol=1e-5, atol=1e-5)
