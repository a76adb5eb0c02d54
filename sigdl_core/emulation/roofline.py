"""A roofline latency model of a target, and the power and energy estimates built on it.

The roofline (Williams, Waterman & Patterson, "Roofline: an insightful visual performance
model for multicore architectures", CACM 52(4), 2009) bounds the time of a kernel by its
compute and its memory traffic. Per node of the cost model
(:mod:`sigdl_core.emulation.cost`), at batch ``B``::

    compute_s  = B · flops / (peak[fmt] · efficiency[op class] · occupancy)
    memory_s   = (weight_bytes + B · activation_bytes) / bandwidth
    node_s     = max(compute_s, memory_s) + per_node_overhead_s
    latency_s  = Σ node_s + per_inference_overhead_s        (for one call on B samples)

* ``peak[fmt]`` is the target's peak in FLOP/s for the node's number format (a MAC counts
  two), from :attr:`TargetSpec.peak_ops`; a format the target lacks runs at the nearest
  one it has (``int8`` → ``int16`` → ``fp16`` → ``fp32``), with a warning.
* ``efficiency[op class]`` is the fraction of peak a target's libraries reach on that kind
  of operator (dense conv, depthwise, GEMM, pooling …); targets set them, with reasons.
* ``occupancy`` (off unless a target sets ``occupancy_half_outputs``) models a parallel
  machine that needs many independent outputs to keep its lanes busy:
  ``occupancy = outputs / (outputs + occupancy_half_outputs)``, a saturating curve that is
  ½ when a layer has ``occupancy_half_outputs`` output elements (Little's law: a GPU must
  hold enough threads in flight to hide its latency). It is what makes small late layers
  and batch 1 slow on a GPU, and batch size pay off.
* Weights are read once per call and activations once per sample, so at larger batches
  the weight traffic is amortised, per-call overheads too, and throughput rises with the
  batch until every node is compute bound.
* Epilogue nodes (batch norm, ReLU, a bias add) that a target fuses into the preceding
  Conv/Gemm (``fuse_epilogues``, as TensorRT, OpenVINO and TIDL do) cost nothing; ``view``
  nodes (Reshape, Flatten) and ``quant`` nodes (Q/DQ pairs fused into int8 kernels) and
  constant-folded nodes cost nothing either.

Power (:func:`estimate_power`) is ``P = idle + (TDP − idle) · utilisation``, and energy per
inference (:func:`energy_per_inference_mj`) is ``P · latency``. Both are **estimates**: a
linear interpolation between datasheet idle and TDP figures, not a measurement of the board.

This module needs plain Python only (and the cost model).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .cost import FORMAT_BYTES, ModelCost, NodeCost

if TYPE_CHECKING:  # pragma: no cover
    from ..interfaces import TargetSpec

__all__ = [
    "DEFAULT_BATCH_SIZES",
    "Machine",
    "NodeTime",
    "RooflineEstimate",
    "batch_sweep",
    "best_batch",
    "bytes_per_element",
    "describe_machine",
    "energy_per_inference_mj",
    "estimate_latency",
    "estimate_power",
    "machine_from_target",
    "roofline_utilisation",
]

#: Batch sizes tried when looking for the best throughput.
DEFAULT_BATCH_SIZES: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)

#: Where an op class without its own efficiency looks next.
_EFFICIENCY_FALLBACK: dict[str, str] = {
    "grouped": "conv",
    "depthwise": "grouped",
    "gemm": "conv",
    "activation": "elementwise",
    "norm": "elementwise",
    "softmax": "elementwise",
    "reduce": "elementwise",
    "pool": "elementwise",
    "data": "elementwise",
    "fft": "elementwise",
}

#: The order in which a format the target lacks falls back to one it has.
_FORMAT_FALLBACK: dict[str, tuple[str, ...]] = {
    "int8": ("int16", "fp16", "fp32"),
    "int16": ("int8", "fp16", "fp32"),
    "fp16": ("bf16", "fp32"),
    "bf16": ("fp16", "fp32"),
    "fp32": ("fp16", "int16", "int8"),
    "fp64": ("fp32",),
    "int32": ("fp32", "int16"),
    "int64": ("fp32", "int16"),
    "bool": ("int8", "fp32"),
}


@dataclass(frozen=True)
class Machine:
    """A target as the roofline sees it; every constant should carry its reason.

    :param name: the target's name (for messages).
    :param peak_flops: peak FLOP/s per number format (a MAC is two FLOPs).
    :param bandwidth: attainable memory bandwidth in bytes/s.
    :param efficiency: fraction of peak reached per op class (see
        :data:`~sigdl_core.emulation.cost.OP_CLASSES`); ``"default"`` covers the rest, and
        missing classes fall back (depthwise → grouped → conv; activation → elementwise …).
    :param per_node_overhead_s: fixed time per executed node (kernel launch, pipeline
        fill and drain).
    :param per_inference_overhead_s: fixed time per call (input/output copies,
        synchronisation, runtime dispatch).
    :param fuse_epilogues: whether BN/ReLU/bias nodes fold into the preceding Conv/Gemm.
    :param occupancy_half_outputs: output elements at which a node reaches half of its
        efficiency (0 turns the occupancy curve off).
    :param free_op_classes: op classes that cost nothing (views, fused Q/DQ).
    :param format_efficiency: an extra factor per number format (e.g. a GPU whose FP16
        path reaches a smaller fraction of its doubled peak).
    :param winograd_speedup: the effective speed-up of dense 3×3 stride-1 convolutions
        whose library uses Winograd's minimal filtering (Lavin & Gray, "Fast algorithms for
        convolutional neural networks", CVPR 2016: F(2×2, 3×3) needs 2.25× fewer
        multiplies; transforms eat part of it). 1.0 where the library does not.
    """

    name: str
    peak_flops: Mapping[str, float]
    bandwidth: float
    efficiency: Mapping[str, float] = field(default_factory=dict)
    per_node_overhead_s: float = 0.0
    per_inference_overhead_s: float = 0.0
    fuse_epilogues: bool = True
    occupancy_half_outputs: float = 0.0
    free_op_classes: frozenset[str] = frozenset({"view", "quant"})
    format_efficiency: Mapping[str, float] = field(default_factory=dict)
    winograd_speedup: float = 1.0

    def __post_init__(self) -> None:
        if self.winograd_speedup < 1.0:
            raise ValueError(f"machine '{self.name}': winograd_speedup must be >= 1")
        if not self.peak_flops or any(v <= 0 for v in self.peak_flops.values()):
            raise ValueError(f"machine '{self.name}': peak_flops must be positive numbers")
        if self.bandwidth <= 0:
            raise ValueError(f"machine '{self.name}': bandwidth must be > 0")
        for k, v in list(self.efficiency.items()) + list(self.format_efficiency.items()):
            if not 0 < v <= 1:
                raise ValueError(f"machine '{self.name}': efficiency '{k}'={v} must be in (0, 1]")

    def efficiency_of(self, op_class: str, fmt: str | None = None) -> float:
        """The efficiency of an op class, following the fallback chain to ``default``.

        A key ``"<class>@<format>"`` (``"depthwise@fp16"``) wins over ``"<class>"`` for
        nodes computing in that format: a library may lack a fast path for one format.
        """
        cls: str | None = op_class
        while cls is not None:
            if fmt is not None and f"{cls}@{fmt}" in self.efficiency:
                return float(self.efficiency[f"{cls}@{fmt}"])
            if cls in self.efficiency:
                return float(self.efficiency[cls])
            cls = _EFFICIENCY_FALLBACK.get(cls)
        return float(self.efficiency.get("default", 1.0))

    def compute_format(self, fmt: str) -> str:
        """The format a node of format ``fmt`` really computes in on this machine."""
        if fmt in self.peak_flops:
            return fmt
        for alt in _FORMAT_FALLBACK.get(fmt, ()):
            if alt in self.peak_flops:
                return alt
        return max(self.peak_flops, key=lambda k: self.peak_flops[k])

    def scaled(self, compute: float = 1.0, bandwidth: float = 1.0, name: str | None = None) -> Machine:
        """This machine with its peaks times ``compute`` and bandwidth times ``bandwidth``
        (a lower clock in a power mode), per-node overheads divided by ``compute``."""
        from dataclasses import replace

        return replace(
            self,
            name=name or self.name,
            peak_flops={k: v * compute for k, v in self.peak_flops.items()},
            bandwidth=self.bandwidth * bandwidth,
            per_node_overhead_s=self.per_node_overhead_s / compute,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "peak_flops": dict(self.peak_flops),
            "bandwidth": self.bandwidth,
            "efficiency": dict(self.efficiency),
            "per_node_overhead_s": self.per_node_overhead_s,
            "per_inference_overhead_s": self.per_inference_overhead_s,
            "fuse_epilogues": self.fuse_epilogues,
            "occupancy_half_outputs": self.occupancy_half_outputs,
            "free_op_classes": sorted(self.free_op_classes),
            "format_efficiency": dict(self.format_efficiency),
            "winograd_speedup": self.winograd_speedup,
        }


@dataclass(frozen=True)
class NodeTime:
    """One node's share of an estimate; ``bound`` is compute, memory, overhead or free."""

    name: str
    op_type: str
    op_class: str
    fmt: str
    compute_s: float
    memory_s: float
    overhead_s: float
    time_s: float
    bound: str


@dataclass(frozen=True)
class RooflineEstimate:
    """The roofline's verdict on one model at one batch size.

    ``latency_s`` is one call on ``batch_size`` samples; ``fps`` is samples per second.
    ``busy_s`` is the time the machine is computing or moving data (overheads excluded).
    """

    machine: str
    batch_size: int
    latency_s: float
    compute_s: float
    memory_s: float
    overhead_s: float
    busy_s: float
    flops: int
    bytes: int
    nodes: tuple[NodeTime, ...]
    warnings: tuple[str, ...] = ()

    @property
    def fps(self) -> float:
        return self.batch_size / self.latency_s if self.latency_s > 0 else float("inf")

    @property
    def latency_ms(self) -> float:
        return self.latency_s * 1e3

    def bound_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for n in self.nodes:
            out[n.bound] = out.get(n.bound, 0) + 1
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "batch_size": self.batch_size,
            "latency_ms": self.latency_s * 1e3,
            "fps": self.fps,
            "compute_ms": self.compute_s * 1e3,
            "memory_ms": self.memory_s * 1e3,
            "overhead_ms": self.overhead_s * 1e3,
            "busy_ms": self.busy_s * 1e3,
            "flops": self.flops,
            "bytes": self.bytes,
            "bound": self.bound_counts(),
            "utilisation": roofline_utilisation(self),
            "warnings": list(self.warnings),
        }


def _outputs(node: NodeCost) -> int:
    total = 0
    for s in node.output_shapes:
        if s:
            n = 1
            for d in s:
                n *= int(d)
            total += n
    return total


def _winograd_eligible(node: NodeCost) -> bool:
    """A dense 3×3 stride-1 convolution: what cuDNN/TensorRT run with Winograd."""
    return (node.op_class == "conv" and node.group == 1 and node.kernel_shape == (3, 3)
            and all(s == 1 for s in node.strides))


def estimate_latency(
    cost: ModelCost, machine: Machine, batch_size: int | None = None
) -> RooflineEstimate:
    """The roofline latency of ``cost`` on ``machine`` at ``batch_size``.

    :param cost: the model's cost (:func:`~sigdl_core.emulation.cost.analyze_model`).
    :param machine: the target's roofline constants.
    :param batch_size: samples per call (default: the cost's own batch).
    :return: a :class:`RooflineEstimate` with per-node times.
    """
    if batch_size is not None:
        cost = cost.for_batch(batch_size)
    fused_into = {n.name for n in cost.nodes}
    warnings: list[str] = []
    missing_fmt: set[str] = set()
    times: list[NodeTime] = []
    total_c = total_m = total_o = busy = 0.0
    flops = nbytes = 0
    for node in cost.nodes:
        free = node.constant or node.op_class in machine.free_op_classes
        fused = machine.fuse_epilogues and node.fuses_into is not None and node.fuses_into in fused_into
        if free or fused:
            times.append(NodeTime(node.name, node.op_type, node.op_class, node.fmt, 0.0, 0.0, 0.0,
                                  0.0, "fused" if fused else "free"))
            continue
        fmt = machine.compute_format(node.fmt)
        if fmt != node.fmt:
            missing_fmt.add(f"{node.fmt}→{fmt}")
        eff = machine.efficiency_of(node.op_class, fmt) * float(machine.format_efficiency.get(fmt, 1.0))
        if machine.winograd_speedup > 1.0 and _winograd_eligible(node):
            eff *= machine.winograd_speedup
        if machine.occupancy_half_outputs > 0:
            outs = _outputs(node)
            eff *= outs / (outs + machine.occupancy_half_outputs) if outs else 1.0
        compute = node.flops / (machine.peak_flops[fmt] * eff) if node.flops else 0.0
        # the next node reads what a fused epilogue would have written: only its producer's
        # traffic counts, which is the same size
        moved = node.bytes
        memory = moved / machine.bandwidth
        overhead = machine.per_node_overhead_s
        t = max(compute, memory) + overhead
        bound = "compute" if compute >= memory else "memory"
        if overhead > max(compute, memory):
            bound = "overhead"
        times.append(NodeTime(node.name, node.op_type, node.op_class, fmt, compute, memory,
                              overhead, t, bound))
        total_c += compute
        total_m += memory
        total_o += overhead
        busy += max(compute, memory)
        flops += node.flops
        nbytes += moved
    if missing_fmt:
        warnings.append(
            f"{machine.name} has no native path for " + ", ".join(sorted(missing_fmt))
            + "; those nodes were costed in the fallback format"
        )
    if cost.warnings:
        warnings.extend(cost.warnings)
    latency = sum(t.time_s for t in times) + machine.per_inference_overhead_s
    return RooflineEstimate(
        machine=machine.name, batch_size=cost.batch_size, latency_s=latency, compute_s=total_c,
        memory_s=total_m, overhead_s=total_o + machine.per_inference_overhead_s, busy_s=busy,
        flops=int(flops), bytes=int(nbytes), nodes=tuple(times), warnings=tuple(warnings),
    )


def batch_sweep(
    cost: ModelCost,
    machine: Machine,
    batch_sizes: Iterable[int] = DEFAULT_BATCH_SIZES,
    memory_limit_bytes: int | None = None,
) -> list[RooflineEstimate]:
    """Estimates at each batch size whose weights plus live activations fit the memory."""
    out = []
    for b in batch_sizes:
        c = cost.for_batch(b)
        if memory_limit_bytes is not None and c.weight_bytes + c.peak_activation_bytes > memory_limit_bytes:
            continue
        out.append(estimate_latency(c, machine))
    return out


def best_batch(
    cost: ModelCost,
    machine: Machine,
    batch_sizes: Iterable[int] = DEFAULT_BATCH_SIZES,
    memory_limit_bytes: int | None = None,
) -> RooflineEstimate:
    """The estimate with the highest throughput among ``batch_sizes`` (batch 1 if none fit)."""
    sweep = batch_sweep(cost, machine, batch_sizes, memory_limit_bytes)
    if not sweep:
        return estimate_latency(cost.for_batch(1), machine)
    return max(sweep, key=lambda e: (e.fps, -e.batch_size))


def roofline_utilisation(estimate: RooflineEstimate) -> float:
    """The busy fraction of a call: time computing or moving data over the whole latency.

    Overheads (launches, dispatch) count as idle. In (0, 1].
    """
    if estimate.latency_s <= 0:
        return 0.0
    return max(0.0, min(1.0, estimate.busy_s / estimate.latency_s))


def estimate_power(idle_w: float, tdp_w: float, utilisation: float) -> float:
    """An **estimate** of board power: ``idle + (TDP − idle) · utilisation``.

    :param idle_w: the datasheet (or measured-elsewhere) idle power.
    :param tdp_w: the thermal design power, taken as the power at full load.
    :param utilisation: the fraction of the compute units' capacity in use, in [0, 1].

    A linear model between two datasheet points; real boards differ with clocks, memory
    traffic and temperature. It is never a measurement.
    """
    if tdp_w < 0 or idle_w < 0:
        raise ValueError("power figures must be >= 0")
    u = max(0.0, min(1.0, float(utilisation)))
    return float(idle_w + (max(tdp_w, idle_w) - idle_w) * u)


def energy_per_inference_mj(power_w: float, latency_s: float, batch_size: int = 1) -> float:
    """An **estimate** of energy per inference in millijoules: ``P · latency / batch``."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    return float(power_w * latency_s / batch_size * 1e3)


def machine_from_target(
    target: TargetSpec,
    efficiency: Mapping[str, float] | None = None,
    **overrides: Any,
) -> Machine:
    """A :class:`Machine` from a target's datasheet (peak_ops, memory_bandwidth).

    Roofline constants may also sit in ``target.extra["roofline"]`` (a mapping of
    :class:`Machine` fields); ``efficiency`` and ``overrides`` win over both.
    """
    base: dict[str, Any] = dict(target.extra.get("roofline", {})) if target.extra else {}
    if efficiency is not None:
        base["efficiency"] = dict(efficiency)
    base.update(overrides)
    if "free_op_classes" in base and not isinstance(base["free_op_classes"], frozenset):
        base["free_op_classes"] = frozenset(base["free_op_classes"])
    return Machine(
        name=base.pop("name", target.name),
        peak_flops=dict(base.pop("peak_flops", target.peak_ops)),
        bandwidth=float(base.pop("bandwidth", target.memory_bandwidth)),
        **base,
    )


def bytes_per_element(fmt: str) -> int:
    """Bytes per element of a number format (``fp16`` → 2)."""
    return FORMAT_BYTES[fmt]


def describe_machine(machine: Machine, formats: Sequence[str] = ()) -> str:
    """One line naming the roofline's constants, for a report's provenance."""
    fmts = formats or tuple(machine.peak_flops)
    peaks = ", ".join(
        f"{f} {machine.peak_flops[machine.compute_format(f)] / 1e9:.0f} GFLOP/s" for f in fmts
    )
    effs = ", ".join(f"{k} {v:.2f}" for k, v in sorted(machine.efficiency.items()))
    text = (f"roofline of {machine.name}: peak {peaks}; bandwidth {machine.bandwidth / 1e9:.1f} GB/s; "
            f"efficiency {effs or '1.0'}; {machine.per_node_overhead_s * 1e6:.0f} µs per node + "
            f"{machine.per_inference_overhead_s * 1e3:.2f} ms per call")
    if machine.occupancy_half_outputs:
        text += f"; occupancy half at {machine.occupancy_half_outputs:.0f} outputs"
    return text
