"""Hook implementations of the Atom target plugin: the boards' datasheets and the emulator.

Imports nothing heavy: the emulator (NumPy, onnx, onnxruntime in a child process) is
built by the spec's factory on first use.
"""

from __future__ import annotations

from sigdl_core import hookimpl
from sigdl_core.interfaces import EmulatorOption, EmulatorSpec, TargetSpec

from .calibration import EVIDENCE
from .datasheet import EMULATOR_NAME, TARGETS

#: The options of the Atom emulator; the core validates a user's values against these.
EMULATOR_OPTIONS: tuple[EmulatorOption, ...] = (
    EmulatorOption("precision", str, "fp32", "fp32: the model as given; int8: its int8 (QDQ) form, "
                   "what OpenVINO's int8 path runs, scaled by an int8 reference kernel",
                   choices=("fp32", "int8")),
    EmulatorOption("clock", str, "base", "base: the sustained clock, safe for a real-time budget; "
                   "burst: the 1.8 GHz burst clock", choices=("base", "burst")),
    EmulatorOption("memory_bytes", int, None, "the board's RAM in bytes (default: the target's datasheet "
                   "figure)", minimum=1),
    EmulatorOption("batch_sizes", list[int], (1, 2, 4, 8), "batch sizes timed for the best-batch "
                   "throughput (1 is always timed)", minimum=1),
    EmulatorOption("repeats", int, 30, "timed runs per batch size", minimum=5),
    EmulatorOption("max_seconds", float, 20.0, "time budget of the timing runs, in seconds", minimum=1),
    EmulatorOption("max_accuracy_samples", int, None, "test samples the accuracy is measured on "
                   "(default: all)", minimum=1),
    EmulatorOption("host_gflops", float, None, "skip the reference layer and scale by this host "
                   "GFLOP/s per core", exclusive_minimum=0),
    EmulatorOption("input_shape", list[int], None, "one sample's shape, for models with symbolic sizes",
                   minimum=1),
)


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
            "executes the ONNX model (fp32, or its int8 form) with onnxruntime on one host core "
            "against a reference convolution, and scales to the Atom's cores, clock and kernels "
            "(constants fitted on published x5-E3940 OpenVINO rows)",
            factory=_emulator,
            options=EMULATOR_OPTIONS,
            calibration=EVIDENCE,
        )
    ]
