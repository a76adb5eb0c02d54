"""The ARM latency model: the core's cost model and roofline, with ncnn's algorithm choices.

A multicore ARM CPU running ncnn spends its time as follows, and each term is one line of
:func:`arm_machine` or :func:`plan_nodes`:

* **Convolution algorithm.** ncnn runs a dense convolution as im2col + packed SGEMM (a 1×1
  stride-1 convolution is a GEMM with no im2col), or, for 3×3 stride-1 ones, as Winograd
  F(m, 3) (F(6, 3) in fp32, F(4, 3) in int8: (m+2)² multiplies per m² outputs instead of
  9 m²). :func:`plan_nodes` costs both for every eligible layer and keeps the faster, as
  ncnn's heuristics aim to. Each algorithm is costed as the passes ncnn runs, each a
  roofline node with its own overhead: im2col writes k²·Cin·Ho·Wo elements that the GEMM
  reads back; Winograd's input and output transforms move (m+2)²/m² times the activations
  (memory bound, so they scale with bandwidth, not cores) around a batched GEMM on
  pre-transformed weights ((m+2)²/9 times larger).
* **Efficiency per kernel** (fraction of the core's NEON peak): packed GEMM, Winograd's
  batched GEMMs, depthwise; separately for fp32 and int8 (int8 on ARMv8.0 is SMULL/SMLAL +
  SADALP, so its fraction of the 2× int8 peak is lower).
* **GEMM depth.** A GEMM's efficiency falls with a short reduction (K = k²·Cin/group taps):
  packing and loading the panels is not amortised, so the work counts as
  ``(K + gemm_half_depth) / K`` times its MACs (SqueezeNet's 16-channel squeezes).
* **Threads.** ncnn splits each layer over ``threads`` OpenMP threads with a static
  schedule, so the slowest core used sets the pace; the speed-up of ``t`` threads is
  ``1 + (t − 1) · parallel_efficiency`` (int8 kernels, bound by the one integer-multiply
  pipe rather than by the shared L2, have their own); a pass with few outputs splits badly:
  its speed-up is ``1 + (t − 1) · p · outputs / (outputs + parallel_half_outputs)``, never
  below one thread's; and each layer pays a fork/join barrier
  (``thread_sync_cycles``) when ``t`` > 1.
* **Memory bound.** Per layer, time is the larger of compute and DRAM traffic over the
  attainable bandwidth: ``min(bandwidth_all_cores, t · bandwidth_one_core)`` of the board's
  peak (one A72 core cannot saturate LPDDR4; four share it).
* **Caches.** A layer whose weights and activations fit in the cluster's shared L2 sends only
  ``l2_dram_fraction`` of its traffic to DRAM (the rest is served by the L2).
* **Per-layer overhead** (``layer_overhead_cycles``: ncnn's layer dispatch, blob
  allocation and packing) and a per-inference one (extractor creation, input copy).

Every constant is in :data:`CALIBRATION`, per core type, with how it was set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from sigdl_core.emulation import Machine, ModelCost, NodeCost, RooflineEstimate, estimate_latency
from sigdl_core.interfaces import TargetSpec

from .datasheet import CORES, Cluster, clusters_of

__all__ = ["ArmConstants", "CALIBRATION", "ArmPlan", "arm_machine", "plan_nodes",
           "predict", "WINOGRAD_TILE"]

#: Winograd output tile m of F(m, 3) per number format (ncnn: conv3x3s1_winograd63 in fp32,
#: conv3x3s1_winograd43_int8 in int8).
WINOGRAD_TILE: dict[str, int] = {"fp32": 6, "int8": 4}


@dataclass(frozen=True)
class ArmConstants:
    """One core type's constants under ncnn; see the module docstring for each term."""

    gemm_efficiency: float
    winograd_efficiency: float
    depthwise_efficiency: float
    int8_gemm_efficiency: float
    int8_winograd_efficiency: float
    int8_depthwise_efficiency: float
    other_efficiency: float
    layer_overhead_cycles: float
    thread_sync_cycles: float
    parallel_efficiency: float
    bandwidth_one_core: float
    bandwidth_all_cores: float
    inference_overhead_cycles: float
    l2_dram_fraction: float = 1.0
    gemm_half_depth: float = 0.0
    int8_parallel_efficiency: float = 0.0
    parallel_half_outputs: float = 0.0
    fitted_to: str = ""

    def to_dict(self) -> dict[str, float | str]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


#: The Cortex-A72 constants were fitted (least squares on log error, ``bench/arm_calibration.py
#: --fit``) to the 22 Raspberry Pi 4B (A72 @ 1.8 GHz) rows of ncnn's benchmark/README.md and to
#: nothing else. No other core has published rows the issue lets us fit to, so the A53, A57,
#: Denver 2 and ARM1176 use the A72's constants (the same ncnn kernels) with their own
#: datasheet peaks, widths, clocks and bandwidths: their predictions of other boards' ncnn
#: rows are held-out judgement (bench/results/arm_calibration.md), not a fit.
_A72 = ArmConstants(
    gemm_efficiency=0.9964,
    winograd_efficiency=0.6837,
    depthwise_efficiency=0.1923,
    int8_gemm_efficiency=0.6621,
    int8_winograd_efficiency=0.4339,
    int8_depthwise_efficiency=0.7439,
    other_efficiency=0.25,  # pooling, LRN, elementwise: not fitted (memory bound in practice)
    layer_overhead_cycles=99975.0,  # at the fit's bound of 1e5 cycles (56 µs at 1.8 GHz)
    thread_sync_cycles=99999.0,  # at the bound too: a fork/join per pass with > 1 thread
    parallel_efficiency=0.4791,
    bandwidth_one_core=0.3278,
    bandwidth_all_cores=0.4615,
    inference_overhead_cycles=1999367.0,  # at the bound of 2e6 cycles (1.1 ms)
    l2_dram_fraction=0.9387,
    gemm_half_depth=66.93,
    int8_parallel_efficiency=0.5993,
    parallel_half_outputs=38756.0,
    fitted_to="ncnn benchmark/README.md, Raspberry Pi 4B (A72 1.8 GHz) rows, fp32+int8, 1+4 threads",
)

CALIBRATION: dict[str, ArmConstants] = {
    "cortex-a72": _A72,
    "cortex-a57": replace(_A72, fitted_to="the Cortex-A72's constants (no A57 rows were fitted)"),
    "cortex-a53": replace(_A72, fitted_to="the Cortex-A72's constants (no A53 rows were fitted)"),
    "denver2": replace(_A72, fitted_to="the Cortex-A72's constants (no Denver 2 rows were fitted)"),
    "arm1176jzf-s": replace(_A72, fitted_to="the Cortex-A72's constants (no ARM1176 rows exist)"),
}


@dataclass(frozen=True)
class ArmPlan:
    """The cores a run uses, and the algorithm chosen per convolution."""

    threads: int
    clock_hz: float
    core: str
    clusters_used: tuple[tuple[str, int], ...]
    algorithms: Mapping[str, str]
    l2_bytes: int = 0


def _used_cores(target: TargetSpec, threads: int) -> tuple[list[tuple[Cluster, int]], Cluster]:
    """Threads go to the fastest cores first; the slowest core used sets the pace."""
    left, used = threads, []
    for c in clusters_of(target):
        take = min(left, c.count)
        if take:
            used.append((c, take))
            left -= take
    slowest = min((c for c, _ in used), key=lambda c: c.clock_hz * CORES[c.core].fp32_flops_per_cycle)
    return used, slowest


def arm_machine(target: TargetSpec, threads: int, clock_hz: float | None = None,
                constants: ArmConstants | None = None) -> tuple[Machine, ArmConstants, ArmPlan]:
    """The roofline machine of ``threads`` cores of ``target`` (at ``clock_hz``, or the
    datasheet's), and the constants used."""
    used, slowest = _used_cores(target, threads)
    core = CORES[slowest.core]
    k = constants or CALIBRATION[slowest.core]
    clock = float(clock_hz or slowest.clock_hz)
    speedup = 1.0 + (threads - 1) * k.parallel_efficiency
    speedup8 = 1.0 + (threads - 1) * (k.int8_parallel_efficiency or k.parallel_efficiency)
    peak = {"fp32": core.fp32_flops_per_cycle * clock * speedup,
            "int8": core.int8_ops_per_cycle * clock * speedup8}
    bw = target.memory_bandwidth * min(k.bandwidth_all_cores, threads * k.bandwidth_one_core)
    overhead = (k.layer_overhead_cycles + (k.thread_sync_cycles if threads > 1 else 0.0)) / clock
    machine = Machine(
        name=f"{target.name} x{threads} threads",
        peak_flops=peak,
        bandwidth=bw,
        efficiency={
            "conv": k.gemm_efficiency, "conv@int8": k.int8_gemm_efficiency,
            "winograd": k.winograd_efficiency, "winograd@int8": k.int8_winograd_efficiency,
            "depthwise": k.depthwise_efficiency, "depthwise@int8": k.int8_depthwise_efficiency,
            "gemm": k.gemm_efficiency, "gemm@int8": k.int8_gemm_efficiency,
            "default": k.other_efficiency,
        },
        per_node_overhead_s=overhead,
        per_inference_overhead_s=k.inference_overhead_cycles / clock,
        fuse_epilogues=True,
        free_op_classes=frozenset({"view", "quant"}),
    )
    plan = ArmPlan(threads, clock, slowest.core, tuple((c.core, n) for c, n in used), {},
                   l2_bytes=min(c.l2_bytes for c, _ in used))
    return machine, k, plan


def _elem_bytes(fmt: str) -> int:
    return 1 if fmt in ("int8", "uint8") else 2 if fmt in ("fp16", "bf16", "int16") else 4


def _winograd_eligible(node: NodeCost) -> bool:
    return (node.op_class in ("conv", "grouped") and node.kernel_shape == (3, 3)
            and all(s == 1 for s in node.strides))


def _depth(node: NodeCost) -> int:
    """The GEMM reduction length K of a conv (k²·Cin/group) = MACs / outputs."""
    out_shape = node.output_shapes[0] if node.output_shapes else None
    outs = 1
    for d in (out_shape or ()):
        outs *= int(d)
    return max(1, node.macs // max(1, outs))


def _deepen(node: NodeCost, half_depth: float, depth: int) -> NodeCost:
    if half_depth <= 0:
        return node
    f = (depth + half_depth) / depth
    return replace(node, flops=int(node.flops * f))


def _is_pointwise(node: NodeCost) -> bool:
    return bool(node.kernel_shape) and all(k == 1 for k in node.kernel_shape) and all(s == 1 for s in node.strides)


def _im2col(node: NodeCost) -> list[NodeCost]:
    """im2col + GEMM as ncnn runs them: a 1×1 stride-1 convolution is one GEMM pass; any
    other is an im2col pass (reads the input, writes the k²·Cin·Ho·Wo column buffer) and a
    GEMM pass that reads the columns."""
    if _is_pointwise(node):
        return [replace(node, op_class="conv")]
    out_shape = node.output_shapes[0] if node.output_shapes else None
    if not (out_shape and len(out_shape) == 4 and node.macs):
        return [replace(node, op_class="conv")]
    # the column buffer holds k²·Cin·Ho·Wo elements = MACs · group / Cout
    cols = node.macs * max(1, node.group) // max(1, int(out_shape[1])) * _elem_bytes(node.fmt)
    unfold = replace(node, name=f"{node.name}/im2col", op_class="data", macs=0, flops=0,
                     weight_bytes=0, output_bytes=cols, params=0, fuses_into=None)
    return [unfold, replace(node, op_class="conv", input_bytes=cols)]


def _winograd(node: NodeCost, m: int) -> list[NodeCost]:
    """Winograd F(m, 3) as three passes: the input transform (reads the input, writes
    (m+2)²/m² as many tiles), the batched GEMM on the pre-transformed weights ((m+2)²/9 times
    larger) with (m+2)² multiplies per m² outputs per input channel instead of 9 m², and the
    output transform."""
    tile = (m + 2) ** 2
    ratio = tile / (9.0 * m * m)
    expand = tile / float(m * m)
    tin, tout = int(node.input_bytes * expand), int(node.output_bytes * expand)
    into = replace(node, name=f"{node.name}/transform-in", op_class="data", macs=0, flops=0,
                   weight_bytes=0, output_bytes=tin, params=0, fuses_into=None)
    gemm = replace(node, op_class="winograd", flops=int(node.flops * ratio), macs=int(node.macs * ratio),
                   weight_bytes=int(node.weight_bytes * tile / 9.0), input_bytes=tin, output_bytes=tout)
    out = replace(node, name=f"{node.name}/transform-out", op_class="data", macs=0, flops=0,
                  weight_bytes=0, input_bytes=tout, params=0, fuses_into=None)
    return [into, gemm, out]


def _node_time(node: NodeCost, machine: Machine) -> float:
    fmt = machine.compute_format(node.fmt)
    eff = machine.efficiency_of(node.op_class, fmt)
    compute = node.flops / (machine.peak_flops[fmt] * eff) if node.flops else 0.0
    return max(compute, node.bytes / machine.bandwidth) + machine.per_node_overhead_s


def _l2_resident(node: NodeCost, l2_bytes: int, fraction: float) -> NodeCost:
    """A node whose whole working set fits in the L2 sends ``fraction`` of it to DRAM."""
    if l2_bytes <= 0 or fraction >= 1.0 or node.bytes > l2_bytes:
        return node
    return replace(node, weight_bytes=int(node.weight_bytes * fraction),
                   input_bytes=int(node.input_bytes * fraction),
                   output_bytes=int(node.output_bytes * fraction))


def plan_nodes(cost: ModelCost, machine: Machine, l2_bytes: int = 0,
               l2_dram_fraction: float = 1.0,
               gemm_half_depth: float = 0.0, threads: int = 1,
               parallel_efficiency: Mapping[str, float] | None = None,
               parallel_half_outputs: float = 0.0) -> tuple[ModelCost, dict[str, str]]:
    """The cost with each convolution rewritten into the passes ncnn would run, and the
    choice per layer (``gemm-1x1``, ``im2col-gemm``, ``winograd-f63`` …), the cheaper of
    im2col and Winograd where both apply; nodes that fit in the L2 (``l2_bytes``) send
    ``l2_dram_fraction`` of their traffic to DRAM."""
    def settle(passes: list[NodeCost], depth: int) -> list[NodeCost]:
        return [_split(_l2_resident(_deepen(p, gemm_half_depth, depth) if p.flops else p, l2_bytes,
                                    l2_dram_fraction)) for p in passes]

    def _split(node: NodeCost) -> NodeCost:
        """A pass with few outputs gains less from the extra threads: its speed-up is
        1 + (t − 1)·p·outputs/(outputs + half) instead of the machine's 1 + (t − 1)·p."""
        if threads <= 1 or parallel_half_outputs <= 0 or not node.flops:
            return node
        outs = 1
        for d in (node.output_shapes[0] if node.output_shapes and node.output_shapes[0] else ()):
            outs *= int(d)
        p = parallel_efficiency.get(machine.compute_format(node.fmt), 0.0)
        full = 1 + (threads - 1) * p
        mine = 1 + (threads - 1) * p * outs / (outs + parallel_half_outputs)
        return replace(node, flops=int(node.flops * full / mine))

    nodes, choice = [], {}
    for n in cost.nodes:
        if n.constant or n.op_class not in ("conv", "grouped"):
            nodes.append(_split(_l2_resident(n, l2_bytes, l2_dram_fraction)))
            continue
        depth = _depth(n)
        passes = settle(_im2col(n), depth)
        label = "gemm-1x1" if _is_pointwise(n) else "im2col-gemm"
        if _winograd_eligible(n):
            m = WINOGRAD_TILE.get(machine.compute_format(n.fmt), 4)
            wino = settle(_winograd(n, m), max(1, depth // 9))
            if sum(_node_time(p, machine) for p in wino) < sum(_node_time(p, machine) for p in passes):
                passes, label = wino, f"winograd-f{m}3"
        nodes.extend(passes)
        choice[n.name] = label
    return replace(cost, nodes=tuple(nodes)), choice


#: Operators ncnn runs in int8 (ARMv8.0: SMULL/SMLAL); the rest stay fp32.
_INT8_OPS = frozenset({"Conv", "Gemm", "MatMul"})
#: Epilogues fused into the int8 layer before them (requantization happens after them).
_EPILOGUE_OPS = frozenset({"Relu", "Clip", "BatchNormalization", "LeakyRelu"})


def int8_links(model) -> dict[str, tuple[bool, bool]]:
    """Per int8-capable node of an ONNX graph: (its input comes straight from another int8
    layer, its output goes only to int8 layers), looking through fused epilogues.

    ncnn keeps a blob in int8 only between int8 layers (it fuses dequantize → requantize);
    a blob that meets a pooling, concatenation, addition or the output stays fp32.
    """
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in graph.output}

    def source(tensor: str):
        node = producer.get(tensor)
        while node is not None and node.op_type in _EPILOGUE_OPS:
            node = producer.get(node.input[0])
        return node

    def sinks(tensor: str) -> list:
        out, todo = [], [tensor]
        while todo:
            t = todo.pop()
            if t in outputs:
                return []
            for c in consumers.get(t, []):
                if c.op_type in _EPILOGUE_OPS and len(consumers.get(t, [])) == 1:
                    todo.extend(c.output)
                else:
                    out.append(c)
        return out

    links = {}
    for n in graph.node:
        if n.op_type not in _INT8_OPS:
            continue
        data_in = next((i for i in n.input if i not in inits), None)
        src = source(data_in) if data_in else None
        dst = sinks(n.output[0])
        links[n.name] = (src is not None and src.op_type in _INT8_OPS,
                         bool(dst) and all(d.op_type in _INT8_OPS for d in dst))
    return links


def ncnn_int8(cost: ModelCost, links: Mapping[str, tuple[bool, bool]] | None = None) -> ModelCost:
    """An fp32 graph as ncnn's int8 inference runs it: convolutions and fully connected
    layers compute in int8 on int8 weights; a blob between two int8 layers is int8, any other
    stays fp32: an int8 layer fed fp32 quantizes its input in a pass of its own, and one
    whose output meets an fp32 layer writes it dequantized (fp32). Without ``links``
    (:func:`int8_links`) every blob is taken to stay fp32."""
    links = links or {}
    nodes = []
    for n in cost.nodes:
        if n.constant or n.fmt != "fp32" or n.op_class not in ("conv", "grouped", "depthwise", "gemm"):
            nodes.append(n)
            continue
        in8, out8 = links.get(n.name, (False, False))
        if not in8:
            nodes.append(replace(n, name=f"{n.name}/quantize", op_class="data", macs=0, flops=0, weight_bytes=0,
                                 output_bytes=n.input_bytes // 4, params=0, fuses_into=None))
        nodes.append(replace(n, fmt="int8", weight_bytes=n.weight_bytes // 4, input_bytes=n.input_bytes // 4,
                             output_bytes=n.output_bytes // 4 if out8 else n.output_bytes))
    int8 = sum(n.weight_bytes for n in nodes) / max(1, sum(n.weight_bytes for n in cost.nodes))
    return replace(cost, nodes=tuple(nodes), _weight_bytes_once=int(cost.weight_bytes * int8))


def predict(cost: ModelCost, target: TargetSpec, threads: int = 1, precision: str = "fp32",
            clock_hz: float | None = None, constants: ArmConstants | None = None,
            int8_blobs: Mapping[str, tuple[bool, bool]] | None = None,
            ) -> tuple[RooflineEstimate, ArmPlan, Machine]:
    """Batch-1 latency of a model's cost on ``threads`` cores of an ARM target.

    ``precision`` ``int8`` runs the fp32 graph as ncnn's int8 inference (:func:`ncnn_int8`,
    with ``int8_blobs`` from :func:`int8_links` saying which blobs stay int8); a QDQ
    model's cost is int8 already.
    """
    run = ncnn_int8(cost, int8_blobs) if precision == "int8" else cost
    machine, k, plan = arm_machine(target, threads, clock_hz, constants)
    par = {"fp32": k.parallel_efficiency, "int8": k.int8_parallel_efficiency or k.parallel_efficiency}
    planned, choice = plan_nodes(run, machine, plan.l2_bytes, k.l2_dram_fraction, k.gemm_half_depth,
                                 threads, par, k.parallel_half_outputs)
    est = estimate_latency(planned, machine, 1)
    return est, replace(plan, algorithms=choice), machine
