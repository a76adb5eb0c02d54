"""freq-prune: the smallest DCT coefficients are removed and stay zero through training,
and the artifact stores the sparse coefficients, decoding to the weights bit-exactly."""

from __future__ import annotations

import numpy as np
import pytest
from sigdl_core.artifact import parse_artifact, artifact_bytes, decode_weights
from sigdl_core.compression import build_artifact_layers
from sigdl_core.errors import InvalidValueError
from sigdl_core.structured_weights import dct2, idct2

from sigdl_compress_fft.frequency_pruning import prune_frequencies

KINDS = {"conv1.weight": "conv", "conv1.bias": "bias", "conv2.weight": "conv", "fc.weight": "fc",
         "pw.weight": "conv"}


def _weights(seed=0):
    rng = np.random.default_rng(seed)
    return {"conv1.weight": rng.standard_normal((8, 1, 5, 5)).astype(np.float32),
            "conv1.bias": rng.standard_normal(8).astype(np.float32),
            "conv2.weight": rng.standard_normal((6, 8, 3, 3)).astype(np.float32),
            "fc.weight": rng.standard_normal((10, 20)).astype(np.float32),
            "pw.weight": rng.standard_normal((4, 6, 1, 1)).astype(np.float32)}


@pytest.mark.parametrize("values", ["f16", "f32"])
def test_smallest_coefficients_are_pruned_and_stay_pruned_through_noisy_steps(values) -> None:
    w = _weights()
    result = prune_frequencies(w, KINDS, {"keep": {"conv1": 0.2, "conv2.weight": 0.5}, "values": values})
    freq = result.state["frequency"]
    assert sorted(freq) == ["conv1.weight", "conv2.weight"]  # 1x1 kernels and fc layers are left alone
    for name, keep in (("conv1.weight", 0.2), ("conv2.weight", 0.5)):
        mask = freq[name]["mask"]
        assert mask.sum() == round(keep * mask.size)
        spectrum = np.abs(dct2(w[name]))
        assert spectrum[mask].min() >= spectrum[~mask].max()  # by magnitude
    rng = np.random.default_rng(1)
    current = {n: a.copy() for n, a in result.weights.items()}
    for _ in range(20):  # optimizer-like steps, each followed by the projection
        for n in current:
            current[n] += 0.05 * rng.standard_normal(current[n].shape).astype(np.float32)
        result.projection(current)
    for name in freq:
        x = freq[name]["coefficients"]
        assert not x[~freq[name]["mask"]].any()
        np.testing.assert_array_equal(idct2(x), current[name])
        np.testing.assert_allclose(dct2(current[name])[~freq[name]["mask"]], 0, atol=1e-5)
    before = {n: a.copy() for n, a in current.items()}
    result.projection(current)  # idempotent
    for n in freq:
        np.testing.assert_array_equal(before[n], current[n])
    layers = {layer.name: layer for layer in build_artifact_layers(result, current, KINDS)}
    assert layers["conv1.weight"].layout == "dct-sparse" and layers["conv1.weight"].values == values
    decoded = decode_weights(parse_artifact(artifact_bytes(list(layers.values())))[0])
    for n, a in current.items():
        np.testing.assert_array_equal(decoded[n], a)


def test_global_threshold_keeps_the_target_overall() -> None:
    result = prune_frequencies(_weights(), KINDS, {"keep": 0.25, "global": True})
    masks = [s["mask"] for s in result.state["frequency"].values()]
    total = sum(m.size for m in masks)
    assert abs(sum(int(m.sum()) for m in masks) - 0.25 * total) <= 2


def test_weights_changed_outside_the_projection_are_stored_plainly() -> None:
    result = prune_frequencies(_weights(), KINDS, {})
    w = {n: a.copy() for n, a in result.weights.items()}
    w["conv2.weight"] += 0.01
    layers = {layer.name: layer for layer in build_artifact_layers(result, w, KINDS)}
    assert layers["conv2.weight"].layout == "dense"
    np.testing.assert_array_equal(layers["conv2.weight"].decode(), w["conv2.weight"])


@pytest.mark.parametrize("params, match", [({"keep": 0}, "keep"), ({"keep": 1.5}, "keep"),
                                           ({"values": "int4"}, "values"), ({"global": "yes"}, "global")])
def test_bad_parameters_are_named(params, match) -> None:
    with pytest.raises(InvalidValueError, match=match):
        prune_frequencies(_weights(), KINDS, params)
