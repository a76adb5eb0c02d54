"""Hook implementations of the ARM target plugin: five boards' datasheets and the ARM
emulator with its options declared as data. Imports nothing heavy."""

from __future__ import annotations

from sigdl_core import hookimpl
from sigdl_core.interfaces import EmulatorOption, EmulatorSpec, TargetSpec

from .datasheet import EMULATOR_NAME, TARGETS
from .evidence import EVIDENCE

#: Every option the ARM emulator takes; the core validates user values against these.
OPTIONS: tuple[EmulatorOption, ...] = (
    EmulatorOption("threads", int, 0,
                   "threads ncnn runs on (1..the board's cores; 0 = all cores)"),
    EmulatorOption("precision", str, "fp32",
                   "fp32 (host IEEE arithmetic) or int8 (the QDQ model through onnxruntime)",
                   choices=("fp32", "int8")),
    EmulatorOption("clock", float, 0.0,
                   "core clock in GHz (0 = the datasheet's); e.g. 1.8 for an overclocked Pi 4"),
    EmulatorOption("calibration_samples", int, 256,
                   "training samples that calibrate the int8 ranges"),
    EmulatorOption("max_samples", int, 0, "test samples evaluated (0 = all)"),
)


def _emulator():
    from .emulator import ArmEmulator

    return ArmEmulator()


@hookimpl
def sigdl_targets() -> list[TargetSpec]:
    return list(TARGETS)


@hookimpl
def sigdl_emulators() -> list[EmulatorSpec]:
    return [
        EmulatorSpec(
            EMULATOR_NAME,
            "analytical model of ncnn on multicore ARM CPUs (NEON peaks, im2col/Winograd choice, "
            "threads, memory bound, per-layer overhead), calibrated on the Pi 4B's ncnn rows; "
            "accuracy by onnxruntime on the host (fp32, or the QDQ int8 model)",
            factory=_emulator,
            options=OPTIONS,
            calibration=EVIDENCE,
        )
    ]
