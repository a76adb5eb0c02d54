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

with ``ops_per_cycle`` 8 (fp32: one 128-bit MULPS + one ADDPS) or 32 (int8: PMADDUBSW, 16
u8×s8 MACs) per cycle, ``η`` the fraction of it the Atom's kernels sustain on the
reference layer, and ``layers`` the nodes that are not fused, folded or views. A single
request on ``T`` cores (OpenVINO's latency mode splits each layer across the cores) takes
``t1 × ((1 − p) + p / T)`` (Amdahl, parallel fraction ``p``); ``T`` streams, one request
per core (its throughput mode), give ``T × 1000 / t1`` frames per second.

What set which constant (bench/emulation_calibration.py prints it again):

* ``fp32_efficiency`` and ``per_layer_s``: the five FP32 4-request throughputs of the
  x5-E3940 (OpenVINO 2022.1 benchmark data), compared as 4-stream throughput.
* ``int8_efficiency``: the five INT8 single-request latencies of the same table.
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

__all__ = ["ATOM_CONSTANTS", "EVIDENCE", "MEASURED", "OPS_PER_CYCLE", "PUBLISHED", "latency_ms",
           "parallel_factor", "predict_row", "reference_time_ms", "single_core_ms", "streams_fps"]

#: Fitted by ``bench/emulation_calibration.py --fit`` (see the module docstring).
ATOM_CONSTANTS: dict[str, float] = {
    "fp32_efficiency": 0.5636793145901563,
    "int8_efficiency": 0.47625157020945325,
    "per_layer_s": 0.0,  # fitted: 2e-16 s; the host's own per-layer dispatch, scaled, already covers it
    "parallel_fraction": 0.95,
}

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
    args = (m["ratio"], m["ref_flops"], int(m["layers"]), precision, E3940_BURST_HZ, E3940_CORES, constants)
    return latency_ms(*args) if quantity == "latency_ms" else streams_fps(*args)
