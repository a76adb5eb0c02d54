"""The Atom emulator's fitted constants, its latency model, and the published rows behind them.

Pure data and arithmetic (no NumPy, no onnx): the plugin's hook module imports it to show
the evidence in ``sigdl emulators``, and the tests recompute every row from it.

The model
---------
The ONNX model (fp32, or its int8 QDQ form for ``precision=int8``) runs on **one** host
core, interleaved (ABBA) with a reference convolution of the same precision (3×3, 64→64 at
56², 0.23 GFLOP), and ``r`` is the ratio of the two low (10 %) quantiles of their times:
the model's duration in units of the reference on this host's kernels (see
:func:`sigdl_core.emulation.harness.low_ratio`). On one Atom core::

    t1 = r × F_ref / (ops_per_cycle × clock × η[precision]) + layers × per_layer_s

(for int8, ``r`` counts only the int8 kernels' share of the host time, see
:data:`INT8_GLUE_OPS`) with ``ops_per_cycle`` 8 (fp32: one 128-bit MULPS + one ADDPS) or 32 (int8: PMADDUBSW, 16
u8×s8 MACs) per cycle, ``η`` the fraction of it the Atom's kernels sustain on the
reference layer, and ``layers`` the nodes that are not fused, folded or views. A single
request on ``T`` cores (OpenVINO's latency mode splits each layer across the cores) takes
``t1 × ((1 − p) + p / T)`` (Amdahl, parallel fraction ``p``); ``T`` streams, one request
per core (its throughput mode), give ``T × 1000 / t1`` frames per second.

What set which constant (bench/emulation_calibration.py prints it again):

* ``fp32_efficiency``: the five FP32 4-request throughputs of the x5-E3940 (OpenVINO
  2022.1 benchmark data), compared as 4-stream throughput; ``int8_efficiency``: the five
  INT8 single-request latencies of the same table; ``per_layer_s`` (179 µs, OpenVINO's
  per-layer dispatch and synchronisation on a 1.8 GHz Goldmont beyond the host's own):
  all ten rows. One least-squares fit on log error over the ten rows sets the three.
* ``parallel_fraction`` 0.95: assumed, not fitted. The table gives no FP32 latency and no
  INT8 throughput, so the rows cannot tell the 4-core speed-up from the int8 per-core rate;
  with 0.95 a 4-core request runs 3.5× faster than one core.
* The x5-E3930 and AWS DeepLens have no published figure: they are **derived** from the
  E3940's constants (the same Goldmont cores and kernels) by their cores (2) and clock
  (1.3 GHz base, 1.8 GHz burst); their LPDDR4-2400 gives each core more bandwidth than the
  E3940's single-channel DDR3-1600 that the constants were fitted on, so memory-bound
  layers, if anything, run faster than this predicts.
* The E3940 rows were measured with Turbo on: they are compared at the 1.8 GHz burst clock
  (``clock=burst``); the emulator's default is the base clock, the safe figure for a
  real-time budget.
"""

from __future__ import annotations

from collections.abc import Mapping

from .evidence import EVIDENCE, MEASURED

__all__ = ["ATOM_CONSTANTS", "EVIDENCE", "busy_fraction", "INT8_GLUE_OPS", "MEASURED", "OPS_PER_CYCLE", "PUBLISHED",
           "int8_kernel_fraction", "latency_ms",
           "parallel_factor", "predict_row", "reference_time_ms", "single_core_ms", "streams_fps"]

#: Fitted by ``bench/emulation_calibration.py --fit`` (see the module docstring).
ATOM_CONSTANTS: dict[str, float] = {
    "fp32_efficiency": 0.5800938780766324,
    "int8_efficiency": 0.45014167662639415,
    "per_layer_s": 0.0001790017751142789,
    "parallel_fraction": 0.95,
}

#: Operators of onnxruntime's int8 (QDQ) execution that OpenVINO's int8 path does not run
#: as kernels of their own: its low-precision transformations fold (de)quantization and
#: batch-norm scale-shifts into the int8 kernels' epilogues and give a concat's inputs one
#: scale (no requantization), and the host's layout transposes are its own. Their share of
#: the profiled host time is taken out of the int8 model's ratio (:func:`int8_kernel_fraction`).
INT8_GLUE_OPS = frozenset({
    "QuantizeLinear", "DequantizeLinear", "QLinearConcat", "Concat", "BatchNormalization",
    "Relu", "Clip", "Transpose", "ReorderInput", "ReorderOutput", "Reshape", "Flatten",
    "Identity", "Cast",
})


def int8_kernel_fraction(kernel_us_by_op: Mapping[str, float]) -> float:
    """The share of the int8 model's profiled host time spent outside :data:`INT8_GLUE_OPS`
    (1.0 when nothing was profiled)."""
    total = sum(kernel_us_by_op.values())
    if total <= 0:
        return 1.0
    glue = sum(v for k, v in kernel_us_by_op.items() if k in INT8_GLUE_OPS)
    return max(0.0, 1.0 - glue / total)


#: Operations per cycle per Goldmont core in each precision (datasheet module).
OPS_PER_CYCLE: dict[str, int] = {"fp32": 8, "int8": 32}

OPENVINO = ("openvinotoolkit/openvino docs/_static/csv/benchmark-data.csv, release 2022.1 "
            "(x5-E3940, 4 cores, Turbo on, single-channel DDR3-1600, benchmark_app)")


def reference_time_ms(ref_flops: float, precision: str, clock_hz: float,
                      constants: Mapping[str, float] = ATOM_CONSTANTS) -> float:
    """The reference layer's time on one Atom core, in ms."""
    eff = constants[f"{precision}_efficiency"]
    return ref_flops / (OPS_PER_CYCLE[precision] * clock_hz * eff) * 1e3


def single_core_ms(ratio: float, ref_flops: float, layers: int, precision: str, clock_hz: float,
                   constants: Mapping[str, float] = ATOM_CONSTANTS) -> float:
    """One request on one Atom core, in ms, from the measured model/reference ratio."""
    return (ratio * reference_time_ms(ref_flops, precision, clock_hz, constants)
            + layers * constants["per_layer_s"] * 1e3)


def parallel_factor(cores: int, constants: Mapping[str, float] = ATOM_CONSTANTS) -> float:
    """The time of one request on ``cores`` cores over its time on one (Amdahl)."""
    p = constants["parallel_fraction"]
    return (1.0 - p) + p / max(1, cores)


def busy_fraction(cores: int, constants: Mapping[str, float] = ATOM_CONSTANTS) -> float:
    """The cores' busy fraction while one request runs on ``cores`` of them (Amdahl: the
    serial part keeps one core busy)."""
    return 1.0 / (cores * parallel_factor(cores, constants))


def latency_ms(ratio: float, ref_flops: float, layers: int, precision: str, clock_hz: float,
               cores: int, constants: Mapping[str, float] = ATOM_CONSTANTS) -> float:
    """One request on all ``cores`` (the latency mode), in ms."""
    return (single_core_ms(ratio, ref_flops, layers, precision, clock_hz, constants)
            * parallel_factor(cores, constants))


def streams_fps(ratio: float, ref_flops: float, layers: int, precision: str, clock_hz: float,
                cores: int, constants: Mapping[str, float] = ATOM_CONSTANTS) -> float:
    """``cores`` requests at once, one per core (the throughput mode), in frames per second."""
    return cores * 1e3 / single_core_ms(ratio, ref_flops, layers, precision, clock_hz, constants)


#: The E3940 published rows: (model key, description, quantity, precision, published).
PUBLISHED: tuple[tuple[str, str, str, str, float], ...] = (
    ("densenet121", "DenseNet-121, 224²", "latency_ms", "int8", 81.58),
    ("inception_v3", "Inception v3 (TF-slim), 299²", "latency_ms", "int8", 148.91),
    ("inception_v4", "Inception v4, 299²", "latency_ms", "int8", 328.44),
    ("mobilenet_ssd", "MobileNet-SSD (Caffe, VOC), 300²", "latency_ms", "int8", 39.87),
    ("yolov3_tiny", "YOLOv3-tiny (darknet), 416²", "latency_ms", "int8", 82.47),
    ("densenet121", "DenseNet-121, 224²", "fps_4_streams", "fp32", 5.34),
    ("inception_v3", "Inception v3 (TF-slim), 299²", "fps_4_streams", "fp32", 2.91),
    ("inception_v4", "Inception v4, 299²", "fps_4_streams", "fp32", 1.37),
    ("mobilenet_ssd", "MobileNet-SSD (Caffe, VOC), 300²", "fps_4_streams", "fp32", 12.82),
    ("yolov3_tiny", "YOLOv3-tiny (darknet), 416²", "fps_4_streams", "fp32", 6.23),
)

#: E3940 burst clock (Turbo on), Hz.
E3940_BURST_HZ = 1.8e9
E3940_CORES = 4


def predict_row(model: str, quantity: str, precision: str,
                constants: Mapping[str, float] = ATOM_CONSTANTS) -> float | None:
    """The emulator's prediction of a published E3940 row from :data:`MEASURED` (the host's
    ratios the benchmark measured, in ``evidence``) and ``constants``."""
    m = MEASURED.get((model, precision))
    if m is None:
        return None
    ratio = m["ratio"] * m.get("kernel_fraction", 1.0)
    args = (ratio, m["ref_flops"], int(m["layers"]), precision, E3940_BURST_HZ, E3940_CORES, constants)
    return latency_ms(*args) if quantity == "latency_ms" else streams_fps(*args)
