"""Datasheet figures of the Jetson TX2 and its power modes, as data, with sources.

Sources
-------
* [TX2-DS] NVIDIA Jetson TX2 Module Data Sheet (DA-09332): Parker SoC; GPU: 256-core
  NVIDIA Pascal (2 SMs × 128 CUDA cores); CPU: dual Denver 2 + quad Cortex-A57; 8 GB
  128-bit LPDDR4 at 1866 MHz, **59.7 GB/s**; module power 7.5 W (Max-Q) to 15 W.
* [PEAK] Peak throughput: 256 cores × 2 FLOP (FMA) × 1.30 GHz = **665.6 GFLOP/s FP32**;
  Pascal GP10B runs FP16 at twice the FP32 rate (paired ``HFMA2``) = **1.33 TFLOP/s FP16**.
* [NVPM] NVIDIA L4T Development Guide, "Power Management for Jetson TX2 Series Devices",
  nvpmodel modes: mode 0 **Max-N** (GPU 1.30 GHz, EMC 1.87 GHz), mode 2/3/4 **Max-P**
  (GPU 1.12 GHz, EMC 1.60 GHz; designed for a 15 W budget), mode 1 **Max-Q** (GPU 0.85 GHz,
  EMC 1.33 GHz; 7.5 W). Memory bandwidth scales with the EMC clock: 59.7 GB/s × EMC/1.866.
  Max-N has no published budget; 15 W is used (an underestimate under heavy load).
* Idle power: **1.5 W** for the module idling with the display off is an assumption (no
  datasheet figure); it only enters the power estimate.

Power modes are separate targets (``jetson-tx2`` is Max-N, ``jetson-tx2-maxp``,
``jetson-tx2-maxq``) so that ``sigdl targets`` lists each mode's figures and one ``sigdl
test`` can compare them side by side; ``options["power_mode"]`` (``max-n``, ``max-p``,
``max-q``) overrides the mode of any of them.
"""

from __future__ import annotations

from sigdl_core.interfaces import TargetSpec

EMULATOR_NAME = "jetson"

CUDA_CORES = 256
SMS = 2
#: The TX2's full memory bandwidth at EMC 1866 MHz [TX2-DS].
BANDWIDTH_MAX = 59.7e9
EMC_MAX_HZ = 1.866e9
MEMORY_BYTES = 8 << 30
IDLE_W = 1.5

#: mode → (GPU clock, EMC clock, power budget W, nvpmodel name) [NVPM]
POWER_MODES: dict[str, tuple[float, float, float, str]] = {
    "max-n": (1.30e9, 1.866e9, 15.0, "Max-N (nvpmodel -m 0)"),
    "max-p": (1.12e9, 1.600e9, 15.0, "Max-P (nvpmodel -m 2/3/4)"),
    "max-q": (0.85e9, 1.331e9, 7.5, "Max-Q (nvpmodel -m 1)"),
}


def peak_ops(gpu_hz: float) -> dict[str, float]:
    """FP32 and FP16 peaks at a GPU clock [PEAK]."""
    fp32 = CUDA_CORES * 2 * gpu_hz
    return {"fp32": fp32, "fp16": 2 * fp32}


def bandwidth(emc_hz: float) -> float:
    """Peak DRAM bandwidth at an EMC clock."""
    return BANDWIDTH_MAX * emc_hz / EMC_MAX_HZ


def _tx2(name: str, mode: str) -> TargetSpec:
    gpu, emc, budget, label = POWER_MODES[mode]
    return TargetSpec(
        name=name,
        title=f"NVIDIA Jetson TX2, {label}",
        emulator=EMULATOR_NAME,
        cores=CUDA_CORES,
        clock_hz=gpu,
        memory_bytes=MEMORY_BYTES,
        memory_bandwidth=bandwidth(emc),
        peak_ops=peak_ops(gpu),
        tdp_w=budget,
        idle_w=IDLE_W,
        formats=("fp16", "fp32"),
        description=(f"Parker SoC, 256-core Pascal GPU (2 SMs) at {gpu / 1e9:.2f} GHz, "
                     f"8 GB LPDDR4 at {bandwidth(emc) / 1e9:.1f} GB/s, {budget:g} W budget"),
        extra={
            "power_mode": mode,
            "gpu_sms": SMS,
            "cuda_cores": CUDA_CORES,
            "compute_capability": "6.2",
            "emc_clock_hz": emc,
            "cpu": "2x Denver 2 + 4x Cortex-A57",
            "software_reference": "JetPack 3.2, TensorRT 3.0 (the published timings' stack)",
            "sources": "NVIDIA Jetson TX2 module data sheet; L4T power management guide (nvpmodel)",
        },
    )


TARGETS: tuple[TargetSpec, ...] = (
    _tx2("jetson-tx2", "max-n"),
    _tx2("jetson-tx2-maxp", "max-p"),
    _tx2("jetson-tx2-maxq", "max-q"),
)
