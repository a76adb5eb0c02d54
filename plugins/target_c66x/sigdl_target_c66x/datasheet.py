"""TI C66x targets as data: the TMS320C6678, a PCIe card of eight, and the AM5749's DSPs.

Every figure carries its source. Where a figure is our assumption rather than a datasheet
value, the comment says so.

The C66x CorePac (TMS320C66x DSP CPU and Instruction Set Reference Guide, SPRUGH7; the
TMS320C6678 data manual, SPRS691, CorePac description and features list):

* 8-way VLIW, two ``.M`` multiply units. "Each C66x .M unit can perform ... sixteen 16 × 16
  bit multiplies, ... four 8 × 8 bit multiplies, four 8 × 8 bit multiplies with add
  operations, and four 16 × 16 multiplies with add/subtract capabilities" per cycle
  (SPRS691, C66x CorePac description). The headline **32 16×16 MACs per cycle per core**
  (40 GMAC/s per core at 1.25 GHz, **320 GMAC/s** for 8 cores) counts the sixteen
  multiplies per unit of the complex/matrix instructions (``CMATMPY``, ``QMPY``).
* A real-valued dot product — what a convolution is — uses the multiply-with-add forms:
  four 8×8 (or 16×16) MACs per ``.M`` unit, **8 MACs per cycle per core**. 8-bit operands
  give no more throughput than 16-bit ones. This issue limit drives the latency model
  (:mod:`.latency`); ``peak_ops`` keeps the datasheet's headline figure.
* Memory: 32 KB L1D and 32 KB L1P per core; 512 KB L2 per core on the C6678; 4 MB shared
  MSMC SRAM on the C6678; a 64-bit DDR3 interface (DDR3-1333 here: 10.67 GB/s peak).
"""

from __future__ import annotations

from sigdl_core.interfaces import TargetSpec

EMULATOR = "c66x"

#: Real-valued multiply-accumulates one C66x core issues per cycle: 2 .M units × 4
#: multiply-with-add (8×8 or 16×16) — SPRS691, C66x CorePac description.
DOT_PRODUCT_MACS_PER_CYCLE = 8
#: The datasheet's headline: 32 16×16 MACs per cycle per core (SPRS691, features list:
#: "32 16 × 16-bit MACs per cycle"; "40 GMAC/core for fixed point @ 1.25 GHz").
DATASHEET_MACS_PER_CYCLE = 32

_GB = 1e9
_MB = 1 << 20
_KB = 1 << 10


def _c6678_extra(chips: int = 1) -> dict:
    return {
        "chips": chips,
        "cores_per_chip": 8,  # SPRS691: eight C66x CorePacs
        "l2_bytes_per_core": 512 * _KB,  # SPRS691: 512 KB L2 per core
        "l1d_bytes_per_core": 32 * _KB,  # SPRS691: 32 KB L1D per core
        "shared_sram_bytes": 4 * _MB,  # SPRS691: 4 MB MSMC SRAM shared by the 8 cores
        # aggregate MSMC SRAM bandwidth seen by EDMA tiling: 40 GB/s, our assumption (TI
        # does not state one figure; bank conflicts and the cores' shared ports limit it)
        "shared_sram_bandwidth": 40 * _GB,
        # DDR3-1333 (the brief; the C6678 supports up to DDR3-1600), 64-bit: 10.67 GB/s peak
        "ddr_bandwidth_peak": 1333e6 * 8,
        # EDMA-to-DDR3 efficiency for the short-row 2-D transfers of convolution tiles:
        # 60 % of peak, our assumption (row switches and read/write turnarounds)
        "ddr_efficiency": 0.6,
        "dot_product_macs_per_cycle": DOT_PRODUCT_MACS_PER_CYCLE,
        "datasheet_macs_per_cycle": DATASHEET_MACS_PER_CYCLE,
        "formats_note": "int8 and int16 run at the same MAC rate (8×8 gives no more than 16×16)",
    }


def c66x_targets() -> list[TargetSpec]:
    """The C66x targets this plugin registers."""
    c6678_clock = 1.25e9  # SPRS691: 1.0 and 1.25 GHz speed grades; 1.25 GHz here
    c6678_macs = 8 * DATASHEET_MACS_PER_CYCLE * c6678_clock  # 320 GMAC/s (SPRS691)
    c6678 = TargetSpec(
        name="c66x-c6678",
        title="TI TMS320C6678 (8 × C66x at 1.25 GHz)",
        emulator=EMULATOR,
        cores=8,
        clock_hz=c6678_clock,
        # TMDSEVM6678 evaluation module: 512 MB DDR3 (TI EVM technical reference)
        memory_bytes=512 * _MB,
        memory_bandwidth=1333e6 * 8,  # DDR3-1333, 64-bit: 10.67 GB/s peak
        # a MAC counts two operations; 8×8 gives no more than 16×16 (SPRS691)
        peak_ops={"int16": 2 * c6678_macs, "int8": 2 * c6678_macs,
                  "fp32": 8 * 16 * c6678_clock},  # 16 single-precision FLOP/cycle/core: 160 GFLOPS
        # TI's C6678 product page: "under 10 W" with 8 cores at 1.25 GHz; 10 W as TDP
        tdp_w=10.0,
        # idle with DDR3 and SerDes up and the cores in IDLE: 3 W, our assumption (static
        # leakage and I/O), not a datasheet figure
        idle_w=3.0,
        formats=("int8", "int16", "fp32"),
        description=(
            "8 C66x cores, 32 16×16 MACs/cycle/core (320 GMAC/s), 512 KB L2 per core, 4 MB MSMC, "
            "DDR3-1333 64-bit. Re-tested by a bit-exact integer (int8/int16) emulation; "
            "latency from MACs, cores and memory traffic."
        ),
        extra=_c6678_extra(1),
    )
    pcie = TargetSpec(
        name="c66x-pcie-64",
        title="PCIe card of 8 × TMS320C6678 (64 C66x cores)",
        emulator=EMULATOR,
        cores=64,
        clock_hz=c6678_clock,
        # half-length PCIe cards with eight C6678 (Advantech DSPC-8682E class) carry 1 GB
        # DDR3 per DSP: 8 GB — assumption from that product class
        memory_bytes=8 * 1024 * _MB,
        memory_bandwidth=8 * 1333e6 * 8,  # eight independent DDR3-1333 64-bit interfaces
        peak_ops={"int16": 8 * 2 * c6678_macs, "int8": 8 * 2 * c6678_macs,
                  "fp32": 8 * 8 * 16 * c6678_clock},
        # eight C6678 at ≤ 10 W plus the PCIe switch and DDR: about 110 W (the DSPC-8682E
        # class's stated maximum; assumption)
        tdp_w=110.0,
        idle_w=30.0,  # 8 × 3 W + switch: assumption
        formats=("int8", "int16", "fp32"),
        description=(
            "8 C6678 on one PCIe card (64 cores, 2.56 TMAC/s). One network runs split over the "
            "8 cores of one DSP; the card's DSPs take different images (throughput)."
        ),
        extra=_c6678_extra(8),
    )
    am_clock = 750e6  # AM574x data manual: C66x DSPs at up to 750 MHz (TIDL API docs: "2 C66x cores at 750MHz")
    am_macs = 2 * DATASHEET_MACS_PER_CYCLE * am_clock
    am5749 = TargetSpec(
        name="c66x-am5749",
        title="TI AM5749 DSP subsystem (2 × C66x at 750 MHz)",
        emulator=EMULATOR,
        cores=2,
        clock_hz=am_clock,
        # AM574x IDK EVM: 2 GB DDR3L (TI AM574x IDK user guide)
        memory_bytes=2048 * _MB,
        # AM57x DDR3 EMIF: 32-bit at up to 533 MHz (DDR3-1066): 4.26 GB/s per EMIF; the DSPs
        # reach DDR over the L3 interconnect
        memory_bandwidth=1066e6 * 4,
        peak_ops={"int16": 2 * am_macs, "int8": 2 * am_macs, "fp32": 2 * 16 * am_clock},
        # per C66x at 750 MHz about 0.75 W active, 2 DSPs 1.5 W; idle 0.2 W. Our estimates
        # for the DSP power domain, not datasheet figures.
        tdp_w=1.5,
        idle_w=0.2,
        formats=("int8", "int16", "fp32"),
        description=(
            "The two C66x DSPs of a Sitara AM5749 (TIDL's DSP target), 32 KB L1D and 288 KB L2 "
            "each, no MSMC. Use options cores=1 for one DSP, as TI's published TIDL timings do."
        ),
        extra={
            "chips": 1,
            "cores_per_chip": 2,
            "l2_bytes_per_core": 288 * _KB,  # AM57x DSP subsystem: 288 KB L2 per DSP
            "l1d_bytes_per_core": 32 * _KB,
            # TIDL on AM57x keeps layer buffers in DDR (CMEM) and tiles them into L2 with
            # EDMA; the on-chip OCMC RAM is not used for them
            "shared_sram_bytes": 0,
            "shared_sram_bandwidth": 0.0,
            "ddr_bandwidth_peak": 1066e6 * 4,
            "ddr_efficiency": 0.6,  # as for the C6678 (assumption)
            "dot_product_macs_per_cycle": DOT_PRODUCT_MACS_PER_CYCLE,
            "datasheet_macs_per_cycle": DATASHEET_MACS_PER_CYCLE,
            # the two DSPs are separate subsystems: TIDL runs one network per DSP (TIDL API
            # "ExecutionObject"), so a single image is never split across them
            "split_layers_across_cores": False,
        },
    )
    return [c6678, pcie, am5749]
