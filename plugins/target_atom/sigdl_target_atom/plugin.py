"""Hook implementations of the Atom target plugin: the boards' datasheets and the emulator.

Imports nothing heavy: the emulator (NumPy, onnx, onnxruntime in a child process) is
built by the spec's factory on first use.
"""

from __future__ import annotations

from sigdl_core import hookimpl
from sigdl_core.interfaces import EmulatorSpec, TargetSpec

from .datasheet import EMULATOR_NAME, TARGETS


def _emulator():
    from .emulator import AtomEmulator

    return AtomEmulator()


@hookimpl
def sigdl_targets() -> list[TargetSpec]:
    return list(TARGETS)


@hookimpl
def sigdl_emulators() -> list[EmulatorSpec]:
    return [
        EmulatorSpec(
            EMULATOR_NAME,
            "executes the ONNX model with onnxruntime on the host's x86 cores, limited to the "
            "Atom's cores and memory, and scales the time to its clock and micro-architecture",
            factory=_emulator,
        )
    ]
