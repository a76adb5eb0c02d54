"""The Atom emulator: execute on the host's x86 cores under the Atom's limits, then scale.

Method
------
1. **Execute.** The ONNX model runs with onnxruntime in the execution harness
   (:mod:`sigdl_core.emulation.harness`): a child process pinned to
   ``min(target cores, host cores)`` CPUs with as many intra-op threads, and an
   address-space limit of the board's memory on top of the runtime's own baseline. A model
   that does not fit is reported as such. The harness measures p50/p95 latency at batch 1,
   throughput at a few batch sizes, the resident memory the model needs, the CPU
   utilisation, and top-1/top-5 accuracy on the test split. The host computes in FP32 just
   as the Atom does (both IEEE-754 single precision; summation order differs with vector
   width, so logits can differ in the last bits, not in accuracy).

2. **Scale to the Atom's clock and micro-architecture.** There are no published Atom
   x5-E39x0 CNN timings to calibrate against, so the factor is reasoned, not fitted:

   * a reference layer that dominates CNN time (a 3×3 convolution, 64→64 channels at
     56×56, 0.23 GFLOP) runs in the same child process, on the same cores, *in alternation*
     with the model at batch 1 (reference, model, reference, model …). The median of the
     per-pair ratios ``r = t_model / t_reference`` says how long the model takes in units of
     the reference layer on this host, with onnxruntime's kernels — and because each pair
     runs back to back, contention from other jobs on a shared host weighs on both alike
     and cancels (timing the reference in a separate run made the factor swing 3× on a
     busy 2-core VM);
   * the Atom's sustained GFLOP/s for the same kernel on its ``T`` cores is
     ``G_atom = 8 FLOP/cycle × clock × 0.70 × T``: 8 FLOP/cycle is Goldmont's FP32 peak
     per core (one 128-bit MULPS and one 128-bit ADDPS per cycle, no FMA; see the datasheet
     module), and 0.70 is the fraction of it that a register-blocked SSE GEMM/convolution
     kernel such as MLAS's sustains on a small out-of-order core, parallel losses included
     — an assumption, kept equal to the roofline's conv efficiency so that the two
     estimates share it;
   * the model's Atom latency is ``r × FLOPs_reference / G_atom``: the model keeps its
     time relative to the reference layer (its small late layers, 1×1 convolutions and
     per-node dispatch cost the same *relative* time on both machines), and the reference
     layer runs at ``G_atom`` on the Atom. Every other measured time (p95, other batch
     sizes) is scaled by the same factor. When the target has more cores than the host lets
     us use (the E3940's 4 on a 2-core host), the formula assumes the Atom's extra cores
     scale perfectly (optimistic; a warning says so). ``options["host_gflops"]`` replaces
     the reference measurement by a given host figure (tests use it).

   The clock is the **base** clock by default (sustained under load, the safe figure for
   a real-time budget); ``options["clock"] = "burst"`` uses the 1.8 GHz burst clock.
   One factor for every operator is the weak point: the Atom's memory system (19.2 GB/s
   LPDDR4, 2 MB L2 shared by all cores) is far slower than a server's, so memory-bound
   models (depthwise convolutions, large fully connected layers) will be slower on the
   Atom than the compute factor says. Hence:

3. **Cross-check** with the roofline of the Atom (:mod:`sigdl_core.emulation.roofline`,
   constants in the datasheet module): both latencies are reported, and a warning is
   raised when they differ by more than 2×.

4. **Power** is an estimate: ``P = idle + (TDP − idle) × u`` with ``u`` the measured CPU
   utilisation of the child (CPU time over wall time × cores) at batch 1; energy per
   inference is ``P × latency``. TDP covers the whole SoC (GPU included) at full load, so
   this overestimates a CPU-only workload. Neither number is a measurement.

Options (``options`` mapping): ``clock`` (``base`` | ``burst``), ``memory_bytes`` (the
board's RAM, default 8 GB), ``batch_sizes`` (default ``[1, 2, 4, 8]``), ``repeats``
(timed runs per batch, default 30), ``max_seconds`` (timing budget, default 20),
``max_accuracy_samples``, ``host_gflops`` (skip the reference layer and scale by this host
GFLOP/s per core instead), ``input_shape`` (one sample, for models with symbolic sizes).
"""

from __future__ import annotations

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
from sigdl_core.emulation.harness import HarnessLimits, host_cpus, run_limited
from sigdl_core.errors import InvalidValueError
from sigdl_core.files import read_regular_file
from sigdl_core.interfaces import (
    ArrayDataset,
    Emulator,
    EmulationReport,
    Method,
    TargetSpec,
)

from .datasheet import EMULATOR_NAME, FP32_FLOP_PER_CYCLE, ROOFLINE

#: The fraction of Goldmont's FP32 peak a blocked SSE convolution kernel sustains (assumed).
ATOM_CONV_EFFICIENCY = ROOFLINE["efficiency"]["conv"]

_KNOWN_OPTIONS = {"clock", "memory_bytes", "batch_sizes", "repeats", "max_seconds",
                  "max_accuracy_samples", "host_gflops", "input_shape"}

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


def _options(options: Mapping[str, Any] | None, target: TargetSpec) -> tuple[dict[str, Any], list[str]]:
    opts = dict(options or {})
    ignored = sorted(set(opts) - _KNOWN_OPTIONS)
    out: dict[str, Any] = {
        "clock": opts.get("clock", "base"),
        "memory_bytes": opts.get("memory_bytes", target.memory_bytes),
        "batch_sizes": opts.get("batch_sizes", [1, 2, 4, 8]),
        "repeats": opts.get("repeats", 30),
        "max_seconds": opts.get("max_seconds", 20.0),
        "max_accuracy_samples": opts.get("max_accuracy_samples"),
        "host_gflops": opts.get("host_gflops"),
        "input_shape": opts.get("input_shape"),
    }
    if out["clock"] not in ("base", "burst"):
        raise InvalidValueError(f"option clock={out['clock']!r} is not 'base' or 'burst'",
                                "use clock=base (sustained) or clock=burst (1.8 GHz)")
    mem = out["memory_bytes"]
    if not isinstance(mem, int) or isinstance(mem, bool) or mem < 1:
        raise InvalidValueError(f"option memory_bytes={mem!r} must be a whole number of bytes >= 1")
    bs = out["batch_sizes"]
    if (not isinstance(bs, (list, tuple)) or not bs
            or any(not isinstance(b, int) or isinstance(b, bool) or b < 1 for b in bs)):
        raise InvalidValueError(f"option batch_sizes={bs!r} must be a list of whole numbers >= 1")
    if 1 not in bs:
        bs = [1, *bs]
    out["batch_sizes"] = [1] + sorted({int(b) for b in bs if b != 1})
    for key, lo in (("repeats", 5), ("max_seconds", 1)):
        v = out[key]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < lo:
            raise InvalidValueError(f"option {key}={v!r} must be a number >= {lo}")
    hg = out["host_gflops"]
    if hg is not None and (not isinstance(hg, (int, float)) or isinstance(hg, bool) or hg <= 0):
        raise InvalidValueError(f"option host_gflops={hg!r} must be a positive number")
    mas = out["max_accuracy_samples"]
    if mas is not None and (not isinstance(mas, int) or isinstance(mas, bool) or mas < 1):
        raise InvalidValueError(f"option max_accuracy_samples={mas!r} must be a whole number >= 1")
    warnings = [f"options not used by the atom emulator: {', '.join(ignored)}"] if ignored else []
    return out, warnings


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
        opts, option_warnings = _options(options, target)
        rb = ReportBuilder(target.name, self.name)
        for w in option_warnings:
            rb.warn(w)

        # shapes and cost ---------------------------------------------------------------
        sample_shape = None
        if opts["input_shape"] is not None:
            sample_shape = [int(d) for d in opts["input_shape"]]
        elif data is not None:
            sample_shape = list(data.input_shape)
        cost = _cost(path, sample_shape)
        rb.extra("cost", cost.summary())

        # execute, with the reference layer in alternation -------------------------------
        clock = target.clock_hz if opts["clock"] == "base" else float(
            target.extra.get("burst_clock_hz", target.clock_hz))
        n_host = min(target.cores, len(host_cpus()))
        g_atom_core = FP32_FLOP_PER_CYCLE * clock * ATOM_CONV_EFFICIENCY / 1e9
        g_atom = g_atom_core * target.cores
        x_test = y_test = None
        if data is not None and not data.timing_only:
            x_test, y_test = data.x_test, data.y_test
        given = opts["host_gflops"] is not None
        with tempfile.TemporaryDirectory(prefix="sigdl-atom-ref-") as tmp:
            ref_path = Path(tmp) / "reference_conv.onnx"
            ref_flops = reference_conv_model(ref_path)
            res = run_limited(
                path, HarnessLimits(cores=target.cores, memory_bytes=opts["memory_bytes"]),
                x_test, y_test, batch_sizes=opts["batch_sizes"], repeats=int(opts["repeats"]),
                max_seconds=float(opts["max_seconds"]), input_shape=sample_shape,
                max_accuracy_samples=opts["max_accuracy_samples"],
                reference=None if given else ref_path, reference_shape=REFERENCE_SHAPE,
            )
        for w in res.warnings:
            rb.warn(w)
        rb.extra("execution", res.to_dict())
        used = res.cores_used or n_host
        if given:
            g_host = float(opts["host_gflops"]) * used
            factor = g_host / g_atom
            source = f"host {g_host:.1f} GFLOP/s on {used} core(s) (given in options)"
        elif res.reference_ms_p50 and res.model_to_reference and res.latency_ms_p50:
            g_host = ref_flops / (res.reference_ms_p50 * 1e-3) / 1e9
            # the model's Atom time is its time relative to the reference layer (pairs run
            # back to back) times the reference layer's time on the Atom
            atom_p50 = res.model_to_reference * ref_flops / (g_atom * 1e9) * 1e3
            factor = atom_p50 / res.latency_ms_p50
            source = (f"model/reference time ratio {res.model_to_reference:.3f} (median of "
                      f"back-to-back pairs on {used} host core(s); the reference conv ran at "
                      f"{g_host:.1f} GFLOP/s there)")
        else:
            g_host, factor, source = None, None, "no reference timing"
        rb.extra("calibration", {
            "reference": f"Conv 3x3 64->64 at 56x56 + ReLU, batch 1, fp32, {used} core(s), "
                         "timed in alternation with the model",
            "reference_flops": int(ref_flops), "host_gflops": g_host,
            "model_to_reference": res.model_to_reference,
            "atom_gflops_per_core": g_atom_core, "atom_gflops": g_atom,
            "atom_cores": target.cores, "clock_hz": clock,
            "atom_efficiency": ATOM_CONV_EFFICIENCY, "factor": factor,
        })
        scale = factor if factor is not None else 1.0
        where = (f"executed with onnxruntime {res.onnxruntime} on {used} host core(s) "
                 f"({res.cpu_model}), memory limited to {opts['memory_bytes'] / 2**30:.1f} GiB")
        how = (f"scaled ×{scale:.2f} = {source} / Atom {g_atom:.1f} GFLOP/s on the same layer "
               f"({target.cores} cores × 8 FLOP/cycle × {clock / 1e9:.2f} GHz × "
               f"{ATOM_CONV_EFFICIENCY:.2f} assumed efficiency)")
        if used < target.cores:
            how += "; the host has fewer cores than the Atom: perfect parallel scaling assumed"

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
        if res.latency_ms_p50 is None or factor is None:
            rb.warn("execution produced no timing; latency from the roofline only")
            _analytical_timing(rb, roof, target, machine)
            return rb.finish()

        p50 = res.latency_ms_p50 * scale
        p95 = (res.latency_ms_p95 or res.latency_ms_p50) * scale
        rb.set("latency_ms_p50", p50, Method.EXECUTED,
               f"{where}; host p50 {res.latency_ms_p50:.3f} ms over {res.runs} warmed-up runs, {how}")
        rb.set("latency_ms_p95", p95, Method.EXECUTED,
               f"host p95 {res.latency_ms_p95:.3f} ms, {how}; host jitter included (a shared "
               "host inflates it)")
        rb.set("fps_batch1", 1e3 / p50, Method.EXECUTED, "1000 / scaled p50 latency")
        fps = {b: f / scale for b, f in res.fps_by_batch.items()}
        best = max(fps, key=lambda b: (fps[b], -b))
        rb.set("fps_best", fps[best], Method.EXECUTED,
               f"best of batch sizes {sorted(fps)} (median latency each), scaled ×{scale:.2f}")
        rb.set("best_batch", int(best), Method.EXECUTED, f"the batch size with the highest scaled fps of {sorted(fps)}")
        rb.extra("fps_by_batch", {str(b): v for b, v in fps.items()})
        if res.model_bytes is not None:
            rb.set("peak_memory_bytes", int(res.model_bytes), Method.EXECUTED,
                   "peak resident memory of the child while the model ran, above the runtime's "
                   "baseline (weights, activations, onnxruntime's buffers); onnxruntime on x86 "
                   "as a stand-in for the Atom's runtime")
        if res.accuracy is not None:
            rb.set("accuracy", res.accuracy, Method.EXECUTED,
                   f"onnxruntime FP32 on the host, {res.accuracy.samples} test samples: the same "
                   "IEEE FP32 arithmetic as the Atom's SSE (summation order may differ)")
        util = res.cpu_utilisation if res.cpu_utilisation is not None else 1.0
        power = estimate_power(target.idle_w, target.tdp_w, util)
        rb.set("power_w", power, Method.ANALYTICAL,
               f"ESTIMATE: idle {target.idle_w:.1f} W (assumed) + (TDP {target.tdp_w:.1f} W − idle) × "
               f"measured CPU utilisation {util:.2f}; not a measurement")
        rb.set("energy_mj", energy_per_inference_mj(power, p50 * 1e-3), Method.ANALYTICAL,
               "ESTIMATE: estimated power × scaled p50 latency")
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
