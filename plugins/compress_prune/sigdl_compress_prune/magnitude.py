"""Magnitude pruning: remove the weights of smallest absolute value, and keep them removed.

Han, Pool, Tran & Dally, "Learning both Weights and Connections for Efficient Neural
Networks" (NeurIPS 2015) prune every connection whose weight lies below a threshold and
retrain the rest; the threshold of a layer is a *quality parameter* times the standard
deviation of the layer's weights (section 3.2; the same rule as Distiller's
``SensitivityPruner``). Deep Compression (Han, Mao & Dally, ICLR 2016) starts from the
pruned network. Three ways to pick what goes are offered here:

* :func:`prune_by_magnitude` — the threshold rule above, ``|w| <= quality × std(w)`` is
  removed (``std`` over the layer's current weights, pruned zeros included);
* :func:`prune_to_sparsity` — a target sparsity per layer, met exactly: the
  ``round(s × n)`` weights of smallest magnitude go (ties broken by position);
* :func:`prune_globally` — one threshold across all the chosen layers, placed so that the
  overall sparsity is met exactly; layers then end up with different sparsities
  (Zhu & Gupta 2017 and most later work use this as "global magnitude pruning").

Every call returns a :class:`~sigdl_core.interfaces.CompressionResult` whose weights have
the pruned entries set to exactly zero, whose ``state["masks"]`` holds one boolean array
per pruned weight (True = kept) and whose projection, :class:`MaskProjection`, re-applies
those masks in place after every optimizer step, so that retraining never revives a pruned
weight. Pruning chains: given a ``previous`` result that carries masks, a weight pruned
before stays pruned whatever its value now, and a new target below the sparsity already
reached simply keeps the old mask.

The per-layer :class:`~sigdl_core.interfaces.LayerEncoding` is what the ``.sigdl`` file spends
on the pruned layer when nothing follows: Deep Compression's relative index at the kind's
default width (8 bits conv, 5 fc) as ``index_bits``, and 32 bits for each stored entry (the
kept weights plus the filler entries long gaps need) as ``weight_bits``. A quantizer or
encoder that follows replaces these figures with its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from sigdl_core.compression import DEFAULT_GAP_BITS, FALLBACK_GAP_BITS
from sigdl_core.entropy import gaps_from_positions
from sigdl_core.errors import InvalidValueError
from sigdl_core.interfaces import COMPRESSIBLE_KINDS, CompressionResult, LayerEncoding

from .layer_selection import (
    candidate_layers,
    check_fraction,
    check_nonnegative,
    resolve_per_layer,
)

#: Bits per stored weight value before quantization (fp32).
DENSE_VALUE_BITS = 32


class MaskProjection:
    """Re-applies pruning masks in place: ``weights[name][~mask] = 0`` for every mask.

    Only the arrays it is given are touched; a weight without a mask is left alone. The
    arrays may be views sharing memory with a framework's parameters (the torch framework
    passes those after every optimizer step).
    """

    def __init__(self, masks: Mapping[str, np.ndarray]) -> None:
        self.masks = {name: np.asarray(mask, dtype=bool) for name, mask in masks.items()}
        self._pruned = {name: ~mask for name, mask in self.masks.items()}

    def __call__(self, weights: dict[str, np.ndarray]) -> None:
        for name, pruned in self._pruned.items():
            array = weights.get(name)
            if array is None:
                continue
            if array.shape != pruned.shape:
                raise InvalidValueError(
                    f"weight '{name}' has shape {tuple(array.shape)} but its pruning mask has "
                    f"shape {tuple(pruned.shape)}",
                    "the layer changed shape after it was pruned; prune the model again",
                )
            np.putmask(array, pruned, 0)

    def __repr__(self) -> str:
        return f"MaskProjection({len(self.masks)} masks)"


def apply_masks(weights: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray]) -> int:
    """Zeroes the masked-out entries of ``weights`` in place; returns how many were non-zero."""
    revived = 0
    for name, mask in masks.items():
        if name in weights:
            array = weights[name]
            revived += int(np.count_nonzero(array[~mask]))
            np.putmask(array, ~mask, 0)
    return revived


def previous_masks(previous: CompressionResult | None) -> dict[str, np.ndarray]:
    """The masks a prior stage left in ``state["masks"]`` (empty when there are none)."""
    if previous is None:
        return {}
    masks = previous.state.get("masks") or {}
    return {name: np.asarray(mask, dtype=bool) for name, mask in masks.items()}


def _scores(weight: np.ndarray, old_mask: np.ndarray | None) -> np.ndarray:
    """|w| as a flat array, with previously pruned positions scored -1 (they go first)."""
    scores = np.abs(np.asarray(weight, dtype=np.float32)).reshape(-1)
    if old_mask is not None:
        scores[~old_mask.reshape(-1)] = -1.0
    return scores


def smallest_k_mask(scores: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """A flat keep-mask removing exactly the ``k`` smallest ``scores`` (ties: first positions).

    Returns the mask and the largest score removed (the effective threshold; -inf for k=0).
    Runs in linear time (``np.partition``), so that it copes with VGG-16's 100-million-weight
    layers.
    """
    n = scores.size
    keep = np.ones(n, dtype=bool)
    if k <= 0:
        return keep, float("-inf")
    if k >= n:
        keep[:] = False
        return keep, float(scores.max())
    kth = np.partition(scores, k - 1)[k - 1]
    below = scores < kth
    keep[below] = False
    need = k - int(np.count_nonzero(below))
    ties = np.flatnonzero(scores == kth)
    keep[ties[:need]] = False
    return keep, float(kth)


def _check_weights(weights: Mapping[str, np.ndarray], names: Iterable[str]) -> None:
    for name in names:
        array = weights[name]
        if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.floating):
            raise InvalidValueError(f"weight '{name}' is not a floating-point array",
                                    "give the framework's float32 weights")
        if array.size and not np.all(np.isfinite(array)):
            raise InvalidValueError(f"weight '{name}' holds NaN or infinite values",
                                    "the model diverged; retrain it before pruning")


def sparse_layer_bits(mask: np.ndarray, kind: str) -> tuple[int, int]:
    """``(weight_bits, index_bits)`` a float32 sparse ``.sigdl`` layer spends on ``mask``'s entries."""
    gap_bits = DEFAULT_GAP_BITS.get(kind, FALLBACK_GAP_BITS)
    positions = np.flatnonzero(np.asarray(mask, bool).ravel())
    gaps, _ = gaps_from_positions(positions, np.zeros(positions.size, np.int64), gap_bits, 0)
    return int(gaps.size) * DENSE_VALUE_BITS, int(gaps.size) * gap_bits


def _finish(
    weights: Mapping[str, np.ndarray],
    new_masks: Mapping[str, np.ndarray],
    details: Mapping[str, dict[str, Any]],
    previous: CompressionResult | None,
    kinds: Mapping[str, str],
) -> CompressionResult:
    """Copies the weights, applies the masks, and builds the result with its encodings."""
    out = {name: np.array(array, copy=True) for name, array in weights.items()}
    masks = previous_masks(previous)
    masks.update({name: np.asarray(mask, dtype=bool) for name, mask in new_masks.items()})
    masks = {name: mask for name, mask in masks.items() if name in out}
    for name, mask in masks.items():
        if out[name].shape != mask.shape:
            raise InvalidValueError(
                f"weight '{name}' has shape {out[name].shape} but the previous stage's mask "
                f"has shape {mask.shape}",
                "chain pruning on the weights the previous stage returned",
            )
        np.putmask(out[name], ~mask, 0)
    layers = dict(previous.layers) if previous is not None else {}
    for name, mask in new_masks.items():
        kept = int(np.count_nonzero(mask))
        info = dict(details.get(name, {}))
        info["sparsity"] = 1.0 - kept / mask.size if mask.size else 0.0
        weight_bits, index_bits = sparse_layer_bits(mask, kinds.get(name, "other"))
        layers[name] = LayerEncoding(
            name=name,
            shape=tuple(int(d) for d in mask.shape),
            kept=kept,
            weight_bits=weight_bits,
            index_bits=index_bits,
            details=info,
        )
    state = dict(previous.state) if previous is not None else {}
    state["masks"] = masks
    history = list(state.get("pruning", []))
    history.append({name: dict(layers[name].details) for name in new_masks})
    state["pruning"] = history
    return CompressionResult(weights=out, projection=MaskProjection(masks), layers=layers,
                             state=state)


def prune_by_magnitude(
    weights: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    quality: float | Mapping[str, float],
    *,
    layers: Sequence[str] | None = None,
    allowed_kinds: Iterable[str] = COMPRESSIBLE_KINDS,
    previous: CompressionResult | None = None,
) -> CompressionResult:
    """Han et al.'s rule: in each layer remove every weight with ``|w| <= quality × std(w)``.

    :param quality: one quality parameter for all layers, or name/pattern → quality (layers
        no key selects stay dense). Larger removes more; about 1.0 removes ~68 % of a
        normally distributed layer.
    :param layers: patterns restricting which layers are pruned (default: every weight of
        an allowed kind).
    :param allowed_kinds: layer kinds that may be pruned.
    :param previous: a prior stage's result; its masks are kept (nothing revives).
    """
    allowed = frozenset(allowed_kinds)
    names = candidate_layers(weights, kinds, allowed, layers)
    per_layer = resolve_per_layer(quality, "quality", names, weights, kinds, allowed,
                                  check=check_nonnegative)
    _check_weights(weights, per_layer)
    old = previous_masks(previous)
    masks: dict[str, np.ndarray] = {}
    details: dict[str, dict[str, Any]] = {}
    for name, q in per_layer.items():
        array = np.asarray(weights[name])
        threshold = float(q * np.std(array, dtype=np.float64)) if array.size else 0.0
        mask = np.abs(array) > threshold
        if name in old:
            mask &= old[name]
        masks[name] = mask
        details[name] = {"method": "magnitude", "quality": q, "threshold": threshold}
    return _finish(weights, masks, details, previous, kinds)


def prune_to_sparsity(
    weights: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    sparsity: float | Mapping[str, float],
    *,
    layers: Sequence[str] | None = None,
    allowed_kinds: Iterable[str] = COMPRESSIBLE_KINDS,
    previous: CompressionResult | None = None,
) -> CompressionResult:
    """In each layer remove exactly ``round(sparsity × size)`` weights of smallest magnitude.

    A layer that a ``previous`` stage already pruned further than asked keeps its mask
    (pruned weights never revive), so its sparsity is then the larger one.

    :param sparsity: one fraction in [0, 1) for all layers, or name/pattern → fraction
        (layers no key selects stay dense).
    """
    allowed = frozenset(allowed_kinds)
    names = candidate_layers(weights, kinds, allowed, layers)
    per_layer = resolve_per_layer(sparsity, "sparsity", names, weights, kinds, allowed)
    _check_weights(weights, per_layer)
    old = previous_masks(previous)
    masks: dict[str, np.ndarray] = {}
    details: dict[str, dict[str, Any]] = {}
    for name, s in per_layer.items():
        array = np.asarray(weights[name])
        old_mask = old.get(name)
        if old_mask is not None and old_mask.shape != array.shape:
            old_mask = None  # _finish reports the mismatch
        keep, threshold = smallest_k_mask(_scores(array, old_mask), int(round(s * array.size)))
        mask = keep.reshape(array.shape)
        if old_mask is not None:
            mask &= old_mask
        masks[name] = mask
        details[name] = {"method": "sparsity", "target_sparsity": s,
                         "threshold": max(threshold, 0.0)}
    return _finish(weights, masks, details, previous, kinds)


def prune_globally(
    weights: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    sparsity: float,
    *,
    layers: Sequence[str] | None = None,
    allowed_kinds: Iterable[str] = COMPRESSIBLE_KINDS,
    previous: CompressionResult | None = None,
) -> CompressionResult:
    """One magnitude threshold across all chosen layers, removing exactly
    ``round(sparsity × total)`` weights of them together.
    """
    allowed = frozenset(allowed_kinds)
    s = check_fraction(sparsity, "global_sparsity")
    names = candidate_layers(weights, kinds, allowed, layers)
    if not names:
        raise InvalidValueError("no layer to prune: the model has no weight of kinds "
                                f"{', '.join(sorted(allowed))}",
                                "name the kinds to prune with the 'kinds' parameter")
    _check_weights(weights, names)
    old = previous_masks(previous)
    pieces = []
    for name in names:
        old_mask = old.get(name)
        if old_mask is not None and old_mask.shape != weights[name].shape:
            old_mask = None
        pieces.append(_scores(np.asarray(weights[name]), old_mask))
    scores = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    keep, threshold = smallest_k_mask(scores, int(round(s * scores.size)))
    masks: dict[str, np.ndarray] = {}
    details: dict[str, dict[str, Any]] = {}
    start = 0
    for name, piece in zip(names, pieces):
        mask = keep[start:start + piece.size].reshape(weights[name].shape)
        start += piece.size
        if name in old and old[name].shape == mask.shape:
            mask &= old[name]
        masks[name] = mask
        details[name] = {"method": "global", "target_sparsity": s,
                         "threshold": max(threshold, 0.0)}
    return _finish(weights, masks, details, previous, kinds)


def sparsity_of(result: CompressionResult, names: Iterable[str] | None = None) -> float:
    """The fraction of zeros over the masked weights of ``result`` (or over ``names``)."""
    masks = result.state.get("masks", {})
    chosen = list(masks) if names is None else list(names)
    total = sum(int(masks[n].size) for n in chosen)
    kept = sum(int(np.count_nonzero(masks[n])) for n in chosen)
    return 1.0 - kept / total if total else 0.0
