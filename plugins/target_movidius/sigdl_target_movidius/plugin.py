"""Hook implementations of the Movidius target plugin (imports nothing heavy)."""

from __future__ import annotations

from sigdl_core import hookimpl
from sigdl_core.interfaces import Emulator, EmulatorOption, EmulatorSpec, TargetSpec

from .evidence import EVIDENCE

#: The options of the Movidius emulator; the core validates a user's values against these.
EMULATOR_OPTIONS: tuple[EmulatorOption, ...] = (
    EmulatorOption("fp16_tolerance", float, 0.01, "top-1 drop of FP16 against FP32 that warns (a fraction)",
                   minimum=0, maximum=1),
    EmulatorOption("max_samples", int, None, "test samples emulated (default: all)", minimum=1),
    EmulatorOption("fp16_model_path", str, None, "where to keep the converted FP16 model "
                   "(default: a temporary file)"),
    EmulatorOption("usb", bool, False, "count the host-to-stick USB transfer of the input and "
                   "output in the latency (default: on-device time, as mvNCProfile reports it)"),
)


def _emulator() -> Emulator:
    from .emulator import MovidiusEmulator

    return MovidiusEmulator()


@hookimpl
def sigdl_targets() -> list[TargetSpec]:
    from .datasheet import movidius_targets

    return movidius_targets()


@hookimpl
def sigdl_emulators() -> list[EmulatorSpec]:
    return [
        EmulatorSpec(
            "movidius",
            "Myriad 2 MA2450: NCSDK operator check, FP16 accuracy, per-layer-type latency fitted "
            "on published NCS rows (on-device, or with the USB transfer)",
            factory=_emulator,
            options=EMULATOR_OPTIONS,
            calibration=EVIDENCE,
        )
    ]
