"""Frequency-domain pruning of convolution kernels, kept pruned through retraining.

Liu et al. (NeurIPS 2018, "Frequency-Domain Dynamic Pruning for Convolutional Neural
Networks") represent each ``k x k`` kernel by its 2-D DCT coefficients and prune the
smallest: smooth kernels put their energy into few low frequencies, so more can be removed
than in the spatial domain at the same accuracy. Here:

* every ``k x k`` kernel (``k >= 2``) of a selected layer is transformed with the orthonormal
  2-D DCT-II (:func:`sigdl_core.structured_weights.dct2`); the coefficients of smallest
  magnitude are pruned, ``1 - keep`` of each layer's, or of all selected layers together
  with ``global: true``;
* the projection, after every optimizer step, transforms the kernels, sets the pruned
  coefficients back to zero (and rounds the kept ones to float16 when ``values`` is ``f16``),
  and transforms back with the core's :func:`~sigdl_core.structured_weights.idct2`, so the
  weights are exactly what the stored coefficients decode to;
* ``state["frequency"]`` holds each layer's mask and current coefficients, which the
  ``.sigdl`` writer stores in the dct-sparse layout (relative-indexed and entropy-coded like
  the sparse layout).

A later ``quant`` stage shares these layers' kept DCT coefficients (a codebook in the
frequency domain, stored in the dct-sparse layout with codebook values; see
:mod:`sigdl_compress_quant.weight_sharing`), so ``freq-prune,quant,encode`` works with the
defaults. ``int8`` and ``fp16`` leave these layers alone, with a note in their encodings.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from sigdl_core.errors import InvalidValueError
from sigdl_core.interfaces import CompressionResult, Compressor, LayerEncoding
from sigdl_core.structured_weights import dct2, idct2

from .layer_selection import check_names, check_params, check_setting, fraction, per_layer, selected_layers
from .parameters import FREQ_PRUNE_PARAMS

DEFAULT_KEEP = 0.3


def _coefficients(w: np.ndarray, mask: np.ndarray, half: bool) -> np.ndarray:
    x = dct2(w).astype(np.float32)
    x[~mask] = 0
    return x.astype(np.float16).astype(np.float32) if half else x


class FrequencyProjection:
    """Keeps each held layer's pruned DCT coefficients at zero (see the module docstring)."""

    def __init__(self, settings: Mapping[str, dict[str, Any]]) -> None:
        self.settings = dict(settings)

    def __call__(self, weights: Mapping[str, np.ndarray]) -> None:
        for name, setting in self.settings.items():
            array = weights.get(name)
            if array is None:
                continue
            mask = setting["mask"]
            if array.shape != mask.shape:
                raise InvalidValueError(f"weight '{name}' has shape {tuple(array.shape)}, its frequency mask "
                                        f"{tuple(mask.shape)}", "compress the model again after changing its layers")
            if np.array_equal(idct2(setting["coefficients"]), array):
                continue  # already what the coefficients give: a float32 DCT round trip may move a bit
            x = _coefficients(array, mask, setting["values"] == "f16")
            setting["coefficients"][...] = x
            array[...] = idct2(x)

    def __repr__(self) -> str:
        return f"FrequencyProjection({sorted(self.settings)})"


def _kernel_layers(weights: Mapping[str, np.ndarray], names: list[str]) -> list[str]:
    return [n for n in names if np.ndim(weights[n]) == 4 and np.shape(weights[n])[-1] == np.shape(weights[n])[-2]
            and np.shape(weights[n])[-1] >= 2]


def prune_frequencies(weights: Mapping[str, np.ndarray], kinds: Mapping[str, str], params: Mapping[str, Any],
                      previous: CompressionResult | None = None) -> CompressionResult:
    """The ``freq-prune`` compressor (see the module docstring and :data:`FREQ_PRUNE_PARAMS`)."""
    check_params(params, FREQ_PRUNE_PARAMS, "freq-prune")
    check_setting(params.get("keep"), "keep", fraction)
    check_names(params.get("kinds"), "kinds")
    check_names(params.get("skip"), "skip")
    if params.get("values", "f16") not in ("f16", "f32"):
        raise InvalidValueError(f"parameter 'values'={params.get('values')!r} must be f16 or f32")
    if not isinstance(params.get("global", False), bool):
        raise InvalidValueError(f"parameter 'global'={params.get('global')!r} must be true or false")
    fraction(params.get("strength", 1.0), "strength")
    names = _kernel_layers(weights, selected_layers(weights, kinds, params.get("kinds"), ("conv",),
                                                    params.get("skip")))
    values = params.get("values", "f16")
    if values not in ("f16", "f32"):
        raise InvalidValueError(f"parameter 'values'={values!r} must be f16 or f32")
    globally = params.get("global", False)
    if not isinstance(globally, bool):
        raise InvalidValueError(f"parameter 'global'={globally!r} must be true or false")
    keep = per_layer(params.get("keep"), names, kinds, "keep", {n: DEFAULT_KEEP for n in names})
    keep = {n: fraction(keep.get(n, DEFAULT_KEEP), "keep") for n in names}
    strength = fraction(params.get("strength", 1.0), "strength")
    keep = {n: 1.0 - strength * (1.0 - k) for n, k in keep.items()}
    state = dict(previous.state) if previous is not None else {}
    masks = state.get("masks") or {}
    clash = [n for n in names if n in masks or n in (state.get("circulant") or {})]
    if clash:
        raise InvalidValueError(f"layer '{clash[0]}' was pruned or made circulant by an earlier stage",
                                "skip it here (freq-prune.skip) or in the earlier stage")
    spectra = {n: dct2(np.asarray(weights[n], np.float32)) for n in names}
    if globally and names:
        target = float(np.mean([keep[n] for n in names]))
        every = np.concatenate([np.abs(s).ravel() for s in spectra.values()])
        count = max(1, int(round(target * every.size)))
        threshold = np.partition(every, every.size - count)[every.size - count]
        kept_masks = {n: np.abs(s) >= threshold for n, s in spectra.items()}
    else:
        kept_masks = {}
        for n, s in spectra.items():
            flat = np.abs(s).ravel()
            count = max(1, int(round(keep[n] * flat.size)))
            order = np.argsort(-flat, kind="stable")[:count]
            m = np.zeros(flat.size, bool)
            m[order] = True
            kept_masks[n] = m.reshape(s.shape)
    out = {n: np.array(a, copy=True) for n, a in weights.items()}
    layers = dict(previous.layers) if previous is not None else {}
    frequency = dict(state.get("frequency") or {})
    settings: dict[str, dict[str, Any]] = {}
    for n in names:
        x = _coefficients(np.asarray(weights[n], np.float32), kept_masks[n], values == "f16")
        out[n] = idct2(x)
        settings[n] = {"mask": kept_masks[n], "coefficients": x, "values": values}
        kept = int(kept_masks[n].sum())
        layers[n] = LayerEncoding(name=n, shape=tuple(x.shape), kept=kept,
                                  weight_bits=(16 if values == "f16" else 32) * kept, index_bits=8 * kept,
                                  details={"kept_fraction": round(kept / x.size, 4), "domain": "dct"})
    frequency.update(settings)
    state["frequency"] = frequency
    projection = FrequencyProjection(settings)
    keep_structure = [p for p in state.get("structure_projections") or [] if not isinstance(p, FrequencyProjection)]
    state["structure_projections"] = keep_structure + [projection]
    return CompressionResult(weights=out, projection=projection, layers=layers, state=state)


class FrequencyPruner(Compressor):
    """The ``freq-prune`` compressor: magnitude pruning of kernels' 2-D DCT coefficients."""

    name = "freq-prune"

    def compress(self, weights: Mapping[str, np.ndarray], kinds: Mapping[str, str], params: Mapping[str, Any],
                 previous: CompressionResult | None = None) -> CompressionResult:
        return prune_frequencies(weights, kinds, params, previous)

    def export_frequency_form(self, onnx_path: Path, out_path: Path) -> list[dict[str, Any]] | None:
        """Stride-1 convolutions (and block-circulant ``Gemm`` layers) through ONNX ``DFT``
        (:mod:`.onnx_frequency`)."""
        from .onnx_frequency import export_frequency_form

        return export_frequency_form(onnx_path, out_path, convolutions=True)
