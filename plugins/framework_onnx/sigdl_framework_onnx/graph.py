"""An ONNX model as SigDL sees it: a graph plus its float initializers as named weights.

:func:`read_onnx` loads a file safely and returns an :class:`OnnxGraph`:

* the file is parsed by ``onnx.load`` and checked by ``onnx.checker``; nothing in it runs
  (ONNX holds no code, and no custom-operator library is ever registered with onnxruntime);
* ``Constant`` nodes become initializers, so that every constant weight has a name;
* the graph must have one data input (not an initializer) whose sizes, after the batch axis,
  are fixed, and it is run once on zeros, which finds the class count and turns a model
  onnxruntime cannot run into one clear error at load time.

**Weights** are the float32 initializers that are not scalars (a Dropout ratio, a Clip
bound is a setting), by initializer name. Their layer kind comes from
the op that consumes them: a ``Conv`` weight is ``conv`` (``depthwise`` when every group
has one input channel), a ``Gemm`` or ``MatMul`` weight is ``fc``, the third input of
``Conv``/``Gemm`` and a constant added to a ``Conv``/``Gemm``/``MatMul`` result is ``bias``,
``BatchNormalization`` inputs are ``norm``. Compressors expect the output channels on axis 0
(per-channel quantization, as in the torch framework), so an ``fc`` weight stored input-first
(``MatMul``'s ``K×N`` ``B``, ``Gemm`` with ``transB=0``) is shown transposed, ``N×K``, and
transposed back when the model is written.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from sigdl_core.errors import InvalidValueError, ModelFileError, UnknownNameError, UnsupportedModelError
from sigdl_core.files import atomic_path, read_regular_file
from sigdl_core.interfaces import LayerKind, float32_weight

#: The names :meth:`OnnxGraph.export` gives the data input and the output (the Framework contract).
INPUT_NAME, OUTPUT_NAME = "input", "logits"
#: Ops whose first output follows a bias add: a constant added to their result is a bias.
_BIASED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
#: Values per batch when evaluating, as the torch framework does (keeps memory bounded).
EVAL_VALUES_PER_BATCH = 2**22


def first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


@dataclass
class OnnxGraph:
    """A loaded ONNX model: its proto (initializer payloads stale), weights and metadata.

    ``weights`` hold the current values, in the layout compressors see (see the module
    docstring); ``transposed`` names the ``fc`` weights shown transposed; ``buffers`` the
    weights that are no trainable parameters (batch-norm statistics, ``other`` constants). ``batch`` is the
    model's fixed batch size, or ``None`` when the batch axis is dynamic.
    """

    proto: onnx.ModelProto
    path: Path
    input_name: str
    output_name: str
    input_shape: tuple[int, ...]
    num_classes: int
    batch: int | None
    weights: dict[str, np.ndarray]
    kinds: dict[str, LayerKind]
    transposed: frozenset[str]
    buffers: frozenset[str]
    version: int = 0
    _session: Any = None
    _session_version: int = -1
    cache: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ weights

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Writes named arrays (in the shown layout); shapes must stay as they are."""
        checked: dict[str, np.ndarray] = {}
        for name, value in weights.items():
            if name not in self.weights:
                raise UnknownNameError("weight", name, self.weights)
            array = float32_weight(name, value)
            if tuple(array.shape) != tuple(self.weights[name].shape):
                raise InvalidValueError(
                    f"weight '{name}' has shape {tuple(array.shape)}, but the ONNX model's is "
                    f"{tuple(self.weights[name].shape)}",
                    "an ONNX model's layers keep their shapes: use unstructured pruning (prune), not prune-structured",
                )
            checked[name] = array
        self.weights.update(checked)
        if checked:
            self.version += 1

    def stored(self, name: str) -> np.ndarray:
        """The weight ``name`` in the layout the ONNX file stores it."""
        w = self.weights[name]
        return np.ascontiguousarray(w.T) if name in self.transposed else w

    # ------------------------------------------------------------------ files

    def current_proto(self, rename_io: bool = False) -> onnx.ModelProto:
        """A copy of the model holding the current weights (and ``input``/``logits`` names)."""
        model = copy.deepcopy(self.proto)
        for init in model.graph.initializer:
            if init.name in self.weights:
                init.CopyFrom(numpy_helper.from_array(self.stored(init.name), init.name))
        if rename_io:
            _rename(model.graph, {self.input_name: INPUT_NAME, self.output_name: OUTPUT_NAME})
        return model

    def write(self, path: Path, rename_io: bool = False) -> Path:
        """Writes the model with its current weights to ``path`` atomically, checked."""
        return save_checked(self.current_proto(rename_io), Path(path), self.path.name)

    # ------------------------------------------------------------------ running

    def session(self) -> Any:
        """An onnxruntime session on the current weights (rebuilt after they change)."""
        if self._session is None or self._session_version != self.version:
            self._session = make_session(self.current_proto(), self.parameter_count())
            self._session_version = self.version
        return self._session

    def logits(self, x: np.ndarray) -> np.ndarray:
        """The model's first output for the samples ``x``, in batches."""
        sess = self.session()
        x = np.ascontiguousarray(x, dtype=np.float32)
        step = self.batch or max(1, min(1024, EVAL_VALUES_PER_BATCH // max(1, math.prod(self.input_shape))))
        outs = []
        for i in range(0, len(x), step):
            xb = x[i : i + step]
            n = len(xb)
            if self.batch is not None and n < self.batch:  # a fixed batch axis: pad the last batch
                xb = np.concatenate([xb, np.zeros((self.batch - n, *xb.shape[1:]), np.float32)])
            out = sess.run([self.output_name], {self.input_name: xb})[0]
            outs.append(np.asarray(out).reshape(len(xb), -1)[:n])
        return np.concatenate(outs) if outs else np.zeros((0, self.num_classes), np.float32)

    def parameter_count(self) -> int:
        return int(sum(w.size for n, w in self.weights.items() if n not in self.buffers))


def save_checked(model: onnx.ModelProto, path: Path, source: str) -> Path:
    """Writes ``model`` to ``path`` atomically after ``onnx.checker`` passes on the written file."""
    with atomic_path(path) as tmp:
        onnx.save(model, os.fspath(tmp))
        try:
            onnx.checker.check_model(os.fspath(tmp))
        except onnx.checker.ValidationError as exc:
            raise UnsupportedModelError(f"the ONNX model written for '{source}' does not check: {first_line(exc)}",
                                        "report this as a bug") from None
    return path


def make_session(model: onnx.ModelProto, parameters: int) -> Any:
    """An onnxruntime CPU session; one intra-op thread for small models, as torch's framework."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if parameters < 10_000_000:
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def read_onnx(path: os.PathLike[str] | str) -> OnnxGraph:
    """Loads and checks an ONNX file (see the module docstring); ModelFileError when it is bad."""
    path = read_regular_file(path, "ONNX model")
    hint = "the file is damaged or not an ONNX model; export it again"
    if path.stat().st_size == 0:
        raise ModelFileError(f"ONNX model '{path}' is empty", hint)
    try:
        model = onnx.load(os.fspath(path))
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError, onnx's errors, OSError
        raise ModelFileError(f"ONNX model '{path}' is corrupt or truncated ({first_line(exc)})", hint) from None
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001 - ValidationError and friends
        raise ModelFileError(f"ONNX model '{path}' is not a valid ONNX model ({first_line(exc)})", hint) from None
    if not model.graph.node:
        raise ModelFileError(f"ONNX model '{path}' has no nodes (it is empty or truncated)", hint)
    return graph_from_proto(model, path)


def graph_from_proto(model: onnx.ModelProto, path: Path) -> OnnxGraph:
    """An :class:`OnnxGraph` of a checked model (``path`` names it in messages), test-run once."""
    hint = "the file is damaged or not an ONNX model; export it again"
    _constants_to_initializers(model.graph)
    inits = {t.name for t in model.graph.initializer}
    data_inputs = [i for i in model.graph.input if i.name not in inits]
    if len(data_inputs) != 1:
        raise UnsupportedModelError(
            f"ONNX model '{path}' has {len(data_inputs)} data inputs "
            f"({', '.join(i.name for i in data_inputs) or 'none'}); SigDL takes models with one",
            "export the model with a single image or feature input")
    inp = data_inputs[0]
    elem = inp.type.tensor_type.elem_type
    if elem != onnx.TensorProto.FLOAT:
        raise UnsupportedModelError(f"ONNX model '{path}' takes {onnx.TensorProto.DataType.Name(elem)} input, not FLOAT",
                                    "export the model with a float32 input")
    dims = list(inp.type.tensor_type.shape.dim)
    if len(dims) < 2 or not all(d.HasField("dim_value") and d.dim_value > 0 for d in dims[1:]):
        raise UnsupportedModelError(
            f"ONNX model '{path}' input '{inp.name}' has sizes {[d.dim_value or d.dim_param or '?' for d in dims]}; "
            "SigDL needs every size after the batch axis fixed",
            "export the model with a fixed input size (only the batch axis dynamic)")
    input_shape = tuple(int(d.dim_value) for d in dims[1:])
    batch = int(dims[0].dim_value) if dims[0].HasField("dim_value") and dims[0].dim_value > 0 else None
    output_name = model.graph.output[0].name

    weights: dict[str, np.ndarray] = {}
    for init in model.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and len(init.dims) > 0:  # scalars are settings, not weights
            try:
                weights[init.name] = numpy_helper.to_array(init).astype(np.float32, copy=True)
            except Exception as exc:  # noqa: BLE001 - short raw data in a truncated file
                raise ModelFileError(f"ONNX model '{path}': initializer '{init.name}' is damaged ({first_line(exc)})",
                                     hint) from None
    kinds, transposed, buffers = infer_kinds(model.graph, weights)
    buffers |= {n for n, k in kinds.items() if k == "other"}  # constants (a Clip bound), not parameters
    for name in transposed:
        weights[name] = np.ascontiguousarray(weights[name].T)
    graph = OnnxGraph(model, path, inp.name, output_name, input_shape, 0, batch, weights, kinds,
                      frozenset(transposed), frozenset(buffers))
    try:
        out = graph.logits(np.zeros((1, *input_shape), np.float32))
    except Exception as exc:  # noqa: BLE001 - onnxruntime's Fail, InvalidGraph, NotImplemented ...
        raise UnsupportedModelError(f"onnxruntime cannot run ONNX model '{path}': {first_line(exc)}",
                                    "use ops onnxruntime's CPU provider implements (standard ONNX domain)") from None
    graph.num_classes = int(out.shape[1])
    return graph


def infer_kinds(graph: onnx.GraphProto, weights: Mapping[str, np.ndarray]
                ) -> tuple[dict[str, LayerKind], set[str], set[str]]:
    """Layer kinds from the consuming ops; the fc weights to show transposed; BN statistics."""
    producers = {out: node for node in graph.node for out in node.output}
    # torch's exporter reads a constant used twice through Identity nodes: look through them
    alias = {node.output[0]: node.input[0] for node in graph.node
             if node.op_type == "Identity" and node.input and node.input[0] in weights}
    votes: dict[str, list[tuple[LayerKind, bool]]] = {}
    buffers: set[str] = set()

    def vote(name: str, kind: LayerKind, transpose: bool = False) -> None:
        name = alias.get(name, name)
        if name in weights:
            votes.setdefault(name, []).append((kind, transpose))

    for node in graph.node:
        ins = [alias.get(v, v) for v in node.input]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        op = node.op_type
        if op in ("Conv", "ConvTranspose") and len(ins) > 1:
            w = weights.get(ins[1])
            group = int(attrs.get("group", 1))
            depthwise = op == "Conv" and w is not None and group > 1 and w.ndim >= 3 and w.shape[1] == 1
            vote(ins[1], "depthwise" if depthwise else "conv")
            if len(ins) > 2:
                vote(ins[2], "bias")
        elif op == "Gemm" and len(ins) > 1:
            w = weights.get(ins[1])
            if w is not None and w.ndim == 2:
                vote(ins[1], "fc", transpose=not attrs.get("transB", 0))
            if len(ins) > 2:
                vote(ins[2], "bias")
            vote(ins[0], "other")
        elif op == "MatMul" and len(ins) == 2:
            if ins[1] in weights and weights[ins[1]].ndim == 2:
                vote(ins[1], "fc", transpose=True)
            if ins[0] in weights and weights[ins[0]].ndim == 2:
                vote(ins[0], "fc")
        elif op == "BatchNormalization":
            for i, name in enumerate(ins[1:5], start=1):
                vote(name, "norm")
                if i >= 3 and name in weights:
                    buffers.add(name)
        elif op in ("InstanceNormalization", "LayerNormalization", "GroupNormalization"):
            for name in ins[1:3]:
                vote(name, "norm")
        elif op == "Add" and len(ins) == 2:
            for mine, other in ((ins[0], ins[1]), (ins[1], ins[0])):
                source = producers.get(other)
                if mine in weights and source is not None and source.op_type in _BIASED_OPS:
                    vote(mine, "bias")
        for name in ins:
            vote(name, "other")
    kinds: dict[str, LayerKind] = {}
    transposed: set[str] = set()
    order: tuple[LayerKind, ...] = ("conv", "depthwise", "fc", "norm", "bias", "other")
    for name in weights:
        cast = votes.get(name, [("other", False)])
        kind = min((k for k, _ in cast), key=order.index)
        kinds[name] = kind
        if kind == "fc" and all(t for k, t in cast if k == "fc"):
            transposed.add(name)
    return kinds, transposed, buffers


def _constants_to_initializers(graph: onnx.GraphProto) -> None:
    """Moves ``Constant`` nodes holding a tensor into the initializers, under their output name."""
    keep = []
    for node in graph.node:
        value = next((a for a in node.attribute if a.name == "value"), None)
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and value is not None and value.t is not None:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(value.t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
        else:
            keep.append(node)
    if len(keep) != len(graph.node):
        del graph.node[:]
        graph.node.extend(keep)


def _rename(graph: onnx.GraphProto, names: Mapping[str, str]) -> None:
    """Renames values throughout ``graph`` and its subgraphs (making room for the new names)."""
    names = {a: b for a, b in names.items() if a != b}
    if not names:
        return
    used = {v for node in graph.node for v in (*node.input, *node.output)}
    used |= {v.name for v in (*graph.input, *graph.output, *graph.value_info, *graph.initializer)}
    for new in list(names.values()):
        if new in used and new not in names:  # an inner value already has the wanted name
            spare = new + "_orig"
            while spare in used:
                spare += "_"
            names = {**names, new: spare}

    def fix(g: onnx.GraphProto) -> None:
        for node in g.node:
            node.input[:] = [names.get(v, v) for v in node.input]
            node.output[:] = [names.get(v, v) for v in node.output]
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    fix(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    for sub in attr.graphs:
                        fix(sub)
        for v in (*g.input, *g.output, *g.value_info, *g.initializer):
            v.name = names.get(v.name, v.name)

    fix(graph)
