"""Hook implementations of the C66x target plugin (imports nothing heavy)."""

from __future__ import annotations

from sigdl_core import hookimpl
from sigdl_core.interfaces import Emulator, EmulatorOption, EmulatorSpec, TargetSpec

#: The options of the C66x emulator; the core validates a user's values against these.
EMULATOR_OPTIONS: tuple[EmulatorOption, ...] = (
    EmulatorOption("cores", int, None, "DSP cores working on one image (default: all the target's)",
                   minimum=1, maximum="cores"),
    EmulatorOption("rounding", str, "half-up", "half-up: the DSP's arithmetic; onnxruntime: its CPU kernels'",
                   choices=("half-up", "onnxruntime")),
    EmulatorOption("activation_type", str, "uint8", "the activations' integer type",
                   choices=("uint8", "int8", "uint16", "int16")),
    EmulatorOption("per_channel", bool, False, "per-channel weight scales"),
    EmulatorOption("calibration_samples", int, 256, "training samples that calibrate the quantization",
                   minimum=1),
    EmulatorOption("max_samples", int, None, "test samples emulated (default: all)", minimum=1),
    EmulatorOption("accuracy_tolerance", float, 0.02, "top-1 drop against float that warns (a fraction)",
                   minimum=0, maximum=1),
    EmulatorOption("batch_size", int, 256, "samples per NumPy chunk of the integer pipeline", minimum=1),
    EmulatorOption("reduce_range", bool, False, "7-bit weights, as onnxruntime recommends for its x86 "
                   "kernels (the DSP does not need it)"),
)


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
            options=EMULATOR_OPTIONS,
        )
    ]
