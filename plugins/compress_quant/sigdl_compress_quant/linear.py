"""Linear quantization of weights: int8 (per tensor or per channel, symmetric or not) and fp16.

The arithmetic is ONNX's, so that what SigDL retrains with is what an integer target runs:
``QuantizeLinear`` is ``q = saturate(round(x / scale) + zero_point)`` with rounding half to
even, and ``DequantizeLinear`` is ``(q - zero_point) * scale`` (ONNX operator specification,
opset 13+; :func:`sigdl_core.artifact.quantize_linear`). Scales and zero points follow
onnxruntime's quantization tool (``onnxruntime.quantization.quant_utils.compute_scale_zp``),
which is what :func:`sigdl_compress_quant.onnx_export.emit_int8_qdq_onnx` uses too:

* **symmetric** (int8, zero point 0): ``scale = max|x| / 127`` over the tensor or the channel;
* **asymmetric** (uint8): the range is widened to include 0, ``scale = (max - min) / 255``
  and ``zero_point = round(-min / scale)``, so that 0.0 is exactly representable (pruned
  weights stay exactly zero).

Per channel means one scale per index of axis 0 (the output channels of a conv or linear
weight, as ONNX and TensorRT do); 1-D arrays are quantized per tensor.

The compressors hand back the *dequantized* weights, so that evaluation and retraining run in
float32 unchanged, and keep the integers, scales and zero points in ``state["int8"]``. Their
projection snaps the weights back onto the grid after every optimizer step (the straight-
through estimator of quantization-aware training: the optimizer updates the float weights,
the model always holds grid values) and keeps pruned weights at zero.

``fp16`` rounds weights to IEEE half precision (round to nearest even, numpy's conversion)
and snaps back after each step in the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
from sigdl_core.artifact import dequantize_linear, int8_range, quantize_linear
from sigdl_core.entropy import gaps_from_positions
from sigdl_core.errors import InvalidValueError
from sigdl_core.interfaces import CompressionResult, Compressor, LayerEncoding

from .parameters import FP16_PARAMS, INT8_PARAMS
from .layer_settings import check_kinds, check_params, check_quantizable, select_layers
from .projections import MaskKeeper


FP16_MAX = 65504.0


def _check_flag(value: Any, param: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidValueError(f"parameter '{param}'={value!r} must be true or false")
    return value


def int8_parameters(
    x: np.ndarray, per_channel: bool = True, symmetric: bool = True
) -> tuple[np.ndarray, np.ndarray, int | None, bool]:
    """``(scale, zero_point, axis, signed)`` for quantizing ``x`` as onnxruntime would.

    Per channel along axis 0 when ``per_channel`` and ``x`` has two or more dims.
    """
    x = np.asarray(x, np.float32)
    axis = 0 if per_channel and x.ndim >= 2 else None
    if axis is None:
        lo = np.array([x.min() if x.size else 0.0], np.float32)
        hi = np.array([x.max() if x.size else 0.0], np.float32)
    else:
        flat = x.reshape(x.shape[0], -1)
        lo, hi = flat.min(axis=1), flat.max(axis=1)
    lo = np.minimum(lo, np.float32(0))
    hi = np.maximum(hi, np.float32(0))
    if symmetric:
        amax = np.maximum(np.abs(lo), np.abs(hi)).astype(np.float32)
        scale = (amax / np.float32(127)).astype(np.float32)
        zp = np.zeros(scale.shape, np.int32)
    else:
        scale = ((hi - lo) / np.float32(255)).astype(np.float32)
        zp = np.zeros(scale.shape, np.int32)
        ok = scale > 0
        zp[ok] = np.clip(np.round(-lo[ok] / scale[ok]), 0, 255).astype(np.int32)
    scale = np.where(scale > 0, scale, np.float32(1.0)).astype(np.float32)  # an all-zero channel
    return scale, zp, axis, symmetric


class Int8Projection:
    """Snaps weights onto their int8 grid in place and keeps pruned weights at zero."""

    def __init__(self, params: Mapping[str, Mapping[str, Any]], masks: Mapping[str, np.ndarray]) -> None:
        self.params = {n: dict(p) for n, p in params.items()}
        self.keep_pruned = MaskKeeper(masks)

    def __call__(self, weights: dict[str, np.ndarray]) -> None:
        for name, p in self.params.items():
            array = weights.get(name)
            if array is None:
                continue
            q = quantize_linear(array, p["scale"], p["zero_point"], p["axis"], p["signed"])
            array[...] = dequantize_linear(q, p["scale"], p["zero_point"], p["axis"])
        self.keep_pruned(weights)

    def __repr__(self) -> str:
        return f"Int8Projection({len(self.params)} layers)"


class Fp16Projection:
    """Rounds weights to float16 in place and keeps pruned weights at zero."""

    def __init__(self, names: list[str], masks: Mapping[str, np.ndarray]) -> None:
        self.names = list(names)
        self.keep_pruned = MaskKeeper(masks)

    def __call__(self, weights: dict[str, np.ndarray]) -> None:
        for name in self.names:
            array = weights.get(name)
            if array is not None:
                np.clip(array, -FP16_MAX, FP16_MAX, out=array)
                array[...] = array.astype(np.float16).astype(np.float32)
        self.keep_pruned(weights)

    def __repr__(self) -> str:
        return f"Fp16Projection({len(self.names)} layers)"


def frequency_layers_left_alone(names: list[str], previous: CompressionResult | None) -> list[str]:
    """The frequency-pruned layers of ``names`` (``state["frequency"]``): int8 and fp16 leave
    them alone, since their kept DCT coefficients are what the file stores and a spatial
    int8 or fp16 grid would not survive the projection that keeps them in that form."""
    frequency = (previous.state.get("frequency") or {}) if previous is not None else {}
    return [n for n in names if n in frequency]


def _start(weights: Mapping[str, np.ndarray], previous: CompressionResult | None, names: list[str],
           compressor: str):
    """The state, masks, weight copies and layer encodings a quantizer starts from, and the
    layers it quantizes (``names`` less the frequency-pruned ones, noted in their encodings)."""
    state = dict(previous.state) if previous is not None else {}
    masks = dict(state.get("masks") or {})
    left = frequency_layers_left_alone(names, previous)
    names = [n for n in names if n not in left]
    out = {n: np.array(a, dtype=np.float32 if n in names else None, copy=True) for n, a in weights.items()}
    for name in names:
        check_quantizable(name, out[name], masks.get(name))
    layers = dict(previous.layers) if previous is not None else {}
    for name in left:
        if name in layers:
            layers[name] = replace(layers[name], details={
                **layers[name].details, compressor: "left alone: frequency-pruned (its DCT coefficients are stored)"})
    return state, masks, out, layers, names


def _index_estimate(mask: np.ndarray | None, kind: str | None) -> tuple[int, int]:
    """(entries, index bits) of a sparse layer at Deep Compression's default gap widths."""
    if mask is None:
        return -1, 0
    bits = 5 if kind == "fc" else 8
    pos = np.flatnonzero(np.asarray(mask, bool).ravel())
    n = gaps_from_positions(pos, np.zeros(pos.size, np.int64), bits, 0)[0].size
    return n, n * bits


def quantize_int8(
    weights: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    params: Mapping[str, Any],
    previous: CompressionResult | None = None,
) -> CompressionResult:
    """The ``int8`` compressor (see the module docstring and :data:`INT8_PARAMS`)."""
    check_params(params, INT8_PARAMS, "int8")
    per_channel = _check_flag(params.get("per_channel", True), "per_channel")
    symmetric = _check_flag(params.get("symmetric", True), "symmetric")
    names = select_layers(weights, kinds, check_kinds(params.get("kinds")), params.get("skip"))
    state, masks, out, layers, names = _start(weights, previous, names, "int8")
    int8 = dict(state.get("int8") or {})
    representation = dict(state.get("representation") or {})
    for name in names:
        w = out[name]
        scale, zp, axis, signed = int8_parameters(w, per_channel, symmetric)
        q = quantize_linear(w, scale, zp, axis, signed)
        w[...] = dequantize_linear(q, scale, zp, axis)
        mask = masks.get(name)
        if mask is not None:
            np.putmask(w, ~np.asarray(mask, bool), 0)
            q = quantize_linear(w, scale, zp, axis, signed)
        int8[name] = {"scale": scale, "zero_point": zp, "axis": axis, "signed": signed, "q": q}
        representation[name] = "int8"
        kept = int(np.count_nonzero(w))
        entries, index_bits = _index_estimate(mask, kinds.get(name))
        entries = w.size if entries < 0 else entries
        qmin, qmax = int8_range(signed)
        layers[name] = LayerEncoding(
            name=name, shape=tuple(w.shape), kept=kept, weight_bits=8 * entries + 40 * scale.size,
            index_bits=index_bits,
            details={"bits": 8, "per_channel": axis is not None, "symmetric": symmetric,
                     "range": [qmin, qmax]},
        )
    state.update({"masks": masks, "int8": int8, "representation": representation})
    projection = Int8Projection({n: {k: v for k, v in int8[n].items() if k != "q"} for n in names},
                                {n: m for n, m in masks.items() if n in out})
    return CompressionResult(weights=out, projection=projection, layers=layers, state=state)


def quantize_fp16(
    weights: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    params: Mapping[str, Any],
    previous: CompressionResult | None = None,
) -> CompressionResult:
    """The ``fp16`` compressor (see the module docstring and :data:`FP16_PARAMS`)."""
    check_params(params, FP16_PARAMS, "fp16")
    names = select_layers(weights, kinds, check_kinds(params.get("kinds")), params.get("skip"))
    state, masks, out, layers, names = _start(weights, previous, names, "fp16")
    representation = dict(state.get("representation") or {})
    for name in names:
        w = out[name]
        big = float(np.abs(w).max()) if w.size else 0.0
        if big > FP16_MAX:
            raise InvalidValueError(f"weight '{name}' holds {big:g}, beyond float16's {FP16_MAX:g}",
                                    f"leave it in float32 with skip: [{name}]")
        w[...] = w.astype(np.float16).astype(np.float32)
        representation[name] = "fp16"
        entries, index_bits = _index_estimate(masks.get(name), kinds.get(name))
        entries = w.size if entries < 0 else entries
        layers[name] = LayerEncoding(name=name, shape=tuple(w.shape), kept=int(np.count_nonzero(w)),
                                     weight_bits=16 * entries, index_bits=index_bits, details={"bits": 16})
    state.update({"masks": masks, "representation": representation})
    projection = Fp16Projection(names, {n: m for n, m in masks.items() if n in out})
    return CompressionResult(weights=out, projection=projection, layers=layers, state=state)


class Int8Compressor(Compressor):
    """The ``int8`` compressor: ONNX-style linear quantization of weights."""

    name = "int8"

    def compress(self, weights, kinds, params, previous=None):  # type: ignore[override]
        return quantize_int8(weights, kinds, params, previous)


class Fp16Compressor(Compressor):
    """The ``fp16`` compressor: weights rounded to IEEE half precision."""

    name = "fp16"

    def compress(self, weights, kinds, params, previous=None):  # type: ignore[override]
        return quantize_fp16(weights, kinds, params, previous)
