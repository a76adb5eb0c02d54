"""An ONNX graph as a torch module, for retraining: :class:`OnnxModule`.

Written here rather than taken from onnx2torch, which requires torchvision; torchvision's
wheels pin their own torch and break the project's pinned CPU torch. The module is a plain
``nn.Module`` whose ``forward`` walks the graph's nodes in order (no torch.fx), for the op
set the zoo models, the Caffe converter and common CNNs use (:data:`OPS`).

* The weights keep their initializer names: ``features.0.weight`` becomes the parameter
  ``weight`` of a sub-module ``features.0``, so the module's ``state_dict`` names are the ONNX
  names. A name that cannot be a module path (``onnx::Conv_12`` can; an empty part or a
  clash cannot) is stored under ``weights.wN``; :attr:`OnnxModule.state_names` maps every
  ONNX name to its state name either way.
* Weights of kind conv, depthwise, fc, bias and norm are trainable parameters; batch-norm
  statistics and other float constants (a ``Clip`` bound, a scale) are buffers, so training
  leaves them alone. Integer constants (shapes, axes) are plain values.
* Parameters hold the layout compressors see (an ``fc`` weight stored ``K×N`` is held
  ``N×K``) and are transposed back where the op reads them, so a projection's masks fit.
* A final ``Softmax``/``LogSoftmax`` is left out: the torch framework trains on logits with
  cross-entropy, and the arg-max is the same.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import nn

from sigdl_core.errors import UnsupportedModelError

from .graph import OnnxGraph

#: Kinds whose weights train; the others are buffers.
_TRAINABLE = frozenset({"conv", "depthwise", "fc", "bias", "norm"})


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _pads(pads: Sequence[int], nd: int) -> tuple[list[int], list[int]]:
    pads = list(pads) or [0] * (2 * nd)
    return pads[:nd], pads[nd:]


def _auto_pad(node_attrs: dict[str, Any], x: torch.Tensor, kernel: Sequence[int], strides: Sequence[int],
              dilations: Sequence[int]) -> list[int]:
    """ONNX ``pads`` (begins then ends) for ``auto_pad`` SAME_UPPER/SAME_LOWER/VALID/NOTSET."""
    nd = len(kernel)
    mode = node_attrs.get("auto_pad", b"NOTSET")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if mode in ("NOTSET", ""):
        return list(node_attrs.get("pads", [0] * (2 * nd)))
    if mode == "VALID":
        return [0] * (2 * nd)
    begins, ends = [], []
    for i in range(nd):
        size = int(x.shape[2 + i])
        out = math.ceil(size / strides[i])
        total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size)
        small, big = total // 2, total - total // 2
        begins.append(small if mode == "SAME_UPPER" else big)
        ends.append(big if mode == "SAME_UPPER" else small)
    return begins + ends


def _padded(x: torch.Tensor, pads: list[int], value: float = 0.0) -> tuple[torch.Tensor, list[int]]:
    """``x`` padded explicitly where begin and end pads differ; else the symmetric pads."""
    nd = len(pads) // 2
    begins, ends = _pads(pads, nd)
    if begins == ends:
        return x, begins
    spec: list[int] = []
    for b, e in zip(reversed(begins), reversed(ends)):
        spec += [b, e]
    return F.pad(x, spec, value=value), [0] * nd


def _conv(m: OnnxModule, node: onnx.NodeProto, ins: list[Any]) -> torch.Tensor:
    a = _attrs(node)
    x, w = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 else None
    nd = w.dim() - 2
    kernel = list(a.get("kernel_shape", w.shape[2:]))
    strides = list(a.get("strides", [1] * nd))
    dilations = list(a.get("dilations", [1] * nd))
    x, padding = _padded(x, _auto_pad(a, x, kernel, strides, dilations))
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    return conv(x, w, b, strides, padding, dilations, int(a.get("group", 1)))


def _pool(kind: str) -> Callable[[OnnxModule, onnx.NodeProto, list[Any]], torch.Tensor]:
    def run(m: OnnxModule, node: onnx.NodeProto, ins: list[Any]) -> torch.Tensor:
        a = _attrs(node)
        x = ins[0]
        kernel = list(a["kernel_shape"])
        nd = len(kernel)
        strides = list(a.get("strides", [1] * nd))
        dilations = list(a.get("dilations", [1] * nd))
        ceil = bool(a.get("ceil_mode", 0))
        pads = _auto_pad(a, x, kernel, strides, dilations)
        if kind == "max":
            x, padding = _padded(x, pads, value=-math.inf)
            pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[nd]
            return pool(x, kernel, strides, padding, dilations, ceil_mode=ceil)
        include = bool(a.get("count_include_pad", 0))
        begins, ends = _pads(pads, nd)
        if begins != ends:
            if not include:
                raise UnsupportedModelError("AveragePool with asymmetric padding that is not counted",
                                            "compress this model post-training (--retrain-epochs 0)")
            x, padding = _padded(x, pads)
        else:
            padding = begins
        pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[nd]
        return pool(x, kernel, strides, padding, ceil_mode=ceil, count_include_pad=include)

    return run


def _gemm(m: OnnxModule, node: onnx.NodeProto, ins: list[Any]) -> torch.Tensor:
    a = _attrs(node)
    x, w = ins[0], ins[1]
    if a.get("transA", 0):
        x = x.t()
    if a.get("transB", 0):
        w = w.t()
    y = float(a.get("alpha", 1.0)) * (x @ w)
    if len(ins) > 2 and ins[2] is not None:
        y = y + float(a.get("beta", 1.0)) * ins[2]
    return y


def _batch_norm(m: OnnxModule, node: onnx.NodeProto, ins: list[Any]) -> torch.Tensor:
    a = _attrs(node)
    x, scale, bias, mean, var = ins[:5]
    return F.batch_norm(x, mean, var, scale, bias, training=m.training, momentum=1.0 - float(a.get("momentum", 0.9)),
                        eps=float(a.get("epsilon", 1e-5)))


def _softmax(log: bool) -> Callable[[OnnxModule, onnx.NodeProto, list[Any]], torch.Tensor]:
    def run(m: OnnxModule, node: onnx.NodeProto, ins: list[Any]) -> torch.Tensor:
        x = ins[0]
        fn = F.log_softmax if log else F.softmax
        if m.opset >= 13:
            return fn(x, dim=int(_attrs(node).get("axis", -1)))
        axis = int(_attrs(node).get("axis", 1)) % x.dim()  # older opsets: softmax of the flattened tail
        flat = x.reshape(math.prod(x.shape[:axis]), -1)
        return fn(flat, dim=1).reshape(x.shape)

    return run


def _dropout(m: OnnxModule, node: onnx.NodeProto, ins: list[Any]) -> torch.Tensor:
    ratio = float(_attrs(node).get("ratio", 0.5))
    if len(ins) > 1 and ins[1] is not None:
        ratio = float(ins[1])
    return F.dropout(ins[0], ratio, training=m.training)


def _reshape(m: OnnxModule, node: onnx.NodeProto, ins: list[Any]) -> torch.Tensor:
    x = ins[0]
    shape = [int(v) for v in _ints(ins[1])]
    if not _attrs(node).get("allowzero", 0):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


def _flatten(m: OnnxModule, node: onnx.NodeProto, ins: list[Any]) -> torch.Tensor:
    x = ins[0]
    axis = int(_attrs(node).get("axis", 1)) % max(1, x.dim())
    return x.reshape(math.prod(x.shape[:axis]), -1)


def _clip(m: OnnxModule, node: onnx.NodeProto, ins: list[Any]) -> torch.Tensor:
    a = _attrs(node)
    lo = ins[1] if len(ins) > 1 and ins[1] is not None else a.get("min")
    hi = ins[2] if len(ins) > 2 and ins[2] is not None else a.get("max")
    return torch.clamp(ins[0], None if lo is None else float(lo), None if hi is None else float(hi))


def _lrn(m: OnnxModule, node: onnx.NodeProto, ins: list[Any]) -> torch.Tensor:
    """ONNX LRN as torch's: equal for the odd window sizes onnxruntime and Caffe accept
    (an even one splits its window the other way round in torch)."""
    a = _attrs(node)
    return F.local_response_norm(ins[0], int(a["size"]), alpha=float(a.get("alpha", 1e-4)),
                                 beta=float(a.get("beta", 0.75)), k=float(a.get("bias", 1.0)))


def _axes(node: onnx.NodeProto, ins: list[Any]) -> list[int]:
    if len(ins) > 1 and ins[1] is not None:
        return [int(v) for v in _ints(ins[1])]
    return [int(v) for v in _attrs(node).get("axes", [])]


def _ints(value: Any) -> list[int]:
    if isinstance(value, torch.Tensor):
        return [int(v) for v in value.reshape(-1).tolist()]
    return [int(v) for v in np.asarray(value).reshape(-1)]


def _squeeze(m: OnnxModule, node: onnx.NodeProto, ins: list[Any]) -> torch.Tensor:
    axes = _axes(node, ins)
    x = ins[0]
    if not axes:
        return x.squeeze()
    for ax in sorted((a % x.dim() for a in axes), reverse=True):
        x = x.squeeze(ax)
    return x


def _unsqueeze(m: OnnxModule, node: onnx.NodeProto, ins: list[Any]) -> torch.Tensor:
    x = ins[0]
    rank = x.dim() + len(_axes(node, ins))
    for ax in sorted(a % rank for a in _axes(node, ins)):
        x = x.unsqueeze(ax)
    return x


#: ONNX op → how the module computes it (inputs already resolved to tensors or constants).
OPS: dict[str, Callable[[OnnxModule, onnx.NodeProto, list[Any]], Any]] = {
    "Conv": _conv,
    "Gemm": _gemm,
    "MatMul": lambda m, n, i: torch.matmul(i[0], i[1]),
    "Add": lambda m, n, i: i[0] + i[1],
    "Sub": lambda m, n, i: i[0] - i[1],
    "Mul": lambda m, n, i: i[0] * i[1],
    "Div": lambda m, n, i: i[0] / i[1],
    "Relu": lambda m, n, i: F.relu(i[0]),
    "LeakyRelu": lambda m, n, i: F.leaky_relu(i[0], float(_attrs(n).get("alpha", 0.01))),
    "Sigmoid": lambda m, n, i: torch.sigmoid(i[0]),
    "Tanh": lambda m, n, i: torch.tanh(i[0]),
    "MaxPool": _pool("max"),
    "AveragePool": _pool("avg"),
    "GlobalAveragePool": lambda m, n, i: i[0].mean(dim=tuple(range(2, i[0].dim())), keepdim=True),
    "GlobalMaxPool": lambda m, n, i: i[0].amax(dim=tuple(range(2, i[0].dim())), keepdim=True),
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Concat": lambda m, n, i: torch.cat(list(i), dim=int(_attrs(n)["axis"])),
    "BatchNormalization": _batch_norm,
    "Dropout": _dropout,
    "Softmax": _softmax(log=False),
    "LogSoftmax": _softmax(log=True),
    "LRN": _lrn,
    "Clip": _clip,
    "Identity": lambda m, n, i: i[0],
    "Transpose": lambda m, n, i: i[0].permute(*(_attrs(n).get("perm") or reversed(range(i[0].dim())))),
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
}


def unsupported_ops(graph: OnnxGraph) -> list[str]:
    """The graph's ops (sorted) that :class:`OnnxModule` does not convert."""
    return sorted({n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
                   for n in graph.proto.graph.node
                   if n.domain not in ("", "ai.onnx") or n.op_type not in OPS})


class OnnxModule(nn.Module):
    """The ONNX graph of ``graph`` as a torch module holding its current weights."""

    def __init__(self, graph: OnnxGraph) -> None:
        super().__init__()
        missing = unsupported_ops(graph)
        if missing:
            raise UnsupportedModelError(f"the ONNX ops {', '.join(missing)} cannot be converted to torch",
                                        "compress this model post-training (--retrain-epochs 0)")
        proto = graph.proto.graph
        self.opset = next((o.version for o in graph.proto.opset_import if o.domain in ("", "ai.onnx")), 13)
        self.input_name = graph.input_name
        self.transposed = set(graph.transposed)
        self.state_names: dict[str, str] = {}
        self._where: dict[str, tuple[nn.Module, str]] = {}
        self.constants: dict[str, torch.Tensor] = {}
        nodes = list(proto.node)
        self.output_name = graph.output_name
        last = next((n for n in nodes if self.output_name in n.output), None)
        if last is not None and last.op_type in ("Softmax", "LogSoftmax") and len(nodes) > 1:
            self.output_name = last.input[0]
            nodes = [n for n in nodes if n is not last]
        self.nodes = nodes
        store = nn.Module()
        for name, value in graph.weights.items():
            tensor = torch.from_numpy(np.array(value, dtype=np.float32, copy=True))
            trainable = graph.kinds.get(name) in _TRAINABLE and name not in graph.buffers
            placed = _place(self, name, tensor, trainable)
            if placed is None:
                key = f"w{len(store._parameters) + len(store._buffers)}"
                (store.register_parameter(key, nn.Parameter(tensor)) if trainable
                 else store.register_buffer(key, tensor))
                placed = (store, key, f"weights.{key}")
            owner, attr, state = placed
            self.state_names[name] = state
            self._where[name] = (owner, attr)
        if store._parameters or store._buffers:
            self.add_module("weights", store)
        for init in proto.initializer:
            if init.name not in graph.weights:
                self.constants[init.name] = torch.from_numpy(onnx.numpy_helper.to_array(init).copy())

    def _value(self, name: str, env: dict[str, Any]) -> Any:
        if name == "":
            return None
        if name in env:
            return env[name]
        where = self._where.get(name)
        if where is not None:
            tensor = getattr(where[0], where[1])
            return tensor.t() if name in self.transposed else tensor
        if name in self.constants:
            return self.constants[name]
        raise UnsupportedModelError(f"the ONNX graph reads '{name}', which no node makes", "export the model again")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env: dict[str, Any] = {self.input_name: x}
        for node in self.nodes:
            ins = [self._value(v, env) for v in node.input]
            out = OPS[node.op_type](self, node, ins)
            env[node.output[0]] = out
        out = env[self.output_name]
        return out.reshape(out.shape[0], -1) if out.dim() > 2 else out  # N×C×1×1 scores: N×C logits


_PART = re.compile(r"^[^.]+$")


def _place(root: nn.Module, name: str, tensor: torch.Tensor, trainable: bool) -> tuple[nn.Module, str, str] | None:
    """Registers ``tensor`` at the module path ``name``; None where the path cannot exist."""
    parts = name.split(".")
    if not all(_PART.match(p) for p in parts) or parts[0] in ("weights",):
        return None
    owner = root
    try:
        for part in parts[:-1]:
            child = owner._modules.get(part)
            if child is None:
                if part in owner._parameters or part in owner._buffers or hasattr(owner, part):
                    return None
                child = nn.Module()
                owner.add_module(part, child)
            owner = child
        leaf = parts[-1]
        if leaf in owner._modules or leaf in owner._parameters or leaf in owner._buffers or hasattr(owner, leaf):
            return None
        if trainable:
            owner.register_parameter(leaf, nn.Parameter(tensor))
        else:
            owner.register_buffer(leaf, tensor)
    except (KeyError, TypeError, AttributeError):
        return None
    return owner, leaf, name
