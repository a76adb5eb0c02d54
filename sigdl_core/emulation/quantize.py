"""From a float ONNX model to a QDQ int8 (or int16) model, calibrated on sample inputs.

One implementation for every target that emulates integer inference by running the QDQ
model (QuantizeLinear/DequantizeLinear around each quantized tensor) through onnxruntime:
the C66x DSP (TIDL-like: uint8 asymmetric activations, per-tensor weights) and the ARM CPUs
(ncnn-like: int8 symmetric activations, per-channel weights), among others.

:func:`quantize_qdq` first folds batch norm into convolutions and constants into
initializers (:func:`~sigdl_core.emulation.onnx_tools.fold_batch_norm`, onnxruntime's basic
optimizations, plain ONNX operators only), then runs onnxruntime's ``quantize_static`` in
QDQ format with min/max calibration. onnxruntime is imported only when it is called.
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

from ..errors import InvalidValueError, UnsupportedModelError
from ..files import atomic_path
from .onnx_tools import fold_batch_norm, load_onnx

__all__ = ["ACTIVATION_TYPES", "quantize_qdq"]

ACTIVATION_TYPES = ("uint8", "int8", "uint16", "int16")


class _DropQuantizerAdvice(logging.Filter):
    """onnxruntime's quantizer logs "Please consider to run pre-processing" on the root
    logger at every call; the batch-norm folding above is that pre-processing."""

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


def quantize_qdq(
    model: onnx.ModelProto | os.PathLike[str] | str,
    calibration: np.ndarray,
    output_path: os.PathLike[str] | str,
    activation_type: str = "uint8",
    per_channel: bool = False,
    reduce_range: bool = False,
    activation_symmetric: bool = False,
    extra_options: Mapping[str, Any] | None = None,
) -> Path:
    """Writes the QDQ model of a float ONNX model atomically; returns its path.

    :param model: the float model (path or ModelProto), one input.
    :param calibration: float32 samples (N × input shape) for min/max calibration.
    :param output_path: where the QDQ model goes.
    :param activation_type: ``uint8`` (default), ``int8``, ``uint16`` or ``int16``;
        weights are always int8 symmetric (16-bit activations: A16W8).
    :param per_channel: one weight scale per output channel instead of per tensor.
    :param reduce_range: 7-bit weights (keeps onnxruntime's u8s8 x86 kernels without VNNI
        exact; targets that compute the QDQ arithmetic exactly do not need it).
    :param activation_symmetric: zero points of 0 for activations (int8 symmetric, as ncnn).
    :param extra_options: more of ``quantize_static``'s ``extra_options``.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if activation_type not in ACTIVATION_TYPES:
        raise InvalidValueError(f"activation_type '{activation_type}' is not one of {', '.join(ACTIVATION_TYPES)}",
                                "use uint8 or int8 for 8-bit inference")
    calibration = np.asarray(calibration, dtype=np.float32)
    if calibration.ndim < 2 or len(calibration) == 0:
        raise InvalidValueError("calibration data must hold at least one sample", "pass N × input-shape samples")
    prepared = fold_batch_norm(model if isinstance(model, onnx.ModelProto) else load_onnx(model))
    inputs = [i.name for i in prepared.graph.input
              if i.name not in {t.name for t in prepared.graph.initializer}]
    if len(inputs) != 1:
        raise UnsupportedModelError("integer emulation takes models with one input",
                                    f"this one has {len(inputs)}: {', '.join(inputs)}")
    qtype = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8,
             "uint16": QuantType.QUInt16, "int16": QuantType.QInt16}[activation_type]

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = _batches(calibration, inputs[0], 32)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    out = Path(output_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = {"ActivationSymmetric": bool(activation_symmetric), "WeightSymmetric": True}
    if activation_type.endswith("16"):
        extra["UseQDQContribOps"] = True
    extra.update(extra_options or {})
    with tempfile.TemporaryDirectory(prefix="sigdl-qdq-") as tmp:
        src, dest = Path(tmp) / "float.onnx", Path(tmp) / "qdq.onnx"
        onnx.save(prepared, str(src))
        try:
            with _quiet_quantizer():
                quantize_static(
                    str(src), str(dest), _Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=qtype, weight_type=QuantType.QInt8, per_channel=per_channel,
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
