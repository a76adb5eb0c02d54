"""Emulating a lower-precision target's arithmetic in an FP32 ONNX model.

:func:`round_to_fp16` returns a copy of an FP32 model whose float weights are rounded to
the nearest FP16 value (round-to-nearest-even, as ``numpy.float16`` does), and whose every
float activation is rounded the same way as soon as it is produced, by a pair of
``Cast(to=FLOAT16) → Cast(to=FLOAT)`` nodes after each node's output. Running that copy in
FP32 (onnxruntime on a CPU) computes with FP16 *storage* of weights and activations and
FP32 accumulation inside each operator, which is what TensorRT's FP16 mode does on a Pascal
GPU for convolutions (``HMMA``-less FP16 kernels accumulate in FP16 on some paths, so this
is the optimistic end) and what the Myriad 2's FP16 SHAVE kernels do with their 32-bit
accumulators. Overflow is emulated too: activations beyond ±65504 become ±inf.

The rounding pairs are not removed by onnxruntime's graph optimiser (a lossy Cast chain is
kept); the tests check that the output really changes.

Only onnx and numpy are needed.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["round_to_fp16", "FP16_MAX"]

#: The largest finite FP16 value.
FP16_MAX = 65504.0

#: Nodes whose float outputs are not rounded: they move data without computing.
_PASS_THROUGH = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout",
                 "Transpose", "Concat", "Split", "Slice", "Gather", "Shape", "Constant",
                 "MaxPool", "GlobalMaxPool", "Relu", "Cast"}


def round_to_fp16(model: onnx.ModelProto, round_activations: bool = True) -> onnx.ModelProto:
    """A copy of ``model`` that computes with FP16-rounded weights and activations.

    :param model: an FP32 ONNX model.
    :param round_activations: also round every computed float activation (default); with
        False only the weights are rounded.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    for init in g.initializer:
        if init.data_type == TensorProto.FLOAT:
            arr = numpy_helper.to_array(init)
            rounded = arr.astype(np.float16).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(rounded, init.name))
    if not round_activations:
        return out
    float_values = _float_values(out)
    graph_inputs = [i.name for i in g.input if i.name not in {t.name for t in g.initializer}]
    new_nodes: list[onnx.NodeProto] = []
    renames: dict[str, str] = {}

    def rounded_name(name: str) -> str:
        return f"{name}__fp16r"

    # round the graph inputs first (the board receives FP16 images)
    for name in graph_inputs:
        if name in float_values:
            new_nodes.extend(_round_pair(name, rounded_name(name)))
            renames[name] = rounded_name(name)
    outputs = {o.name for o in g.output}
    for node in g.node:
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
        new_nodes.append(node)
        if node.op_type in _PASS_THROUGH:
            continue
        for name in node.output:
            if not name or name not in float_values:
                continue
            if name in outputs:
                # keep the graph output's name: compute into a temporary, then round into it
                tmp = f"{name}__fp32"
                for j, o in enumerate(node.output):
                    if o == name:
                        node.output[j] = tmp
                new_nodes.extend(_round_pair(tmp, name))
            else:
                new_nodes.extend(_round_pair(name, rounded_name(name)))
                renames[name] = rounded_name(name)
    del g.node[:]
    g.node.extend(new_nodes)
    return out


def _round_pair(src: str, dst: str) -> list[onnx.NodeProto]:
    mid = f"{dst}__half"
    return [
        helper.make_node("Cast", [src], [mid], to=TensorProto.FLOAT16, name=f"{dst}/to_fp16"),
        helper.make_node("Cast", [mid], [dst], to=TensorProto.FLOAT, name=f"{dst}/to_fp32"),
    ]


def _float_values(model: onnx.ModelProto) -> set[str]:
    """Names of FP32 tensors in the graph, from shape inference (types only)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # fall back: treat every node output as float
        inferred = model
    names: set[str] = set()
    for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            names.add(vi.name)
    if inferred is model:
        for node in model.graph.node:
            names.update(n for n in node.output if n)
    return names
