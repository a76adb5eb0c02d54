"""The Atom's int8 models: what OpenVINO's int8 path runs, in ONNX form.

OpenVINO's post-training quantization (POT, DefaultQuantization) gives u8 activations and
s8 per-channel weights, min/max calibrated, convolutions and fully connected layers in
int8. :func:`int8_model` writes the same with the core's
:func:`~sigdl_core.emulation.quantize.quantize_qdq` (batch norm folded, then onnxruntime's
``quantize_static`` in QDQ format: QuantizeLinear/DequantizeLinear around each quantized
tensor); onnxruntime fuses
the pairs into its integer kernels (QLinearConv, QLinearMatMul) when it runs it. A model
that already holds QuantizeLinear nodes is taken as the int8 model as it is.

:func:`reference_int8_model` quantizes the emulator's reference convolution the same way,
so that the int8 model is scaled by an int8 kernel timed exactly like the fp32 one.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["int8_model", "is_quantized", "reference_int8_model"]


def is_quantized(path: os.PathLike[str] | str) -> bool:
    """True when the ONNX model already holds QuantizeLinear nodes (a QDQ model)."""
    import onnx

    model = onnx.load(os.fspath(path), load_external_data=False)
    return any(n.op_type in ("QuantizeLinear", "QLinearConv", "ConvInteger") for n in model.graph.node)


def int8_model(src: os.PathLike[str] | str, dest: os.PathLike[str] | str,
               calibration: np.ndarray) -> Path:
    """Writes the QDQ int8 model of ``src`` to ``dest`` (batch norm folded first; u8
    asymmetric activations, s8 per-channel weights, min/max calibrated on ``calibration``,
    N × sample shape, as OpenVINO's DefaultQuantization does); returns ``dest``."""
    from sigdl_core.emulation.quantize import quantize_qdq

    return quantize_qdq(src, calibration, dest, activation_type="uint8", per_channel=True)


def reference_int8_model(fp32_reference: os.PathLike[str] | str, dest: os.PathLike[str] | str,
                         shape: tuple[int, ...]) -> Path:
    """The int8 form of the reference convolution, calibrated on seeded normal inputs."""
    rng = np.random.default_rng(0)
    return int8_model(fp32_reference, dest, rng.standard_normal((8, *shape[1:])).astype(np.float32))
