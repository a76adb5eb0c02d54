"""Hook implementations of the Jetson target plugin: TX2 datasheets (one per power mode)
and the emulator. Imports nothing heavy; the emulator is built on first use."""

from __future__ import annotations

from sigdl_core import hookimpl
from sigdl_core.interfaces import EmulatorOption, EmulatorSpec, TargetSpec

from .datasheet import EMULATOR_NAME, POWER_MODES, TARGETS
from .evidence import EVIDENCE

#: The options of the Jetson emulator; the core validates a user's values against these.
EMULATOR_OPTIONS: tuple[EmulatorOption, ...] = (
    EmulatorOption("precision", str, "fp16", "TensorRT's number format", choices=("fp16", "fp32")),
    EmulatorOption("power_mode", str, None, "the nvpmodel power mode (default: the target's own)",
                   choices=tuple(POWER_MODES)),
    EmulatorOption("batch_sizes", list[int], (1, 2, 4, 8, 16, 32, 64), "batch sizes of the best-batch "
                   "throughput (1 is always included)", minimum=1),
    EmulatorOption("compare_fp32", bool, True, "also measure the fp32 accuracy beside fp16"),
    EmulatorOption("max_accuracy_samples", int, None, "test samples the accuracy is measured on "
                   "(default: all)", minimum=1),
    EmulatorOption("input_shape", list[int], None, "one sample's shape, for models with symbolic sizes",
                   minimum=1),
    EmulatorOption("tensorrt", int, 3, "the TensorRT generation whose constants to use: 3 (JetPack 3.x, "
                   "the NVIDIA README rows) or 5 (JetPack 4.x, QuTiBench)", choices=(3, 5)),
    EmulatorOption("use_gpu", bool, True, "also time the model on this host's NVIDIA GPU when there is one"),
)


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
            options=EMULATOR_OPTIONS,
            calibration=EVIDENCE,
        )
    ]
