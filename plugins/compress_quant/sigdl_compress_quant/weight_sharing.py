"""Trained quantization by weight sharing: k-means per layer, and fine-tuning the centroids.

Deep Compression (Han, Mao & Dally, "Deep Compression", ICLR 2016, section 3) clusters the
weights of each layer into ``k = 2**bits`` groups with one-dimensional k-means and replaces
every weight by its cluster's centroid, so that a layer stores ``bits`` per weight plus a
small codebook. The paper's choices, followed here:

* **Linear initialisation.** Centroids start evenly spaced over ``[min, max]`` of the layer's
  weights (section 3.2: better than random or density-based initialisation, because it keeps
  the few large weights, which matter most, represented).
* **Bits per layer.** 8 for conv (and depthwise) layers, 5 for fully connected ones by
  default; every layer can be given its own width.
* **Pruned weights are not clustered.** Given a mask from a pruning stage
  (``state["masks"]``), only the kept weights are clustered; pruned ones stay exactly 0 and
  are no cluster (without masks, exact zeros are treated as pruned, since trained dense
  weights are never exactly 0). Empty clusters are dropped, so a layer holds at most
  ``2**bits`` distinct non-zero values.
* **Fine-tuning the centroids** (section 3.3). The gradient of a centroid is the sum of the
  gradients of the weights in its cluster: ``dL/dc_k = sum_{i in k} dL/dw_i``. The projection
  :class:`SharedWeightProjection`, run after every optimizer step, realises that update on
  whatever step the optimizer took: with ``w'_i`` the weights after the step and ``c_k`` the
  centroid they all equalled before it,

      ``c_k <- c_k + sum_{i in k} (w'_i - c_k)``,  then  ``w_i <- c_k`` for every ``i`` in ``k``.

  For plain SGD, ``w'_i - c_k = -lr * g_i``, so this is exactly ``c_k <- c_k - lr * sum g_i``,
  the paper's update. For momentum or Adam it sums the optimizer's per-weight steps (a
  consistent generalisation; the optimizer's buffers stay per weight). Because a cluster may
  hold thousands of weights, the summed step is large: fine-tune with a learning rate smaller
  than for training, or pass ``centroid_update="mean"``, which moves a centroid by the
  *average* step of its weights instead.

**Frequency-pruned layers** (``state["frequency"]``, from ``freq-prune``) are shared in the
frequency domain: the kept 2-D DCT coefficients are clustered (centroids rounded to float16
where the layer's coefficients are float16), the layer becomes ``idct2`` of the shared
coefficients, and :class:`FrequencySharedProjection` keeps them shared and pruned through
retraining; the ``.sigdl`` writer stores them in the dct-sparse layout with codebook values.

The 1-D k-means is exact Lloyd iteration done on the sorted weights: with the weights sorted
once and prefix sums of them, an iteration costs ``O(k log n)`` (a ``searchsorted`` of the
``k - 1`` cluster boundaries), so the run is dominated by one sort and one final assignment
(``O(n log n)`` and ``O(n log k)``): an AlexNet fc6 layer of 38 million weights clusters in
seconds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sigdl_core.entropy import gaps_from_positions
from sigdl_core.errors import InvalidValueError
from sigdl_core.interfaces import CompressionResult, Compressor, LayerEncoding
from sigdl_core.structured_weights import dct2, idct2

from .parameters import QUANT_PARAMS
from .layer_settings import bits_per_layer, check_kinds, check_params, check_quantizable, select_layers
from .projections import MaskKeeper



@dataclass
class KMeansResult:
    """The centroids (float32, increasing) and the label of every value."""

    centroids: np.ndarray
    labels: np.ndarray
    iterations: int


def linear_centroids(values: np.ndarray, k: int) -> np.ndarray:
    """Deep Compression's linear initialisation: ``k`` points evenly over ``[min, max]``."""
    lo, hi = float(np.min(values)), float(np.max(values))
    return np.linspace(lo, hi, k, dtype=np.float64)


def kmeans_1d(values: np.ndarray, k: int, iterations: int = 100, init: np.ndarray | None = None) -> KMeansResult:
    """Lloyd's k-means of 1-D ``values`` into at most ``k`` clusters, linearly initialised.

    Runs until the assignment stops changing (or ``iterations``). Clusters left empty are
    dropped, so ``len(centroids) <= k``; centroids are the float32-rounded means of their
    members and ``labels`` index them (int64).
    """
    x = np.asarray(values, np.float32).ravel()
    n = x.size
    if n == 0:
        return KMeansResult(np.zeros(0, np.float32), np.zeros(0, np.int64), 0)
    if k < 1:
        raise InvalidValueError(f"k-means needs at least one cluster, got {k}")
    xs = np.sort(x)
    prefix = np.concatenate([[0.0], np.cumsum(xs, dtype=np.float64)])
    c = linear_centroids(xs[[0, -1]], k) if init is None else np.sort(np.asarray(init, np.float64))
    splits = None
    it = 0
    for it in range(1, iterations + 1):
        bounds = ((c[1:] + c[:-1]) / 2).astype(np.float32)  # float32: no cast of xs per call
        new_splits = np.concatenate([[0], np.searchsorted(xs, bounds, side="right"), [n]])
        if splits is not None and np.array_equal(new_splits, splits):
            break
        splits = new_splits
        counts = np.diff(splits)
        sums = prefix[splits[1:]] - prefix[splits[:-1]]
        c = np.sort(np.where(counts > 0, sums / np.maximum(counts, 1), c))
    assert splits is not None
    counts = np.diff(splits)
    keep = counts > 0
    sums = prefix[splits[1:]] - prefix[splits[:-1]]
    centroids = (sums[keep] / counts[keep]).astype(np.float32)
    # A value's cluster is the number of non-empty clusters whose sorted block ends at or
    # below it: the block ends are values of xs, so this reproduces the split exactly.
    last = xs[splits[1:][keep] - 1]
    labels = np.searchsorted(last[:-1], x, side="left").astype(np.int64)
    return KMeansResult(centroids, labels, it)


class SharedWeightProjection:
    """Keeps shared weights tied through fine-tuning and moves each centroid by its cluster's step.

    See the module docstring for the update. ``codebooks`` are updated in place (they are
    the arrays in the result's ``state["codebooks"]``), pruned weights are set back to 0,
    and so are the pruned weights of layers that were not shared (``other_masks``): this
    projection replaces the pruning stage's. Only the arrays it is given are touched.
    """

    def __init__(
        self,
        positions: Mapping[str, np.ndarray | None],
        labels: Mapping[str, np.ndarray],
        codebooks: Mapping[str, np.ndarray],
        masks: Mapping[str, np.ndarray | None],
        shapes: Mapping[str, tuple[int, ...]],
        update: str = "sum",
        other_masks: Mapping[str, np.ndarray] | None = None,
        copies: Mapping[str, int] | None = None,
    ) -> None:
        if update not in ("sum", "mean"):
            raise InvalidValueError(f"centroid_update={update!r} must be 'sum' or 'mean'")
        self.positions = dict(positions)
        self.labels = dict(labels)
        self.codebooks = dict(codebooks)
        self.pruned = {n: (None if m is None else ~np.asarray(m, bool).ravel()) for n, m in masks.items()}
        self.shapes = dict(shapes)
        self.update = update
        self.counts = {n: np.bincount(lab, minlength=len(self.codebooks[n])) for n, lab in self.labels.items()}
        self.keep_pruned = MaskKeeper(other_masks or {})
        self.copies = {n: int(c) for n, c in (copies or {}).items()}

    def __call__(self, weights: dict[str, np.ndarray]) -> None:
        self.keep_pruned(weights)
        for name, labels in self.labels.items():
            array = weights.get(name)
            if array is None:
                continue
            if tuple(array.shape) != self.shapes[name]:
                raise InvalidValueError(
                    f"weight '{name}' has shape {tuple(array.shape)}, its shared weights were made "
                    f"for {self.shapes[name]}", "quantize the model again after changing its layers")
            flat = array.reshape(-1)
            pos = self.positions[name]
            current = flat if pos is None else flat[pos]
            c = self.codebooks[name]
            step = np.bincount(labels, weights=current.astype(np.float64) - c[labels], minlength=len(c))
            if self.update == "mean":
                step = step / np.maximum(self.counts[name], 1)
            elif self.copies.get(name, 1) > 1:
                step = step / self.copies[name]
            c[:] = (c.astype(np.float64) + step).astype(np.float32)
            if pos is None:
                flat[:] = c[labels]
            else:
                flat[pos] = c[labels]
                np.putmask(flat, self.pruned[name], 0)
            if not np.shares_memory(flat, array):  # a non-contiguous array: write back
                array[...] = flat.reshape(array.shape)

    def __repr__(self) -> str:
        return f"SharedWeightProjection({len(self.labels)} layers, update={self.update})"


class FrequencySharedProjection:
    """Keeps frequency-pruned layers' kept DCT coefficients shared (tied to their centroids).

    For each layer whose weights are no longer ``idct2`` of its current coefficients (an
    optimizer step moved them), the step is taken into the DCT domain: ``X' = dct2(W')``, each
    centroid moves by its cluster's step on the kept coefficients (``sum`` or ``mean``, as
    :class:`SharedWeightProjection`), pruned coefficients stay zero, and ``W = idct2(X)``.
    ``settings`` are the layers' ``state["frequency"]`` entries, whose ``coefficients`` are
    updated in place (the ``.sigdl`` writer stores them). Weights that already are what the
    coefficients give are left alone, so the projection is idempotent.
    """

    def __init__(self, settings: Mapping[str, dict[str, Any]], labels: Mapping[str, np.ndarray],
                 codebooks: Mapping[str, np.ndarray], update: str = "sum") -> None:
        self.settings = dict(settings)
        self.labels = dict(labels)
        self.codebooks = dict(codebooks)
        self.positions = {n: np.flatnonzero(np.asarray(s["mask"], bool).ravel()) for n, s in self.settings.items()}
        self.counts = {n: np.bincount(lab, minlength=len(self.codebooks[n])) for n, lab in self.labels.items()}
        self.update = update

    def __call__(self, weights: dict[str, np.ndarray]) -> None:
        for name, setting in self.settings.items():
            array = weights.get(name)
            if array is None:
                continue
            coefficients = setting["coefficients"]
            if tuple(array.shape) != tuple(coefficients.shape):
                raise InvalidValueError(
                    f"weight '{name}' has shape {tuple(array.shape)}, its shared DCT coefficients were made "
                    f"for {tuple(coefficients.shape)}", "quantize the model again after changing its layers")
            if np.array_equal(idct2(coefficients), array):
                continue
            pos, labels, c = self.positions[name], self.labels[name], self.codebooks[name]
            current = dct2(array).ravel()[pos]
            step = np.bincount(labels, weights=current - c[labels], minlength=len(c))
            if self.update == "mean":
                step = step / np.maximum(self.counts[name], 1)
            moved = (c.astype(np.float64) + step).astype(np.float32)
            c[:] = moved.astype(np.float16).astype(np.float32) if setting.get("values") == "f16" else moved
            flat = np.zeros(coefficients.size, np.float32)
            flat[pos] = c[labels]
            coefficients[...] = flat.reshape(coefficients.shape)
            array[...] = idct2(coefficients)

    def __repr__(self) -> str:
        return f"FrequencySharedProjection({sorted(self.settings)}, update={self.update})"


def _share_frequency_layer(name: str, setting: Mapping[str, Any], bits: int,
                           iterations: int) -> tuple[dict[str, Any], np.ndarray, KMeansResult, np.ndarray]:
    """k-means of a frequency-pruned layer's kept DCT coefficients: its new ``state["frequency"]``
    entry (with the shared coefficients), the spatial weights, the clustering and the index array."""
    mask = np.asarray(setting["mask"], bool)
    coefficients = np.asarray(setting["coefficients"], np.float32)
    pos = np.flatnonzero(mask.ravel())
    km = kmeans_1d(coefficients.ravel()[pos], 1 << bits, iterations)
    if setting.get("values") == "f16":  # the layer keeps float16-exact coefficients
        km.centroids = km.centroids.astype(np.float16).astype(np.float32)
    flat = np.zeros(coefficients.size, np.float32)
    flat[pos] = km.centroids[km.labels]
    shared = flat.reshape(coefficients.shape)
    idx = np.zeros(coefficients.size, _int_dtype(max(len(km.centroids), 1)))
    idx[pos] = km.labels
    entry = {**setting, "mask": mask, "coefficients": shared}
    return entry, idct2(shared), km, idx.reshape(coefficients.shape)


def _int_dtype(k: int) -> np.dtype:
    return np.dtype(np.uint8) if k <= 256 else np.dtype(np.uint16)


def share_weights(
    weights: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    params: Mapping[str, Any],
    previous: CompressionResult | None = None,
) -> CompressionResult:
    """k-means weight sharing of every selected layer (see the module docstring and
    :data:`QUANT_PARAMS` for ``params``)."""
    check_params(params, QUANT_PARAMS, "quant")
    allowed = check_kinds(params.get("kinds"))
    names = select_layers(weights, kinds, allowed, params.get("skip"))
    widths = bits_per_layer(names, kinds, params.get("bits"), params.get("bits_conv", 8),
                            params.get("bits_fc", 5), params.get("layers"))
    iterations = params.get("iterations", 100)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or not 1 <= iterations <= 100_000:
        raise InvalidValueError(f"parameter 'iterations'={iterations!r} must be a whole number in 1..100000",
                                "100 is plenty: 1-D k-means converges in tens of iterations")
    update = params.get("centroid_update", "sum")
    if update not in ("sum", "mean"):
        raise InvalidValueError(f"parameter 'centroid_update'={update!r} must be 'sum' or 'mean'",
                                "'sum' is Deep Compression's update; 'mean' is gentler")
    state = dict(previous.state) if previous is not None else {}
    masks = dict(state.get("masks") or {})
    out = {n: np.array(a, dtype=np.float32 if n in names else None, copy=True) for n, a in weights.items()}
    codebooks = dict(state.get("codebooks") or {})
    indices = dict(state.get("indices") or {})
    representation = dict(state.get("representation") or {})
    layers = dict(previous.layers) if previous is not None else {}
    positions: dict[str, np.ndarray | None] = {}
    labels: dict[str, np.ndarray] = {}
    proj_masks: dict[str, np.ndarray | None] = {}
    frequency = dict(state.get("frequency") or {})
    in_frequency = {n: frequency[n] for n in names if n in frequency and n not in masks
                    and np.shape(frequency[n].get("mask")) == np.shape(weights[n])}
    shared_settings: dict[str, dict[str, Any]] = {}
    freq_labels: dict[str, np.ndarray] = {}
    for name in names:
        if name in in_frequency:
            t0 = time.perf_counter()
            entry, out[name], km, idx = _share_frequency_layer(name, in_frequency[name], widths[name], iterations)
            seconds = time.perf_counter() - t0
            frequency[name] = shared_settings[name] = entry
            codebooks[name], indices[name], representation[name] = km.centroids, idx, "codebook"
            freq_labels[name] = km.labels
            kept, k = int(km.labels.size), len(km.centroids)
            layers[name] = LayerEncoding(
                name=name, shape=tuple(out[name].shape), kept=kept, weight_bits=kept * widths[name] + 32 * k,
                index_bits=8 * kept, details={"bits": widths[name], "clusters": k, "domain": "dct",
                                              "kmeans_iterations": km.iterations, "kmeans_seconds": round(seconds, 4)})
            continue
        w = out[name]
        mask = masks.get(name)
        check_quantizable(name, w, mask)
        if mask is None and w.size and np.any(w == 0):
            mask = w != 0  # exact zeros: pruned by an earlier stage whose state was not passed on
            masks[name] = mask
        flat = w.reshape(-1)
        pos = np.flatnonzero(np.asarray(mask, bool).ravel()) if mask is not None else None
        vals = flat if pos is None else flat[pos]
        t0 = time.perf_counter()
        km = kmeans_1d(vals, 1 << widths[name], iterations)
        seconds = time.perf_counter() - t0
        centroids = km.centroids.copy()
        k = len(centroids)
        idx = np.zeros(w.size, _int_dtype(max(k, 1)))
        if pos is None:
            flat[:] = centroids[km.labels] if k else flat
            idx[:] = km.labels
        else:
            flat[pos] = centroids[km.labels]
            idx[pos] = km.labels
            np.putmask(flat, ~np.asarray(mask, bool).ravel(), 0)
        codebooks[name] = centroids
        indices[name] = idx.reshape(w.shape)
        representation[name] = "codebook"
        positions[name], labels[name], proj_masks[name] = pos, km.labels, mask
        kept = int(vals.size)
        if pos is not None:
            n_entries = gaps_from_positions(pos, np.zeros(pos.size, np.int64), 8 if kinds.get(name) != "fc" else 5, 0)[0].size
            index_bits = n_entries * (5 if kinds.get(name) == "fc" else 8)
        else:
            n_entries, index_bits = kept, 0
        layers[name] = LayerEncoding(
            name=name, shape=tuple(w.shape), kept=kept,
            weight_bits=n_entries * widths[name] + 32 * k, index_bits=index_bits,
            details={"bits": widths[name], "clusters": k, "kmeans_iterations": km.iterations,
                     "kmeans_seconds": round(seconds, 4)},
        )
    state.update({"masks": masks, "codebooks": codebooks, "indices": indices, "representation": representation})
    state["quant"] = {n: {"bits": widths[n], "clusters": len(codebooks[n])} for n in names}
    shapes = {n: tuple(out[n].shape) for n in names}
    others = {n: m for n, m in masks.items() if n not in names and n in out}
    # A block-circulant layer (state["circulant"]: name -> block b) holds each free value b
    # times; its "sum" update counts each free value once, as the circulant projection does.
    copies = {n: int(b) for n, b in (state.get("circulant") or {}).items() if n in names}
    spatial = [n for n in names if n not in shared_settings]
    projection = SharedWeightProjection(positions, labels, {n: codebooks[n] for n in spatial}, proj_masks,
                                        {n: shapes[n] for n in spatial}, update, others, copies)
    if shared_settings:
        # Structural, so that it runs after the freq-prune projection (which then changes
        # nothing: the shared coefficients are what it keeps) and after every later stage's.
        state["frequency"] = frequency
        state["structure_projections"] = list(state.get("structure_projections") or []) + [
            FrequencySharedProjection(shared_settings, freq_labels, {n: codebooks[n] for n in shared_settings}, update)]
    return CompressionResult(weights=out, projection=projection, layers=layers, state=state)


class WeightSharingCompressor(Compressor):
    """The ``quant`` compressor: Deep Compression's k-means weight sharing."""

    name = "quant"

    def compress(
        self,
        weights: Mapping[str, np.ndarray],
        kinds: Mapping[str, str],
        params: Mapping[str, Any],
        previous: CompressionResult | None = None,
    ) -> CompressionResult:
        return share_weights(weights, kinds, params, previous)
