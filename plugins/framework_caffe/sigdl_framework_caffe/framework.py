"""The ``caffe`` framework: a Caffe net converted to ONNX, then the ONNX framework's model.

:class:`CaffeFramework` is :class:`sigdl_framework_onnx.framework.OnnxFramework` reading
``.prototxt`` + ``.caffemodel`` (:mod:`.convert`): evaluation with onnxruntime, named
weights with kinds, post-training compression, retraining through the torch framework and
ONNX export all come from the ONNX framework unchanged. :meth:`CaffeFramework.save`
writes a ``.caffemodel`` (the original one with the current weights in its blobs) and the
net's ``.prototxt`` beside it, so that a compressed model goes back to Caffe.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sigdl_core.errors import InvalidValueError
from sigdl_core.files import atomic_path
from sigdl_core.interfaces import Model
from sigdl_framework_onnx.framework import OnnxFramework
from sigdl_framework_onnx.graph import OnnxGraph, graph_from_proto

from .convert import BlobRef, CaffeNet, caffe_to_onnx, read_caffe
from .plugin import FRAMEWORK

__all__ = ["CaffeFramework"]


class CaffeFramework(OnnxFramework):
    """SigDL's Caffe framework (registered as ``caffe``)."""

    name = FRAMEWORK
    suffixes = (".caffemodel", ".prototxt")

    def _read(self, path: Path) -> OnnxGraph:
        caffe = read_caffe(path)
        converted = caffe_to_onnx(caffe)
        graph = graph_from_proto(converted.model, caffe.caffemodel)
        graph.cache["caffe"] = (caffe, converted.blobs)
        return graph

    def save(self, model: Model, path: Path) -> Path:
        """Writes ``<stem>.caffemodel`` with the current weights and ``<stem>.prototxt``, atomically."""
        graph = self._graph(model)
        caffe, blobs = graph.cache["caffe"]
        path = Path(path)
        if path.suffix.lower() not in self.suffixes:
            raise InvalidValueError(f"'{path}' is no Caffe file name", "end it in .caffemodel")
        weights_path, net_path = path.with_suffix(".caffemodel"), path.with_suffix(".prototxt")
        data = caffe_weights(caffe, blobs, {n: graph.stored(n) for n in blobs})
        with atomic_path(weights_path) as tmp:
            tmp.write_bytes(data)
        with atomic_path(net_path) as tmp:
            tmp.write_text(caffe.text, encoding="utf-8")
        return weights_path


def caffe_weights(caffe: CaffeNet, blobs: dict[str, BlobRef], values: dict[str, np.ndarray]) -> bytes:
    """The ``.caffemodel`` bytes: the original weights message with ``values`` in its blobs.

    Batch-norm statistics are stored already divided by their scale factor, which is set to 1.
    """
    net = type(caffe.weights)()
    net.CopyFrom(caffe.weights)
    layers = {}
    for msg in (*net.layer, *net.layers):
        layers.setdefault(msg.name, msg)
    for name, ref in blobs.items():
        layer = layers[ref.layer]
        blob = layer.blobs[ref.index]
        flat = np.asarray(values[name], dtype=np.float32).reshape(-1)
        del blob.double_data[:]
        del blob.data[:]
        blob.data.extend(flat.tolist())
        if ref.role in ("bn_mean", "bn_var") and len(layer.blobs) > 2:
            del layer.blobs[2].data[:]
            layer.blobs[2].data.append(1.0)
    return net.SerializeToString()
