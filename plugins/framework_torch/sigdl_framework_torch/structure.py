"""The channel groups of a PyTorch model, for structured pruning ("thinning").

Removing an output channel of a convolution (a filter, or a neuron of a linear layer) is
only consistent if every array that carries that channel loses the same entry: the
layer's bias, the batch norm that follows it, a depthwise convolution that passes the
channel through, and the input axis of every layer that reads it — after a flatten, as
H×W consecutive features; after a concatenation, at the offset the concatenation put it;
and where an addition ties two tensors together, in both of their producers. Li et al.,
"Pruning Filters for Efficient ConvNets" (ICLR 2017, section 3.2 and 3.3: "pruning filters
across consecutive layers", "residual blocks") describe the bookkeeping; Distiller's
"thinning" and NNI's and Torch-Pruning's dependency graphs (Fang et al., "DepGraph",
CVPR 2023) automate it by walking the model's graph. This module does the same with
:mod:`torch.fx`:

1. :func:`torch.fx.symbolic_trace` records the forward pass as a graph, and
   :class:`~torch.fx.passes.shape_prop.ShapeProp` runs it once on a zero input of the
   model's input shape (in eval mode, without gradients, on the model's own device — a
   model built on the ``meta`` device is walked without allocating any weight), which
   gives every tensor's shape.
2. The walk follows each tensor's *channel layout*: dimension 1 as a list of segments,
   each a number of channels of one group (or of no group, e.g. the model's input) and a
   ``span`` (1 before a flatten, H×W after it).

   * ``Conv1d/2d/3d`` with ``groups == 1`` and ``Linear`` (on an N×F input) consume their
     input's segments along weight axis 1 and produce a new group (weight and bias, axis 0);
   * a depthwise ``Conv`` (``groups == in == out``) passes its input's channels through,
     and its weight (axis 0) and bias become *followers* of those groups, so that pruning
     the pointwise conv before it also removes the depthwise filters and the inputs of the
     conv after it (MobileNet);
   * ``BatchNorm`` weight, bias, running mean and variance are followers;
   * activations (ReLU, ReLU6, …), pooling (also adaptive), dropout, identity, interpolation
     and reductions over the spatial axes pass channels through unchanged;
   * ``flatten`` (or a ``view``/``reshape`` to N×F) turns each channel into ``span`` × H×W
     features;
   * ``torch.cat`` along dimension 1 concatenates layouts — SqueezeNet's fire modules;
   * an element-wise ``+``/``-``/``*``/``/`` of two tensors ties their groups together (they
     are merged into one group that is pruned as a whole);
   * a tensor that reaches the model's output makes its groups ``prunable=False``;
   * any other operation a tensor's channels flow into (an unknown module or function,
     a grouped non-depthwise convolution, indexing, a reshape that is not a flatten, a
     module called twice) makes the groups involved not prunable, rather than guessing.

The result is a list of :class:`~sigdl_core.interfaces.ChannelGroup` in model order, named
by ``state_dict`` keys, that :mod:`sigdl_compress_prune.structured` thins and
:meth:`TorchFramework.set_weights` writes back with the new shapes.
"""

from __future__ import annotations

import builtins
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from sigdl_core.errors import InvalidValueError, UnsupportedModelError
from sigdl_core.interfaces import ChannelGroup, ChannelSlice
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

__all__ = ["channel_groups"]

#: Modules that leave every channel where it is.
_PASSTHROUGH_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.Softplus,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
    nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d, nn.ZeroPad2d,
)
# nn.PReLU with one parameter per channel would be a follower; PReLU() has a single one.

#: Functions that leave every channel where it is (their first argument is the tensor).
_PASSTHROUGH_FUNCTIONS: frozenset[Any] = frozenset({
    torch.relu, torch.relu_, F.relu, F.relu_, F.relu6, F.leaky_relu, F.elu, F.selu, F.celu,
    F.gelu, F.silu, F.mish, F.hardtanh, F.hardswish, F.hardsigmoid, torch.sigmoid,
    F.sigmoid, torch.tanh, F.tanh, F.softplus, torch.clamp, torch.clip,
    F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout,
    F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
    F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d,
    F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d,
    F.interpolate, F.pad,
})

_PASSTHROUGH_METHODS: frozenset[str] = frozenset({
    "relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "clamp", "clamp_", "clip",
    "contiguous", "clone", "detach", "float", "to", "type_as",
})

_BINARY_FUNCTIONS: frozenset[Any] = frozenset({
    operator.add, operator.iadd, operator.sub, operator.isub, operator.mul, operator.imul,
    operator.truediv, operator.itruediv, torch.add, torch.sub, torch.mul, torch.div,
})
_BINARY_METHODS: frozenset[str] = frozenset({
    "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_",
})
_CAT_FUNCTIONS: frozenset[Any] = frozenset({torch.cat, torch.concat, torch.concatenate})
_REDUCE_METHODS: frozenset[str] = frozenset({"mean", "sum", "amax", "amin"})
_REDUCE_FUNCTIONS: frozenset[Any] = frozenset({torch.mean, torch.sum, torch.amax, torch.amin})
_SHAPE_ONLY_METHODS: frozenset[str] = frozenset({"size", "dim"})
_RESHAPE_METHODS: frozenset[str] = frozenset({"view", "reshape", "flatten"})


@dataclass(frozen=True)
class _Segment:
    """``size`` channels of dimension 1, each ``span`` entries wide, of group ``group``."""

    group: int | None
    size: int
    span: int = 1


_Layout = tuple[_Segment, ...]


@dataclass
class _Group:
    size: int
    producers: list[ChannelSlice] = field(default_factory=list)
    followers: list[ChannelSlice] = field(default_factory=list)
    consumers: list[ChannelSlice] = field(default_factory=list)
    prunable: bool = True
    order: int = 0
    why_fixed: list[str] = field(default_factory=list)


class _GraphWalk:
    """Follows channel layouts through a shape-propagated fx graph (see the module docstring)."""

    def __init__(self, gm: torch.fx.GraphModule) -> None:
        self.gm = gm
        self.groups: list[_Group] = []
        self.parent: list[int] = []
        self.layouts: dict[torch.fx.Node, _Layout | None] = {}
        self.module_outputs: dict[str, _Layout] = {}

    # ------------------------------------------------------------------ groups

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def new_group(self, size: int, producers: list[ChannelSlice], prunable: bool = True) -> int:
        self.groups.append(_Group(size=size, producers=producers, prunable=prunable,
                                  order=len(self.groups)))
        self.parent.append(len(self.parent))
        return len(self.groups) - 1

    def union(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a == b:
            return
        if self.groups[a].order > self.groups[b].order:
            a, b = b, a
        ga, gb = self.groups[a], self.groups[b]
        ga.producers += gb.producers
        ga.followers += gb.followers
        ga.consumers += gb.consumers
        ga.prunable = ga.prunable and gb.prunable
        ga.why_fixed += gb.why_fixed
        self.parent[b] = a

    def fix(self, layout: _Layout | None, why: str) -> None:
        """Marks every group in ``layout`` as not prunable."""
        for seg in layout or ():
            if seg.group is not None:
                group = self.groups[self.find(seg.group)]
                group.prunable = False
                group.why_fixed.append(why)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def shape(node: Any) -> tuple[int, ...] | None:
        if not isinstance(node, torch.fx.Node):
            return None
        meta = node.meta.get("tensor_meta")
        shape = getattr(meta, "shape", None)
        return tuple(int(d) for d in shape) if shape is not None else None

    def layout_of(self, node: Any) -> _Layout | None:
        return self.layouts.get(node) if isinstance(node, torch.fx.Node) else None

    def untracked(self, node: torch.fx.Node) -> _Layout | None:
        """A layout with no group, for a tensor output with a channel axis."""
        shape = self.shape(node)
        if shape is None or len(shape) < 2:
            return None
        return (_Segment(None, shape[1], 1),)

    @staticmethod
    def width(layout: _Layout) -> int:
        return sum(seg.size * seg.span for seg in layout)

    def input_nodes(self, node: torch.fx.Node) -> list[torch.fx.Node]:
        found: list[torch.fx.Node] = []
        torch.fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(n))
        return found

    def unknown(self, node: torch.fx.Node, why: str) -> _Layout | None:
        """An operation we do not model: its inputs' groups become unprunable."""
        for source in self.input_nodes(node):
            self.fix(self.layout_of(source), why)
        return self.untracked(node)

    def passthrough(self, node: torch.fx.Node, source: Any) -> _Layout | None:
        layout = self.layout_of(source)
        shape, in_shape = self.shape(node), self.shape(source)
        if layout is None or shape is None or in_shape is None:
            return self.unknown(node, f"'{node.name}' changes the tensor")
        if len(shape) < 2 or shape[1] != in_shape[1]:
            return self.unknown(node, f"'{node.name}' changes the channel axis")
        return layout

    def place(self, layout: _Layout) -> list[tuple[_Segment, int]]:
        """Each segment with its offset along the channel axis."""
        placed, offset = [], 0
        for seg in layout:
            placed.append((seg, offset))
            offset += seg.size * seg.span
        return placed

    # ------------------------------------------------------------------ layers

    def conv(self, node: torch.fx.Node, m: nn.Module) -> _Layout | None:
        name = str(node.target)
        layout = self.layout_of(node.args[0])
        if name in self.module_outputs:  # a module used twice: its channels are shared
            self.fix(layout, f"'{name}' is called more than once")
            self.fix(self.module_outputs[name], f"'{name}' is called more than once")
            return self.module_outputs[name]
        depthwise = m.groups > 1 and m.groups == m.in_channels == m.out_channels
        if depthwise and layout is not None and all(seg.span == 1 for seg in layout):
            for seg, offset in self.place(layout):
                if seg.group is None:
                    continue
                group = self.groups[self.find(seg.group)]
                group.followers.append(ChannelSlice(f"{name}.weight", 0, offset, 1))
                if m.bias is not None:
                    group.followers.append(ChannelSlice(f"{name}.bias", 0, offset, 1))
            self.module_outputs[name] = layout
            return layout
        producers = [ChannelSlice(f"{name}.weight", 0)]
        if m.bias is not None:
            producers.append(ChannelSlice(f"{name}.bias", 0))
        if m.groups != 1 or layout is None or any(seg.span != 1 for seg in layout):
            # grouped (not depthwise) convolution: input and output channels are tied in
            # blocks we do not model
            self.fix(layout, f"'{name}' is a grouped convolution")
            out = self.new_group(m.out_channels, producers, prunable=False)
            self.groups[out].why_fixed.append(f"'{name}' is a grouped convolution")
        else:
            self.consume(layout, f"{name}.weight")
            out = self.new_group(m.out_channels, producers)
        result = (_Segment(out, m.out_channels, 1),)
        self.module_outputs[name] = result
        return result

    def consume(self, layout: _Layout, weight: str) -> None:
        for seg, offset in self.place(layout):
            if seg.group is not None:
                self.groups[self.find(seg.group)].consumers.append(
                    ChannelSlice(weight, 1, offset, seg.span))

    def linear(self, node: torch.fx.Node, m: nn.Linear) -> _Layout | None:
        name = str(node.target)
        layout = self.layout_of(node.args[0])
        in_shape = self.shape(node.args[0])
        if name in self.module_outputs:
            self.fix(layout, f"'{name}' is called more than once")
            self.fix(self.module_outputs[name], f"'{name}' is called more than once")
            return self.module_outputs[name]
        if in_shape is None or len(in_shape) != 2 or layout is None:
            return self.unknown(node, f"'{name}' is applied to a tensor of shape {in_shape}")
        self.consume(layout, f"{name}.weight")
        producers = [ChannelSlice(f"{name}.weight", 0)]
        if m.bias is not None:
            producers.append(ChannelSlice(f"{name}.bias", 0))
        out = self.new_group(m.out_features, producers)
        result = (_Segment(out, m.out_features, 1),)
        self.module_outputs[name] = result
        return result

    def batch_norm(self, node: torch.fx.Node, m: nn.modules.batchnorm._BatchNorm) -> _Layout | None:
        name = str(node.target)
        layout = self.passthrough(node, node.args[0])
        if name in self.module_outputs:
            self.fix(layout, f"'{name}' is called more than once")
            return layout
        arrays = [p for p in ("weight", "bias") if getattr(m, p, None) is not None]
        arrays += [b for b in ("running_mean", "running_var") if getattr(m, b, None) is not None]
        for seg, offset in self.place(layout or ()):
            if seg.group is None:
                continue
            group = self.groups[self.find(seg.group)]
            for array in arrays:
                group.followers.append(ChannelSlice(f"{name}.{array}", 0, offset, seg.span))
        self.module_outputs[name] = layout or ()
        return layout

    # ------------------------------------------------------------------ shape changes

    def reshape(self, node: torch.fx.Node, source: Any) -> _Layout | None:
        """A flatten (to N×F) multiplies every span by the spatial size; anything else that
        changes the shape is unknown."""
        layout = self.layout_of(source)
        shape, in_shape = self.shape(node), self.shape(source)
        if layout is None or shape is None or in_shape is None:
            return self.unknown(node, f"'{node.name}' reshapes a tensor")
        if shape == in_shape:
            return layout
        if (len(in_shape) >= 2 and len(shape) == 2 and shape[0] == in_shape[0]
                and shape[1] == math.prod(in_shape[1:])):
            spatial = math.prod(in_shape[2:])
            return tuple(_Segment(seg.group, seg.size, seg.span * spatial) for seg in layout)
        return self.unknown(node, f"'{node.name}' reshapes {in_shape} to {shape}")

    def concatenate(self, node: torch.fx.Node) -> _Layout | None:
        tensors = node.args[0] if node.args else node.kwargs.get("tensors")
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        shape = self.shape(node)
        if shape is None or not isinstance(tensors, (list, tuple)) or not isinstance(dim, int):
            return self.unknown(node, f"'{node.name}' concatenates in a way not modelled")
        if dim < 0:
            dim += len(shape)
        layouts = [self.layout_of(t) for t in tensors]
        if dim != 1 or any(layout is None for layout in layouts):
            return self.unknown(node, f"'{node.name}' concatenates along dimension {dim}")
        return tuple(seg for layout in layouts for seg in layout)  # type: ignore[union-attr]

    def reduce(self, node: torch.fx.Node, source: Any) -> _Layout | None:
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        in_shape = self.shape(source)
        if dims is None or in_shape is None:
            return self.unknown(node, f"'{node.name}' reduces over every axis")
        dims = [dims] if isinstance(dims, int) else list(dims)
        if not all(isinstance(d, int) for d in dims):
            return self.unknown(node, f"'{node.name}' reduces over computed axes")
        dims = [d + len(in_shape) if d < 0 else d for d in dims]
        if 0 in dims or 1 in dims:
            return self.unknown(node, f"'{node.name}' reduces over the channel axis")
        layout = self.layout_of(source)
        if layout is None or any(seg.span != 1 for seg in layout):
            return self.unknown(node, f"'{node.name}' reduces a flattened tensor")
        return layout

    def binary(self, node: torch.fx.Node) -> _Layout | None:
        operands = [a for a in node.args[:2] if isinstance(a, torch.fx.Node)]
        operands += [v for k, v in node.kwargs.items() if k == "other" and isinstance(v, torch.fx.Node)]
        shape = self.shape(node)
        tensors = [a for a in operands if self.shape(a) is not None]
        if shape is None:
            return self.unknown(node, f"'{node.name}' is not a tensor operation")
        if not tensors:
            return self.untracked(node)
        carrying, broadcast = [], []
        for a in tensors:
            a_shape = self.shape(a)
            if len(a_shape) == len(shape) and len(shape) >= 2 and a_shape[1] == shape[1]:
                carrying.append(a)
            else:
                broadcast.append(a)
        for a in broadcast:  # a tensor broadcast over the channels ties nothing, but is mixed in
            self.fix(self.layout_of(a), f"'{node.name}' broadcasts it over other channels")
        if not carrying:
            return self.untracked(node)
        layouts = [self.layout_of(a) for a in carrying]
        if any(layout is None for layout in layouts):
            return self.unknown(node, f"'{node.name}' mixes in untracked channels")
        first = layouts[0]
        for other in layouts[1:]:
            if [(s.size, s.span) for s in other] != [(s.size, s.span) for s in first]:
                return self.unknown(node, f"'{node.name}' adds tensors laid out differently")
            for a, b in zip(first, other):
                if a.group is None or b.group is None:
                    if a.group is not None or b.group is not None:
                        self.fix((a, b), f"'{node.name}' adds them to channels of no layer")
                    continue
                self.union(a.group, b.group)
        return first

    # ------------------------------------------------------------------ the walk

    def visit(self, node: torch.fx.Node) -> _Layout | None:
        if node.op == "placeholder" or node.op == "get_attr":
            return self.untracked(node)
        if node.op == "output":
            for source in self.input_nodes(node):
                self.fix(self.layout_of(source), "it is the model's output")
            return None
        first = node.args[0] if node.args else None
        if node.op == "call_module":
            m = self.gm.get_submodule(str(node.target))
            if isinstance(m, nn.modules.conv._ConvNd) and not m.transposed:
                return self.conv(node, m)
            if isinstance(m, nn.Linear):
                return self.linear(node, m)
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                return self.batch_norm(node, m)
            if isinstance(m, nn.PReLU) and m.num_parameters > 1:
                return self.unknown(node, f"'{node.target}' has one parameter per channel")
            if isinstance(m, _PASSTHROUGH_MODULES):
                return self.passthrough(node, first)
            if isinstance(m, nn.Flatten):
                return self.reshape(node, first)
            return self.unknown(node, f"module '{node.target}' ({type(m).__name__}) is not modelled")
        if node.op == "call_function":
            target = node.target
            if target in (builtins.getattr, getattr) or self.shape(node) is None and all(
                self.shape(a) is None for a in self.input_nodes(node)
            ):
                return None  # size arithmetic, not tensors
            if target in _PASSTHROUGH_FUNCTIONS:
                return self.passthrough(node, first)
            if target is torch.flatten:
                return self.reshape(node, first)
            if target in _CAT_FUNCTIONS:
                return self.concatenate(node)
            if target in _BINARY_FUNCTIONS:
                return self.binary(node)
            if target in _REDUCE_FUNCTIONS:
                return self.reduce(node, first)
            name = getattr(target, "__name__", str(target))
            return self.unknown(node, f"function '{name}' is not modelled")
        if node.op == "call_method":
            method = str(node.target)
            if method in _SHAPE_ONLY_METHODS or self.shape(node) is None and self.shape(first) is None:
                return None
            if method in _PASSTHROUGH_METHODS:
                return self.passthrough(node, first)
            if method in _RESHAPE_METHODS:
                return self.reshape(node, first)
            if method in _BINARY_METHODS:
                return self.binary(node)
            if method in _REDUCE_METHODS:
                return self.reduce(node, first)
            return self.unknown(node, f"method '.{method}()' is not modelled")
        return self.unknown(node, f"graph node '{node.name}' ({node.op}) is not modelled")

    def run(self) -> list[ChannelGroup]:
        for node in self.gm.graph.nodes:
            self.layouts[node] = self.visit(node)
        roots = sorted({self.find(g) for g in range(len(self.groups))},
                       key=lambda g: self.groups[g].order)
        return [
            ChannelGroup(
                size=self.groups[g].size,
                producers=tuple(_unique(self.groups[g].producers)),
                followers=tuple(_unique(self.groups[g].followers)),
                consumers=tuple(_unique(self.groups[g].consumers)),
                prunable=self.groups[g].prunable,
            )
            for g in roots
        ]


def _unique(slices: list[ChannelSlice]) -> list[ChannelSlice]:
    return list(dict.fromkeys(slices))


def channel_groups(module: nn.Module, input_shape: Sequence[int]) -> list[ChannelGroup]:
    """The channel groups of ``module`` for inputs of shape ``input_shape`` (no batch axis).

    Raises :class:`~sigdl_core.errors.UnsupportedModelError` where :mod:`torch.fx` cannot
    trace the model (data-dependent control flow, say) or the model rejects the input shape.
    """
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise InvalidValueError(f"input shape {input_shape!r} is not a list of whole numbers",
                                "give it without the batch axis, e.g. (3, 32, 32)") from None
    try:
        gm = torch.fx.symbolic_trace(module)
    except Exception as exc:  # noqa: BLE001 - fx raises many kinds; all mean "cannot trace"
        raise UnsupportedModelError(
            f"cannot trace the graph of {type(module).__name__} for structured pruning: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            "use unstructured (magnitude) pruning for this model, or remove data-dependent "
            "control flow from its forward()",
        ) from None
    reference = next(iter(module.parameters()), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else torch.float32
    modes = {m: m.training for m in module.modules()}
    try:
        module.eval()
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros((1, *shape), dtype=dtype, device=device))
    except Exception as exc:  # noqa: BLE001 - the model's own error on this input
        raise UnsupportedModelError(
            f"{type(module).__name__} does not run on an input of shape {shape}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            "give the input shape the model was built for",
        ) from None
    finally:
        for m, training in modes.items():
            m.train(training)
    return _GraphWalk(gm).run()
