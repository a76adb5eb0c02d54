"""FP16 on the Myriad 2: converting a model, and measuring its accuracy in FP16.

The NCSDK v1 compiler folds batch norm into the preceding convolution and stores every
weight in fp16; every tensor between layers is fp16 in CMX or LPDDR3. Two artefacts here:

* :func:`convert_to_fp16` writes a real FP16 ONNX model (fp16 initializers, fp16 tensors
  throughout, fp32 graph input/output with a Cast at each end), as deployed. Written with
  ``onnx`` alone: no extra dependency. (``onnxconverter-common`` 1.16 — whose
  ``float16.convert_float_to_float16`` does the same job — installs with onnx 1.23 but is
  not needed for the operator set the MA2450 accepts.)
* :func:`fp16_rounded_model` is what accuracy is **measured** with: the float32 graph, BN
  folded, every weight rounded to the nearest fp16 value, and a ``Cast(→fp16) →
  Cast(→fp32)`` pair after every computing node, so that every tensor a layer hands to the
  next is exactly an fp16 number, while each operator computes inside in fp32. The rounding
  itself is the core's shared :func:`sigdl_core.emulation.round_to_fp16`.

Why not just run the FP16 model in onnxruntime? Its CPU execution provider computes
several fp16 operators by inserting Casts around *contiguous islands* of nodes (its
``InsertCastTransformer``): a Conv → Relu → Pool chain then runs entirely in fp32, and
intermediate tensors are never rounded to fp16 (we observed exactly that in onnxruntime
1.31's optimised graph). The rounding model rounds them all, which is what the SHAVEs'
fp16 storage does. What neither models: whether a SHAVE kernel accumulates a dot product
in fp16 or fp32 internally (MvTensor's convolution kernels are not public). With fp32
accumulation — assumed here — the rounding of each layer's output dominates.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from sigdl_core.emulation.onnx_tools import fold_batch_norm
from sigdl_core.errors import UnsupportedModelError

__all__ = ["FP16_MAX", "convert_to_fp16", "fold_for_myriad", "fp16_rounded_model"]


def fp16_rounded_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """The float32 graph with fp16-rounded weights and every computed tensor rounded to
    fp16 (``Cast→fp16→fp32`` after each node): the core's
    :func:`sigdl_core.emulation.round_to_fp16`, applied to a model already folded by
    :func:`fold_for_myriad` (so the folded weights are what gets rounded, as on the NCS)."""
    from sigdl_core.emulation import round_to_fp16

    return round_to_fp16(model, round_activations=True)

FP16_MAX = float(np.finfo(np.float16).max)  # 65504

_FLOAT = TensorProto.FLOAT
_HALF = TensorProto.FLOAT16


def fold_for_myriad(model: onnx.ModelProto) -> onnx.ModelProto:
    """Batch norm folded into convolutions, constants folded, Identity/Dropout removed —
    what ``mvNCCompile`` does before it converts weights to fp16."""
    return fold_batch_norm(model)

def convert_to_fp16(model: onnx.ModelProto, keep_io_types: bool = True) -> onnx.ModelProto:
    """A real FP16 ONNX model: fp16 weights and tensors; with ``keep_io_types`` the graph
    input and output stay float32 behind a Cast at each end.

    Covers the operator set the MA2450 accepts (:mod:`.operator_check`); Casts to float32
    inside the graph become Casts to fp16. The result passes ``onnx.checker``.
    """
    m = onnx.ModelProto.FromString(model.SerializeToString())
    graph = m.graph
    for i, init in enumerate(graph.initializer):
        if init.data_type == _FLOAT:
            arr = numpy_helper.to_array(init).astype(np.float16)
            graph.initializer[i].CopyFrom(numpy_helper.from_array(arr, init.name))
    inits = {i.name for i in graph.initializer}
    nodes: list[onnx.NodeProto] = []
    rename_in: dict[str, str] = {}
    for vi in graph.input:
        if vi.name in inits or vi.type.tensor_type.elem_type != _FLOAT:
            continue
        if keep_io_types:
            half = f"{vi.name}__fp16"
            nodes.append(helper.make_node("Cast", [vi.name], [half], name=f"{vi.name}__to_fp16", to=_HALF))
            rename_in[vi.name] = half
        else:
            vi.type.tensor_type.elem_type = _HALF
    outputs = {o.name for o in graph.output if o.type.tensor_type.elem_type == _FLOAT}
    rename_out: dict[str, str] = {o: f"{o}__fp16" for o in outputs} if keep_io_types else {}
    for node in graph.node:
        n = onnx.NodeProto()
        n.CopyFrom(node)
        for k, name in enumerate(n.input):
            if name in rename_in:
                n.input[k] = rename_in[name]
            elif name in rename_out:
                n.input[k] = rename_out[name]
        for k, name in enumerate(n.output):
            if name in rename_out:
                n.output[k] = rename_out[name]
        for a in n.attribute:
            if n.op_type == "Cast" and a.name == "to" and a.i == _FLOAT:
                a.i = _HALF
            if a.name == "value" and a.type == onnx.AttributeProto.TENSOR and a.t.data_type == _FLOAT:
                arr = numpy_helper.to_array(a.t).astype(np.float16)
                a.t.CopyFrom(numpy_helper.from_array(arr, a.t.name))
        nodes.append(n)
    for o in graph.output:
        if o.name in rename_out:
            nodes.append(helper.make_node("Cast", [rename_out[o.name]], [o.name], name=f"{o.name}__to_fp32", to=_FLOAT))
        elif o.type.tensor_type.elem_type == _FLOAT:
            o.type.tensor_type.elem_type = _HALF
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    try:
        onnx.checker.check_model(m)
    except onnx.checker.ValidationError as exc:
        raise UnsupportedModelError(f"the FP16 conversion produced an invalid model: {exc}",
                                    "report the model's operators; only the MA2450's operator set is covered") from None
    return m


