"""The Atom's int8 models: what OpenVINO's int8 path runs, in ONNX form.

OpenVINO's post-training quantization (POT, DefaultQuantization) gives u8 activations and
s8 per-channel weights, min/max calibrated, convolutions and fully connected layers in
int8. :func:`int8_model` writes the same with onnxruntime's ``quantize_static`` in QDQ
format (QuantizeLinear/DequantizeLinear around each quantized tensor); onnxruntime fuses
the pairs into its integer kernels (QLinearConv, QLinearMatMul) when it runs it. A model
that already holds QuantizeLinear nodes is taken as the int8 model as it is.

:func:`reference_int8_model` quantizes the emulator's reference convolution the same way,
so that the int8 model is scaled by an int8 kernel timed exactly like the fp32 one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from sigdl_core.errors import UnsupportedModelError
from sigdl_core.files import atomic_path

__all__ = ["int8_model", "is_quantized", "reference_int8_model"]


def is_quantized(path: os.PathLike[str] | str) -> bool:
    """True when the ONNX model already holds QuantizeLinear nodes (a QDQ model)."""
    import onnx

    model = onnx.load(os.fspath(path), load_external_data=False)
    return any(n.op_type in ("QuantizeLinear", "QLinearConv", "ConvInteger") for n in model.graph.node)


def int8_model(src: os.PathLike[str] | str, dest: os.PathLike[str] | str,
               calibration: np.ndarray) -> Path:
    """Writes the QDQ int8 model of ``src`` (u8 activations, s8 per-channel weights, min/max
    calibrated on ``calibration``, N × sample shape) to ``dest``; returns ``dest``."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static

    model = onnx.load(os.fspath(src))
    inits = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise UnsupportedModelError(f"the int8 path takes models with one input; this one has {len(inputs)}",
                                    "export the model with a single image input")
    batches = [{inputs[0]: np.ascontiguousarray(calibration[i:i + 8], np.float32)}
               for i in range(0, len(calibration), 8)]

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self):
            return next(self._it, None)

    out = Path(dest)
    with tempfile.TemporaryDirectory(prefix="sigdl-atom-int8-") as tmp:
        q = Path(tmp) / "int8.onnx"
        try:
            quantize_static(os.fspath(src), os.fspath(q), _Reader(), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            per_channel=True, calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        except Exception as exc:
            raise UnsupportedModelError(
                f"onnxruntime could not quantize the model to int8 ({' '.join(str(exc).split())[:300]})",
                "check that the model runs in onnxruntime, or give an int8 (QDQ) model") from None
        with atomic_path(out) as final:
            shutil.copyfile(q, final)
    return out


def reference_int8_model(fp32_reference: os.PathLike[str] | str, dest: os.PathLike[str] | str,
                         shape: tuple[int, ...]) -> Path:
    """The int8 form of the reference convolution, calibrated on seeded normal inputs."""
    rng = np.random.default_rng(0)
    return int8_model(fp32_reference, dest, rng.standard_normal((8, *shape[1:])).astype(np.float32))
