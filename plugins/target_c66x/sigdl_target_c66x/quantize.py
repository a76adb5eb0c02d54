"""From a float ONNX model to the QDQ int8 model the C66x emulation runs.

TIDL's import tool does the same three steps on the host before a network reaches the DSP
(TIDL user guide, "Import process"): it merges layers (batch norm into the convolution,
ReLU into its producer), and it calibrates 8-bit ranges on sample inputs. Here:

1. :func:`prepare_for_inference` lets onnxruntime's *basic* graph optimizations fold
   constants, drop Identity/Dropout and fuse Conv + BatchNormalization (and Conv + Add/Mul
   of constants) — plain ONNX operators only;
2. :func:`quantize_for_c66x` runs onnxruntime's ``quantize_static`` in QDQ format on
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

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from sigdl_core.emulation.onnx_tools import fold_batch_norm, load_onnx
from sigdl_core.files import atomic_path
from sigdl_core.errors import InvalidValueError, UnsupportedModelError

__all__ = ["prepare_for_inference", "quantize_for_c66x"]

_ACTIVATION_TYPES = ("uint8", "int8", "uint16", "int16")


def _load(model: onnx.ModelProto | os.PathLike[str] | str) -> onnx.ModelProto:
    return model if isinstance(model, onnx.ModelProto) else load_onnx(model)

def prepare_for_inference(model: onnx.ModelProto | os.PathLike[str] | str) -> onnx.ModelProto:
    """Folds batch norm into convolutions and constants into initializers (onnxruntime's
    basic, hardware-independent optimizations), keeping plain ONNX operators: the first
    step of TIDL's import tool."""
    return fold_batch_norm(_load(model))

class _DropQuantizerAdvice(logging.Filter):
    """onnxruntime's quantizer logs "Please consider to run pre-processing" on the root
    logger at every call; we have done the equivalent pre-processing, so drop that line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in str(record.msg)


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    root = logging.getLogger()
    f = _DropQuantizerAdvice()
    root.addFilter(f)
    try:
        yield
    finally:
        root.removeFilter(f)


def _batches(x: np.ndarray, input_name: str, batch: int) -> Iterator[dict[str, np.ndarray]]:
    for i in range(0, len(x), batch):
        yield {input_name: np.ascontiguousarray(x[i:i + batch], dtype=np.float32)}


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

    :param model: the float model (path or ModelProto).
    :param calibration: float32 samples (N × input shape) for min/max calibration.
    :param output_path: where the QDQ model goes.
    :param activation_type: ``uint8`` (default), ``int8``, ``uint16`` or ``int16``.
    :param per_channel: one weight scale per output channel instead of per tensor.
    :param reduce_range: 7-bit weights (see the module docstring).
    :param extra_options: more of ``quantize_static``'s ``extra_options`` (e.g.
        ``ForceQuantizeNoInputCheck`` to quantize a pool that reads the raw input).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if activation_type not in _ACTIVATION_TYPES:
        raise InvalidValueError(f"activation_type '{activation_type}' is not one of {', '.join(_ACTIVATION_TYPES)}",
                                "use uint8 for TIDL-like 8-bit inference")
    calibration = np.asarray(calibration, dtype=np.float32)
    if calibration.ndim < 2 or len(calibration) == 0:
        raise InvalidValueError("calibration data must hold at least one sample", "pass N × input-shape samples")
    prepared = prepare_for_inference(model)
    inputs = [i.name for i in prepared.graph.input
              if i.name not in {t.name for t in prepared.graph.initializer}]
    if len(inputs) != 1:
        raise UnsupportedModelError("the C66x emulation takes models with one input",
                                    f"this one has {len(inputs)}: {', '.join(inputs)}")
    qtype = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8,
             "uint16": QuantType.QUInt16, "int16": QuantType.QInt16}[activation_type]
    # 16-bit activations keep 8-bit weights (A16W8): 16×16-bit products summed over a few
    # hundred taps would overflow the C66x's 32-bit accumulators at full scale
    wtype = QuantType.QInt8

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = _batches(calibration, inputs[0], 32)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    out = Path(output_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    extra = {"ActivationSymmetric": False, "WeightSymmetric": True}
    if activation_type.endswith("16"):
        extra["UseQDQContribOps"] = True
    extra.update(extra_options or {})
    with tempfile.TemporaryDirectory(prefix="sigdl-c66x-q-") as tmp:
        src, dest = Path(tmp) / "float.onnx", Path(tmp) / "qdq.onnx"
        onnx.save(prepared, str(src))
        try:
            with _quiet_quantizer():
                quantize_static(
                    str(src), str(dest), _Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=qtype, weight_type=wtype, per_channel=per_channel,
                    reduce_range=reduce_range, calibrate_method=CalibrationMethod.MinMax,
                    extra_options=extra,
                )
        except Exception as exc:
            raise UnsupportedModelError(
                f"onnxruntime could not quantize the model ({' '.join(str(exc).split())[:300]})",
                "check that the model runs in onnxruntime and that the calibration data fits its input",
            ) from None
        with atomic_path(out) as final:  # never a half-written model at the destination
            shutil.copyfile(dest, final)
    return out
