"""The Atom emulator: execute on one host core against a reference layer, then scale.

Method
------
1. **Execute.** The ONNX model — as given (``precision=fp32``), or its int8 QDQ form
   (``precision=int8``: :mod:`.int8`, what OpenVINO's int8 path runs; a QDQ model is taken
   as it is) — runs with onnxruntime in the execution harness
   (:mod:`sigdl_core.emulation.harness`): a child process pinned to
   ``min(target cores, host cores)`` CPUs with **one** intra-op thread (the scheduler can
   move it to a free CPU when another job holds one), and an address-space limit of the
   board's memory on top of the runtime's own baseline. A model that does not fit is
   reported as such. The harness also measures throughput at a few batch sizes, the
   resident memory, the CPU utilisation, and top-1/top-5 accuracy on the test split (fp32:
   the same IEEE single precision as the Atom's SSE; int8: onnxruntime's integer kernels
   on the int8 model).

2. **Time against a reference.** A 3×3 convolution (64→64 at 56², 0.23 GFLOP) of the same
   precision runs in the same child, interleaved with the model at batch 1 (ABBA order),
   each timed by the thread's CPU time (``timer="thread"``), for at least
   :data:`MIN_TIMING_SECONDS`. ``r`` = 10th percentile of the model's times over the 10th
   percentile of the reference's: other jobs only ever add time (and the time slices they
   take do not count in a thread's CPU time), so low quantiles are the uncontended times.
   ``r`` is the model's duration in reference units with this host's kernels (int8: times
   the int8 kernels' share of the host time, from onnxruntime's profiler, since OpenVINO
   folds the quantize/dequantize, batch-norm and concat requantization glue into them). The
   statistic on each quarter of the runs gives the spread reported in
   ``extra["latency_ms_spread"]``.

3. **Scale** (:mod:`.calibration`, constants fitted on published x5-E3940 rows): one Atom
   core takes ``r × F_ref / (ops/cycle × clock × η) + layers × per-layer time``; a request
   on all ``T`` cores takes ``× ((1 − p) + p / T)`` (Amdahl, ``p`` = 0.95 assumed);
   ``fps_best`` is ``T`` streams, one per core (OpenVINO's throughput mode), at the best
   batch size. The clock is the **base** clock by default (sustained, safe for a real-time
   budget); ``clock=burst`` uses the 1.8 GHz burst clock (the published rows had Turbo on).
   ``host_gflops`` replaces the reference timing by a given host speed (tests use it).
   The E3930 and DeepLens use the E3940's constants with their own cores and clock.

4. **Cross-check** with the roofline of the Atom (:mod:`sigdl_core.emulation.roofline`,
   constants in the datasheet module): both latencies are reported, and a warning is
   raised when they differ by more than 2×.

5. **Power** is an estimate: ``P = idle + (TDP − idle) × u`` with ``u`` the cores' busy
   fraction during one request on all of them (``1 / ((1 − p)·T + p)``, Amdahl); energy per
   inference is ``P × latency``.
   TDP covers the whole SoC (GPU included) at full load, so this overestimates a CPU-only
   workload. Neither number is a measurement.

Options: declared in :data:`sigdl_target_atom.plugin.EMULATOR_OPTIONS` (``precision``,
``clock``, ``memory_bytes``, ``batch_sizes``, ``repeats``, ``max_seconds``,
``max_accuracy_samples``, ``host_gflops``, ``input_shape``).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sigdl_core.emulation import (
    Machine,
    ReportBuilder,
    analyze_model,
    describe_machine,
    energy_per_inference_mj,
    estimate_latency,
    estimate_power,
    machine_from_target,
)
from sigdl_core.emulation.harness import HarnessLimits, run_limited
from sigdl_core.files import read_regular_file
from sigdl_core.targets import validate_options
from sigdl_core.interfaces import (
    ArrayDataset,
    calibration_summary,
    Emulator,
    EmulationReport,
    Method,
    TargetSpec,
)

from .calibration import (
    ATOM_CONSTANTS,
    EVIDENCE,
    OPS_PER_CYCLE,
    busy_fraction,
    int8_kernel_fraction,
    parallel_factor,
    reference_time_ms,
    single_core_ms,
)
from .datasheet import EMULATOR_NAME
from .int8 import int8_model, is_quantized, reference_int8_model
from .plugin import EMULATOR_OPTIONS

#: The quantile of the host's times taken as its uncontended time (harness ``low_quantile``).
LOW_QUANTILE = 0.1
#: Batch-1 timing goes on for at least this long (a tiny model gets hundreds of runs) …
MIN_TIMING_SECONDS = 0.5
#: … but never past this many runs.
MAX_REPEATS = 2000

#: Profiled runs of an int8 model (where its host time goes, :func:`int8_kernel_fraction`).
PROFILE_RUNS = 5

#: The reference layer's input: one 64-channel 56×56 feature map.
REFERENCE_SHAPE = (1, 64, 56, 56)


def reference_conv_model(path: Path) -> int:
    """Writes the calibration layer (3×3 conv, 64→64, 56×56, ReLU) and returns its FLOPs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = (rng.standard_normal((64, 64, 3, 3)) * 0.05).astype(np.float32)
    b = np.zeros(64, np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["y"])],
        "reference_conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64, 56, 56])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 64, 56, 56])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, os.fspath(path))
    return analyze_model(model).flops


def _options(options: Mapping[str, Any] | None, target: TargetSpec) -> dict[str, Any]:
    """The declared options (:data:`~sigdl_target_atom.plugin.EMULATOR_OPTIONS`), checked by
    the core, with the target's RAM as the default memory and batch 1 always timed."""
    opts = validate_options(EMULATOR_OPTIONS, options, target)
    if opts["memory_bytes"] is None:
        opts["memory_bytes"] = target.memory_bytes
    opts["batch_sizes"] = [1] + sorted({int(b) for b in opts["batch_sizes"] if b != 1})
    return opts


def atom_layers(cost) -> int:
    """The layers a runtime dispatches: nodes that are not folded constants, views,
    quantize/dequantize pairs (fused into the integer kernels), or epilogues fused into
    the convolution or GEMM before them."""
    return sum(1 for n in cost.nodes
               if not n.constant and n.fuses_into is None and n.op_class not in ("view", "quant"))


def latency_spread(res, scale: float, subsets: list[float], estimate) -> dict[str, Any]:
    """What the emulator saw of the host's noise, on the Atom's scale.

    ``p5``/``p50``/``p95`` are percentiles of every timed run scaled by ``scale`` (what a
    single run would have said); ``estimate_low``/``estimate_high`` the estimate recomputed
    (``estimate(ratio)``) on four consecutive quarters of the runs: how far the reported
    p50 moves with the draw — the error bar to draw.
    """
    lat = np.asarray(res.latencies_ms or [res.latency_ms_p50], float) * scale
    est = [float(estimate(r)) for r in subsets] or [float(np.quantile(lat, LOW_QUANTILE))]
    load = res.host_load[0] if res.host_load else float("nan")
    return {
        "p5": float(np.percentile(lat, 5)), "p50": float(np.percentile(lat, 50)),
        "p95": float(np.percentile(lat, 95)), "runs": int(lat.size),
        "estimate": float(np.quantile(lat, LOW_QUANTILE)),
        "estimate_low": min(est), "estimate_high": max(est),
        "host_load": load if math.isfinite(load) else -1.0,
        "method": f"estimate = the {LOW_QUANTILE:.0%} quantile of the runs; low/high = the "
                  "estimate on four consecutive quarters of the runs; p5/p50/p95 = single runs",
    }


def _int8_model(path: Path, folder: Path, data: ArrayDataset | None, cost,
                sample_shape: list[int] | None) -> tuple[Path, str]:
    """The int8 model the Atom runs: the given one when it is already QDQ, else quantized
    (calibrated on up to 64 training samples, or seeded normal inputs without data)."""
    if is_quantized(path):
        return path, "the given int8 (QDQ) model"
    if data is not None and not data.timing_only and len(data.x_train):
        calib, what = np.asarray(data.x_train[:64], np.float32), f"{min(64, len(data.x_train))} training samples"
    else:
        shape = sample_shape or list(cost.input_shapes[next(iter(cost.input_shapes))][1:])
        calib = np.random.default_rng(0).standard_normal((16, *shape)).astype(np.float32)
        what = "16 seeded normal inputs (no data given)"
    out = int8_model(path, folder / "model.int8.onnx", calib)
    return out, f"onnxruntime quantize_static QDQ, u8 activations, s8 per-channel weights, min/max on {what}"


def atom_machine(target: TargetSpec, clock_hz: float) -> Machine:
    """The roofline of an Atom target at ``clock_hz`` (all cores)."""
    peaks = {fmt: v * clock_hz / target.clock_hz for fmt, v in target.peak_ops.items()}
    return machine_from_target(target, peak_flops=peaks, name=f"{target.name}@{clock_hz / 1e9:.2f}GHz")


class AtomEmulator(Emulator):
    """Executes under the Atom's limits and scales to its clock and micro-architecture."""

    name = EMULATOR_NAME

    def emulate(
        self,
        onnx_path: Path,
        target: TargetSpec,
        data: ArrayDataset | None,
        options: Mapping[str, Any] | None = None,
    ) -> EmulationReport:
        path = read_regular_file(onnx_path, "ONNX model")
        opts = _options(options, target)
        rb = ReportBuilder(target.name, self.name)

        # shapes and cost ---------------------------------------------------------------
        sample_shape = None
        if opts["input_shape"] is not None:
            sample_shape = [int(d) for d in opts["input_shape"]]
        elif data is not None:
            sample_shape = list(data.input_shape)
        cost = _cost(path, sample_shape)
        rb.extra("cost", cost.summary())

        # execute on one core, interleaved with the reference layer ---------------------
        precision = str(opts.get("precision", "fp32"))
        clock = target.clock_hz if opts["clock"] == "base" else float(
            target.extra.get("burst_clock_hz", target.clock_hz))
        x_test = y_test = None
        if data is not None and not data.timing_only:
            x_test, y_test = data.x_test, data.y_test
        given = opts["host_gflops"] is not None
        layers = atom_layers(cost)
        with tempfile.TemporaryDirectory(prefix="sigdl-atom-ref-") as tmp:
            ref_path = Path(tmp) / "reference_conv.onnx"
            ref_flops = reference_conv_model(ref_path)
            run_path = path
            int8_note = ""
            if precision == "int8":
                run_path, int8_note = _int8_model(path, Path(tmp), data, cost, sample_shape)
                ref_path = reference_int8_model(ref_path, Path(tmp) / "reference_conv.int8.onnx",
                                                REFERENCE_SHAPE)
            res = run_limited(
                run_path, HarnessLimits(cores=target.cores, memory_bytes=opts["memory_bytes"]),
                x_test, y_test, batch_sizes=opts["batch_sizes"], repeats=int(opts["repeats"]),
                max_seconds=float(opts["max_seconds"]), input_shape=sample_shape,
                max_accuracy_samples=opts["max_accuracy_samples"],
                reference=None if given else ref_path, reference_shape=REFERENCE_SHAPE,
                threads=1, min_seconds=MIN_TIMING_SECONDS, max_repeats=MAX_REPEATS,
                low_quantile=LOW_QUANTILE, timer="thread",
                profile_runs=PROFILE_RUNS if precision == "int8" else 0,
            )
        for w in res.warnings:
            if not w.startswith("the target has"):  # one core is used on purpose
                rb.warn(w)
        rb.extra("execution", res.to_dict())
        if given:
            # the reference layer at the given speed instead of timed
            ref_host_ms = ref_flops / (float(opts["host_gflops"]) * 1e9) * 1e3
            ratio = (res.latency_ms_low / ref_host_ms) if res.latency_ms_low else None
            subsets: list[float] = []
            source = f"host {float(opts['host_gflops']):.1f} GFLOP/s per core (given in options)"
        else:
            ratio = res.model_to_reference_low
            subsets = list(res.model_to_reference_subsets)
            ref_host_ms = res.reference_ms_low
            source = (f"model/reference time ratio {ratio:.4g} (10th percentiles of {res.runs} "
                      f"interleaved runs on one host core)" if ratio else "no reference timing")
        consts = ATOM_CONSTANTS
        # int8: only the int8 kernels' share of the host time (OpenVINO folds the rest)
        kernel_fraction = int8_kernel_fraction(res.kernel_us_by_op) if precision == "int8" else 1.0
        if ratio:
            ratio *= kernel_fraction
            subsets = [r * kernel_fraction for r in subsets]
            source += (f", × {kernel_fraction:.2f}: the int8 kernels' share of the profiled host time"
                       if precision == "int8" else "")
        t1 = single_core_ms(ratio, ref_flops, layers, precision, clock) if ratio else None
        par = parallel_factor(target.cores)
        p50 = t1 * par if t1 is not None else None
        scale = (p50 / res.latency_ms_low) if (p50 and res.latency_ms_low) else None
        rb.extra("calibration", {
            "reference": f"Conv 3x3 64->64 at 56x56 + ReLU, batch 1, {precision}, one host core, "
                         "timed in alternation (ABBA) with the model",
            "precision": precision, "reference_flops": int(ref_flops),
            "host_reference_ms": ref_host_ms, "model_to_reference": ratio,
            "low_quantile": LOW_QUANTILE, "layers": layers, "kernel_fraction": kernel_fraction,
            "kernel_us_by_op": dict(res.kernel_us_by_op),
            "atom_reference_ms": reference_time_ms(ref_flops, precision, clock),
            "atom_single_core_ms": t1, "parallel_factor": par,
            "atom_cores": target.cores, "clock_hz": clock, "constants": dict(consts),
            "factor": scale, "int8_model": int8_note or None,
        })
        rb.extra("evidence", [r.to_dict() for r in EVIDENCE])
        where = (f"executed ({precision}{', ' + int8_note if int8_note else ''}) with onnxruntime "
                 f"{res.onnxruntime} on one of {res.cores_used} pinned host core(s) ({res.cpu_model}), "
                 f"memory limited to {opts['memory_bytes'] / 2**30:.1f} GiB")
        how = (f"one Atom core = {source} × the reference's Atom time "
               f"{reference_time_ms(ref_flops, precision, clock):.2f} ms ({OPS_PER_CYCLE[precision]} "
               f"ops/cycle × {clock / 1e9:.2f} GHz × η {consts[precision + '_efficiency']:.3f}) + "
               f"{layers} layers × {consts['per_layer_s'] * 1e6:.1f} µs; × {par:.3f} for "
               f"{target.cores} cores (parallel fraction {consts['parallel_fraction']:.2f}); "
               f"constants fitted on published x5-E3940 rows: {calibration_summary(EVIDENCE)}"
               + ("" if target.name == "atom-x5-e3940" else
                  f"; {target.name} derived from the E3940 by cores ({target.cores}) and clock"))

        # roofline cross-check ----------------------------------------------------------
        machine = atom_machine(target, clock)
        roof = estimate_latency(cost, machine, 1)
        rb.extra("roofline", {**roof.summary(), "machine": describe_machine(machine, ("fp32",))})

        rb.set("memory_limit_bytes", int(opts["memory_bytes"]), Method.ANALYTICAL,
               "the board's RAM (datasheet; options['memory_bytes'] for another board)")
        if not res.fits:
            rb.set("fits", False, Method.EXECUTED,
                   f"{where}: the run was refused memory or needed more than the limit")
            if res.model_bytes is not None:
                rb.set("peak_memory_bytes", int(res.model_bytes), Method.EXECUTED,
                       "resident memory above the runtime's baseline when the run failed")
            # nothing measured: say what the roofline expects, clearly labelled
            _analytical_timing(rb, roof, target, machine)
            return rb.finish()

        rb.set("fits", True, Method.EXECUTED, f"{where}: ran to completion within the limit")
        if p50 is None or scale is None:
            rb.warn("execution produced no timing; latency from the roofline only")
            _analytical_timing(rb, roof, target, machine)
            return rb.finish()

        spread = latency_spread(res, scale, subsets, lambda r: single_core_ms(
            r, ref_flops, layers, precision, clock) * par)
        rb.extra("latency_ms_spread", spread)
        # the board runs the model alone, so its own jitter is small; what is uncertain is the
        # figure itself: p95 is the highest estimate over the quarters of the runs (a gate on
        # max_latency_ms reads it), not the host's p95, which other jobs inflate
        p95 = max(p50, spread["estimate_high"])
        rb.set("latency_ms_p50", p50, Method.EXECUTED,
               f"{where}; the host's uncontended time (10th percentile of {res.runs} runs: other "
               f"jobs only add time) relative to the reference layer: {how}; the estimate moved "
               f"{spread['estimate_low']:.4g}–{spread['estimate_high']:.4g} ms over quarters of the "
               f"runs (host load {spread['host_load']:.2f})")
        rb.set("latency_ms_p95", p95, Method.EXECUTED,
               "the highest of the estimates on the four quarters of the runs: the Atom runs the "
               "model alone and varies little, so p95 bounds the figure's own uncertainty; the "
               f"host's scaled p95 ({spread['p95']:.4g} ms, other jobs included) is in "
               "extra['latency_ms_spread']")
        rb.set("fps_batch1", 1e3 / p50, Method.EXECUTED, "1000 / p50 latency (one request on all cores)")
        # throughput mode: one stream per core, each as fast as one core runs the batch
        per_image = {b: res.latency_ms_by_batch[b] / b for b in res.latency_ms_by_batch}
        host_low = res.latency_ms_low
        fps = {b: target.cores * 1e3 / (t1 * (per_image[b] / per_image[1]))
               for b in per_image} if 1 in per_image and per_image[1] > 0 else {1: 1e3 / p50}
        fps = {b: max(v, 1e3 / p50) if b == 1 else v for b, v in fps.items()}
        best = max(fps, key=lambda b: (fps[b], -b))
        rb.set("fps_best", fps[best], Method.EXECUTED,
               f"{target.cores} streams, one per core (OpenVINO's throughput mode): "
               f"{target.cores} × 1000 / one-core time, best of batch sizes {sorted(fps)} (host "
               f"median per image relative to batch 1; host uncontended batch-1 time {host_low:.4g} ms)")
        rb.set("best_batch", int(best), Method.EXECUTED, f"the batch size with the highest fps of {sorted(fps)}")
        rb.extra("fps_by_batch", {str(b): v for b, v in fps.items()})
        if res.model_bytes is not None:
            rb.set("peak_memory_bytes", int(res.model_bytes), Method.EXECUTED,
                   "peak resident memory of the child while the model ran, above the runtime's "
                   "baseline (weights, activations, onnxruntime's buffers); onnxruntime on x86 "
                   "as a stand-in for the Atom's runtime")
        if res.accuracy is not None:
            rb.set("accuracy", res.accuracy, Method.EXECUTED,
                   f"onnxruntime FP32 on the host, {res.accuracy.samples} test samples: the same "
                   "IEEE FP32 arithmetic as the Atom's SSE (summation order may differ)"
                   if precision == "fp32" else
                   f"the int8 model ({int8_note}) executed by onnxruntime's integer kernels on the "
                   f"host, {res.accuracy.samples} test samples: u8×s8 products with 32-bit sums, "
                   "as OpenVINO's int8 kernels compute")
        # the cores' busy fraction during one request on all of them (Amdahl): analytical,
        # so the same model gets the same power on every run
        util = busy_fraction(target.cores)
        power = estimate_power(target.idle_w, target.tdp_w, util)
        rb.set("power_w", power, Method.ANALYTICAL,
               f"ESTIMATE: idle {target.idle_w:.1f} W (assumed) + (TDP {target.tdp_w:.1f} W − idle) × "
               f"the {target.cores} cores' busy fraction {util:.2f} in one request (parallel fraction "
               f"{consts['parallel_fraction']:.2f}); not a measurement")
        rb.set("energy_mj", energy_per_inference_mj(power, p50 * 1e-3), Method.EXECUTED,
               "ESTIMATE: estimated power × the executed-and-scaled p50 latency")
        rb.warn("power and energy are estimates from TDP and utilisation, not measurements")

        ratio = p50 / roof.latency_ms if roof.latency_ms > 0 else float("inf")
        rb.extra("cross_check", {"executed_scaled_ms": p50, "roofline_ms": roof.latency_ms,
                                 "ratio": ratio})
        if not 0.5 <= ratio <= 2.0:
            rb.warn(
                f"the executed-and-scaled latency ({p50:.2f} ms) and the roofline estimate "
                f"({roof.latency_ms:.2f} ms) differ by {max(ratio, 1 / ratio):.1f}x: treat the "
                "latency as uncertain and confirm on the board"
            )
        return rb.finish()


def _cost(path: Path, sample_shape: list[int] | None):
    """The model's cost at batch 1; ``sample_shape`` sizes symbolic non-batch axes."""
    from sigdl_core.emulation import load_onnx

    model = load_onnx(path)
    shapes = None
    if sample_shape is not None:
        inits = {t.name for t in model.graph.initializer}
        first = next((i for i in model.graph.input if i.name not in inits), None)
        if first is not None:
            dims = list(first.type.tensor_type.shape.dim)[1:]
            if any(not (d.HasField("dim_value") and d.dim_value > 0) for d in dims):
                shapes = {first.name: [1, *sample_shape]}
    return analyze_model(model, 1, shapes)


def _analytical_timing(rb: ReportBuilder, roof, target: TargetSpec, machine: Machine) -> None:
    from sigdl_core.emulation import roofline_utilisation

    detail = f"not executed; {describe_machine(machine, ('fp32',))}"
    rb.set("latency_ms_p50", roof.latency_ms, Method.ANALYTICAL, detail)
    rb.set("latency_ms_p95", roof.latency_ms, Method.ANALYTICAL, "the roofline gives one time: p95 = p50")
    rb.set("fps_batch1", roof.fps, Method.ANALYTICAL, "1000 / roofline latency")
    u = roofline_utilisation(roof)
    p = estimate_power(target.idle_w, target.tdp_w, u)
    rb.set("power_w", p, Method.ANALYTICAL,
           f"ESTIMATE: idle + (TDP − idle) × roofline busy fraction {u:.2f}")
    rb.set("energy_mj", energy_per_inference_mj(p, roof.latency_s), Method.ANALYTICAL,
           "ESTIMATE: power × roofline latency")
