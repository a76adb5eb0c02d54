"""Hook implementations of the C66x target plugin (imports nothing heavy)."""

from __future__ import annotations

from sigdl_core import hookimpl
from sigdl_core.interfaces import Emulator, EmulatorSpec, TargetSpec


def _emulator() -> Emulator:
    from .emulator import C66xEmulator

    return C66xEmulator()


@hookimpl
def sigdl_targets() -> list[TargetSpec]:
    from .datasheet import c66x_targets

    return c66x_targets()


@hookimpl
def sigdl_emulators() -> list[EmulatorSpec]:
    return [
        EmulatorSpec(
            "c66x",
            "TI C66x: bit-exact int8/int16 fixed-point accuracy, latency from MACs, cores and memory traffic",
            factory=_emulator,
        )
    ]
