"""The ARM emulator: ncnn-calibrated analytical latency, host-measured accuracy.

Latency, fps, memory and power are **analytical** (:mod:`.latency`): the core's cost model
and roofline with the board's NEON peaks, ncnn's im2col/Winograd choice per layer, threads,
the memory bound and per-layer overheads, one set of constants per core type (the A72's
fitted to the Pi 4B's ncnn rows; ``bench/results/arm_calibration.md`` has every row's error).
ncnn runs one image at a time, so the best batch is 1.

Accuracy is **executed** on this host with onnxruntime:

* ``precision=fp32``: the model as it is, in the host's IEEE-754 binary32 arithmetic. The
  board computes the same format, but NEON's fused multiply-add (one rounding where the
  host's kernels may round twice) and a different summation order can change the last bits
  of a result, very rarely a top-1 decision.
* ``precision=int8``: the model quantized to QDQ int8 the way ncnn quantizes (int8
  symmetric activations, per-channel int8 weights, min/max on ``calibration_samples``
  training samples; :func:`sigdl_core.emulation.quantize.quantize_qdq`, the same export the
  C66x emulator uses) and run through onnxruntime. A model that is already QDQ runs as given.

Options (declared in :data:`sigdl_target_arm.plugin.OPTIONS`): ``threads`` (0 = all cores),
``precision`` (fp32 | int8), ``clock`` (GHz, 0 = datasheet), ``calibration_samples``,
``max_samples``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sigdl_core.emulation import (
    ReportBuilder,
    analyze_model,
    energy_per_inference_mj,
    estimate_power,
    load_onnx,
    roofline_utilisation,
)
from sigdl_core.emulation.harness import HarnessLimits, host_cpus, run_limited
from sigdl_core.errors import InvalidValueError
from sigdl_core.files import read_regular_file
from sigdl_core.interfaces import ArrayDataset, EmulationReport, Emulator, Method, TargetSpec

from .datasheet import CORES, EMULATOR_NAME
from .latency import predict

__all__ = ["ArmEmulator", "arm_options"]


def arm_options(options: Mapping[str, Any] | None, target: TargetSpec) -> dict[str, Any]:
    """The options with defaults filled, checked against the declarations and the board.

    The core validates types and choices before any work; this adds what depends on the
    target (threads ≤ its cores) and serves direct API calls that pass raw values.
    """
    from .plugin import OPTIONS

    declared = {o.name: o for o in OPTIONS}
    opts = {o.name: o.default for o in OPTIONS}
    for key, value in (options or {}).items():
        if key not in declared:
            raise InvalidValueError(f"unknown option '{key}' for target '{target.name}'",
                                    "allowed: " + ", ".join(declared))
        opt = declared[key]
        if opt.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, opt.type):
            raise InvalidValueError(f"option {key}={value!r} for target '{target.name}' is not a {opt.type.__name__}",
                                    opt.help)
        if opt.choices is not None and value not in opt.choices:
            raise InvalidValueError(f"option {key}={value!r} for target '{target.name}' is not one of "
                                    + ", ".join(map(str, opt.choices)), opt.help)
        opts[key] = value
    if not 0 <= opts["threads"] <= target.cores:
        raise InvalidValueError(f"option threads={opts['threads']} for target '{target.name}' is not in 0..{target.cores}",
                                f"{target.name} has {target.cores} cores (0 = all)")
    if opts["threads"] == 0:
        opts["threads"] = target.cores
    if not 0 <= opts["clock"] <= 5.0:
        raise InvalidValueError(f"option clock={opts['clock']} for target '{target.name}' is not a clock in GHz",
                                "give e.g. clock=1.8 (0 = the datasheet's)")
    for key in ("calibration_samples", "max_samples"):
        if opts[key] < 0 or (key == "calibration_samples" and opts[key] == 0):
            raise InvalidValueError(f"option {key}={opts[key]} for target '{target.name}' must be a whole number > 0"
                                    + (" (0 = all)" if key == "max_samples" else ""))
    return opts


def _is_qdq(model) -> bool:
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def _sample_shape(model, data: ArrayDataset | None):
    if data is None:
        return None
    inits = {t.name for t in model.graph.initializer}
    first = next((i for i in model.graph.input if i.name not in inits), None)
    if first is None:
        return None
    dims = list(first.type.tensor_type.shape.dim)[1:]
    if any(not (d.HasField("dim_value") and d.dim_value > 0) for d in dims):
        return {first.name: [1, *data.input_shape]}
    return None


class ArmEmulator(Emulator):
    """ncnn on a multicore ARM CPU, analytically; accuracy by onnxruntime on the host."""

    name = EMULATOR_NAME

    def export_target_model(self, onnx_path: Path, target: TargetSpec, data: ArrayDataset | None,
                            folder: Path, options: Mapping[str, Any] | None = None) -> Path | None:
        """The int8 QDQ model for ``precision=int8``; the fp32 model runs as it is."""
        opts = arm_options(options, target)
        if opts["precision"] != "int8" or data is None:
            return None
        return self._quantize(read_regular_file(onnx_path, "ONNX model"), data, opts,
                              Path(folder) / f"{target.name}-int8-qdq.onnx")

    def _quantize(self, path: Path, data: ArrayDataset, opts: dict[str, Any], out: Path) -> Path:
        from sigdl_core.emulation.quantize import quantize_qdq

        calib = data.x_train[: opts["calibration_samples"]]
        return quantize_qdq(path, calib, out, activation_type="int8", per_channel=True,
                            activation_symmetric=True)

    def emulate(self, onnx_path: Path, target: TargetSpec, data: ArrayDataset | None,
                options: Mapping[str, Any] | None = None) -> EmulationReport:
        path = read_regular_file(onnx_path, "ONNX model")
        opts = arm_options(options, target)
        threads, precision = opts["threads"], opts["precision"]
        clock = opts["clock"] * 1e9 if opts["clock"] else None
        rb = ReportBuilder(target.name, self.name)
        model = load_onnx(path)
        qdq_given = _is_qdq(model)
        cost = analyze_model(model, 1, _sample_shape(model, data))
        run_precision = "int8" if (precision == "int8" or qdq_given) else "fp32"
        from .latency import int8_links

        est, plan, machine = predict(cost, target, threads, run_precision if not qdq_given else "fp32", clock,
                                     int8_blobs=int8_links(model) if run_precision == "int8" else None)
        core = CORES[plan.core]
        rb.extra("cost", cost.summary())
        rb.extra("machine", machine.to_dict())
        rb.extra("plan", {"threads": threads, "clock_hz": plan.clock_hz, "pace_core": plan.core,
                          "cores_used": [list(c) for c in plan.clusters_used],
                          "algorithms": dict(plan.algorithms)})
        rb.extra("precision", run_precision)
        clusters = ", ".join(f"{n}x {c}" for c, n in plan.clusters_used)
        detail = (f"analytical model of ncnn on {clusters} at {plan.clock_hz / 1e9:.2f} GHz, {threads} "
                  f"thread(s), {run_precision} ({'int8: ' + core.int8_path if run_precision == 'int8' else 'NEON fp32 FMA'}); "
                  "im2col/Winograd chosen per layer, memory bound, per-layer overhead; constants fitted "
                  "to the Pi 4B (A72) ncnn rows only: errors in bench/results/arm_calibration.md")
        rb.set("latency_ms_p50", est.latency_ms, Method.ANALYTICAL, detail)
        rb.set("latency_ms_p95", est.latency_ms, Method.ANALYTICAL,
               "the model predicts one time: p95 = p50 (a real board adds scheduling and thermal spread)")
        rb.set("fps_batch1", est.fps, Method.ANALYTICAL, "1 / predicted latency")
        rb.set("fps_best", est.fps, Method.ANALYTICAL, "ncnn runs one image at a time: batch 1")
        rb.set("best_batch", 1, Method.ANALYTICAL, "ncnn runs one image at a time")
        rb.extra("roofline", est.summary())

        run_cost = cost.in_format("int8") if run_precision == "int8" and not qdq_given else cost  # int8 weights
        def tile(algorithm: str) -> int:  # "winograd-f63" → 6
            return int(algorithm.removeprefix("winograd-f")[:-1])

        wino_extra = sum(int(n.weight_bytes * ((tile(a) + 2) ** 2 / 9 - 1)) for n in run_cost.nodes
                         if (a := plan.algorithms.get(n.name, "")).startswith("winograd"))
        need = run_cost.weight_bytes + wino_extra + run_cost.peak_activation_bytes
        rb.set("peak_memory_bytes", int(need), Method.ANALYTICAL,
               f"weights ({run_cost.weight_bytes / 2**20:.2f} MiB, + {wino_extra / 2**20:.2f} MiB of "
               f"Winograd-transformed copies) + live activations ({run_cost.peak_activation_bytes / 2**20:.2f} MiB) "
               f"in {run_precision}; the OS and the runtime come on top")
        rb.set("memory_limit_bytes", int(target.memory_bytes), Method.ANALYTICAL,
               "the board's RAM, shared with the OS (datasheet)")
        fits = need <= target.memory_bytes
        rb.set("fits", fits, Method.ANALYTICAL, "weights + live activations against the board's RAM")
        if not fits:
            rb.warn(f"does not fit: the model needs {need / 2**20:.0f} MiB, {target.name} has "
                    f"{target.memory_bytes / 2**20:.0f} MiB")

        u = roofline_utilisation(est) * threads / max(1, target.cores)
        power = estimate_power(target.idle_w, target.tdp_w, u)
        rb.set("power_w", power, Method.ANALYTICAL,
               f"ESTIMATE: idle {target.idle_w:g} W + (full load {target.tdp_w:g} W − idle) × busy fraction "
               f"{u:.2f} ({threads} of {target.cores} cores); board figures from the datasheet notes, not a measurement")
        rb.set("energy_mj", energy_per_inference_mj(power, est.latency_s), Method.ANALYTICAL,
               "ESTIMATE: estimated power × predicted latency")
        rb.warn("power and energy are estimates from the board's idle and full-load figures, not measurements")
        if target.name == "rpi-zero-w":
            rb.warn("the ARM1176 has no NEON and no published ncnn rows: its constants are the A72's and "
                    "its latency the least trusted of the ARM targets")

        if data is not None and not data.timing_only:
            self._accuracy(rb, path, model, data, opts, qdq_given)
        return rb.finish()

    def _accuracy(self, rb: ReportBuilder, path: Path, model, data: ArrayDataset, opts: dict[str, Any],
                  qdq_given: bool) -> None:
        limits = HarnessLimits(cores=len(host_cpus()))
        shape = list(data.input_shape)
        common = dict(batch_sizes=(1,), repeats=5, warmup=1, max_seconds=5.0, input_shape=shape,
                      max_accuracy_samples=opts["max_samples"] or None)
        if opts["precision"] == "fp32" or qdq_given:
            res = run_limited(path, limits, data.x_test, data.y_test, **common)
            if res.accuracy is None:
                rb.warn(f"accuracy could not be measured: {res.error}")
                return
            what = ("the given QDQ int8 model with onnxruntime" if qdq_given else
                    "onnxruntime fp32 on the host: IEEE-754 binary32 as on the board; NEON's fused "
                    "multiply-add and another summation order can differ in the last bits")
            rb.set("accuracy", res.accuracy, Method.EXECUTED, f"{what}, {res.accuracy.samples} test samples")
            return
        with tempfile.TemporaryDirectory(prefix="sigdl-arm-int8-") as tmp:
            qdq = self._quantize(path, data, opts, Path(tmp) / "int8.onnx")
            res8 = run_limited(qdq, limits, data.x_test, data.y_test, **common)
        if res8.accuracy is None:
            rb.warn(f"int8 accuracy could not be measured: {res8.error}")
            return
        rb.set("accuracy", res8.accuracy, Method.EXECUTED,
               "the QDQ int8 model (int8 symmetric activations, per-channel int8 weights, min/max on "
               f"{opts['calibration_samples']} training samples, as ncnn quantizes) through onnxruntime on "
               f"the host, {res8.accuracy.samples} test samples; ncnn's requantization rounding can differ")
