"""Latency of an int8 network on C66x cores: MAC counts, core count and memory traffic.

Per layer (a node of :func:`sigdl_core.emulation.analyze_model`'s cost model; batch norm
and ReLU count as merged into the convolution before them, as TIDL merges them), on one
core at clock ``f``::

    compute  = MACs / (8 · η[op class])  +  outputs · 0.25          cycles
    memory   = (weights + input + output bytes) / bandwidth(tier)    seconds
    layer    = max(compute / f, memory) + 20 µs

* **8 MACs per cycle** is the C66x's real-valued dot-product issue limit: two ``.M`` units
  each doing four 8×8 (or 16×16) multiplies with add per cycle (TMS320C6678 data manual,
  SPRS691, CorePac description). int8 is no faster than int16. The datasheet's 32 MAC/cycle
  counts complex/matrix multiplies a convolution cannot use.
* **η = 0.55** for dense and grouped convolution and fully connected layers: the fraction
  of that limit a software-pipelined C66x dot-product loop sustains once its two 64-bit
  loads per cycle, loop prologues/epilogues and pointer updates are paid for. It is the
  measured 4.4 MACs/cycle of a 64-tap Q15 FIR on a C66x reported on TI's E2E forum
  (e2echina.ti.com, processors forum thread 19927, "C66x FIR": 每机器周期大约完成4.4个乘法),
  i.e. 4.4 / 8. **η = 0.30** for depthwise convolution, an assumption: a 3×3 depthwise
  window is a 9-tap dot product per output, too short to amortise the loop overheads
  that the 64-tap FIR hides.
* **0.25 cycles per output** for the requantize epilogue (``MPY32`` multiplier, rounding
  shift, saturate, pack — 32×32 multiplies issue four per ``.M`` unit per cycle) and
  **0.25 cycles per input element** for pooling, adds and concatenation (``MAXU4``/``ADD4``
  SIMD on the ``.L``/``.S`` units); assumptions from instruction throughput.
* **Memory**: a layer's weights and activations stream through EDMA between L2 and the
  shared MSMC SRAM when they fit there (C6678: 4 MB, ~40 GB/s) or DDR3 otherwise, at 60 %
  of the DDR peak (EDMA 2-D transfers; assumption). Streaming overlaps computation
  (ping-pong buffers), hence ``max``.
* **20 µs per layer** (15 000 cycles at 750 MHz): TIDL's layer dispatch, EDMA channel
  programming and cache write-back/invalidate; an assumption (TI publishes no per-layer
  overhead).

**Several cores on one image** (C6678; ``split_layers_across_cores``): each layer's output
channels are dealt out to the ``c`` cores; the busiest core has ``⌈M/c⌉`` channels, so the
compute time is divided by ``c · (M / (c·⌈M/c⌉)) · 0.9`` (0.9: the cores contend for MSMC and
DDR and lose L2 locality; assumption), a 2 µs barrier is added per layer (IPC semaphore
in MSMC), and memory traffic is not divided (the cores share one DDR interface).
**Throughput** (best batch): every core of every DSP takes its own image, with the DDR
bandwidth of a DSP shared by its cores.

Latency is deterministic on a DSP (no OS, no caches thrashed by other processes), so p95 =
p50 in the model; a real run adds the host's transfer time (TIDL API overhead ~1 %).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sigdl_core.emulation import ModelCost, NodeCost
from sigdl_core.interfaces import TargetSpec

__all__ = ["C66xEstimate", "C66xTiming", "LayerTime", "estimate_c66x_latency"]


@dataclass(frozen=True)
class C66xTiming:
    """The constants of the model; see the module docstring for every reason."""

    dot_product_macs_per_cycle: float = 8.0
    efficiency: Mapping[str, float] = field(default_factory=lambda: {
        "conv": 0.55, "grouped": 0.55, "gemm": 0.55, "depthwise": 0.30,
    })
    epilogue_cycles_per_output: float = 0.25
    elementwise_cycles_per_element: float = 0.25
    layer_overhead_s: float = 20e-6
    parallel_contention: float = 0.9
    barrier_s: float = 2e-6

    def to_dict(self) -> dict[str, Any]:
        return {
            "dot_product_macs_per_cycle": self.dot_product_macs_per_cycle,
            "efficiency": dict(self.efficiency),
            "epilogue_cycles_per_output": self.epilogue_cycles_per_output,
            "elementwise_cycles_per_element": self.elementwise_cycles_per_element,
            "layer_overhead_s": self.layer_overhead_s,
            "parallel_contention": self.parallel_contention,
            "barrier_s": self.barrier_s,
        }


@dataclass(frozen=True)
class LayerTime:
    """One layer's share: seconds computing, moving data (and from where), in total."""

    name: str
    op_type: str
    op_class: str
    macs: int
    compute_s: float
    memory_s: float
    tier: str
    time_s: float


@dataclass(frozen=True)
class C66xEstimate:
    """Latency of one image on ``cores`` cores, and the best throughput of the target."""

    latency_s: float
    cores: int
    compute_s: float
    memory_s: float
    overhead_s: float
    macs: int
    layers: tuple[LayerTime, ...]
    throughput_fps: float
    throughput_batch: int

    @property
    def utilisation(self) -> float:
        """Busy fraction of the used cores over the latency (overheads idle)."""
        busy = sum(max(l.compute_s, l.memory_s) for l in self.layers)
        return max(0.0, min(1.0, busy / self.latency_s)) if self.latency_s > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_s * 1e3,
            "cores": self.cores,
            "compute_ms": self.compute_s * 1e3,
            "memory_ms": self.memory_s * 1e3,
            "overhead_ms": self.overhead_s * 1e3,
            "macs": self.macs,
            "effective_gmac_per_s": self.macs / self.latency_s / 1e9 if self.latency_s else None,
            "throughput_fps": self.throughput_fps,
            "throughput_batch": self.throughput_batch,
            "layers": [
                {"name": l.name, "op": l.op_type, "class": l.op_class, "macs": l.macs,
                 "compute_ms": l.compute_s * 1e3, "memory_ms": l.memory_s * 1e3, "tier": l.tier,
                 "time_ms": l.time_s * 1e3}
                for l in self.layers
            ],
        }


def _elements(node: NodeCost) -> tuple[int, int]:
    out = 0
    for s in node.output_shapes:
        if s:
            out += math.prod(int(d) for d in s)
    bpe = {"int8": 1, "int16": 2, "fp16": 2, "fp32": 4}.get(node.fmt, 1)
    return max(0, node.input_bytes // bpe), out


def _channels(node: NodeCost) -> int:
    for s in node.output_shapes:
        if s and len(s) >= 2:
            return int(s[1])
    return 1


def estimate_c66x_latency(
    cost: ModelCost,
    target: TargetSpec,
    cores: int | None = None,
    timing: C66xTiming | None = None,
) -> C66xEstimate:
    """Latency of one image (batch 1) on ``cores`` cores of ``target``, and its throughput.

    :param cost: the model's cost at batch 1, in int8 (a QDQ model, or a float model's
        ``cost.in_format("int8")``).
    :param target: a C66x :class:`~sigdl_core.interfaces.TargetSpec` of this plugin.
    :param cores: cores working on the image (default: all cores of one DSP when layers
        can be split, else 1).
    :param timing: the model's constants (default :class:`C66xTiming`).
    """
    timing = timing or C66xTiming()
    ex = dict(target.extra)
    per_chip = int(ex.get("cores_per_chip", target.cores))
    split = bool(ex.get("split_layers_across_cores", True))
    if cores is None:
        cores = per_chip if split else 1
    cores = max(1, min(int(cores), per_chip if split else 1))
    f = float(target.clock_hz)
    ddr_bw = float(ex.get("ddr_bandwidth_peak", target.memory_bandwidth)) * float(ex.get("ddr_efficiency", 0.6))
    sram = int(ex.get("shared_sram_bytes", 0))
    sram_bw = float(ex.get("shared_sram_bandwidth", 0.0))
    fused_targets = {n.name for n in cost.nodes}

    layers: list[LayerTime] = []
    contended: list[float] = []
    for node in cost.nodes:
        if node.constant or node.op_class in ("view", "quant"):
            continue
        if node.fuses_into is not None and node.fuses_into in fused_targets:
            continue  # BN / ReLU merged into the convolution (TIDL's import does this)
        n_in, n_out = _elements(node)
        if node.macs:
            eff = float(timing.efficiency.get(node.op_class, timing.efficiency.get("conv", 0.55)))
            cycles = node.macs / (timing.dot_product_macs_per_cycle * eff)
            cycles += n_out * timing.epilogue_cycles_per_output
        else:
            cycles = n_in * timing.elementwise_cycles_per_element
        nbytes = node.weight_bytes + node.input_bytes + node.output_bytes
        if sram and nbytes <= sram and sram_bw > 0:
            tier, bw = "msmc", sram_bw
        else:
            tier, bw = "ddr", ddr_bw
        memory = nbytes / bw
        compute_1 = cycles / f
        compute = compute_1
        overhead = timing.layer_overhead_s
        if cores > 1:
            units = _channels(node) if node.macs else max(1, n_out)
            balance = units / (cores * math.ceil(units / cores)) if units else 1.0
            compute = compute_1 / (cores * balance * timing.parallel_contention)
            overhead += timing.barrier_s
        t = max(compute, memory) + overhead
        layers.append(LayerTime(node.name, node.op_type, node.op_class, int(node.macs), compute, memory, tier, t))
        # throughput mode: one image per core, the DSP's DDR shared by its cores
        contended.append(max(compute_1, memory * per_chip) + timing.layer_overhead_s)

    latency = sum(l.time_s for l in layers)
    per_image_contended = sum(contended)
    chips = int(ex.get("chips", 1))
    all_cores = per_chip * chips
    fps_parallel = all_cores / per_image_contended if per_image_contended > 0 else 0.0
    fps_split = chips / latency if latency > 0 else 0.0  # each DSP one image at a time
    if fps_parallel > fps_split:
        throughput, batch = fps_parallel, all_cores
    else:
        throughput, batch = fps_split, chips
    return C66xEstimate(
        latency_s=latency,
        cores=cores,
        compute_s=sum(l.compute_s for l in layers),
        memory_s=sum(l.memory_s for l in layers),
        overhead_s=sum(l.time_s - max(l.compute_s, l.memory_s) for l in layers),
        macs=int(sum(l.macs for l in layers)),
        layers=tuple(layers),
        throughput_fps=throughput,
        throughput_batch=batch,
    )
