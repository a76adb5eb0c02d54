"""Latency of an FP16 network on the MA2450: the shared roofline with SHAVE constants.

:func:`sigdl_core.emulation.estimate_latency` costs every node of the FP16 graph as
``max(FLOPs / (115.2 GFLOP/s · η[op class]), bytes / bandwidth) + per-node overhead`` and
adds a per-inference overhead; batch norm and ReLU fold into the convolution before them
(``mvNCCompile`` fuses them), views are free. The constants and why:

* **Peak** 115.2 GFLOP/s fp16: 12 SHAVEs × 600 MHz × 8 lanes × 2 (FMA) (:mod:`.datasheet`).
* **η = 0.35 for convolutions and fully connected layers** (dense, grouped, 1×1): a SHAVE
  has two 64-bit load/store units feeding a 128-bit FMA unit, so a convolution loop that
  reuses each loaded value two to three times in registers can keep the FMA unit about a
  third busy. NCSDK v1's MvTensor kernels are not public and we found no citable per-layer
  profile, so this is our assumption (the published MobileNet figure below is consistent
  with it; it was not fitted to it layer by layer).
* **η = 0.10 for depthwise convolutions**: a 3×3 depthwise window has 9 MACs per output and
  no reduction over channels, so the loop is load/store bound rather than FMA bound.
  Assumption.
* **η = 0.25 for pooling, element-wise, softmax and the rest** (SIMD passes over a tensor
  in CMX, one load and one store per element); these are memory bound anyway.
* **Bandwidth** 70 % of the LPDDR3 peak (5.2 GB/s): layers whose activations exceed the
  2 MB CMX spill to DRAM, and the weights always stream from DRAM. Charging every byte at
  DRAM speed is pessimistic for small layers that stay in CMX; those are compute or
  overhead bound in any case.
* **0.1 ms per layer**: the LEON runtime dispatches each layer to the SHAVEs, loads its
  kernel code and programs the DMA descriptors. Assumption.
* **2.5 ms per inference**: the host writes the fp16 input over USB 3.0 and reads the
  result back through the NCAPI (``mvncLoadTensor`` / ``mvncGetResult``); 224×224×3 fp16
  is 301 KB, about 1.5 ms at the ~200 MB/s a USB 3.0 bulk link sustains, plus about 1 ms of
  protocol. Assumption.

The NCS runs batch 1 only, so the best batch is 1.
"""

from __future__ import annotations

from typing import Any

from sigdl_core.emulation import Machine, ModelCost, RooflineEstimate, estimate_latency
from sigdl_core.interfaces import TargetSpec

__all__ = ["SHAVE_EFFICIENCY", "movidius_machine", "estimate_movidius_latency"]

#: Fraction of the SHAVE array's fp16 peak reached per op class (module docstring).
SHAVE_EFFICIENCY: dict[str, float] = {
    "conv": 0.35,
    "grouped": 0.35,
    "gemm": 0.35,
    "depthwise": 0.10,
    "default": 0.25,
}
DRAM_EFFICIENCY = 0.7
PER_LAYER_OVERHEAD_S = 0.1e-3
PER_INFERENCE_OVERHEAD_S = 2.5e-3


def movidius_machine(target: TargetSpec) -> Machine:
    """The roofline :class:`~sigdl_core.emulation.Machine` of an MA2450 target."""
    return Machine(
        name=target.name,
        peak_flops={"fp16": float(target.peak_ops["fp16"])},
        bandwidth=float(target.memory_bandwidth) * DRAM_EFFICIENCY,
        efficiency=dict(SHAVE_EFFICIENCY),
        per_node_overhead_s=PER_LAYER_OVERHEAD_S,
        per_inference_overhead_s=PER_INFERENCE_OVERHEAD_S,
        fuse_epilogues=True,
    )


def estimate_movidius_latency(cost: ModelCost, target: TargetSpec) -> tuple[RooflineEstimate, Machine]:
    """The batch-1 roofline estimate of an FP16 cost (``cost.in_format("fp16")``)."""
    machine = movidius_machine(target)
    return estimate_latency(cost.for_batch(1), machine), machine


def describe_constants() -> dict[str, Any]:
    """The constants, for a report."""
    return {
        "efficiency": dict(SHAVE_EFFICIENCY),
        "dram_efficiency": DRAM_EFFICIENCY,
        "per_layer_overhead_ms": PER_LAYER_OVERHEAD_S * 1e3,
        "per_inference_overhead_ms": PER_INFERENCE_OVERHEAD_S * 1e3,
    }
