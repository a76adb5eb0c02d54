"""ONNX models for integer and half-precision targets: int8 QDQ with calibration, and fp16.

* :func:`emit_int8_qdq_onnx` writes the QDQ form of a float32 model (QuantizeLinear /
  DequantizeLinear pairs around every quantized tensor, the form TensorRT, OpenVINO and
  onnxruntime's integer kernels consume), with activation ranges calibrated on data. It uses
  onnxruntime's own tools, ``quant_pre_process`` then ``quantize_static`` with
  ``QuantFormat.QDQ`` and min/max calibration, fed by a ``CalibrationDataReader`` over NumPy
  batches, rather than a hand-written pass. Weights are int8 per output channel (or per
  tensor); activations int8 symmetric or uint8 asymmetric.
* :func:`emit_fp16_onnx` converts initializers and the computation to float16 with
  ``onnxconverter_common.float16.convert_float_to_float16`` (``keep_io_types=True``: Cast
  nodes at the inputs and outputs keep the float32 interface, so the same data feeds both
  models). Checked to work with onnx 1.23 and onnxruntime 1.31.

Both need the plugin's ``[onnx]`` extra (onnx, onnxruntime, onnxconverter-common), imported
only when called. Both write atomically, check the result with ``onnx.checker``, and turn a
missing or unreadable model into :class:`~sigdl_core.errors.ModelFileError`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from sigdl_core.errors import InvalidValueError, ModelFileError, UnsupportedModelError
from sigdl_core.files import atomic_path, read_regular_file


def _need(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UnsupportedModelError(
            f"ONNX export needs '{module.split('.')[0]}', which is not installed ({exc})",
            "pip install 'sigdl-compress-quant[onnx]'",
        ) from None


def _load_model(path: os.PathLike[str] | str) -> Any:
    onnx = _need("onnx")
    p = read_regular_file(path, "ONNX model")
    try:
        model = onnx.load(str(p))
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises DecodeError, ValidationError, ...
        raise ModelFileError(f"'{p}' is not a valid ONNX model: {' '.join(str(exc).split())[:300]}",
                             "export the model again") from None
    return model


class _NumpyBatches:
    """A ``CalibrationDataReader`` over NumPy batches (one input) or dicts of them."""

    def __init__(self, batches: list[dict[str, np.ndarray]]) -> None:
        self._batches = batches
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self._batches):
            return None
        self._next += 1
        return self._batches[self._next - 1]

    def rewind(self) -> None:
        self._next = 0


def _calibration_feeds(model: Any, batches: Iterable[Any]) -> list[dict[str, np.ndarray]]:
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in initializers]
    feeds = []
    for batch in batches:
        if isinstance(batch, Mapping):
            feed = {str(k): np.ascontiguousarray(v, np.float32) for k, v in batch.items()}
            missing = set(inputs) - set(feed)
            if missing:
                raise InvalidValueError(f"a calibration batch lacks the model's input(s) {sorted(missing)}")
        else:
            if len(inputs) != 1:
                raise InvalidValueError(f"the model has inputs {inputs}; give calibration batches as dicts")
            feed = {inputs[0]: np.ascontiguousarray(batch, np.float32)}
        for name, value in feed.items():
            if value.size == 0 or not np.all(np.isfinite(value)):
                raise InvalidValueError(f"calibration batch for '{name}' is empty or holds NaN/inf values")
        feeds.append(feed)
    if not feeds:
        raise InvalidValueError("no calibration data given",
                                "pass a few batches of real inputs (a hundred or more samples)")
    return feeds


def _pre_processed(onnx_in: Path, out: Path) -> Path:
    """onnxruntime's recommended pre-processing (shape inference, graph optimisation such as
    folding batch norm into conv); the original model where it does not apply."""
    shape_inference = _need("onnxruntime.quantization.shape_inference")
    try:
        shape_inference.quant_pre_process(str(onnx_in), str(out))
    except Exception:  # symbolic shape inference does not cover every model; quantize as is
        return onnx_in
    return out


def emit_int8_qdq_onnx(
    onnx_in: os.PathLike[str] | str,
    onnx_out: os.PathLike[str] | str,
    calibration_batches: Iterable[Any],
    per_channel: bool = True,
    symmetric: bool = True,
    reduce_range: bool = False,
) -> Path:
    """Writes the int8 QDQ form of ``onnx_in`` to ``onnx_out``, calibrated on the batches.

    :param calibration_batches: NumPy arrays shaped as the model's single input (batch axis
        first), or dicts input name → array.
    :param per_channel: one weight scale per output channel (else per tensor).
    :param symmetric: int8 activations with zero point 0 (else uint8 with a zero point);
        weights are int8 symmetric either way when per channel (what integer kernels take),
        and follow ``symmetric`` per tensor.
    :param reduce_range: quantize weights to 7 bits. onnxruntime's fused int8 kernels on
        x86 CPUs without VNNI (AVX2 only; the Atom x5-E39x0 included) multiply u8 by s8
        with ``vpmaddubsw``, whose 16-bit pair sums saturate at full 8-bit range; measured
        here on a digits MLP, top-1 agreement with float32 fell from 99.8 % (the graph's
        own arithmetic, optimizations off) to 96 %, and ``reduce_range=True`` restored it.
        Leave it False for targets that compute the QDQ arithmetic exactly (C66x).
    :return: the path written.
    """
    for label, flag in (("per_channel", per_channel), ("symmetric", symmetric), ("reduce_range", reduce_range)):
        if not isinstance(flag, bool):
            raise InvalidValueError(f"{label}={flag!r} must be true or false")
    model = _load_model(onnx_in)
    feeds = _calibration_feeds(model, calibration_batches)
    q = _need("onnxruntime.quantization")
    onnx = _need("onnx")
    weight_symmetric = symmetric or per_channel
    act_type = q.QuantType.QInt8 if symmetric else q.QuantType.QUInt8
    weight_type = q.QuantType.QInt8 if weight_symmetric else q.QuantType.QUInt8
    with atomic_path(onnx_out) as tmp, tempfile.TemporaryDirectory(prefix="sigdl-qdq-") as work:
        source = _pre_processed(Path(onnx_in), Path(work) / "pre.onnx")
        try:
            q.quantize_static(
                str(source), str(tmp), _NumpyBatches(feeds),
                quant_format=q.QuantFormat.QDQ, per_channel=per_channel, reduce_range=reduce_range,
                activation_type=act_type, weight_type=weight_type,
                calibrate_method=q.CalibrationMethod.MinMax,
                extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": weight_symmetric},
            )
        except (ValueError, RuntimeError) as exc:
            raise UnsupportedModelError(f"onnxruntime could not quantize '{onnx_in}': "
                                        f"{' '.join(str(exc).split())[:300]}",
                                        "check that the calibration batches match the model's input") from None
        onnx.checker.check_model(onnx.load(str(tmp)))
    return Path(onnx_out)


def emit_fp16_onnx(onnx_in: os.PathLike[str] | str, onnx_out: os.PathLike[str] | str) -> Path:
    """Writes ``onnx_in`` with float16 weights and computation, float32 inputs and outputs."""
    model = _load_model(onnx_in)
    float16 = _need("onnxconverter_common.float16")
    onnx = _need("onnx")
    try:
        converted = float16.convert_float_to_float16(model, keep_io_types=True)
        onnx.checker.check_model(converted)
    except Exception as exc:
        raise UnsupportedModelError(f"could not convert '{onnx_in}' to float16: "
                                    f"{' '.join(str(exc).split())[:300]}") from None
    with atomic_path(onnx_out) as tmp:
        onnx.save(converted, str(tmp))
    return Path(onnx_out)
