"""Hook implementations of the Jetson target plugin: TX2 datasheets (one per power mode)
and the emulator. Imports nothing heavy; the emulator is built on first use."""

from __future__ import annotations

from sigdl_core import hookimpl
from sigdl_core.interfaces import EmulatorSpec, TargetSpec

from .datasheet import EMULATOR_NAME, TARGETS


def _emulator():
    from .emulator import JetsonEmulator

    return JetsonEmulator()


@hookimpl
def sigdl_targets() -> list[TargetSpec]:
    return list(TARGETS)


@hookimpl
def sigdl_emulators() -> list[EmulatorSpec]:
    return [
        EmulatorSpec(
            EMULATOR_NAME,
            "calibrated roofline of the TX2's Pascal GPU (TensorRT, FP16/FP32) with batch "
            "effects and per-layer overheads; accuracy by onnxruntime on the host",
            factory=_emulator,
        )
    ]
