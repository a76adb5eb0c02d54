"""The cost model of an ONNX graph: work and traffic per node, by number format.

For every node of a (shape-inferred) ONNX graph, :func:`analyze_model` counts

* **MACs**, the multiply-accumulates of the linear-algebra operators (Conv, ConvTranspose,
  Gemm, MatMul and their integer forms ConvInteger, QLinearConv, MatMulInteger,
  QLinearMatMul), and nothing else: this is the convention of the papers that quote
  "VGG-16 has 15.5 G MACs" (Simonyan & Zisserman 2015; Canziani et al. 2016, "An analysis of
  deep neural network models for practical applications");
* **FLOPs**, floating-point (or integer) operations of every node: ``2 × MACs`` plus one add
  per output for a bias; pooling one operation per window element; batch norm two per
  element (scale and shift once folded); elementwise ops one per output element (sigmoid,
  tanh, gelu and friends a few more, see ``_FLOPS_PER_ELEMENT``); softmax five per element
  (max, subtract, exp, sum, divide);
* **bytes**: of weights (constant inputs: initializers, Constant nodes, and anything
  computed from constants only), of activations read and of activations written, each at
  the size of its *effective* element type.

The effective type of a tensor is its ONNX element type, except in a QDQ-quantized model:
a float tensor made by ``DequantizeLinear`` from an int8 tensor is stored as int8, and a
float tensor consumed only by ``QuantizeLinear`` is written as int8. So a QDQ int8 model
counts int8 bytes and int8 compute: ``DequantizeLinear → Conv → QuantizeLinear`` is what an
int8 convolution looks like in ONNX, and every int8 runtime fuses the three into one kernel.
Q/DQ nodes themselves are op class ``quant``; a node whose inputs are all constant (the DQ
of a weight, a Shape of a static tensor) is marked ``constant``: it is folded away before
inference and costs nothing at run time.

Shapes come from ``onnx.shape_inference.infer_shapes`` (with data propagation) after the
graph inputs' symbolic dimensions are fixed (the first axis to the model's batch, 1 unless
given); where ONNX's inference leaves a tensor without a shape, a small propagator of its
own (Conv, pools, Gemm/MatMul, broadcasting, Reshape/Flatten, Concat, Transpose, Squeeze,
Unsqueeze, Pad, Slice, Resize and a constant folder for integer shape arithmetic) fills it
in. A node whose shapes stay unknown counts zero and adds a warning.

Batch size: every count except weight bytes is proportional to the batch (true of every
operator whose first axis is the batch); :meth:`ModelCost.for_batch` rescales, so a model
exported at batch 1 with a fixed batch axis is still costed at batch 32. Weights are read
once per batch, which is what lets throughput rise with the batch in the roofline
(:mod:`sigdl_core.emulation.roofline`).

This module needs onnx and numpy only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from ..errors import ModelFileError, UnsupportedModelError

__all__ = [
    "FORMAT_BYTES",
    "OP_CLASSES",
    "ModelCost",
    "NodeCost",
    "analyze_model",
    "load_onnx",
    "op_class_of",
]

# --------------------------------------------------------------------------- formats

#: ONNX element type → the number-format name used across SigDL (TargetSpec.peak_ops keys).
_FORMAT_OF_ELEM: dict[int, str] = {
    TensorProto.FLOAT: "fp32",
    TensorProto.FLOAT16: "fp16",
    TensorProto.BFLOAT16: "bf16",
    TensorProto.DOUBLE: "fp64",
    TensorProto.INT8: "int8",
    TensorProto.UINT8: "int8",
    TensorProto.INT16: "int16",
    TensorProto.UINT16: "int16",
    TensorProto.INT32: "int32",
    TensorProto.UINT32: "int32",
    TensorProto.INT64: "int64",
    TensorProto.UINT64: "int64",
    TensorProto.BOOL: "bool",
}

#: Bytes per element of each number format.
FORMAT_BYTES: dict[str, int] = {
    "fp32": 4, "fp16": 2, "bf16": 2, "fp64": 8, "int8": 1, "int16": 2, "int32": 4,
    "int64": 8, "bool": 1,
}


def _fmt(elem_type: int) -> str:
    return _FORMAT_OF_ELEM.get(elem_type, "fp32")


# --------------------------------------------------------------------------- op classes

#: Every op class a node can have; targets set an efficiency per class (roofline).
OP_CLASSES: tuple[str, ...] = (
    "conv", "grouped", "depthwise", "gemm", "pool", "norm", "activation", "elementwise",
    "softmax", "reduce", "data", "view", "quant", "fft", "other",
)

_CONV_OPS = {"Conv", "ConvInteger", "QLinearConv", "ConvTranspose"}
_GEMM_OPS = {"Gemm", "MatMul", "MatMulInteger", "QLinearMatMul"}
_POOL_OPS = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool",
             "GlobalLpPool", "MaxRoiPool", "QLinearAveragePool", "QLinearGlobalAveragePool"}
_NORM_OPS = {"BatchNormalization", "InstanceNormalization", "LayerNormalization", "LRN",
             "GroupNormalization", "MeanVarianceNormalization", "LpNormalization"}
_ACTIVATION_OPS = {"Relu", "Clip", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "HardSigmoid",
                   "HardSwish", "Elu", "Selu", "Celu", "Softplus", "Softsign", "Gelu", "Erf",
                   "Exp", "Log", "Sqrt", "Abs", "Neg", "Reciprocal", "Floor", "Ceil", "Round",
                   "Sign", "ThresholdedRelu", "Mish", "Sin", "Cos", "QLinearLeakyRelu",
                   "QLinearSigmoid"}
_ELEMENTWISE_OPS = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Where",
                    "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "And", "Or",
                    "Xor", "Not", "Mod", "Cast", "CastLike", "QLinearAdd", "QLinearMul",
                    "BitShift"}
_SOFTMAX_OPS = {"Softmax", "LogSoftmax", "Hardmax", "QLinearSoftmax"}
_REDUCE_OPS = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd",
               "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare",
               "ArgMax", "ArgMin", "TopK"}
_DATA_OPS = {"Concat", "Transpose", "Split", "Slice", "Pad", "Gather", "GatherElements",
             "GatherND", "Resize", "Upsample", "Tile", "Expand", "DepthToSpace",
             "SpaceToDepth", "ScatterND", "ScatterElements", "QLinearConcat", "OneHot",
             "ConstantOfShape", "Range", "NonZero", "CumSum", "ReverseSequence"}
_VIEW_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Shape",
             "Size", "Constant"}
_QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
_FFT_OPS = {"DFT"}

#: Operations per output element of elementwise and activation ops (a conventional count:
#: transcendental functions a few, comparisons and arithmetic one).
_FLOPS_PER_ELEMENT: dict[str, int] = {
    "Relu": 1, "Clip": 2, "LeakyRelu": 2, "PRelu": 2, "Sigmoid": 4, "Tanh": 4,
    "HardSigmoid": 3, "HardSwish": 4, "Elu": 4, "Selu": 5, "Celu": 4, "Softplus": 3,
    "Softsign": 3, "Gelu": 8, "Erf": 4, "Exp": 1, "Log": 1, "Sqrt": 1, "Mish": 8,
    "Cast": 1, "CastLike": 1, "Where": 1,
}


def op_class_of(op_type: str) -> str:
    """The op class of an ONNX operator type (``Conv`` → ``conv``); see :data:`OP_CLASSES`.

    A Conv's class depends on its groups as well; :func:`analyze_model` refines it to
    ``grouped`` or ``depthwise``.
    """
    for cls, ops in (
        ("conv", _CONV_OPS), ("gemm", _GEMM_OPS), ("pool", _POOL_OPS), ("norm", _NORM_OPS),
        ("activation", _ACTIVATION_OPS), ("elementwise", _ELEMENTWISE_OPS),
        ("softmax", _SOFTMAX_OPS), ("reduce", _REDUCE_OPS), ("data", _DATA_OPS),
        ("view", _VIEW_OPS), ("quant", _QUANT_OPS), ("fft", _FFT_OPS),
    ):
        if op_type in ops:
            return cls
    return "other"


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class NodeCost:
    """Work and traffic of one node at the batch of its :class:`ModelCost`.

    ``fmt`` is the number format the node computes in (``fp32``, ``fp16``, ``int8`` …);
    ``weight_bytes`` are its constant inputs (read once per batch), ``input_bytes`` and
    ``output_bytes`` its activations. ``constant`` nodes are folded before inference.
    ``fuses_into`` names the Conv/Gemm whose epilogue this activation or batch-norm node
    can be fused into (its only input comes from that node, which has no other consumer),
    as TensorRT, OpenVINO and TIDL do; the roofline decides whether a target fuses.
    """

    name: str
    op_type: str
    op_class: str
    fmt: str
    macs: int
    flops: int
    weight_bytes: int
    input_bytes: int
    output_bytes: int
    params: int = 0
    output_shapes: tuple[tuple[int, ...] | None, ...] = ()
    constant: bool = False
    fuses_into: str | None = None
    shapes_known: bool = True
    kernel_shape: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()
    group: int = 1

    @property
    def activation_bytes(self) -> int:
        """Activation bytes read and written."""
        return self.input_bytes + self.output_bytes

    @property
    def bytes(self) -> int:
        """All bytes this node moves: weights plus activations in and out."""
        return self.weight_bytes + self.input_bytes + self.output_bytes

    def scaled(self, factor: float) -> NodeCost:
        """This node at ``factor`` times the batch (weights unchanged)."""
        shapes = tuple(
            (None if s is None else ((int(round(s[0] * factor)),) + tuple(s[1:]) if s else s))
            for s in self.output_shapes
        )
        return replace(
            self,
            macs=int(round(self.macs * factor)),
            flops=int(round(self.flops * factor)),
            input_bytes=int(round(self.input_bytes * factor)),
            output_bytes=int(round(self.output_bytes * factor)),
            output_shapes=shapes,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "op_type": self.op_type, "op_class": self.op_class,
            "fmt": self.fmt, "macs": self.macs, "flops": self.flops,
            "weight_bytes": self.weight_bytes, "input_bytes": self.input_bytes,
            "output_bytes": self.output_bytes, "params": self.params,
            "output_shapes": [list(s) if s is not None else None for s in self.output_shapes],
            "constant": self.constant, "fuses_into": self.fuses_into,
            "shapes_known": self.shapes_known, "kernel_shape": list(self.kernel_shape),
            "strides": list(self.strides), "group": self.group,
        }


@dataclass(frozen=True)
class ModelCost:
    """The cost of a whole ONNX graph at ``batch_size``: its nodes and their sums.

    ``input_shapes`` are the graph inputs' shapes at that batch; ``peak_activation_bytes`` is
    the largest total of activations alive at once when the nodes run in graph order (a
    lower bound on a runtime's working memory besides the weights).
    """

    nodes: tuple[NodeCost, ...]
    batch_size: int
    input_shapes: Mapping[str, tuple[int, ...]]
    output_shapes: Mapping[str, tuple[int, ...] | None]
    peak_activation_bytes: int
    warnings: tuple[str, ...] = ()

    # sums ------------------------------------------------------------------
    @property
    def macs(self) -> int:
        return sum(n.macs for n in self.nodes if not n.constant)

    @property
    def flops(self) -> int:
        return sum(n.flops for n in self.nodes if not n.constant)

    @property
    def weight_bytes(self) -> int:
        """Bytes of every weight the graph reads, each counted once."""
        return self._weight_bytes_once

    @property
    def params(self) -> int:
        """The number of weight elements, each counted once."""
        return self._params_once

    @property
    def activation_bytes(self) -> int:
        return sum(n.activation_bytes for n in self.nodes if not n.constant)

    @property
    def input_bytes(self) -> int:
        return sum(n.input_bytes for n in self.nodes if not n.constant)

    @property
    def output_bytes(self) -> int:
        return sum(n.output_bytes for n in self.nodes if not n.constant)

    @property
    def formats(self) -> tuple[str, ...]:
        """The number formats the MAC-carrying nodes compute in (or all nodes', if none)."""
        heavy = {n.fmt for n in self.nodes if n.macs and not n.constant}
        return tuple(sorted(heavy or {n.fmt for n in self.nodes if not n.constant}))

    # weights may be shared by nodes; these are filled in by analyze_model.
    _weight_bytes_once: int = 0
    _params_once: int = 0

    def by_op_class(self) -> dict[str, dict[str, int]]:
        """Sums of nodes, MACs, FLOPs and bytes per op class (constant nodes left out)."""
        out: dict[str, dict[str, int]] = {}
        for n in self.nodes:
            if n.constant:
                continue
            row = out.setdefault(n.op_class, {"nodes": 0, "macs": 0, "flops": 0, "bytes": 0})
            row["nodes"] += 1
            row["macs"] += n.macs
            row["flops"] += n.flops
            row["bytes"] += n.bytes
        return out

    def by_format(self) -> dict[str, dict[str, int]]:
        """Sums of MACs, FLOPs and bytes per number format."""
        out: dict[str, dict[str, int]] = {}
        for n in self.nodes:
            if n.constant:
                continue
            row = out.setdefault(n.fmt, {"macs": 0, "flops": 0, "bytes": 0})
            row["macs"] += n.macs
            row["flops"] += n.flops
            row["bytes"] += n.bytes
        return out

    def for_batch(self, batch_size: int) -> ModelCost:
        """The same graph at another batch: work and activations scale, weights do not."""
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if batch_size == self.batch_size:
            return self
        factor = batch_size / self.batch_size
        return replace(
            self,
            nodes=tuple(n.scaled(factor) for n in self.nodes),
            batch_size=batch_size,
            input_shapes={k: _rebatch(v, factor) for k, v in self.input_shapes.items()},
            output_shapes={
                k: (None if v is None else _rebatch(v, factor)) for k, v in self.output_shapes.items()
            },
            peak_activation_bytes=int(round(self.peak_activation_bytes * factor)),
        )

    def in_format(self, fmt: str, from_formats: Sequence[str] = ("fp32",)) -> ModelCost:
        """The same graph run in ``fmt``: nodes in ``from_formats`` compute in ``fmt``, and
        their bytes (weights and activations) shrink or grow by the element sizes' ratio.

        This is what TensorRT's FP16 mode or an FP16-only accelerator does to an FP32
        ONNX model; nodes already in another format (an int8 QDQ layer) stay as they are.
        """
        if fmt not in FORMAT_BYTES:
            raise ValueError(f"unknown number format '{fmt}' (known: {', '.join(FORMAT_BYTES)})")
        nodes = []
        wb = 0.0
        for n in self.nodes:
            if n.fmt in from_formats and n.fmt != fmt:
                r = FORMAT_BYTES[fmt] / FORMAT_BYTES[n.fmt]
                n = replace(
                    n, fmt=fmt, weight_bytes=int(round(n.weight_bytes * r)),
                    input_bytes=int(round(n.input_bytes * r)),
                    output_bytes=int(round(n.output_bytes * r)),
                )
            nodes.append(n)
        ratio = (sum(n.weight_bytes for n in nodes) / max(1, sum(n.weight_bytes for n in self.nodes)))
        wb = self._weight_bytes_once * ratio
        act_ratio = (sum(n.activation_bytes for n in nodes)
                     / max(1, sum(n.activation_bytes for n in self.nodes)))
        return replace(
            self, nodes=tuple(nodes), _weight_bytes_once=int(round(wb)),
            peak_activation_bytes=int(round(self.peak_activation_bytes * act_ratio)),
        )

    def summary(self) -> dict[str, Any]:
        """The totals as a JSON-ready dict."""
        return {
            "batch_size": self.batch_size,
            "nodes": len([n for n in self.nodes if not n.constant]),
            "macs": self.macs,
            "flops": self.flops,
            "params": self.params,
            "weight_bytes": self.weight_bytes,
            "activation_bytes": self.activation_bytes,
            "peak_activation_bytes": self.peak_activation_bytes,
            "formats": list(self.formats),
            "input_shapes": {k: list(v) for k, v in self.input_shapes.items()},
            "by_op_class": self.by_op_class(),
            "warnings": list(self.warnings),
        }


def _rebatch(shape: tuple[int, ...], factor: float) -> tuple[int, ...]:
    if not shape:
        return shape
    return (int(round(shape[0] * factor)),) + tuple(shape[1:])


# --------------------------------------------------------------------------- loading


def load_onnx(model: onnx.ModelProto | os.PathLike[str] | str) -> onnx.ModelProto:
    """An ONNX model from a path (checked) or as given.

    Raises :class:`~sigdl_core.errors.ModelFileError` for a missing or unreadable file.
    External data is not loaded: only the tensors' shapes are needed.
    """
    if isinstance(model, onnx.ModelProto):
        return model
    from ..files import read_regular_file

    path = read_regular_file(model, "ONNX model")
    try:
        proto = onnx.load(os.fspath(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise ModelFileError(
            f"'{path}' is not a readable ONNX model ({type(exc).__name__}: {exc})",
            "export the model again (sigdl export) or check that the file is complete",
        ) from None
    if not proto.graph.node:
        raise ModelFileError(f"'{path}' holds no ONNX graph nodes", "give an exported ONNX model")
    return proto


# --------------------------------------------------------------------------- shape inference


def _shape_of_type(tp: onnx.TypeProto) -> tuple[tuple[int, ...] | None, int]:
    if not tp.HasField("tensor_type"):
        return None, 0
    tt = tp.tensor_type
    elem = tt.elem_type
    if not tt.HasField("shape"):
        return None, elem
    dims: list[int] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value") and d.dim_value >= 0:
            dims.append(int(d.dim_value))
        else:
            return None, elem
    return tuple(dims), elem


def _fix_input_dims(
    model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]], batch: int | None
) -> tuple[onnx.ModelProto, dict[str, tuple[int, ...]]]:
    """A copy of ``model`` with every graph input's dimensions fixed to numbers."""
    model = _strip_initializer_data(model)
    inits = {t.name for t in model.graph.initializer}
    fixed: dict[str, tuple[int, ...]] = {}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims = inp.type.tensor_type.shape.dim
        if inp.name in input_shapes:
            want = [int(v) for v in input_shapes[inp.name]]
            if len(want) != len(dims) and len(dims) > 0:
                raise UnsupportedModelError(
                    f"input '{inp.name}' has {len(dims)} axes but the shape given has {len(want)}",
                    "give the full shape including the batch axis",
                )
            if not dims:
                for _ in want:
                    inp.type.tensor_type.shape.dim.add()
                dims = inp.type.tensor_type.shape.dim
            for d, v in zip(dims, want, strict=True):
                d.ClearField("dim_param")
                d.dim_value = v
        else:
            for i, d in enumerate(dims):
                if d.HasField("dim_value") and d.dim_value > 0:
                    if i == 0 and batch is not None and d.dim_value != batch:
                        pass  # a fixed batch axis stays; for_batch rescales counts
                    continue
                if i == 0:
                    d.ClearField("dim_param")
                    d.dim_value = batch or 1
                else:
                    raise UnsupportedModelError(
                        f"input '{inp.name}' has a symbolic axis {i} "
                        f"('{d.dim_param or '?'}') the cost model cannot size",
                        "give the input shape (e.g. --dataset synthetic:1x3x224x224) or "
                        "export the model with fixed spatial sizes",
                    )
        fixed[inp.name] = tuple(int(d.dim_value) for d in inp.type.tensor_type.shape.dim)
    return model, fixed


def _strip_initializer_data(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model without big initializer payloads (shape inference needs dims only).

    Integer initializers under 1,024 elements keep their values: Reshape targets, axes.
    """
    light = onnx.ModelProto()
    light.CopyFrom(model)
    for t in light.graph.initializer:
        n = math.prod(t.dims) if t.dims else 1
        if (t.data_type in (TensorProto.INT64, TensorProto.INT32) and n <= 1024) or n <= 16:
            continue  # shape arithmetic and small parameters (Resize scales) keep their values
        # Keep dims and type; drop the payload.
        dims, dtype, name = list(t.dims), t.data_type, t.name
        t.Clear()
        t.name, t.data_type = name, dtype
        t.dims.extend(dims)
        # An empty external-data reference keeps the checker quiet about a missing payload.
        t.data_location = TensorProto.EXTERNAL
        entry = t.external_data.add()
        entry.key, entry.value = "location", "__sigdl_stripped__"
    return light


@dataclass
class _Tensor:
    shape: tuple[int, ...] | None
    elem: int
    constant: bool = False
    value: np.ndarray | None = None  # small integer constants only


def _infer(model: onnx.ModelProto) -> dict[str, _Tensor]:
    """Shapes and element types from ONNX shape inference (what it could find)."""
    tensors: dict[str, _Tensor] = {}
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:  # inference errors on exotic graphs: fall back to our propagator
        inferred = model
    g = inferred.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        shape, elem = _shape_of_type(vi.type)
        if vi.name not in tensors or tensors[vi.name].shape is None:
            tensors[vi.name] = _Tensor(shape, elem)
    return tensors


# --------------------------------------------------------------------------- own propagation


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _conv_out(
    spatial: Sequence[int], kernel: Sequence[int], a: Mapping[str, Any], ceil_mode: bool = False
) -> tuple[int, ...]:
    nd = len(spatial)
    strides = list(a.get("strides", [1] * nd))
    dil = list(a.get("dilations", [1] * nd))
    pads = list(a.get("pads", [0] * (2 * nd)))
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    out = []
    for i in range(nd):
        eff_k = dil[i] * (kernel[i] - 1) + 1
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            out.append(math.ceil(spatial[i] / strides[i]))
        elif auto == "VALID":
            out.append(math.ceil((spatial[i] - eff_k + 1) / strides[i]))
        else:
            total = spatial[i] + pads[i] + pads[i + nd] - eff_k
            o = (math.ceil(total / strides[i]) if ceil_mode else total // strides[i]) + 1
            if ceil_mode and (o - 1) * strides[i] >= spatial[i] + pads[i]:
                o -= 1  # the last window must start inside the input or left padding
            out.append(int(o))
    return tuple(out)


def _broadcast(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(d) for d in np.broadcast_shapes(*shapes))


def _propagate(node: onnx.NodeProto, t: dict[str, _Tensor]) -> list[tuple[int, ...] | None]:
    """Output shapes of ``node`` by our own rules; None where we cannot tell."""
    op = node.op_type
    a = _attrs(node)
    ins = [t.get(n) if n else None for n in node.input]
    shp = [i.shape if i is not None else None for i in ins]
    val = [i.value if i is not None else None for i in ins]
    x = shp[0] if shp else None
    n_out = len(node.output)

    def same() -> list[tuple[int, ...] | None]:
        return [x] + [None] * (n_out - 1)

    try:
        if op in ("Conv", "ConvInteger", "QLinearConv"):
            w = shp[3] if op == "QLinearConv" else shp[1]
            if x is None or w is None:
                return [None]
            return [(x[0], w[0]) + _conv_out(x[2:], w[2:], a)]
        if op == "ConvTranspose":
            w = shp[1]
            if x is None or w is None:
                return [None]
            nd = len(x) - 2
            g = int(a.get("group", 1))
            if "output_shape" in a:
                return [(x[0], w[1] * g) + tuple(a["output_shape"][-nd:])]
            s = a.get("strides", [1] * nd)
            d = a.get("dilations", [1] * nd)
            p = a.get("pads", [0] * (2 * nd))
            op_ = a.get("output_padding", [0] * nd)
            sp = tuple(
                s[i] * (x[2 + i] - 1) + op_[i] + ((w[2 + i] - 1) * d[i] + 1) - p[i] - p[i + nd]
                for i in range(nd)
            )
            return [(x[0], w[1] * g) + sp]
        if op in ("MaxPool", "AveragePool", "LpPool", "QLinearAveragePool"):
            if x is None:
                return [None] * n_out
            out = (x[0], x[1]) + _conv_out(x[2:], a["kernel_shape"], a, bool(a.get("ceil_mode", 0)))
            return [out] * n_out
        if op in ("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "QLinearGlobalAveragePool"):
            return [None if x is None else (x[0], x[1]) + (1,) * (len(x) - 2)]
        if op == "Gemm":
            if shp[0] is None or shp[1] is None:
                return [None]
            m = shp[0][1] if a.get("transA", 0) else shp[0][0]
            n = shp[1][0] if a.get("transB", 0) else shp[1][1]
            return [(m, n)]
        if op in ("MatMul", "MatMulInteger", "QLinearMatMul"):
            bi = 3 if op == "QLinearMatMul" else 1
            A, B = shp[0], shp[bi]
            if A is None or B is None:
                return [None]
            A2 = (1,) + A if len(A) == 1 else A
            B2 = B + (1,) if len(B) == 1 else B
            batch = _broadcast(A2[:-2], B2[:-2])
            out = batch + (A2[-2], B2[-1])
            if len(A) == 1:
                out = out[:-2] + out[-1:]
            if len(B) == 1:
                out = out[:-1]
            return [out]
        if op in _ACTIVATION_OPS | _NORM_OPS | _SOFTMAX_OPS | _QUANT_OPS | {
            "Identity", "Dropout", "Cast", "CastLike"}:
            if op == "DynamicQuantizeLinear":
                return [x, (), ()]
            return same()
        if op in _ELEMENTWISE_OPS:
            if any(s is None for s in shp if s is not None) or any(s is None for s in shp):
                return [None]
            return [_broadcast(*[s for s in shp if s is not None])]
        if op == "Flatten":
            if x is None:
                return [None]
            ax = int(a.get("axis", 1))
            ax = ax + len(x) if ax < 0 else ax
            return [(int(math.prod(x[:ax])), int(math.prod(x[ax:])))]
        if op == "Reshape":
            target = val[1] if len(val) > 1 else None
            if x is None or target is None:
                return [None]
            tgt = [int(v) for v in np.asarray(target).ravel()]
            allowzero = int(a.get("allowzero", 0))
            out = [x[i] if (v == 0 and not allowzero) else v for i, v in enumerate(tgt)]
            if -1 in out:
                known = math.prod(v for v in out if v != -1)
                out[out.index(-1)] = int(math.prod(x)) // max(known, 1)
            return [tuple(out)]
        if op == "Concat":
            if any(s is None for s in shp):
                return [None]
            ax = int(a["axis"])
            ax = ax + len(shp[0]) if ax < 0 else ax
            out = list(shp[0])
            out[ax] = sum(s[ax] for s in shp)
            return [tuple(out)]
        if op == "Transpose":
            if x is None:
                return [None]
            perm = a.get("perm", list(range(len(x)))[::-1])
            return [tuple(x[p] for p in perm)]
        if op in ("Squeeze", "Unsqueeze"):
            if x is None:
                return [None]
            axes = a.get("axes")
            if axes is None and len(val) > 1 and val[1] is not None:
                axes = [int(v) for v in np.asarray(val[1]).ravel()]
            if op == "Squeeze":
                if axes is None:
                    return [tuple(d for d in x if d != 1)]
                axes = {ax + len(x) if ax < 0 else ax for ax in axes}
                return [tuple(d for i, d in enumerate(x) if i not in axes)]
            if axes is None:
                return [None]
            rank = len(x) + len(axes)
            axes = sorted(ax + rank if ax < 0 else ax for ax in axes)
            out = list(x)
            for ax in axes:
                out.insert(ax, 1)
            return [tuple(out)]
        if op == "Pad":
            if x is None:
                return [None]
            pads = a.get("pads")
            if pads is None and len(val) > 1 and val[1] is not None:
                pads = [int(v) for v in np.asarray(val[1]).ravel()]
            if pads is None:
                return [None]
            r = len(x)
            return [tuple(x[i] + pads[i] + pads[i + r] for i in range(r))]
        if op in _REDUCE_OPS and op not in ("ArgMax", "ArgMin", "TopK"):
            if x is None:
                return [None]
            axes = a.get("axes")
            if axes is None and len(val) > 1 and val[1] is not None:
                axes = [int(v) for v in np.asarray(val[1]).ravel()]
            keep = int(a.get("keepdims", 1))
            axes = set(range(len(x))) if not axes else {ax % len(x) for ax in axes}
            return [tuple((1 if i in axes else d) for i, d in enumerate(x) if keep or i not in axes)]
        if op == "Slice" and x is not None and all(v is not None for v in val[1:3]):
            starts = np.asarray(val[1]).ravel().tolist()
            ends = np.asarray(val[2]).ravel().tolist()
            axes = (np.asarray(val[3]).ravel().tolist() if len(val) > 3 and val[3] is not None
                    else list(range(len(starts))))
            steps = (np.asarray(val[4]).ravel().tolist() if len(val) > 4 and val[4] is not None
                     else [1] * len(starts))
            out = list(x)
            for s, e, ax, st in zip(starts, ends, axes, steps, strict=False):
                out[ax] = len(range(*slice(int(s), int(e), int(st)).indices(x[ax])))
            return [tuple(out)]
        if op in ("Resize", "Upsample") and x is not None:
            scales = val[2] if op == "Resize" and len(val) > 2 else (val[1] if len(val) > 1 else None)
            sizes = val[3] if op == "Resize" and len(val) > 3 else None
            if sizes is not None and np.asarray(sizes).size:
                return [tuple(int(v) for v in np.asarray(sizes).ravel())]
            if scales is not None and np.asarray(scales).size:
                return [tuple(int(math.floor(d * s)) for d, s in zip(x, np.asarray(scales).ravel(), strict=True))]
            return [None]
    except (KeyError, IndexError, ValueError, TypeError, ZeroDivisionError):
        return [None] * n_out
    return [None] * n_out


def _fold_integer(node: onnx.NodeProto, t: dict[str, _Tensor]) -> list[np.ndarray] | None:
    """Values of small integer computations on constants (shape arithmetic), else None."""
    op = node.op_type
    ins = [t.get(n) if n else None for n in node.input]
    a = _attrs(node)
    try:
        if op == "Shape" and ins[0] is not None and ins[0].shape is not None:
            s = np.asarray(ins[0].shape, dtype=np.int64)
            start, end = a.get("start", 0), a.get("end", len(s))
            return [s[start:end]]
        vals = [i.value if i is not None else None for i in ins]
        if op == "Constant":
            for key in ("value", "value_ints", "value_int"):
                if key in a:
                    v = a[key]
                    arr = numpy_helper.to_array(v) if isinstance(v, onnx.TensorProto) else np.asarray(v)
                    if arr.dtype.kind in "iu" and arr.size <= 1024:
                        return [arr.astype(np.int64)]
            return None
        if not vals or any(v is None for v in vals if v is not None) or vals[0] is None:
            return None
        if op == "Gather":
            return [np.take(vals[0], vals[1], axis=int(a.get("axis", 0)))]
        if op == "Unsqueeze":
            axes = a.get("axes") or np.asarray(vals[1]).ravel().tolist()
            out = vals[0]
            for ax in sorted(axes):
                out = np.expand_dims(out, ax)
            return [out]
        if op == "Squeeze":
            axes = a.get("axes") or (np.asarray(vals[1]).ravel().tolist() if len(vals) > 1 else None)
            return [np.squeeze(vals[0], axis=tuple(axes) if axes else None)]
        if op == "Concat" and all(v is not None for v in vals):
            return [np.concatenate([np.atleast_1d(v) for v in vals], axis=int(a["axis"]))]
        if op == "Cast":
            return [vals[0].astype(np.int64)]
        if op in ("Add", "Sub", "Mul", "Div") and all(v is not None for v in vals):
            f = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.floor_divide}[op]
            return [f(vals[0], vals[1])]
        if op == "Slice" and all(v is not None for v in vals[1:3]):
            starts, ends = vals[1].ravel(), vals[2].ravel()
            axes = vals[3].ravel() if len(vals) > 3 and vals[3] is not None else range(len(starts))
            steps = vals[4].ravel() if len(vals) > 4 and vals[4] is not None else [1] * len(starts)
            sl = [slice(None)] * vals[0].ndim
            for s, e, ax, st in zip(starts, ends, axes, steps, strict=False):
                sl[int(ax)] = slice(int(s), int(e), int(st))
            return [vals[0][tuple(sl)]]
        if op == "Identity":
            return [vals[0]]
    except (KeyError, IndexError, ValueError, TypeError):
        return None
    return None


# --------------------------------------------------------------------------- counting


def _numel(shape: tuple[int, ...] | None) -> int:
    return 0 if shape is None else int(math.prod(shape))


def _count(
    node: onnx.NodeProto, t: dict[str, _Tensor], out_shapes: list[tuple[int, ...] | None]
) -> tuple[int, int, str]:
    """(MACs, FLOPs, refined op class) of one node."""
    op = node.op_type
    a = _attrs(node)
    cls = op_class_of(op)
    ins = [t.get(n) if n else None for n in node.input]
    shp = [i.shape if i is not None else None for i in ins]
    y = out_shapes[0] if out_shapes else None
    ny = _numel(y)

    if op in ("Conv", "ConvInteger", "QLinearConv"):
        w = shp[3] if op == "QLinearConv" else shp[1]
        x = shp[0]
        if w is None or y is None:
            return 0, 0, cls
        group = int(a.get("group", 1))
        cin_per_group = w[1]
        macs = ny * cin_per_group * int(math.prod(w[2:]))
        has_bias = (op == "Conv" and len(node.input) > 2 and node.input[2]) or (
            op == "QLinearConv" and len(node.input) > 8 and node.input[8])
        flops = 2 * macs + (ny if has_bias else 0)
        if group > 1:
            cin = x[1] if x is not None else cin_per_group * group
            cls = "depthwise" if cin_per_group == 1 and group == cin else "grouped"
        return macs, flops, cls
    if op == "ConvTranspose":
        x, w = shp[0], shp[1]
        if x is None or w is None:
            return 0, 0, cls
        group = int(a.get("group", 1))
        macs = _numel(x) * w[1] * int(math.prod(w[2:]))  # each input element feeds M/g × k outputs
        flops = 2 * macs + (ny if len(node.input) > 2 and node.input[2] else 0)
        if group > 1:
            cls = "depthwise" if w[1] == 1 and group == x[1] else "grouped"
        return macs, flops, cls
    if op == "Gemm":
        A = shp[0]
        if A is None or y is None:
            return 0, 0, cls
        k = A[0] if a.get("transA", 0) else A[1]
        macs = ny * k
        return macs, 2 * macs + (ny if len(node.input) > 2 and node.input[2] else 0), cls
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul"):
        A = shp[0]
        if A is None or y is None:
            return 0, 0, cls
        macs = ny * A[-1]
        return macs, 2 * macs, cls
    if op in ("MaxPool", "AveragePool", "LpPool", "QLinearAveragePool"):
        k = int(math.prod(a.get("kernel_shape", [1])))
        return 0, ny * k, cls
    if op in ("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "QLinearGlobalAveragePool"):
        return 0, _numel(shp[0]), cls
    if op == "BatchNormalization":
        return 0, 2 * ny, cls
    if op in ("InstanceNormalization", "LayerNormalization", "GroupNormalization",
              "MeanVarianceNormalization", "LpNormalization"):
        return 0, 5 * ny, cls
    if op == "LRN":
        size = int(a.get("size", 5))
        return 0, (size + 4) * ny, cls  # a square-sum over `size` channels, a pow and a divide
    if cls == "softmax":
        return 0, 5 * ny, cls
    if cls == "activation":
        return 0, _FLOPS_PER_ELEMENT.get(op, 1) * ny, cls
    if cls == "elementwise":
        arity = max(1, len([n for n in node.input if n]) - 1)
        return 0, _FLOPS_PER_ELEMENT.get(op, 1) * ny * arity, cls
    if cls == "reduce":
        return 0, _numel(shp[0]), cls
    if cls == "quant":
        return 0, 2 * ny, cls  # a scale and a shift (and a round) per element
    if op in ("Resize", "Upsample"):
        return 0, 4 * ny, cls  # bilinear: about four multiply-adds per output; nearest is less
    if op == "DFT":
        return 0, _dft_flops(node, a, shp[0], ins), cls
    return 0, 0, cls


def _dft_flops(node: onnx.NodeProto, a: Mapping[str, Any], x: tuple[int, ...] | None, ins: list[Any]) -> int:
    """FLOPs of an ONNX ``DFT``: ``5 n log2 n`` per complex transform of length ``n`` (the
    conventional radix-2 count), half that for a real input (a real FFT does half the work).

    The transformed axis is the ``axis`` attribute (opset 17) or the third input (opset 20),
    default 1 (opset 17) or -2 (opset 20); the last axis of the input is 1 (real) or 2
    (complex) and is not transformed.
    """
    if x is None or len(x) < 2:
        return 0
    axis: Any = a.get("axis")
    if axis is None and len(node.input) > 2 and node.input[2] and len(ins) > 2 and ins[2] is not None:
        value = getattr(ins[2], "value", None)
        axis = int(np.asarray(value).ravel()[0]) if value is not None else None
    if axis is None:
        axis = 1 if "axis" in a or len(node.input) <= 2 else -2
    axis = int(axis) % len(x)
    n = int(x[axis])
    if n < 2:
        return 0
    transforms = _numel(x) // (n * int(x[-1]))
    per = 5.0 * n * math.log2(n) * (0.5 if int(x[-1]) == 1 else 1.0)
    return int(round(transforms * per))


# --------------------------------------------------------------------------- the model


def analyze_model(
    model: onnx.ModelProto | os.PathLike[str] | str,
    batch_size: int = 1,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> ModelCost:
    """The per-node and total cost of an ONNX graph at ``batch_size``.

    :param model: a path to an ONNX file, or a loaded ``onnx.ModelProto``.
    :param batch_size: the batch to count at; a symbolic first input axis is set to it, and
        a fixed one is rescaled to it (:meth:`ModelCost.for_batch`).
    :param input_shapes: full shapes (batch axis included) for inputs with symbolic
        non-batch axes; the batch axis given here is rescaled to ``batch_size`` as well.

    Raises :class:`~sigdl_core.errors.ModelFileError` for an unreadable file and
    :class:`~sigdl_core.errors.UnsupportedModelError` for an input that cannot be sized.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError("batch_size must be a whole number >= 1")
    proto = load_onnx(model)
    if not proto.graph.node:
        raise UnsupportedModelError("the ONNX graph has no nodes", "export a model with layers")
    fixed_model, fixed_inputs = _fix_input_dims(proto, dict(input_shapes or {}), None)
    g = fixed_model.graph
    t = _infer(fixed_model)
    warnings: list[str] = []

    # constants: initializers (with small integer values), Constant nodes (folded below)
    init_names: set[str] = set()
    for init in proto.graph.initializer:  # the original model: it has the payloads
        init_names.add(init.name)
        value = None
        n = math.prod(init.dims) if init.dims else 1
        if init.data_type in (TensorProto.INT64, TensorProto.INT32) and n <= 1024:
            try:
                value = numpy_helper.to_array(init).astype(np.int64)
            except Exception:  # external data that was not loaded
                value = None
        elif init.data_type in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16) and n <= 16:
            try:
                value = numpy_helper.to_array(init).astype(np.float64)
            except Exception:
                value = None
        t[init.name] = _Tensor(tuple(int(d) for d in init.dims), init.data_type, True, value)
    for name, shape in fixed_inputs.items():
        elem = t[name].elem if name in t else TensorProto.FLOAT
        t[name] = _Tensor(shape, elem)

    consumers: dict[str, list[onnx.NodeProto]] = {}
    producer: dict[str, onnx.NodeProto] = {}
    for node in g.node:
        for name in node.input:
            if name:
                consumers.setdefault(name, []).append(node)
        for name in node.output:
            producer[name] = node
    graph_outputs = {o.name for o in g.output}

    # Walk in graph order (ONNX requires topological order), filling shapes we lack.
    out_shapes_of: dict[str, list[tuple[int, ...] | None]] = {}
    for idx, node in enumerate(g.node):
        ins = [t.get(n) for n in node.input if n]
        is_const = bool(ins) and all(i is not None and i.constant for i in ins) or (
            node.op_type == "Constant")
        if node.op_type == "Shape" and ins and ins[0] is not None and ins[0].shape is not None:
            is_const = True  # static shapes make Shape a constant
        folded = _fold_integer(node, t) if (is_const or node.op_type == "Shape") else None
        own = _propagate(node, t)
        shapes: list[tuple[int, ...] | None] = []
        for i, name in enumerate(node.output):
            known = t.get(name)
            s = known.shape if known is not None else None
            if op_class_of(node.op_type) in ("conv", "pool") and i < len(own) and own[i] is not None:
                s = own[i]  # exact, and matches onnxruntime where ONNX inference does not (ceil_mode)
            if s is None and folded is not None and i < len(folded):
                s = tuple(int(d) for d in np.shape(folded[i]))
            if s is None and i < len(own):
                s = own[i]
            elem = known.elem if known is not None and known.elem else _guess_elem(node, t)
            value = folded[i] if folded is not None and i < len(folded) else None
            t[name] = _Tensor(s, elem, is_const, value)
            shapes.append(s)
        out_shapes_of[node.name or f"{node.op_type}_{idx}"] = shapes

    # Effective storage formats (QDQ): DQ outputs carry their quantized input's type; a
    # float tensor consumed only by QuantizeLinear is written in the Q's output type.
    eff: dict[str, int] = {name: tt.elem for name, tt in t.items()}
    for node in g.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in t:
            eff[node.output[0]] = t[node.input[0]].elem
    for node in g.node:
        for name in node.output:
            users = consumers.get(name, [])
            if users and all(u.op_type == "QuantizeLinear" for u in users) and name not in graph_outputs:
                q_out = users[0].output[0]
                if q_out in t:
                    eff[name] = t[q_out].elem

    def nbytes(name: str) -> int:
        tt = t.get(name)
        if tt is None or tt.shape is None:
            return 0
        return _numel(tt.shape) * FORMAT_BYTES[_fmt(eff.get(name, tt.elem))]

    costs: list[NodeCost] = []
    seen_weights: dict[str, int] = {}
    weight_params: dict[str, int] = {}
    for idx, node in enumerate(g.node):
        key = node.name or f"{node.op_type}_{idx}"
        shapes = out_shapes_of[key]
        data_inputs = [n for n in node.input if n]
        constant = all(t[o].constant for o in node.output if o in t)
        known = all(s is not None for s in shapes) and all(
            t.get(n) is not None and t[n].shape is not None for n in data_inputs)
        if constant:
            macs, flops, cls = 0, 0, op_class_of(node.op_type)
        else:
            macs, flops, cls = _count(node, t, shapes)
        w_bytes = in_bytes = params = 0
        for n in data_inputs:
            if t[n].constant:
                if t[n].elem in (TensorProto.INT64, TensorProto.INT32) and node.op_type not in (
                        "Gather", "GatherElements", "GatherND"):
                    continue  # shapes, axes, pads: parameters of the op, not weights
                src = _weight_source(n, producer, t)
                b = nbytes(src)
                w_bytes += b
                params_n = _numel(t[src].shape) if t.get(src) is not None else 0
                params += params_n
                if not constant and src not in seen_weights:
                    seen_weights[src] = b
                    weight_params[src] = params_n
            else:
                in_bytes += nbytes(n)
        out_bytes = sum(nbytes(n) for n in node.output if n)
        if cls == "view":
            in_bytes = out_bytes = 0  # a view moves no data
        fmt = _node_format(node, t, eff)
        if not known and not constant:
            warnings.append(f"node '{key}' ({node.op_type}): shapes unknown, counted as zero")
        kernel, strides, group = _window(node, t)
        costs.append(NodeCost(
            name=key, op_type=node.op_type, op_class=cls, fmt=fmt, macs=int(macs),
            flops=int(flops), weight_bytes=int(w_bytes), input_bytes=int(in_bytes),
            output_bytes=int(out_bytes), params=int(params),
            output_shapes=tuple(shapes), constant=bool(constant),
            fuses_into=_fusion_target(node, producer, consumers, graph_outputs, t),
            shapes_known=known, kernel_shape=kernel, strides=strides, group=group,
        ))

    if any(n.op_type in ("If", "Loop", "Scan") for n in g.node):
        warnings.append("the graph has control flow (If/Loop/Scan): its subgraphs count as zero")

    peak = _peak_activations(g, t, nbytes, consumers, graph_outputs)
    in_shapes = {k: v for k, v in fixed_inputs.items()}
    outs = {o.name: t[o.name].shape if o.name in t else None for o in g.output}
    cost = ModelCost(
        nodes=tuple(costs), batch_size=_model_batch(in_shapes), input_shapes=in_shapes,
        output_shapes=outs, peak_activation_bytes=int(peak), warnings=tuple(warnings),
        _weight_bytes_once=int(sum(seen_weights.values())),
        _params_once=int(sum(weight_params.values())),
    )
    return cost.for_batch(batch_size)


def _window(node: onnx.NodeProto, t: dict[str, _Tensor]) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """Kernel shape, strides and groups of a Conv or pooling node (empty for others)."""
    cls = op_class_of(node.op_type)
    if cls not in ("conv", "pool"):
        return (), (), 1
    a = _attrs(node)
    kernel = a.get("kernel_shape")
    if kernel is None and cls == "conv":
        wi = 3 if node.op_type == "QLinearConv" else 1
        w = t.get(node.input[wi]) if len(node.input) > wi else None
        kernel = list(w.shape[2:]) if w is not None and w.shape is not None else []
    kernel = tuple(int(k) for k in (kernel or ()))
    strides = tuple(int(s) for s in a.get("strides", [1] * len(kernel)))
    return kernel, strides, int(a.get("group", 1))


def _model_batch(input_shapes: Mapping[str, tuple[int, ...]]) -> int:
    for shape in input_shapes.values():
        if shape:
            return max(1, int(shape[0]))
    return 1


def _guess_elem(node: onnx.NodeProto, t: dict[str, _Tensor]) -> int:
    if node.op_type in ("Shape", "Size", "NonZero", "ArgMax", "ArgMin"):
        return TensorProto.INT64
    if node.op_type == "QuantizeLinear":
        zp = t.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        return zp.elem if zp is not None else TensorProto.UINT8
    if node.op_type == "DequantizeLinear":
        return TensorProto.FLOAT
    for n in node.input:
        if n and n in t and t[n].elem:
            return t[n].elem
    return TensorProto.FLOAT


def _weight_source(name: str, producer: Mapping[str, onnx.NodeProto], t: dict[str, _Tensor]) -> str:
    """The stored tensor behind a constant input: through DequantizeLinear, Identity, Cast,
    Transpose and Reshape back to the initializer (so an int8 weight counts as int8)."""
    seen = 0
    while name in producer and seen < 8:
        node = producer[name]
        if node.op_type in ("DequantizeLinear", "Identity", "Cast", "Transpose", "Reshape",
                            "Unsqueeze", "Squeeze") and node.input and node.input[0] in t:
            name = node.input[0]
            seen += 1
        else:
            break
    return name


def _node_format(node: onnx.NodeProto, t: dict[str, _Tensor], eff: Mapping[str, int]) -> str:
    """The number format a node computes in: its first data input's effective type."""
    op = node.op_type
    if op in ("QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "QLinearAdd",
              "QLinearMul", "QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearConcat"):
        return "int8"
    if op == "QuantizeLinear":
        return _fmt(t[node.input[0]].elem) if node.input[0] in t else "fp32"
    for n in node.input:
        if n and n in t and not t[n].constant:
            return _fmt(eff.get(n, t[n].elem))
    for n in node.input:
        if n and n in t:
            return _fmt(eff.get(n, t[n].elem))
    return "fp32"


_FUSABLE_PRODUCERS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "QLinearConv", "ConvInteger"}
_FUSABLE_EPILOGUES = {"Relu", "Clip", "LeakyRelu", "PRelu", "BatchNormalization", "Sigmoid",
                      "HardSwish", "HardSigmoid", "Tanh", "Elu"}


def _fusion_target(
    node: onnx.NodeProto,
    producer: Mapping[str, onnx.NodeProto],
    consumers: Mapping[str, list[onnx.NodeProto]],
    graph_outputs: set[str],
    t: dict[str, _Tensor],
) -> str | None:
    """The Conv/Gemm this epilogue node can fuse into, following a chain of epilogues
    (Conv → BN → Relu); also a bias Add right after a MatMul."""
    op = node.op_type
    is_bias_add = op == "Add" and any(n in t and t[n].constant for n in node.input if n)
    if op not in _FUSABLE_EPILOGUES and not is_bias_add:
        return None
    data = [n for n in node.input if n and not (n in t and t[n].constant)]
    if len(data) != 1:
        return None
    src = data[0]
    hops = 0
    while src in producer and hops < 6:
        p = producer[src]
        if len(consumers.get(src, [])) != 1 or src in graph_outputs:
            return None
        if p.op_type in _FUSABLE_PRODUCERS:
            return p.name or p.output[0]
        p_data = [n for n in p.input if n and not (n in t and t[n].constant)]
        p_bias = p.op_type == "Add" and len(p_data) == 1
        if (p.op_type in _FUSABLE_EPILOGUES or p_bias) and len(p_data) == 1:
            src = p_data[0]
            hops += 1
            continue
        return None
    return None


def _peak_activations(g, t, nbytes, consumers, graph_outputs) -> int:
    """The most activation bytes alive at once when nodes run in graph order."""
    remaining = {name: len(users) for name, users in consumers.items()}
    alive: dict[str, int] = {}
    for inp in g.input:
        if inp.name in t and not t[inp.name].constant:
            alive[inp.name] = nbytes(inp.name)
    peak = sum(alive.values())
    for node in g.node:
        for name in node.output:
            if name and name in t and not t[name].constant and t[name].shape is not None:
                alive[name] = nbytes(name)
        peak = max(peak, sum(alive.values()))
        for name in node.input:
            if name in remaining:
                remaining[name] -= 1
                if remaining[name] == 0 and name not in graph_outputs:
                    alive.pop(name, None)
        for name in node.output:
            if name and not consumers.get(name) and name not in graph_outputs:
                alive.pop(name, None)
    return peak
