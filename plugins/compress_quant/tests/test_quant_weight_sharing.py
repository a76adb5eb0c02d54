"""k-means weight sharing: the clustering, the paper's rules, and tied weights through training."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sigdl_core.interfaces import CompressionResult
from sigdl_compress_quant.weight_sharing import (
    SharedWeightProjection,
    kmeans_1d,
    linear_centroids,
    share_weights,
)


def _naive_lloyd(x: np.ndarray, k: int, iterations: int = 500) -> np.ndarray:
    """Textbook Lloyd iteration (argmin assignment) from the same linear initialisation."""
    c = np.linspace(x.min(), x.max(), k).astype(np.float64)
    labels = None
    for _ in range(iterations):
        new = np.argmin(np.abs(x[:, None].astype(np.float64) - c[None, :]), axis=1)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            if np.any(labels == j):
                c[j] = x[labels == j].astype(np.float64).mean()
    used = np.unique(labels)
    return np.sort(c[used])


@pytest.mark.parametrize("k", [2, 8, 32])
def test_kmeans_matches_textbook_lloyd(k: int) -> None:
    rng = np.random.default_rng(k)
    x = np.concatenate([rng.normal(0, 0.05, 3000), rng.normal(0.3, 0.02, 200)]).astype(np.float32)
    result = kmeans_1d(x, k, iterations=500)
    np.testing.assert_allclose(result.centroids, _naive_lloyd(x, k), rtol=0, atol=1e-6)
    # Each value sits with its nearest centroid, and centroids are the means of their members.
    dist = np.abs(x[:, None] - result.centroids[None, :])
    assert np.all(dist[np.arange(x.size), result.labels] <= dist.min(axis=1) + 1e-7)
    for j, c in enumerate(result.centroids):
        assert abs(x[result.labels == j].astype(np.float64).mean() - c) < 1e-6


def test_initialisation_is_linear_over_the_range() -> None:
    x = np.array([-0.5, 0.1, 0.2, 1.5], np.float32)
    np.testing.assert_allclose(linear_centroids(x, 5), [-0.5, 0.0, 0.5, 1.0, 1.5])
    # One iteration from the linear start: a value stays with the grid point nearest to it.
    r = kmeans_1d(np.array([0.0, 1.0, 2.0, 3.0, 4.0], np.float32), 5, iterations=1)
    np.testing.assert_array_equal(r.centroids, [0, 1, 2, 3, 4])


def test_empty_clusters_are_dropped_and_labels_index_the_centroids() -> None:
    x = np.array([0.0] * 10 + [1.0] * 10, np.float32)
    r = kmeans_1d(x, 256)
    np.testing.assert_array_equal(r.centroids, [0.0, 1.0])
    np.testing.assert_array_equal(r.centroids[r.labels], x)


@pytest.mark.slow
def test_large_layer_clusters_in_seconds() -> None:
    x = np.random.default_rng(0).standard_normal(4_000_000).astype(np.float32)
    t0 = time.perf_counter()
    r = kmeans_1d(x, 256)
    seconds = time.perf_counter() - t0
    assert 200 <= len(r.centroids) <= 256  # linear init leaves a few tail clusters empty
    assert seconds < 15, f"4M weights took {seconds:.1f} s"


@pytest.mark.parametrize("bits", [1, 2, 5, 8])
def test_distinct_values_and_pruned_weights(bits: int) -> None:
    rng = np.random.default_rng(bits)
    w = {"fc1.weight": rng.normal(0, 0.1, (64, 100)).astype(np.float32), "fc1.bias": np.ones(64, np.float32)}
    mask = np.abs(w["fc1.weight"]) > 0.12
    w["fc1.weight"][~mask] = 0
    previous = CompressionResult(weights=w, state={"masks": {"fc1.weight": mask}})
    result = share_weights(w, {"fc1.weight": "fc", "fc1.bias": "bias"}, {"bits": bits}, previous)
    q = result.weights["fc1.weight"]
    assert np.all(q[~mask] == 0)
    assert np.count_nonzero(q[mask] == 0) == 0  # zero is no cluster: kept weights are non-zero
    assert len(np.unique(q[mask])) <= 2 ** bits
    assert len(np.unique(q)) <= 2 ** bits + 1
    cb = result.state["codebooks"]["fc1.weight"]
    idx = result.state["indices"]["fc1.weight"]
    np.testing.assert_array_equal(cb[idx][mask], q[mask])
    assert idx.dtype == (np.uint8 if bits <= 8 else np.uint16)
    np.testing.assert_array_equal(result.weights["fc1.bias"], w["fc1.bias"])  # biases untouched
    assert result.state["representation"] == {"fc1.weight": "codebook"}
    layer = result.layers["fc1.weight"]
    assert layer.kept == int(mask.sum()) and layer.details["bits"] == bits


def test_default_bits_are_8_for_conv_and_5_for_fc() -> None:
    rng = np.random.default_rng(1)
    w = {"conv.weight": rng.normal(size=(16, 8, 3, 3)).astype(np.float32),
         "fc.weight": rng.normal(size=(10, 1152)).astype(np.float32)}
    result = share_weights(w, {"conv.weight": "conv", "fc.weight": "fc"}, {})
    assert result.state["quant"]["conv.weight"]["bits"] == 8
    assert result.state["quant"]["fc.weight"]["bits"] == 5
    assert len(np.unique(result.weights["conv.weight"])) <= 256
    assert len(np.unique(result.weights["fc.weight"])) <= 32
    per_layer = share_weights(w, {"conv.weight": "conv", "fc.weight": "fc"}, {"layers": {"fc": 3}, "bits_conv": 4})
    assert per_layer.state["quant"]["fc.weight"]["bits"] == 3
    assert per_layer.state["quant"]["conv.weight"]["bits"] == 4


def test_exact_zeros_count_as_pruned_without_masks() -> None:
    w = {"fc.weight": np.array([[0.0, 0.5, -0.4], [0.0, 0.0, 0.45]], np.float32)}
    result = share_weights(w, {"fc.weight": "fc"}, {"bits": 1})
    q = result.weights["fc.weight"]
    np.testing.assert_array_equal(q == 0, w["fc.weight"] == 0)
    np.testing.assert_array_equal(result.state["masks"]["fc.weight"], w["fc.weight"] != 0)


def _pruned_mlp(trained: dict[str, np.ndarray], keep: float = 0.3) -> CompressionResult:
    w = {k: v.copy() for k, v in trained.items()}
    masks = {}
    for name in ("fc1.weight", "fc2.weight"):
        threshold = np.quantile(np.abs(w[name]), 1 - keep)
        masks[name] = np.abs(w[name]) > threshold
        w[name][~masks[name]] = 0
    return CompressionResult(weights=w, state={"masks": masks})


@pytest.mark.slow
def test_shared_weights_stay_tied_through_training(quant_mlp, quant_trained) -> None:
    digits = quant_mlp.data
    pruned = _pruned_mlp(quant_trained)
    result = share_weights(pruned.weights, quant_mlp.kinds, {"bits": 3, "centroid_update": "sum"}, pruned)
    w = {k: v.copy() for k, v in result.weights.items()}
    before = quant_mlp.accuracy(w, digits.x_test, digits.y_test)
    start_codebooks = {k: v.copy() for k, v in result.state["codebooks"].items()}
    checks = []

    def tied(weights):
        for name in ("fc1.weight", "fc2.weight"):
            mask = result.state["masks"][name]
            idx = result.state["indices"][name]
            cb = result.state["codebooks"][name]
            checks.append(np.array_equal(weights[name][mask], cb[idx][mask]) and not weights[name][~mask].any())

    quant_mlp.train(w, digits, epochs=3, lr=0.002, projection=result.projection, after_step=tied)
    assert checks and all(checks)
    for name in ("fc1.weight", "fc2.weight"):
        values = np.unique(w[name][result.state["masks"][name]])
        assert len(values) <= 8
        assert not np.array_equal(result.state["codebooks"][name], start_codebooks[name])  # centroids moved
    after = quant_mlp.accuracy(w, digits.x_test, digits.y_test)
    assert after >= before - 0.02
    assert after >= 0.85


def test_centroid_moves_by_the_summed_gradient_under_plain_sgd(quant_mlp, quant_trained) -> None:
    digits = quant_mlp.data
    result = share_weights({k: v.copy() for k, v in quant_trained.items()}, quant_mlp.kinds, {"bits": 4})
    w = {k: v.copy() for k, v in result.weights.items()}
    lr = 0.01
    g = quant_mlp.gradients(w, digits.x_train[:64], digits.y_train[:64])
    before = {n: result.state["codebooks"][n].astype(np.float64).copy() for n in ("fc1.weight", "fc2.weight")}
    for name, grad in g.items():
        w[name] -= np.float32(lr) * grad.astype(np.float32)
    result.projection(w)
    for name in ("fc1.weight", "fc2.weight"):
        idx = result.state["indices"][name].astype(np.int64).ravel()
        k = len(before[name])
        summed = np.bincount(idx, weights=g[name].astype(np.float64).ravel(), minlength=k)
        expected = before[name] - lr * summed
        np.testing.assert_allclose(result.state["codebooks"][name], expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(w[name], result.state["codebooks"][name][result.state["indices"][name]])


def test_mean_update_moves_by_the_average_step() -> None:
    w = {"fc.weight": np.array([[1.0, 1.1, 3.0, 3.2]], np.float32)}
    result = share_weights(w, {"fc.weight": "fc"}, {"bits": 1, "centroid_update": "mean"})
    cb = result.state["codebooks"]["fc.weight"].copy()
    np.testing.assert_allclose(cb, [1.05, 3.1], rtol=1e-6)
    x = result.weights["fc.weight"].copy()
    x += np.array([[0.1, 0.3, -0.2, 0.0]], np.float32)
    result.projection({"fc.weight": x})
    np.testing.assert_allclose(x, [[1.25, 1.25, 3.0, 3.0]], rtol=1e-6)


def test_projection_keeps_other_layers_masks_and_handles_views() -> None:
    rng = np.random.default_rng(2)
    w = {"a.weight": rng.normal(size=(6, 6)).astype(np.float32), "b.weight": rng.normal(size=(4, 4)).astype(np.float32)}
    masks = {"a.weight": rng.random((6, 6)) < 0.5, "b.weight": rng.random((4, 4)) < 0.5}
    for n in w:
        w[n][~masks[n]] = 0
    prev = CompressionResult(weights=w, state={"masks": masks})
    result = share_weights(w, {"a.weight": "fc", "b.weight": "fc"}, {"bits": 2, "skip": ["b.weight"]}, prev)
    assert isinstance(result.projection, SharedWeightProjection)
    big = np.zeros((6, 12), np.float32)
    view = big[:, ::2]  # a non-contiguous view, as some frameworks hand out
    view[...] = result.weights["a.weight"] + 0.01
    b = result.weights["b.weight"] + 1.0  # training revived b's pruned weights
    result.projection({"a.weight": view, "b.weight": b})
    assert not b[~masks["b.weight"]].any()
    assert not view[~masks["a.weight"]].any()
    assert len(np.unique(view[masks["a.weight"]])) <= 4
