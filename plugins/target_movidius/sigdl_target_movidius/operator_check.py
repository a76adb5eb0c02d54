"""Which ONNX graphs the Myriad 2 (NCSDK v1) can run, node by node.

The NCSDK v1 compiler (``mvNCCompile``) turns a network into a static graph of MvTensor
layers, compiled for one input resolution and batch 1. Its documented layer lists (NCSDK
"Caffe support" and "TensorFlow support" pages, v1.12) name: Convolution (including
depthwise and grouped), Deconvolution, Pooling (max, average, global), InnerProduct (fully
connected), ReLU, leaky ReLU, PReLU, ReLU6, ELU, Sigmoid, TanH, BatchNorm and Scale,
LRN, Eltwise (sum, product, max), Concat (channels), Softmax, Reshape/Flatten, Permute and
Dropout (removed at compile time). :func:`check_movidius_support` maps every ONNX node to
one of them — or says why it cannot — and checks the input is fixed-size. The rules are our
reading of those lists; where a limit is not documented, the rule refuses what NCSDK's
validated networks do not contain rather than guess that it compiles.

The attribute rules and the reason for each:

* **Conv**: 2-D only (MvTensor convolutions are 2-D); constant weights (the compiler bakes
  them into the graph blob); **dilation 1** (NCSDK v1's layer lists name no dilated
  convolution, so a ``dilations`` ≠ 1 is refused); kernel
  sides 1–11 and strides 1–4 — the range of NCSDK's validated networks (AlexNet's conv1 is
  11×11 stride 4); larger ones are not known to compile, so they are refused rather than
  guessed; pads at most one apart between the two sides of an axis (Caffe padding is
  symmetric; TensorFlow SAME adds the odd one at the end). **Groups**: any group count that
  divides the channels (Caffe ``group``); a depthwise convolution (``group`` = input
  channels) must have a channel multiplier of 1 (NCSDK's depthwise kernel takes one filter
  per channel).
* **ConvTranspose** (Caffe Deconvolution): the same kernel, stride and dilation rules; no
  ``output_padding``.
* **MaxPool / AveragePool**: 2-D, kernel sides 1–11 (the compiled pooling kernels), no
  dilation, ``storage_order`` 0. GlobalAveragePool and GlobalMaxPool always.
* **Gemm / MatMul** as fully connected: the right-hand side constant, no ``transA``,
  ``alpha`` = ``beta`` = 1.
* **Clip** is ReLU6 (min 0, max 6) or ReLU (min 0, no max): MvTensor has no general clamp.
* **Add, Sub, Mul, Max**: Eltwise (sum with coefficients, product, max) of equal shapes, or
  Scale/Bias with a constant per-channel operand. **Div** only by a constant (a Scale).
* **Concat** along channels (axis 1) only: the Caffe/NCSDK Concat layer.
* **Softmax / LogSoftmax**: over the channel/class axis.
* **Shape arithmetic** (Shape, Gather, Cast, Unsqueeze … whose inputs are all constant or
  come from the fixed input's shape) is folded by the compiler and always accepted.
* **Input**: one input, N×C×H×W or N×F, every dimension but the batch fixed; the batch is
  fixed to 1 (NCSDK v1 graphs take one image per inference). A symbolic height or width is
  refused: the graph is compiled for one resolution.

Everything else (LSTM, GRU, Erf, Gelu, LayerNormalization, Resize, Pad, …) is refused with
"no NCSDK v1 layer".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

__all__ = ["SUPPORTED_OPS", "SupportReport", "UnsupportedNode", "check_movidius_support"]

MAX_KERNEL = 11
MAX_STRIDE = 4

#: ONNX op → the NCSDK v1 layer it compiles to.
SUPPORTED_OPS: dict[str, str] = {
    "Conv": "Convolution", "ConvTranspose": "Deconvolution", "MaxPool": "Pooling (max)",
    "AveragePool": "Pooling (average)", "GlobalAveragePool": "Pooling (global average)",
    "GlobalMaxPool": "Pooling (global max)", "Gemm": "InnerProduct", "MatMul": "InnerProduct",
    "Relu": "ReLU", "LeakyRelu": "ReLU (negative slope)", "PRelu": "PReLU", "Clip": "ReLU6",
    "Elu": "ELU", "Sigmoid": "Sigmoid", "Tanh": "TanH", "BatchNormalization": "BatchNorm",
    "LRN": "LRN", "Add": "Eltwise (sum) / Bias", "Sub": "Eltwise (sum, coefficient −1)",
    "Mul": "Eltwise (product) / Scale", "Max": "Eltwise (max)", "Div": "Scale",
    "Concat": "Concat", "Softmax": "Softmax", "LogSoftmax": "Softmax + log",
    "Reshape": "Reshape", "Flatten": "Flatten", "Squeeze": "Reshape", "Unsqueeze": "Reshape",
    "Transpose": "Permute", "Identity": "(removed)", "Dropout": "(removed)",
    "Constant": "(folded)",
}


@dataclass(frozen=True)
class UnsupportedNode:
    """One node (or the input) the MA2450 cannot run, and why."""

    node: str
    op_type: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"node": self.node, "op_type": self.op_type, "reason": self.reason}

    def one_line(self) -> str:
        return f"{self.node} ({self.op_type}): {self.reason}"


@dataclass
class SupportReport:
    """The verdict on a whole graph: every offending node, and notes (batch fixed to 1…)."""

    unsupported: list[UnsupportedNode]
    notes: list[str]
    input_shape: tuple[int, ...] | None
    folded: list[str]

    @property
    def ok(self) -> bool:
        return not self.unsupported


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _dims(vi: onnx.ValueInfoProto) -> list[int | str | None]:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return []
    out: list[int | str | None] = []
    for d in t.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            out.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            out.append(d.dim_param)
        else:
            out.append(None)
    return out


def _node_name(node: onnx.NodeProto) -> str:
    return node.name or (node.output[0] if node.output else node.op_type)


def check_movidius_support(model: onnx.ModelProto) -> SupportReport:
    """Checks every node and the input of ``model`` against the MA2450's rules (module
    docstring). Never raises for an unsupported model: it lists every offence."""
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    bad: list[UnsupportedNode] = []
    notes: list[str] = []

    # ----------------------------------------------------------------- the input
    inputs = [i for i in graph.input if i.name not in inits]
    input_shape: tuple[int, ...] | None = None
    if len(inputs) != 1:
        bad.append(UnsupportedNode(",".join(i.name for i in inputs) or "(none)", "input",
                                   f"the NCS takes exactly one input tensor, the graph has {len(inputs)}"))
    for vi in inputs[:1]:
        dims = _dims(vi)
        if len(dims) not in (2, 4):
            bad.append(UnsupportedNode(vi.name, "input",
                                       f"input of rank {len(dims)}: the NCS takes N×C×H×W images or N×F vectors"))
        else:
            batch, rest = dims[0], dims[1:]
            free = [i + 1 for i, d in enumerate(rest) if not isinstance(d, int)]
            if free:
                names = ", ".join(("C", "H", "W")[i - 1] if len(dims) == 4 else "F" for i in free)
                bad.append(UnsupportedNode(
                    vi.name, "input",
                    f"dynamic input dimension(s) {names} ({[rest[i - 1] for i in free]}): the NCS graph is "
                    "compiled for one fixed resolution; export the model with a fixed input size"))
            else:
                input_shape = (1, *[int(d) for d in rest])
            if batch != 1:
                notes.append(f"input '{vi.name}' batch {batch!r} fixed to 1: the NCS runs one image per inference")

    # ----------------------------------------------------------------- constants and shapes
    static: set[str] = set(inits)
    shapes: dict[str, list[int | str | None]] = {}
    try:
        fixed = onnx.ModelProto.FromString(model.SerializeToString())
        for vi in fixed.graph.input:
            if vi.name in inits:
                continue
            t = vi.type.tensor_type
            if t.HasField("shape") and t.shape.dim:
                d0 = t.shape.dim[0]
                d0.ClearField("dim_param")
                d0.dim_value = 1
        inferred = onnx.shape_inference.infer_shapes(fixed)
        for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
            shapes[vi.name] = _dims(vi)
    except Exception:  # shape inference is a help, not a requirement
        pass

    def const_array(name: str) -> np.ndarray | None:
        if name in inits:
            return numpy_helper.to_array(inits[name])
        return const_values.get(name)

    const_values: dict[str, np.ndarray] = {}
    folded: list[str] = []

    for node in graph.node:
        name = _node_name(node)
        op = node.op_type
        real_inputs = [i for i in node.input if i]
        if op == "Constant":
            static.update(node.output)
            for a in node.attribute:
                if a.name == "value":
                    const_values[node.output[0]] = numpy_helper.to_array(a.t)
            continue
        if op == "Shape":
            static.update(node.output)  # every shape is fixed once the input's is
            folded.append(name)
            continue
        if real_inputs and all(i in static for i in real_inputs):
            static.update(node.output)  # constant-folded by the compiler
            folded.append(name)
            continue
        if node.domain not in ("", "ai.onnx"):
            bad.append(UnsupportedNode(name, op, f"custom-domain operator '{node.domain}.{op}' has no NCSDK v1 layer"))
            continue
        if op not in SUPPORTED_OPS:
            bad.append(UnsupportedNode(name, op, f"no NCSDK v1 layer for ONNX {op}"))
            continue
        for reason in _attribute_problems(node, _attrs(node), const_array, shapes, static):
            bad.append(UnsupportedNode(name, op, reason))
    return SupportReport(bad, notes, input_shape, folded)


def _kernel_rules(kernel: Iterable[int], strides: Iterable[int], what: str) -> list[str]:
    out = []
    kernel, strides = list(kernel), list(strides)
    if any(k < 1 or k > MAX_KERNEL for k in kernel):
        out.append(f"{what} kernel {'×'.join(map(str, kernel))} outside 1–{MAX_KERNEL} "
                   "(the largest kernel in NCSDK's validated networks is 11×11)")
    if any(s < 1 or s > MAX_STRIDE for s in strides):
        out.append(f"stride {'×'.join(map(str, strides))} outside 1–{MAX_STRIDE} "
                   "(the largest stride in NCSDK's validated networks is 4)")
    return out


def _pad_rules(attrs: dict[str, Any]) -> list[str]:
    pads = list(attrs.get("pads", []))
    if len(pads) == 4 and (abs(pads[0] - pads[2]) > 1 or abs(pads[1] - pads[3]) > 1):
        return [f"asymmetric padding {pads}: the NCS pads both sides alike (TensorFlow SAME's one extra "
                "cell at the end is the only asymmetry it takes)"]
    return []


def _attribute_problems(node: onnx.NodeProto, attrs: dict[str, Any], const_array: Any,
                        shapes: dict[str, list[int | str | None]], static: set[str]) -> list[str]:
    op = node.op_type
    out: list[str] = []
    if op in ("Conv", "ConvTranspose"):
        w = const_array(node.input[1]) if len(node.input) > 1 else None
        if w is None:
            out.append("weights are not constant: the compiler needs them in the graph blob")
            return out
        if w.ndim != 4:
            out.append(f"{w.ndim - 2}-D convolution: MvTensor convolutions are 2-D")
            return out
        kernel = attrs.get("kernel_shape", list(w.shape[2:]))
        strides = attrs.get("strides", [1, 1])
        dil = list(attrs.get("dilations", [1, 1]))
        if any(d != 1 for d in dil):
            out.append(f"dilated convolution (dilations {dil}): not in NCSDK v1's layer set")
        out += _kernel_rules(kernel, strides, "convolution")
        out += _pad_rules(attrs)
        group = int(attrs.get("group", 1))
        if op == "Conv":
            m, cg = int(w.shape[0]), int(w.shape[1])
            c_in = cg * group
            if group > 1 and cg == 1 and m != group:
                out.append(f"depthwise convolution with channel multiplier {m // group}: NCSDK's depthwise "
                           "kernel takes one filter per channel (multiplier 1)")
            if m % group:
                out.append(f"group {group} does not divide the {m} output channels")
            in_shape = shapes.get(node.input[0])
            if in_shape and len(in_shape) == 4 and isinstance(in_shape[1], int) and in_shape[1] != c_in:
                out.append(f"weights expect {c_in} input channels, the input has {in_shape[1]}")
        else:
            if any(p != 0 for p in attrs.get("output_padding", [])):
                out.append("output_padding is not supported by the Deconvolution layer")
    elif op in ("MaxPool", "AveragePool"):
        kernel = attrs.get("kernel_shape", [])
        if len(kernel) != 2:
            out.append(f"{len(kernel)}-D pooling: the NCS pools 2-D feature maps")
        else:
            k = list(kernel)
            if any(x < 1 or x > MAX_KERNEL for x in k):
                out.append(f"pooling kernel {'×'.join(map(str, k))} outside 1–{MAX_KERNEL}")
        if any(d != 1 for d in attrs.get("dilations", [])):
            out.append("dilated pooling is not supported")
        if attrs.get("storage_order", 0):
            out.append("column-major storage_order is not supported")
        out += _pad_rules(attrs)
    elif op in ("Gemm", "MatMul"):
        if len(node.input) < 2 or node.input[1] not in static:
            out.append("the right-hand side is not constant: the NCS runs MatMul/Gemm as a fully connected "
                       "layer with fixed weights, not a product of two activations")
        if op == "Gemm":
            if attrs.get("transA", 0):
                out.append("transA=1 is not a fully connected layer")
            if float(attrs.get("alpha", 1.0)) != 1.0 or float(attrs.get("beta", 1.0)) != 1.0:
                out.append(f"alpha={attrs.get('alpha', 1.0)}, beta={attrs.get('beta', 1.0)}: InnerProduct has no scaling")
        else:
            w = const_array(node.input[1]) if len(node.input) > 1 else None
            if w is not None and w.ndim != 2:
                out.append(f"MatMul with a {w.ndim}-D constant is not a fully connected layer")
    elif op == "Clip":
        lo = attrs.get("min")
        hi = attrs.get("max")
        if len(node.input) > 1 and node.input[1]:
            a = const_array(node.input[1])
            lo = None if a is None else float(np.asarray(a).reshape(()))
            if a is None:
                out.append("Clip's min is not constant")
        if len(node.input) > 2 and node.input[2]:
            a = const_array(node.input[2])
            hi = None if a is None else float(np.asarray(a).reshape(()))
            if a is None:
                out.append("Clip's max is not constant")
        if not out and not (lo == 0.0 and hi in (None, 6.0)):
            out.append(f"Clip(min={lo}, max={hi}) is neither ReLU nor ReLU6: MvTensor has no general clamp")
    elif op == "Div":
        if len(node.input) < 2 or node.input[1] not in static:
            out.append("division by a tensor: only division by a constant (a Scale layer) is supported")
    elif op in ("Add", "Sub", "Mul", "Max"):
        ins = [i for i in node.input if i]
        dyn = [i for i in ins if i not in static]
        sh = [shapes.get(i) for i in dyn]
        if len(dyn) >= 2 and all(sh) and len({tuple(s) for s in sh}) > 1:
            out.append(f"Eltwise of different shapes {[list(s) for s in sh]}: the NCS adds equal shapes only")
        if op == "Max" and len(ins) > 2:
            out.append("Max of more than two inputs is not one Eltwise layer")
    elif op == "Concat":
        axis = int(attrs.get("axis", 1))
        rank = None
        for i in node.input:
            if shapes.get(i):
                rank = len(shapes[i])
                break
        if rank is not None and axis < 0:
            axis += rank
        if axis != 1:
            out.append(f"Concat along axis {attrs.get('axis', 1)}: the NCS concatenates channels (axis 1) only")
    elif op in ("Softmax", "LogSoftmax"):
        axis = int(attrs.get("axis", -1))
        rank = len(shapes.get(node.input[0]) or []) or None
        if rank is not None:
            a = axis + rank if axis < 0 else axis
            if a != 1 and not (rank == 2 and a == 1):
                out.append(f"Softmax over axis {axis} of a rank-{rank} tensor: the NCS normalises over channels")
    elif op == "BatchNormalization":
        if attrs.get("training_mode", 0):
            out.append("training-mode batch norm: the NCS runs inference only")
    elif op == "LRN":
        if int(attrs.get("size", 5)) > MAX_KERNEL:
            out.append(f"LRN size {attrs.get('size')} outside 1–{MAX_KERNEL}")
    return out
