"""Block-circulant FC and conv layers, kept circulant through retraining.

Cheng et al. (ICCV 2015) and CirCNN (Ding et al., MICRO 2017) constrain each ``b x b`` block
of a weight matrix to be circulant: the block is defined by one ``b``-vector, so it stores
``b`` values instead of ``b**2`` and multiplies a vector in ``O(b log b)`` by FFT. A
convolution ``(out, in, kh, kw)`` is block-circulant along ``(out, in)`` at every kernel
position. Dimensions the block does not divide are zero padded; the padded vectors are
stored, and counted in the size.

The compressor replaces every selected block by its nearest circulant matrix in the
Frobenius norm (the mean along each wrapped diagonal), and its projection does the same
after every optimizer step, so retraining stays circulant
(:func:`sigdl_core.structured_weights.nearest_circulant_vectors`; it is idempotent).
Element-wise quantizers that follow (``quant``'s weight sharing, per-tensor int8, fp16) map
equal values to equal values, so their output stays circulant and the ``.sigdl`` writer
stores the defining vectors (the circulant layout).

Measured on ``mnist5k`` (LeNet-300-100 trained 10 epochs at lr 0.05, test 96.4 %): projecting
fc1 and fc2 onto 16-blocks then retraining 2 epochs at lr 0.01 gave 80.5 %, 8 epochs 91.6 %;
16 epochs from lr 0.05 on a cosine schedule gave 96.0 %, and a fresh √b-rescaled
initialisation trained the same 16 epochs 93.9 %. A constant learning rate (0.01 or 0.03,
16 epochs) reached only 93.3-94.3 %. Hence the default: a 16-epoch cosine retraining from lr
0.05 right after this stage (``retrain_epochs``, ``retrain_lr``), asked of the run through
:attr:`~sigdl_core.interfaces.CompressionResult.retrain`.

Block sizes were then decided on validation data (a quarter of the training split, four
split seeds, ``circulant,quant,encode``): blocks of 16 on fc1 and fc2 lost 0.2-2.2 points
(mean 1.2) at 91-93x; fc2 in blocks of 8 lost 0.3-1.7 (mean 0.8) at 85-86x. Hence
``min_blocks`` (default 8): a layer's block is halved until its smaller side holds 8 blocks
(fc1 300x784 keeps 16, fc2 100x300 gets 8, the 10-class output layer stays dense).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from sigdl_core.errors import InvalidValueError
from sigdl_core.interfaces import CompressionResult, Compressor, LayerEncoding
from sigdl_core.structured_weights import MAX_BLOCK, expand_circulant, nearest_circulant_vectors

from .layer_selection import (
    check_names,
    check_params,
    check_setting,
    fraction,
    per_layer,
    selected_layers,
    whole_number,
)
from .parameters import CIRCULANT_PARAMS

DEFAULT_BLOCKS: dict[str, int] = {"fc": 16, "conv": 4}
DEFAULT_RETRAIN_EPOCHS = 16
#: A layer's block is halved until its smaller side holds this many blocks (below 2: dense).
DEFAULT_MIN_BLOCKS = 8
DEFAULT_RETRAIN_LR = 0.05


def _block(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidValueError(f"parameter 'block': {value!r} for '{name}' must be a power of two (or 0: dense)")
    b = int(value)
    if b in (0, 1):
        return 0
    if not 2 <= b <= MAX_BLOCK or b & (b - 1):
        raise InvalidValueError(f"parameter 'block': {b} for '{name}' must be a power of two in 2..{MAX_BLOCK}",
                                "CirCNN uses 8 to 256 for FC layers and 4 to 16 for convolutions")
    return b


def check_circulant_params(params: Mapping[str, Any]) -> None:
    """Every parameter's type and range, before any weight is looked at."""
    check_params(params, CIRCULANT_PARAMS, "circulant")
    check_setting(params.get("block"), "block", lambda v, p: _block(v, "every selected layer"))
    check_names(params.get("kinds"), "kinds")
    check_names(params.get("skip"), "skip")
    whole_number(params.get("min_blocks", DEFAULT_MIN_BLOCKS), "min_blocks", 1, 1 << 16)
    whole_number(params.get("retrain_epochs", DEFAULT_RETRAIN_EPOCHS), "retrain_epochs", 0, 10_000)
    lr = params.get("retrain_lr", DEFAULT_RETRAIN_LR)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < 10:
        raise InvalidValueError(f"parameter 'retrain_lr'={lr!r} must be a number in (0, 10)")
    fraction(params.get("strength", 1.0), "strength")


class CirculantProjection:
    """Replaces every held weight by its nearest block-circulant matrix, in place."""

    def __init__(self, blocks: Mapping[str, int], shapes: Mapping[str, tuple[int, ...]]) -> None:
        self.blocks = dict(blocks)
        self.shapes = dict(shapes)

    def __call__(self, weights: Mapping[str, np.ndarray]) -> None:
        for name, block in self.blocks.items():
            array = weights.get(name)
            if array is None:
                continue
            if tuple(array.shape) != self.shapes[name]:
                raise InvalidValueError(
                    f"weight '{name}' has shape {tuple(array.shape)}, its circulant blocks were made for "
                    f"{self.shapes[name]}", "compress the model again after changing its layers")
            array[...] = expand_circulant(nearest_circulant_vectors(array, block), array.shape, block)

    def __repr__(self) -> str:
        return f"CirculantProjection({self.blocks})"


def circulant_blocks(weights: Mapping[str, np.ndarray], kinds: Mapping[str, str],
                     params: Mapping[str, Any]) -> tuple[dict[str, int], dict[str, str]]:
    """The block of every layer made circulant, and why each other selected layer is not."""
    names = selected_layers(weights, kinds, params.get("kinds"), ("conv", "fc"), params.get("skip"))
    min_blocks = whole_number(params.get("min_blocks", DEFAULT_MIN_BLOCKS), "min_blocks", 1, 1 << 16)
    wanted = per_layer(params.get("block"), names, kinds, "block", DEFAULT_BLOCKS)
    strength = fraction(params.get("strength", 1.0), "strength")
    blocks: dict[str, int] = {}
    dense: dict[str, str] = {}
    for name in names:
        if name not in wanted:
            dense[name] = "no block given for its kind"
            continue
        b = _block(wanted[name], name)
        if b and strength < 1.0:
            b = 1 << max(1, round(strength * math.log2(b)))
        shape = np.shape(weights[name])
        if b == 0:
            dense[name] = "block 0"
            continue
        if len(shape) < 2:
            dense[name] = f"{len(shape)}-D"
            continue
        while b >= 2 and min(shape[0], shape[1]) < min_blocks * b:
            b //= 2
        if b < 2:
            dense[name] = f"{shape[0]}x{shape[1]} has fewer than {min_blocks} blocks of 2 along a side"
        else:
            blocks[name] = b
    return blocks, dense


def make_circulant(weights: Mapping[str, np.ndarray], kinds: Mapping[str, str], params: Mapping[str, Any],
                   previous: CompressionResult | None = None) -> CompressionResult:
    """The ``circulant`` compressor (see the module docstring and :data:`CIRCULANT_PARAMS`)."""
    check_circulant_params(params)
    blocks, dense = circulant_blocks(weights, kinds, params)
    epochs = int(params.get("retrain_epochs", DEFAULT_RETRAIN_EPOCHS))
    lr = params.get("retrain_lr", DEFAULT_RETRAIN_LR)
    state = dict(previous.state) if previous is not None else {}
    masks = state.get("masks") or {}
    clash = [n for n in blocks if n in masks]
    if clash:
        raise InvalidValueError(f"layer '{clash[0]}' was pruned by an earlier stage; a pruned layer cannot be "
                                "block-circulant", "put circulant before prune, or skip the layer in one of them")
    out = {n: np.array(a, copy=True) for n, a in weights.items()}
    layers = dict(previous.layers) if previous is not None else {}
    for name, b in blocks.items():
        w = np.asarray(out[name], np.float32)
        vectors = nearest_circulant_vectors(w, b)
        out[name] = expand_circulant(vectors, w.shape, b)
        stored = int(vectors.size)
        layers[name] = LayerEncoding(
            name=name, shape=tuple(w.shape), kept=stored, weight_bits=32 * stored,
            details={"block": b, "stored_values": stored, "dense_values": int(w.size),
                     "padding_values": stored - math.ceil(w.size / b),
                     "values_ratio": round(w.size / stored, 3)})
    circulant = dict(state.get("circulant") or {})
    circulant.update(blocks)
    state["circulant"] = circulant
    state["circulant_dense"] = dense
    projection = CirculantProjection(blocks, {n: tuple(out[n].shape) for n in blocks})
    keep = [p for p in state.get("structure_projections") or [] if not isinstance(p, CirculantProjection)]
    state["structure_projections"] = keep + [projection]
    retrain = {"epochs": epochs, "lr": float(lr), "schedule": "cosine"} if epochs else None
    return CompressionResult(weights=out, projection=projection, layers=layers, state=state, retrain=retrain)


class CirculantCompressor(Compressor):
    """The ``circulant`` compressor: block-circulant FC and conv layers."""

    name = "circulant"

    def compress(self, weights: Mapping[str, np.ndarray], kinds: Mapping[str, str], params: Mapping[str, Any],
                 previous: CompressionResult | None = None) -> CompressionResult:
        return make_circulant(weights, kinds, params, previous)

    def export_frequency_form(self, onnx_path: Path, out_path: Path) -> list[dict[str, Any]] | None:
        """Block-circulant ``Gemm`` layers through ONNX ``DFT`` (:mod:`.onnx_frequency`)."""
        from .onnx_frequency import export_frequency_form

        return export_frequency_form(onnx_path, out_path, convolutions=False)
