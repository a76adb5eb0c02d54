"""Datasheets of the ARM targets as data: core types, clusters, caches, DRAM, power.

Every figure carries its source beside it. Sources
--------------------------------------------------
* [A72-SOG] ARM Cortex-A72 Software Optimization Guide (UAN 0016A, 2015): two FP/ASIMD
  pipelines F0/F1; a 128-bit (Q-form) FMLA issues once per cycle, so 4 fp32 lanes × 2 FLOP
  = **8 fp32 FLOP/cycle/core**; ASIMD integer multiply (SMULL/SMLAL) runs on F0 only.
* [A57-SOG] ARM Cortex-A57 Software Optimization Guide (UAN 0015B, 2016): the same FP/ASIMD
  arrangement as the A72 at longer latencies: **8 fp32 FLOP/cycle/core**.
* [A53-TRM] ARM Cortex-A53 TRM (DDI 0500) and ncnn's "how to write a neon optimized op
  kernel" notes: in-order, dual issue, a 64-bit NEON datapath (a Q-form FMLA takes two
  cycles): **4 fp32 FLOP/cycle/core**; 128-bit loads do not dual-issue with FMLA.
* [ARMv8.0] A72, A57 and A53 implement ARMv8.0-A: no ``SDOT``/``UDOT`` (those are the
  ARMv8.2-A dot-product extension, first in the A55/A75/A76). int8 convolution therefore
  runs as **SMULL/SMLAL widening multiplies (8×8 → 16 bit) with SADALP pairwise
  accumulation into 32 bits** (ncnn's ARMv8.0 int8 kernels): 8 MACs per 128-bit
  instruction, one per cycle on one pipe, i.e. 16 int8 ops/cycle on the A72/A57 — twice
  the fp32 rate on paper, minus the widening and accumulation instructions; half that on
  the A53's 64-bit datapath.
* [ARM1176] ARM1176JZF-S TRM (DDI 0301): ARMv6, VFP11 coprocessor, **no NEON**; one
  single-precision multiply-accumulate per cycle when pipelined (2 FLOP/cycle, not fused);
  ARMv6 SIMD ``SMLAD`` does two 16-bit MACs per cycle (int8 widened: 4 ops/cycle).
* [DENVER2] NVIDIA Parker TRM / Hot Chips 2016 "Denver 2": 7-wide in-order core with
  dynamic code optimisation, two 128-bit NEON units; **8 fp32 FLOP/cycle/core** is assumed
  (one 128-bit FMA per cycle, as the A57; NVIDIA publishes no per-cycle FMA figure).
* [RPI4] Raspberry Pi 4 Model B product brief and BCM2711 documentation: 4× Cortex-A72,
  1.5 GHz (1.8 GHz on board revision 1.4 and later / firmware since 2020), 32 KB L1D +
  48 KB L1I per core, **1 MB shared L2**, LPDDR4-3200 on a 32-bit bus = **12.8 GB/s** peak.
* [RPI3B+] Raspberry Pi 3 Model B+ product brief: BCM2837B0, 4× Cortex-A53 at 1.4 GHz,
  32 KB L1 I/D per core, **512 KB shared L2**, 1 GB LPDDR2 at 900 MT/s × 32 bit =
  **3.6 GB/s**.
* [RPI0W] Raspberry Pi Zero W: BCM2835, 1× ARM1176JZF-S at 1 GHz, 16 KB L1 I/D, 128 KB L2
  (owned by the VideoCore GPU, not used by the ARM in Raspberry Pi OS), 512 MB LPDDR2 at
  800 MT/s × 32 bit = **3.2 GB/s**.
* [TX2-DS] NVIDIA Jetson TX2 module data sheet (DA-09332): 2× Denver 2 (2 MB L2) + 4×
  Cortex-A57 (2 MB L2), both at up to 2.0 GHz; 8 GB LPDDR4 128-bit, **59.7 GB/s**; module
  7.5–15 W.
* [NANO-DS] NVIDIA Jetson Nano module data sheet (DA-09366): 4× Cortex-A57 at 1.43 GHz,
  48 KB L1I + 32 KB L1D per core, 2 MB L2; 4 GB LPDDR4 64-bit, **25.6 GB/s**; 5 W / 10 W
  power modes.
* [RPI-PWR] Raspberry Pi documentation, "Power supply": typical bare-board active current
  Pi 4B 600 mA, Pi 3B+ 500 mA, Zero W 150 mA at 5 V (the *idle* figures used here), and the
  recommended supplies 3.0 A, 2.5 A and 1.2 A. The **full-load figures** are reviewers'
  measurements of whole boards running a CPU stress test (Pi 4B at 1.5 GHz 6.4 W, Pi 3B+
  5.1 W); the 1.8 GHz Pi 4 (7.2 W) and the Zero W (1.2 W) are estimates. They only enter
  the power *estimate*, which says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from sigdl_core.interfaces import TargetSpec

EMULATOR_NAME = "arm"


@dataclass(frozen=True)
class CoreType:
    """One CPU core's micro-architecture, as the emulator needs it.

    ``fp32_flops_per_cycle`` and ``int8_ops_per_cycle`` are peak operations per cycle per
    core (a multiply-accumulate is two); ``int8_path`` says in words what int8 runs as.
    """

    name: str
    isa: str
    simd: str
    simd_bits: int
    fp32_flops_per_cycle: float
    int8_ops_per_cycle: float
    has_sdot: bool
    int8_path: str
    l1d_bytes: int
    l1i_bytes: int
    source: str

    def to_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


_SMLAL = ("no SDOT (ARMv8.0-A): int8 runs as SMULL/SMLAL 8x8->16-bit widening multiplies "
          "with SADALP accumulation into int32 (ncnn's ARMv8.0 int8 kernels)")

CORES: dict[str, CoreType] = {
    "cortex-a72": CoreType("cortex-a72", "ARMv8.0-A", "NEON (ASIMD)", 128, 8.0, 16.0, False,
                           _SMLAL, 32 << 10, 48 << 10, "A72-SOG, ARMv8.0"),
    "cortex-a57": CoreType("cortex-a57", "ARMv8.0-A", "NEON (ASIMD)", 128, 8.0, 16.0, False,
                           _SMLAL, 32 << 10, 48 << 10, "A57-SOG, ARMv8.0"),
    "cortex-a53": CoreType("cortex-a53", "ARMv8.0-A", "NEON (ASIMD), 64-bit datapath", 64, 4.0, 8.0,
                           False, _SMLAL + "; at half the A72's width (64-bit NEON datapath)",
                           32 << 10, 32 << 10, "A53-TRM, ARMv8.0"),
    "denver2": CoreType("denver2", "ARMv8.0-A", "NEON (ASIMD)", 128, 8.0, 16.0, False,
                        _SMLAL, 64 << 10, 128 << 10, "DENVER2 (per-cycle FMA rate assumed)"),
    "arm1176jzf-s": CoreType("arm1176jzf-s", "ARMv6", "none (VFP11 scalar FPU)", 32, 2.0, 4.0, False,
                             "no NEON: int8 runs as ARMv6 SMLAD (two 16-bit MACs per cycle) on "
                             "sign-extended bytes", 16 << 10, 16 << 10, "ARM1176"),
}


@dataclass(frozen=True)
class Cluster:
    """``count`` cores of one type at ``clock_hz``, sharing an L2 of ``l2_bytes``."""

    core: str
    count: int
    clock_hz: float
    l2_bytes: int

    def to_dict(self) -> dict[str, object]:
        return {"core": self.core, "count": self.count, "clock_hz": self.clock_hz,
                "l2_bytes": self.l2_bytes}


def _board(name: str, title: str, soc: str, clusters: tuple[Cluster, ...], memory_bytes: int,
           bandwidth: float, idle_w: float, load_w: float, sources: str,
           description: str) -> TargetSpec:
    cores = sum(c.count for c in clusters)
    fp32 = sum(c.count * c.clock_hz * CORES[c.core].fp32_flops_per_cycle for c in clusters)
    int8 = sum(c.count * c.clock_hz * CORES[c.core].int8_ops_per_cycle for c in clusters)
    main = max(clusters, key=lambda c: c.count * c.clock_hz * CORES[c.core].fp32_flops_per_cycle)
    return TargetSpec(
        name=name,
        title=title,
        emulator=EMULATOR_NAME,
        cores=cores,
        clock_hz=main.clock_hz,
        memory_bytes=memory_bytes,
        memory_bandwidth=bandwidth,
        peak_ops={"fp32": fp32, "int8": int8},
        tdp_w=load_w,
        idle_w=idle_w,
        formats=("fp32", "int8"),
        description=description,
        extra={
            "soc": soc,
            "clusters": [c.to_dict() for c in clusters],
            "core_types": {c.core: CORES[c.core].to_dict() for c in clusters},
            "int8_path": "; ".join(sorted({CORES[c.core].int8_path for c in clusters})),
            "software_reference": "ncnn (benchncnn), the runtime the calibration rows were timed with",
            "sources": sources,
        },
    )


def _rpi4(name: str, clock_hz: float, load_w: float) -> TargetSpec:
    ghz = clock_hz / 1e9
    return _board(
        name, f"Raspberry Pi 4 Model B (BCM2711, 4x Cortex-A72 @ {ghz:.1f} GHz)", "BCM2711",
        (Cluster("cortex-a72", 4, clock_hz, 1 << 20),), 4 << 30, 12.8e9, 3.0, load_w,
        "RPI4, A72-SOG, ARMv8.0, RPI-PWR",
        f"4x Cortex-A72 @ {ghz:.1f} GHz, NEON 128-bit, 1 MB L2, 4 GB LPDDR4-3200 (12.8 GB/s); "
        "int8 without SDOT",
    )


TARGETS: tuple[TargetSpec, ...] = (
    _rpi4("rpi4-a72", 1.5e9, 6.4),
    _rpi4("rpi4-a72-1800", 1.8e9, 7.2),
    _board(
        "rpi3bplus-a53", "Raspberry Pi 3 Model B+ (BCM2837B0, 4x Cortex-A53 @ 1.4 GHz)", "BCM2837B0",
        (Cluster("cortex-a53", 4, 1.4e9, 512 << 10),), 1 << 30, 3.6e9, 2.5, 5.1,
        "RPI3B+, A53-TRM, ARMv8.0, RPI-PWR",
        "4x Cortex-A53 @ 1.4 GHz, 64-bit NEON datapath, 512 KB L2, 1 GB LPDDR2 (3.6 GB/s)",
    ),
    _board(
        "rpi-zero-w", "Raspberry Pi Zero W (BCM2835, 1x ARM1176JZF-S @ 1 GHz)", "BCM2835",
        (Cluster("arm1176jzf-s", 1, 1.0e9, 0),), 512 << 20, 3.2e9, 0.75, 1.2,
        "RPI0W, ARM1176, RPI-PWR",
        "1x ARM1176JZF-S @ 1 GHz, VFP11, no NEON, 512 MB LPDDR2 (3.2 GB/s); the host of the "
        "AIY Vision Kit beside the MA2450",
    ),
    _board(
        "jetson-tx2-cpu", "NVIDIA Jetson TX2 CPU complex (2x Denver 2 + 4x Cortex-A57 @ 2.0 GHz)",
        "Parker (Tegra X2)",
        (Cluster("denver2", 2, 2.0e9, 2 << 20), Cluster("cortex-a57", 4, 2.0e9, 2 << 20)),
        8 << 30, 59.7e9, 1.5, 15.0, "TX2-DS, A57-SOG, DENVER2, ARMv8.0",
        "2x Denver 2 + 4x Cortex-A57 @ 2.0 GHz (2 MB L2 each cluster), 8 GB LPDDR4 (59.7 GB/s)",
    ),
    _board(
        "jetson-nano-cpu", "NVIDIA Jetson Nano CPU (4x Cortex-A57 @ 1.43 GHz)", "Tegra X1",
        (Cluster("cortex-a57", 4, 1.43e9, 2 << 20),), 4 << 30, 25.6e9, 1.25, 10.0,
        "NANO-DS, A57-SOG, ARMv8.0",
        "4x Cortex-A57 @ 1.43 GHz, 2 MB L2, 4 GB LPDDR4 (25.6 GB/s), 10 W mode",
    ),
)


def clusters_of(target: TargetSpec) -> tuple[Cluster, ...]:
    """The clusters of an ARM target (from ``extra["clusters"]``), fastest cores first."""
    raw = target.extra.get("clusters") if target.extra else None
    if not raw:
        raise ValueError(f"target '{target.name}' has no 'clusters' in its datasheet")
    out = tuple(Cluster(str(c["core"]), int(c["count"]), float(c["clock_hz"]), int(c["l2_bytes"]))
                for c in raw)
    return tuple(sorted(out, key=lambda c: -c.clock_hz * CORES[c.core].fp32_flops_per_cycle))
