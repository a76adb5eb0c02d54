"""Small ONNX and onnxruntime tools every target's emulator needs, written once.

* :func:`load_onnx` — an ONNX file, or a :class:`~sigdl_core.errors.ModelFileError`;
* :func:`readable_ir` — the model with an IR version this onnxruntime reads (onnx >= 1.20
  writes IR 11+; the operator set, not the IR number, decides what a graph means);
* :func:`fold_batch_norm` — batch norm folded into convolutions and constants folded, by
  onnxruntime's basic (hardware-independent) optimizations, which keep standard operators:
  what a board's model compiler does before converting weights (mvNCCompile, TIDL import);
* :func:`run_onnx` — the model's first output on a batch of inputs, on the CPU;
* :func:`accuracy_from_logits` — top-1 and top-5 of a batch of logits (NaN counts as wrong).

onnxruntime is imported inside the functions that need it: the core does not depend on it,
the target plugins that call these do.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ModelFileError, UnsupportedModelError
from ..interfaces import Accuracy

if TYPE_CHECKING:  # pragma: no cover
    import onnx


def load_onnx(path: os.PathLike[str] | str) -> onnx.ModelProto:
    """Loads an ONNX file or raises :class:`ModelFileError` saying it is unreadable."""
    import onnx

    try:
        return onnx.load(os.fspath(path))
    except Exception as exc:
        raise ModelFileError(f"'{path}' is not a readable ONNX model ({type(exc).__name__})",
                             "export the model again or check that the file is complete") from None


def readable_ir(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model``, or a copy with IR version 10 where a newer onnx wrote 11+ for opset <= 21."""
    import onnx

    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=17)
    if model.ir_version > 10 and opset <= 21:
        model = onnx.ModelProto.FromString(model.SerializeToString())
        model.ir_version = 10
    return model


def fold_batch_norm(model: onnx.ModelProto) -> onnx.ModelProto:
    """Batch norm folded into convolutions, constants folded, Identity/Dropout removed."""
    import onnx
    import onnxruntime as ort

    proto = readable_ir(model)
    with tempfile.TemporaryDirectory(prefix="sigdl-fold-") as tmp:
        out = Path(tmp) / "folded.onnx"
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.optimized_model_filepath = str(out)
        so.log_severity_level = 3
        try:
            ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise UnsupportedModelError(
                f"onnxruntime cannot load the model ({' '.join(str(exc).split())[:300]})",
                "check the model with onnx.checker, or export it again",
            ) from None
        return readable_ir(onnx.load(str(out)))


def run_onnx(model: onnx.ModelProto, x: np.ndarray, batch: int = 256, optimize: bool = False) -> np.ndarray:
    """The first output of ``model`` on ``x``, by onnxruntime's CPU provider on one thread.

    Graph optimizations stay off unless ``optimize`` (so that rounding Casts and quantize
    nodes stay where they are).
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_BASIC if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(readable_ir(model).SerializeToString(), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    outs = [sess.run(None, {name: np.ascontiguousarray(x[i:i + batch], dtype=np.float32)})[0]
            for i in range(0, len(x), batch)]
    return np.concatenate(outs)


def accuracy_from_logits(logits: np.ndarray, labels: np.ndarray) -> Accuracy:
    """Top-1 and top-min(5, classes) accuracy; a NaN logit never wins."""
    logits = np.asarray(logits, dtype=np.float64).reshape(len(labels), -1)
    logits = np.where(np.isnan(logits), -np.inf, logits)
    correct = np.argmax(logits, axis=1) == labels
    top1 = float(np.mean(correct))
    k = min(5, logits.shape[1])
    topk = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    top5 = float(np.mean(np.any(topk == labels[:, None], axis=1)))
    return Accuracy(top1=top1, top5=top5, samples=int(len(labels)), correct=correct)
