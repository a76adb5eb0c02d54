"""From a float ONNX model to the QDQ int8 model the C66x emulation runs.

TIDL's import tool does the same three steps on the host before a network reaches the DSP
(TIDL user guide, "Import process"): it merges layers (batch norm into the convolution,
ReLU into its producer), and it calibrates 8-bit ranges on sample inputs. Here:

1. :func:`prepare_for_inference` lets onnxruntime's *basic* graph optimizations fold
   constants, drop Identity/Dropout and fuse Conv + BatchNormalization (and Conv + Add/Mul
   of constants) — plain ONNX operators only;
2. :func:`quantize_for_c66x` runs onnxruntime's ``quantize_static`` in QDQ format (through
   the core's :func:`~sigdl_core.emulation.quantize.quantize_qdq`, shared with other targets) on
   calibration samples (min/max calibration): activations uint8 asymmetric (TIDL keeps
   activations unsigned after ReLU), weights int8 symmetric, per tensor by default (TIDL
   1.x quantizes each layer's weights with one scale); per-channel weights and 16-bit
   activations are options. 16-bit activations keep int8 weights (A16W8): with 16-bit
   weights too, a 3×3×64 convolution at full scale would exceed the 32-bit accumulator.

``reduce_range`` (7-bit weights) exists only to keep *onnxruntime's own* u8s8 x86 kernels
exact (its ``vpmaddubsw`` path saturates int16 pair sums on CPUs without VNNI); the C66x's
``DOTPSU4`` has no such intermediate saturation, so the emulation never needs it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from sigdl_core.emulation.onnx_tools import fold_batch_norm, load_onnx
from sigdl_core.emulation.quantize import quantize_qdq

__all__ = ["prepare_for_inference", "quantize_for_c66x"]


def _load(model: onnx.ModelProto | os.PathLike[str] | str) -> onnx.ModelProto:
    return model if isinstance(model, onnx.ModelProto) else load_onnx(model)


def prepare_for_inference(model: onnx.ModelProto | os.PathLike[str] | str) -> onnx.ModelProto:
    """Folds batch norm into convolutions and constants into initializers (onnxruntime's
    basic, hardware-independent optimizations), keeping plain ONNX operators: the first
    step of TIDL's import tool."""
    return fold_batch_norm(_load(model))


def quantize_for_c66x(
    model: onnx.ModelProto | os.PathLike[str] | str,
    calibration: np.ndarray,
    output_path: os.PathLike[str] | str,
    activation_type: str = "uint8",
    per_channel: bool = False,
    reduce_range: bool = False,
    extra_options: Mapping[str, Any] | None = None,
) -> Path:
    """Writes the QDQ int8 (or int16) model of a float ONNX model; returns its path.

    The core's :func:`sigdl_core.emulation.quantize.quantize_qdq` with TIDL's choices:
    asymmetric activations (unsigned after ReLU), int8 symmetric weights, per tensor
    unless ``per_channel``.

    :param model: the float model (path or ModelProto).
    :param calibration: float32 samples (N × input shape) for min/max calibration.
    :param output_path: where the QDQ model goes.
    :param activation_type: ``uint8`` (default), ``int8``, ``uint16`` or ``int16``.
    :param per_channel: one weight scale per output channel instead of per tensor.
    :param reduce_range: 7-bit weights (see the module docstring).
    :param extra_options: more of ``quantize_static``'s ``extra_options`` (e.g.
        ``ForceQuantizeNoInputCheck`` to quantize a pool that reads the raw input).
    """
    return quantize_qdq(model, calibration, output_path, activation_type=activation_type,
                        per_channel=per_channel, reduce_range=reduce_range,
                        activation_symmetric=False, extra_options=extra_options)
