"""Chaining compressors, turning their result into ``.sigdl`` layers, and summing it up.

Deep Compression (Han, Mao & Dally, ICLR 2016) is a pipeline: prune, retrain, share
weights, retrain, entropy-code. :func:`chain_compressors` runs any such chain of registered
compressors on named NumPy weights, framework-neutral: each stage gets the previous stage's
:class:`~sigdl_core.interfaces.CompressionResult`, and an optional ``retrain`` callback runs
after every stage that changed the weights, with that stage's projection (a framework calls
it after every optimizer step, so retraining stays inside the compressed form).

The projection used for retraining is the *last* stage's: by convention a compressor
honours what earlier stages left in ``state`` (a quantizer keeps ``state["masks"]`` zeros at
zero), because only it knows how its constraint and theirs combine (and a stage that
thins layers changes the shapes earlier projections were made for).

:func:`build_artifact_layers` reads the final state. The conventions, shared by the
compressor plugins:

``state["masks"]``
    name → boolean array of the weight's shape, True where a weight is kept (pruning).
``state["representation"]``
    name → ``"codebook"``, ``"int8"`` or ``"fp16"``: how the last quantizing stage left that
    weight. Absent: the weight is plain float32.
``state["codebooks"]`` / ``state["indices"]``
    name → float32 centroids / integer array of the weight's shape (entries outside the mask
    are meaningless) for ``"codebook"`` weights.
``state["int8"]``
    name → ``{"scale", "zero_point", "axis", "signed"}`` for ``"int8"`` weights.
``state["structure_projections"]``
    a list of idempotent projections that keep a structural constraint (block-circulant
    blocks, zero DCT coefficients); :func:`chain_compressors` runs them after every later
    stage's own projection, so the structure holds through all retraining.
``state["circulant"]``
    name → block size ``b``: the weight is block-circulant along its first two axes
    (:mod:`sigdl_core.structured_weights`) and is stored as its defining vectors when it
    still is exactly (quantizers that map equal values to equal values keep it so).
``state["frequency"]``
    name → ``{"mask", "coefficients", "values"}``: the weight is ``idct2`` of float32
    ``coefficients`` (zero outside the boolean ``mask``; float16-exact when ``values`` is
    ``"f16"``), stored in the dct-sparse layout; with ``representation`` ``"codebook"`` the
    ``indices`` (of the coefficients' shape) share the kept coefficients, stored as codebook
    values.
``state["encoding"]``
    set by a coding stage: ``{"coder": "auto"|"huffman"|"rans"|"fixed", "gap_bits": {name:
    bits or "auto"}, "others": "f32"|"f16"}``. Without it the streams are stored at a fixed
    width (the paper's "P+Q"), sparse layers with 8-bit (conv) or 5-bit (fc) gaps.

Masked weights are stored sparse, everything else dense; weights no compressor touched
(biases, batch-norm statistics) are stored as raw float32 (float16 when ``others="f16"``).
For codebook and int8 weights the stored values are re-derived from the weights given (the
cluster means, the requantized integers), so an artifact always decodes to what was given
when retraining kept the weights tied (or on the grid).

:func:`summary` gives the figures the ``sigdl compress`` JSON reports: ``original_bytes``
(float32 size of all the original weights), ``artifact_bytes`` (the file's size on disk),
``ratio`` and per layer ``kept``, ``weight_bits``, ``index_bits`` and ``entropy_bits``.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np

from .artifact import (
    ArtifactLayer,
    as_circulant_layer,
    as_dct_sparse_layer,
    encode_codebook_layer,
    encode_float_layer,
    encode_int8_layer,
    quantize_linear,
)
from .entropy import CODER_CHOICES, best_gap_bits
from .errors import InvalidValueError
from .interfaces import COMPRESSIBLE_KINDS, CompressionResult, Projection
from .structured_weights import circulant_vectors_of, idct2

#: Deep Compression's relative-index widths: 8 bits for conv layers, 5 for fully connected.
DEFAULT_GAP_BITS: dict[str, int] = {"conv": 8, "depthwise": 8, "fc": 5}
FALLBACK_GAP_BITS = 8

#: ``retrain(weights, projection) -> weights``: retrains a model holding ``weights`` with
#: ``projection`` applied after every optimizer step, and returns the retrained weights.
RetrainCallback = Callable[[dict[str, np.ndarray], "Projection | None"], Mapping[str, np.ndarray]]


def _same_weights(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> bool:
    if a.keys() != b.keys():
        return False
    for name, x in a.items():
        y = b[name]
        if x is y:
            continue
        if x.shape != y.shape or not np.array_equal(x, y, equal_nan=True):
            return False
    return True


def chain_compressors(
    registry: Any,
    weights: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    chain: Sequence[tuple[str, Mapping[str, Any]]],
    retrain: RetrainCallback | None = None,
    on_stage: Callable[[int, str, CompressionResult], None] | None = None,
    previous: CompressionResult | None = None,
    unretrained: Collection[str] = (),
) -> CompressionResult:
    """Runs the compressors of ``chain`` in order, each on the previous one's result.

    :param registry: a :class:`~sigdl_core.plugins.Registry` (its ``compressor(name)``).
    :param weights: the model's named float32 arrays.
    :param kinds: each weight's :data:`~sigdl_core.interfaces.LayerKind`.
    :param chain: ``(compressor name, parameters)`` pairs.
    :param retrain: called after every stage whose weights differ from its input, with the
        stage's weights and projection; what it returns feeds the next stage (and is kept
        in the final result).
    :param on_stage: told ``(index, name, result)`` after each stage (and its retraining).
    :param previous: the result of stages already run on ``weights`` (e.g. a pruning path
        the search ran itself); the first stage of ``chain`` continues from it.
    :param unretrained: names of compressors of ``chain`` that run without retraining
        (the search's pruning phases leave quantization's fine-tuning to its bits phase).
    :return: the last stage's result, its ``state["stages"]`` listing what each stage did
        (name, parameters, whether it changed the weights and was retrained; JSON-ready).
    """
    if not chain:
        raise InvalidValueError("the compression chain is empty", "name at least one compressor, e.g. prune,quant")
    current: dict[str, np.ndarray] = {n: np.asarray(a) for n, a in weights.items()}
    result: CompressionResult | None = previous
    stages: list[dict[str, Any]] = list((previous.state.get("stages") or []) if previous is not None else [])
    for index, (name, params) in enumerate(chain):
        if not isinstance(params, Mapping):
            raise InvalidValueError(f"parameters of compressor '{name}' must be a mapping, got "
                                    f"{type(params).__name__}")
        compressor = registry.compressor(name)
        previous = result
        result = compressor.compress(current, kinds, params, previous=previous)
        if not isinstance(result, CompressionResult):
            raise InvalidValueError(f"compressor '{name}' returned {type(result).__name__}, not a CompressionResult")
        result.projection = keeping_structure(result.projection, result.state.get("structure_projections"))
        changed = not _same_weights(current, result.weights)
        retrained = False
        settings_used = None
        if retrain is not None and changed and name not in unretrained:
            copies = {n: np.array(a, copy=True) for n, a in result.weights.items()}
            if result.retrain and _takes_settings(retrain):
                new = retrain(copies, result.projection, dict(result.retrain))
                settings_used = dict(result.retrain)
            else:
                new = retrain(copies, result.projection)
            result.weights = {n: np.asarray(a) for n, a in new.items()}
            retrained = True
        shown = {k: v if isinstance(v, (str, int, float, bool, list, dict, type(None))) else repr(v)
                 for k, v in params.items()}
        stages.append({"name": name, "params": shown, "changed_weights": changed, "retrained": retrained})
        if settings_used is not None:
            stages[-1]["retrain"] = settings_used
        result.state["stages"] = list(stages)
        current = dict(result.weights)
        if on_stage is not None:
            on_stage(index, name, result)
    assert result is not None
    return result


def _takes_settings(retrain: Callable[..., Any]) -> bool:
    """Whether a retrain callback takes a third argument: training-setting overrides."""
    try:
        params = list(inspect.signature(retrain).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 3 or any(p.kind == p.VAR_POSITIONAL for p in params)


class StructureKeepingProjection:
    """A stage's projection followed by the structural projections of earlier stages.

    A structural constraint (block-circulant weights, pruned DCT coefficients) must hold
    through every later retraining, also when a later stage's projection knows nothing of
    it (``quant`` on other layers); each such projection is idempotent, so re-applying it
    after a projection that already kept the structure changes nothing.
    """

    def __init__(self, first: Projection | None, structural: Sequence[Projection]) -> None:
        self.first = first
        self.structural = list(structural)

    def __call__(self, weights: dict[str, np.ndarray]) -> None:
        if self.first is not None:
            self.first(weights)
        for projection in self.structural:
            projection(weights)

    def __repr__(self) -> str:
        return f"StructureKeepingProjection({self.first!r}, {self.structural!r})"


def keeping_structure(projection: Projection | None, structural: Sequence[Projection] | None) -> Projection | None:
    """``projection`` extended by ``state["structure_projections"]`` (see the module docstring)."""
    if isinstance(projection, StructureKeepingProjection):
        projection = projection.first
    extra = [p for p in structural or [] if p is not projection]
    if not extra:
        return projection
    return StructureKeepingProjection(projection, extra)


# --------------------------------------------------------------------------- artifact layers


def _gap_bits_for(name: str, kind: str, setting: Any) -> int | str:
    if isinstance(setting, Mapping):
        setting = setting.get(name)
    if setting is None:
        return DEFAULT_GAP_BITS.get(kind, FALLBACK_GAP_BITS)
    if setting == "auto":
        return "auto"
    if isinstance(setting, bool) or not isinstance(setting, (int, np.integer)) or not 1 <= setting <= 16:
        raise InvalidValueError(f"gap bits {setting!r} for '{name}' must be 1..16 or 'auto'",
                                "Deep Compression uses 8 for conv layers and 5 for fully connected ones")
    return int(setting)


def _resolve_gap_bits(bits: int | str, positions: np.ndarray, symbols: np.ndarray) -> int:
    if bits == "auto":
        return best_gap_bits(positions, symbols)
    return int(bits)


def _codebook_layer(name: str, w: np.ndarray, indices: np.ndarray, k_hint: np.ndarray,
                    mask: np.ndarray | None, gap_bits: int | str, coder: str) -> ArtifactLayer:
    """A codebook layer whose centroids are the cluster means of ``w`` (exact when tied)."""
    idx = np.asarray(indices).astype(np.int64).ravel()
    flat = w.ravel()
    sel = np.flatnonzero(mask.ravel()) if mask is not None else None
    lab = idx if sel is None else idx[sel]
    vals = flat if sel is None else flat[sel]
    k = max(int(lab.max()) + 1 if lab.size else 1, len(k_hint))
    counts = np.bincount(lab, minlength=k)
    sums = np.bincount(lab, weights=vals.astype(np.float64), minlength=k)
    codebook = np.asarray(k_hint, np.float32).copy()
    if codebook.size < k:
        codebook = np.concatenate([codebook, np.zeros(k - codebook.size, np.float32)])
    filled = counts > 0
    codebook[filled] = (sums[filled] / counts[filled]).astype(np.float32)
    tied = bool(np.array_equal(codebook[lab], vals))
    if mask is not None:
        gap_bits = _resolve_gap_bits(gap_bits, sel, lab)
    layer = encode_codebook_layer(name, codebook, idx.reshape(w.shape), mask, int(gap_bits) if mask is not None else 8,
                                  coder)
    if not tied:
        layer.details["retied"] = "weights were not tied; stored the cluster means"
    return layer


def _circulant_layer(name: str, w: np.ndarray, block: int, how: str | None, indices: Any, codebook: Any,
                     int8: Any, coder: str) -> ArtifactLayer | None:
    """The circulant layer of ``w`` as its last quantizer left it; None when ``w`` (or its
    quantized form) is no longer exactly block-circulant (then it is stored plainly)."""
    vectors = circulant_vectors_of(w, block)
    if vectors is None:
        return None
    if how == "codebook" and indices is not None and np.shape(indices) == w.shape:
        idx = circulant_vectors_of(np.asarray(indices).astype(np.float32), block)
        if idx is None:
            return None
        inner = _codebook_layer(name, vectors, idx.astype(np.int64), np.asarray(codebook if codebook is not None
                                                                                else []), None, 8, coder)
    elif how == "int8" and int8 is not None:
        if int8.get("axis") is not None:
            return None  # per-channel scales make equal weights unequal integers
        signed = bool(int8.get("signed", True))
        q = quantize_linear(vectors, int8["scale"], int8["zero_point"], None, signed)
        inner = encode_int8_layer(name, q, int8["scale"], int8["zero_point"], None, signed, None, 8, coder)
    else:
        half = how == "fp16"
        inner = encode_float_layer(name, vectors.astype(np.float16).astype(np.float32) if half else vectors,
                                   half, None, 8, coder)
    layer = as_circulant_layer(inner, w.shape, block)
    layer.kept = int(np.count_nonzero(w))
    return layer


def _dct_sparse_layer(name: str, w: np.ndarray, setting: Mapping[str, Any], bits: int | str,
                      coder: str, shared: tuple[np.ndarray, Any] | None = None) -> ArtifactLayer | None:
    """The dct-sparse layer of ``w``: its stored coefficients when they give ``w`` exactly.

    ``shared`` = ``(codebook, indices)`` when a quantizer shared the kept coefficients
    (``indices`` of the coefficients' shape): they are stored as codebook values.
    """
    mask = np.asarray(setting["mask"], bool)
    coefficients = np.asarray(setting["coefficients"], np.float32)
    if mask.shape != w.shape or coefficients.shape != w.shape or np.any(coefficients[~mask] != 0):
        return None
    if not np.array_equal(idct2(coefficients), w):
        return None  # retrained without the projection: not the weights these coefficients give
    if shared is not None and np.shape(shared[1]) == w.shape:
        return as_dct_sparse_layer(_codebook_layer(name, coefficients, shared[1], shared[0], mask, bits, coder))
    half = setting.get("values") == "f16"
    if half and not np.array_equal(coefficients.astype(np.float16).astype(np.float32), coefficients):
        return None
    sel = np.flatnonzero(mask.ravel())
    if bits == "auto":
        flat = coefficients.ravel()[sel]
        sym = flat.astype(np.float16).view(np.uint16) if half else flat.view(np.uint32)
        bits = best_gap_bits(sel, np.unique(sym, return_inverse=True)[1])
    layer = as_dct_sparse_layer(encode_float_layer(name, coefficients, half, mask, int(bits), coder))
    return layer


def build_artifact_layers(
    result: CompressionResult,
    weights: Mapping[str, np.ndarray] | None = None,
    kinds: Mapping[str, str] | None = None,
    *,
    coder: str | None = None,
    gap_bits: Any = None,
    others: str | None = None,
) -> list[ArtifactLayer]:
    """The ``.sigdl`` layers for the final weights of a chain (see the module docstring).

    :param result: the chain's final result (its ``state`` says how each weight is held).
    :param weights: the weights to store (default ``result.weights``), e.g. after retraining.
    :param kinds: each weight's kind (default gap widths: 8 bits conv, 5 bits fc).
    :param coder: overrides ``state["encoding"]["coder"]`` (``auto``, ``huffman``, ``rans``,
        ``fixed``).
    :param gap_bits: overrides the gap widths: bits for every layer, ``"auto"``, or a
        mapping name → bits.
    :param others: ``"f32"`` or ``"f16"``: how weights no compressor touched are stored.
    """
    weights = result.weights if weights is None else weights
    kinds = kinds or {}
    state = result.state
    enc = dict(state.get("encoding") or {})
    coder = coder or enc.get("coder", "fixed")
    if coder not in CODER_CHOICES:
        raise InvalidValueError(f"unknown coder '{coder}'", f"use one of {', '.join(CODER_CHOICES)}")
    gap_setting = gap_bits if gap_bits is not None else enc.get("gap_bits")
    others = others or enc.get("others", "f32")
    if others not in ("f32", "f16"):
        raise InvalidValueError(f"'others'={others!r} must be f32 or f16")
    masks = state.get("masks") or {}
    circulant = state.get("circulant") or {}
    frequency = state.get("frequency") or {}
    rep = state.get("representation") or {}
    codebooks = state.get("codebooks") or {}
    indices = state.get("indices") or {}
    int8 = state.get("int8") or {}
    layers: list[ArtifactLayer] = []
    for name, array in weights.items():
        w = np.ascontiguousarray(array, np.float32)
        kind = kinds.get(name, "other")
        mask = masks.get(name)
        if mask is not None:
            mask = np.asarray(mask, bool)
            if mask.shape != w.shape:
                mask = None
        if mask is not None and np.any(w[~mask] != 0):
            raise InvalidValueError(f"weight '{name}' is non-zero where its pruning mask removed it",
                                    "retrain with the chain's projection, which keeps pruned weights at zero")
        bits = _gap_bits_for(name, kind, gap_setting)
        how = rep.get(name)
        if name in circulant and mask is None:
            layer = _circulant_layer(name, w, int(circulant[name]), how, indices.get(name), codebooks.get(name),
                                     int8.get(name), coder)
            if layer is not None:
                layers.append(layer)
                continue
        if name in frequency and mask is None:
            layer = _dct_sparse_layer(name, w, frequency[name], bits, coder,
                                      (np.asarray(codebooks.get(name, [])), indices[name])
                                      if how == "codebook" and name in indices else None)
            if layer is not None:
                layers.append(layer)
                continue
        if how == "codebook" and name in indices and np.shape(indices[name]) == w.shape:
            layers.append(_codebook_layer(name, w, indices[name], np.asarray(codebooks.get(name, [])), mask, bits,
                                          coder))
            continue
        if how == "int8" and name in int8:
            p = int8[name]
            axis, signed = p.get("axis"), bool(p.get("signed", True))
            q = quantize_linear(w, p["scale"], p["zero_point"], axis, signed)
            if mask is not None:
                sel = np.flatnonzero(mask.ravel())
                qmin = -128 if signed else 0
                bits = _resolve_gap_bits(bits, sel, q.ravel()[sel].astype(np.int64) - qmin)
            layers.append(encode_int8_layer(name, q, p["scale"], p["zero_point"], axis, signed, mask,
                                            int(bits) if mask is not None else 8, coder))
            continue
        half = how == "fp16" or (others == "f16" and kind not in COMPRESSIBLE_KINDS and how is None)
        if half:
            w = w.astype(np.float16).astype(np.float32)
        if mask is not None:
            sel = np.flatnonzero(mask.ravel())
            sym = (w.ravel()[sel].astype(np.float16).view(np.uint16) if half else w.ravel()[sel].view(np.uint32))
            if bits == "auto":
                bits = best_gap_bits(sel, np.unique(sym, return_inverse=True)[1])
            layers.append(encode_float_layer(name, w, half, mask, int(bits), coder))
        else:
            layers.append(encode_float_layer(name, w, half, None, 8, coder))
    return layers


# --------------------------------------------------------------------------- summary


def summary(
    layers: Sequence[ArtifactLayer],
    artifact_path: os.PathLike[str] | str,
    original_weights: Mapping[str, np.ndarray],
) -> dict[str, Any]:
    """The compression figures of an artifact written from ``layers``.

    ``original_bytes`` is the float32 size of ``original_weights`` (all of them, biases and
    batch-norm statistics included), ``artifact_bytes`` the file's size on disk. Per layer:
    ``kept`` (non-zero weights), ``weight_bits`` (value stream plus codebook or scales),
    ``index_bits`` (gap stream), ``entropy_bits`` (the Shannon bound of its streams) and
    ``bits_per_weight`` (all its bits over ``kept``). ``coded_bits``, ``entropy_bits`` and
    their ratio ``coded_over_entropy`` are totals over the layers whose streams are coded
    (all but dense raw float32 ones, whose 32-bit patterns are stored as they are).
    Accuracy fields are the caller's.
    """
    original = int(sum(4 * math.prod(np.shape(a)) for a in original_weights.values()))
    size = os.path.getsize(artifact_path)
    per_layer = {layer.name: layer.report() for layer in layers}
    stream_bytes = sum(len(s.payload) for layer in layers for s in layer.streams)
    param_bytes = sum(layer.parameter_bytes() for layer in layers)
    quantized = [r for r in per_layer.values() if r["values"] != "f32" or r["layout"] in ("sparse", "dct-sparse")]
    coded = sum(r["coded_bits"] for r in quantized)
    bound = sum(r["entropy_bits"] for r in quantized)
    kept = sum(r["kept"] or 0 for r in per_layer.values())
    return {
        "original_bytes": original,
        "artifact_bytes": size,
        "ratio": round(original / size, 3) if size else None,
        "weights_total": int(sum(math.prod(np.shape(a)) for a in original_weights.values())),
        "weights_kept": kept,
        "stream_bytes": stream_bytes,
        "parameter_bytes": param_bytes,
        "overhead_bytes": size - stream_bytes - param_bytes,
        "coded_bits": coded,
        "entropy_bits": round(bound, 1),
        "coded_over_entropy": round(coded / bound, 4) if bound else None,
        "layers": per_layer,
    }
