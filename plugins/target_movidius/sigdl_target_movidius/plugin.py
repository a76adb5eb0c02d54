"""Hook implementations of the Movidius target plugin (imports nothing heavy)."""

from __future__ import annotations

from sigdl_core import hookimpl
from sigdl_core.interfaces import Emulator, EmulatorSpec, TargetSpec


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
            "Myriad 2 MA2450: NCSDK operator check, FP16 accuracy, SHAVE roofline latency",
            factory=_emulator,
        )
    ]
