"""Datasheet figures of the Atom targets, as data. Every figure names its source.

Sources
-------
* [ARK-3930] Intel ARK, "Intel Atom x5-E3930 Processor (2M Cache, up to 1.80 GHz)":
  2 cores / 2 threads, base 1.30 GHz, burst 1.80 GHz, TDP 6.5 W, max memory 8 GB,
  DDR3L/LPDDR3 up to 1866 MT/s, LPDDR4 up to 2400 MT/s, 2 memory channels, 2 MB L2.
* [ARK-3940] Intel ARK, "Intel Atom x5-E3940 Processor (2M Cache, up to 1.80 GHz)":
  4 cores / 4 threads, base 1.60 GHz, burst 1.80 GHz, TDP 9.5 W, otherwise as the E3930.
* [OPT] Intel 64 and IA-32 Architectures Optimization Reference Manual, the chapter on the
  Goldmont microarchitecture (Atom E3900 / Apollo Lake): SSE4.2 with 128-bit vectors, no
  AVX and no FMA; the FP/SIMD cluster has a 128-bit FP multiplier and a 128-bit FP adder on
  separate ports, each accepting one instruction per cycle (MULPS and ADDPS reciprocal
  throughput 1). So the FP32 peak is 4 multiplies + 4 adds = **8 FLOP per cycle per core**
  (a MAC costs one of each), half of Skylake's per-FMA-port rate with no FMA to fuse them.
  8-bit: PMADDUBSW multiplies 16 u8×s8 pairs and adds adjacent products, one per cycle
  assumed → 16 MACs = 32 ops per cycle per core (an assumption: not measured on a Goldmont).
* [DL] AWS DeepLens (2017) hardware specification: Intel Atom processor (x5-E3930), 8 GB
  RAM (LPDDR4), Gen9 graphics; 16 GB storage.
* Memory bandwidth: LPDDR4-2400 [ARK] on the SoC's 64-bit memory interface (2 channels of
  32 bits) → 2400 MT/s × 8 bytes = **19.2 GB/s** peak; derived, not an ARK line item.
* Idle power: Intel publishes no idle figure for the E3900; **1.0 W** for the SoC in
  package C-states is an assumption used only by the power estimate.
"""

from __future__ import annotations

from sigdl_core.interfaces import TargetSpec

EMULATOR_NAME = "atom"

GHZ = 1e9
GB = 1 << 30

#: FP32 FLOP per cycle per Goldmont core [OPT].
FP32_FLOP_PER_CYCLE = 8
#: 8-bit ops per cycle per Goldmont core (PMADDUBSW, assumed one per cycle) [OPT].
INT8_OPS_PER_CYCLE = 32
#: LPDDR4-2400 × 64-bit interface [ARK].
LPDDR4_2400_BANDWIDTH = 2400e6 * 8
#: Assumed SoC idle power (no published figure).
IDLE_W = 1.0

#: Roofline constants for the cross-check, with their reasons (see the emulator docstring).
ROOFLINE = {
    # MLAS's SSE SGEMM/conv kernels keep the separate multiply and add pipes busy about
    # 70 % of cycles on a small out-of-order core (two 128-bit loads per cycle feed one
    # MULPS + one ADDPS; register blocking hides the 4-5-cycle latencies).
    "efficiency": {"conv": 0.70, "gemm": 0.70, "grouped": 0.45, "depthwise": 0.15,
                   "pool": 0.25, "elementwise": 0.25, "default": 0.25},
    # onnxruntime dispatches each kernel in about 2 µs on a 2.5 GHz Xeon; a 1.3 GHz Atom
    # with a narrower front end takes about three times as long.
    "per_node_overhead_s": 6e-6,
    # session.run: input binding, output allocation, Python round trip.
    "per_inference_overhead_s": 60e-6,
    # ONNX Runtime fuses Conv+BN+ReLU (and Gemm+ReLU) at ORT_ENABLE_ALL.
    "fuse_epilogues": True,
}


def _atom(name: str, title: str, cores: int, base: float, burst: float, tdp: float,
          memory: int, description: str) -> TargetSpec:
    return TargetSpec(
        name=name,
        title=title,
        emulator=EMULATOR_NAME,
        cores=cores,
        clock_hz=base * GHZ,
        memory_bytes=memory,
        memory_bandwidth=LPDDR4_2400_BANDWIDTH,
        peak_ops={
            # at the base clock, all cores; the burst figures are in `extra`
            "fp32": cores * FP32_FLOP_PER_CYCLE * base * GHZ,
            "int8": cores * INT8_OPS_PER_CYCLE * base * GHZ,
        },
        tdp_w=tdp,
        idle_w=IDLE_W,
        formats=("fp32", "int8"),
        description=description,
        extra={
            "burst_clock_hz": burst * GHZ,
            "peak_ops_burst": {
                "fp32": cores * FP32_FLOP_PER_CYCLE * burst * GHZ,
                "int8": cores * INT8_OPS_PER_CYCLE * burst * GHZ,
            },
            "microarchitecture": "Goldmont (Apollo Lake), SSE4.2, 128-bit SIMD, no AVX/FMA",
            "fp32_flop_per_cycle_per_core": FP32_FLOP_PER_CYCLE,
            "l2_cache_bytes": 2 << 20,
            "memory": "LPDDR4-2400, 64-bit",
            "roofline": ROOFLINE,
            "sources": "Intel ARK (x5-E3930, x5-E3940); Intel optimization manual (Goldmont); "
                       "AWS DeepLens hardware specification",
        },
    )


TARGETS: tuple[TargetSpec, ...] = (
    _atom("atom-x5-e3930", "Intel Atom x5-E3930 (Apollo Lake, 2 cores)", 2, 1.30, 1.80, 6.5,
          8 * GB, "2 Goldmont cores at 1.3 GHz (1.8 GHz burst), 6.5 W TDP, up to 8 GB LPDDR4"),
    _atom("atom-x5-e3940", "Intel Atom x5-E3940 (Apollo Lake, 4 cores)", 4, 1.60, 1.80, 9.5,
          8 * GB, "4 Goldmont cores at 1.6 GHz (1.8 GHz burst), 9.5 W TDP, up to 8 GB LPDDR4"),
    _atom("aws-deeplens", "AWS DeepLens (Intel Atom x5-E3930, 8 GB LPDDR4)", 2, 1.30, 1.80, 6.5,
          8 * GB, "AWS DeepLens camera: an Atom x5-E3930 with 8 GB LPDDR4"),
)
