"""The Intel Movidius Myriad 2 MA2450 (Neural Compute Stick v1) as data, with sources.

* 12 SHAVE VLIW vector processors at 600 MHz (Movidius Myriad 2 product brief; Intel NCSDK
  documentation, "Intel Movidius Neural Compute Stick": "an array of 12 VLIW vector
  processors called SHAVE processors").
* Each SHAVE has a 128-bit vector arithmetic unit: 8 fp16 lanes, a fused multiply-add per
  lane per cycle: 12 × 600 MHz × 8 × 2 = **115.2 GFLOP/s fp16** arithmetic peak. Intel and
  Movidius quote "over 100 GFLOPS" for the chip within about 1 W — the 1 TOPS figures in
  Intel's marketing belong to the Myriad X's neural compute engine, which the MA2450 lacks.
  Convolutions reach a fraction of the peak (:mod:`.latency`).
* 4 Gbit (512 MB) LPDDR3 in the package (NCSDK documentation: "The VPU includes 4Gbits of
  LPDDR3 DRAM"); 2 MB of on-chip CMX SRAM shared by the SHAVEs (Myriad 2 product brief).
* LPDDR3 interface: Movidius does not publish the MA2450's DRAM clock; we assume a 32-bit
  LPDDR3-1866 interface (933 MHz, the fastest LPDDR3 grade): 7.46 GB/s peak.
* Power: "about 1 W" (issue 4; Intel's NCS product brief says the VPU runs in ~1 W).
  A measurement of an NCS running a Caffe network drew 0.18 A at 5 V = 0.9 W for the whole
  stick (an NCS review, m.163.com/dy/article/CRAEB8180529CDK7). We take 1.0 W at full load;
  idle 0.35 W is our assumption (USB PHY, LPDDR3 self-refresh, LEON cores awake).
* FP16 only: the NCSDK v1 compiles every network to fp16 (``mvNCCompile``); there is no
  fp32 or int8 path on the SHAVEs in that toolchain.
* USB 3.0 (5 Gbit/s) to the host; the stick falls back to USB 2.0 (480 Mbit/s) on older
  ports (NCSDK documentation).
"""

from __future__ import annotations

from sigdl_core.interfaces import TargetSpec

EMULATOR = "movidius"

SHAVES = 12
SHAVE_CLOCK_HZ = 600e6
FP16_LANES = 8  # 128-bit vector unit, 16-bit lanes
FP16_PEAK_FLOPS = SHAVES * SHAVE_CLOCK_HZ * FP16_LANES * 2  # 115.2e9: FMA = 2 FLOPs
LPDDR3_BYTES = 512 * (1 << 20)  # 4 Gbit
LPDDR3_BANDWIDTH = 933e6 * 2 * 4  # 32-bit LPDDR3-1866: 7.46 GB/s
CMX_BYTES = 2 * (1 << 20)


def movidius_targets() -> list[TargetSpec]:
    """The Movidius targets this plugin registers."""
    return [
        TargetSpec(
            name="movidius-ma2450",
            title="Intel Movidius Myriad 2 MA2450 (Neural Compute Stick)",
            emulator=EMULATOR,
            cores=SHAVES,
            clock_hz=SHAVE_CLOCK_HZ,
            memory_bytes=LPDDR3_BYTES,
            memory_bandwidth=LPDDR3_BANDWIDTH,
            peak_ops={"fp16": FP16_PEAK_FLOPS},
            tdp_w=1.0,
            idle_w=0.35,
            formats=("fp16",),
            description=(
                "12 SHAVE vector cores at 600 MHz, 115 GFLOP/s fp16 peak (~100 GFLOPS as quoted, "
                "not the 1 TOPS of the Myriad X), 512 MB LPDDR3, 2 MB CMX, ~1 W. FP16 only; "
                "fixed input resolution, batch 1; a fixed set of layers (NCSDK v1)."
            ),
            extra={
                "shaves": SHAVES,
                "cmx_bytes": CMX_BYTES,
                "fp16_lanes_per_shave": FP16_LANES,
                "usb": "USB 3.0 (5 Gbit/s), falls back to USB 2.0",
                "toolchain": "NCSDK v1 (mvNCCompile, MvTensor kernels)",
                "batch": 1,
            },
        )
    ]
