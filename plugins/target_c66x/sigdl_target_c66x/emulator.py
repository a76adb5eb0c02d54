"""The C66x emulator: bit-exact integer accuracy, analytical latency, memory and power.

``emulate(onnx_path, target, data, options)``:

1. **Quantize** (unless the model already is a QDQ model): fold batch norm, then
   onnxruntime's ``quantize_static`` (QDQ, min/max on ``calibration_samples`` training
   samples) — :mod:`.quantize`.
2. **Accuracy** from :func:`~sigdl_target_c66x.qdq_program.emulate_fixed_point`: int8 codes,
   int32 accumulators (overflow counted), multiplier-shift requantization with round half up
   — the DSP's arithmetic, bit for bit (:mod:`.fixed_point`). The float model's accuracy
   (onnxruntime) is measured too, and a drop beyond ``accuracy_tolerance`` is a warning.
   onnxruntime's own int8 run of the same QDQ model is compared (argmax agreement).
3. **Latency** from the cost model's MAC and byte counts through :mod:`.latency`.
4. **Memory**: int8 weights plus the largest set of live int8 activations, against the
   target's DDR. **Power**: ``idle + (TDP − idle) × utilisation`` over the cores in use —
   an estimate, never a measurement.

Options (all optional): ``cores`` (cores working on one image), ``rounding`` (``half-up``
or ``onnxruntime``), ``activation_type`` (``uint8``, ``int8``, ``uint16``, ``int16``),
``per_channel`` (bool), ``calibration_samples`` (default 256), ``max_samples`` (test
samples emulated, default all), ``accuracy_tolerance`` (top-1 drop that warns, default 0.02),
``batch_size`` (samples per numpy chunk, default 256), ``reduce_range`` (7-bit weights, as
onnxruntime recommends for its own x86 u8s8 kernels; the DSP does not need it).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sigdl_core.errors import BadInputError, ModelFileError, UnsupportedModelError
from sigdl_core.interfaces import (
    ArrayDataset,
    EmulationReport,
    Emulator,
    Method,
    Provenance,
    TargetSpec,
)
from sigdl_core.targets import validate_options

from .plugin import EMULATOR_OPTIONS

__all__ = ["C66xEmulator"]


class C66xEmulator(Emulator):
    """Re-tests an ONNX model on a C66x target; see the module docstring."""

    name = "c66x"

    def export_target_model(
        self, onnx_path: Path, target: TargetSpec, data: ArrayDataset | None, folder: Path,
        options: Mapping[str, Any] | None = None,
    ) -> Path | None:
        """The QDQ int8 model the C66x integer pipeline runs (with ``options``' activation
        type, per-channel and range settings), calibrated on ``data``'s training split; None
        without labelled data to calibrate on."""
        from sigdl_core.files import read_regular_file

        from .quantize import quantize_for_c66x

        if data is None or data.timing_only:
            return None
        opts = validate_options(EMULATOR_OPTIONS, options, target)
        calib = data.x_train if len(data.x_train) else data.x_test
        return quantize_for_c66x(read_regular_file(onnx_path, "ONNX model"), calib[:opts["calibration_samples"]],
                                 Path(folder) / "model.int8.qdq.onnx", activation_type=opts["activation_type"],
                                 per_channel=opts["per_channel"], reduce_range=opts["reduce_range"])

    def emulate(
        self,
        onnx_path: Path,
        target: TargetSpec,
        data: ArrayDataset | None,
        options: Mapping[str, Any] | None = None,
    ) -> EmulationReport:
        import onnx

        from sigdl_core.emulation import analyze_model, energy_per_inference_mj, estimate_power
        from sigdl_core.emulation.onnx_tools import accuracy_from_logits, load_onnx, run_onnx
        from sigdl_core.files import read_regular_file

        from .latency import C66xTiming, estimate_c66x_latency
        from .qdq_program import IntegerProgram, emulate_fixed_point, is_qdq_model, unsupported_float_nodes
        from .quantize import quantize_for_c66x

        t0 = time.perf_counter()
        opts = validate_options(EMULATOR_OPTIONS, options, target)
        path = read_regular_file(onnx_path, "ONNX model")
        try:
            model = onnx.load(str(path))
        except Exception as exc:
            raise ModelFileError(f"'{path}' is not a readable ONNX model ({type(exc).__name__})",
                                 "export the model again or check that the file is complete") from None
        report = EmulationReport(target=target.name, emulator=self.name, memory_limit_bytes=int(target.memory_bytes))
        warnings = report.warnings
        extra = report.extra
        report.provenance["memory_limit_bytes"] = Provenance(Method.ANALYTICAL, "the target's DDR (datasheet / EVM)")
        report.provenance["fits"] = Provenance(
            Method.ANALYTICAL, "every layer has a C66x integer kernel, and int8 weights + peak activations fit the DDR")
        qdq_given = is_qdq_model(model)
        extra["quantization"] = {
            "source": "given QDQ model" if qdq_given else "onnxruntime quantize_static (QDQ, MinMax)",
            "activation_type": opts["activation_type"], "weights": "int8 symmetric",
            "per_channel": opts["per_channel"], "rounding": opts["rounding"],
        }
        timing_only = data is None or data.timing_only
        program: IntegerProgram | None = None
        if not qdq_given:
            missing = unsupported_float_nodes(model)
            if missing:
                report.fits = False
                warnings.append(
                    "does not run on the C66x integer pipeline: no integer kernel for "
                    + ", ".join(f"'{name}' ({op})" for name, op in missing))
                timing_only = True  # nothing to quantize or emulate; latency only
        with tempfile.TemporaryDirectory(prefix="sigdl-c66x-") as tmp:
            qdq_path: Path | None = path if qdq_given else None
            if not qdq_given and not timing_only:
                calib_src = data.x_train if len(data.x_train) else data.x_test
                n_cal = min(opts["calibration_samples"], len(calib_src))
                try:
                    qdq_path = quantize_for_c66x(
                        path, calib_src[:n_cal], Path(tmp) / "model.qdq.onnx",
                        activation_type=opts["activation_type"], per_channel=opts["per_channel"],
                        reduce_range=opts["reduce_range"])
                    extra["quantization"]["calibration_samples"] = n_cal
                except UnsupportedModelError as exc:
                    report.fits = False
                    warnings.append(f"cannot quantize for the C66x: {exc.one_line()}")
            if qdq_path is not None:
                try:
                    program = IntegerProgram(qdq_path)
                except UnsupportedModelError as exc:
                    report.fits = False
                    warnings.append(f"does not run on the C66x integer pipeline: {exc.one_line()}")

            # ---------------------------------------------------------------- accuracy
            if program is not None and not timing_only:
                n_test = len(data.y_test) if opts["max_samples"] is None else min(opts["max_samples"], len(data.y_test))
                x_test, y_test = data.x_test[:n_test], np.asarray(data.y_test[:n_test])
                try:
                    logits, codes, stats = emulate_fixed_point(program, x_test, opts["rounding"], opts["batch_size"])
                except UnsupportedModelError as exc:
                    report.fits = False
                    warnings.append(f"does not run on the C66x integer pipeline: {exc.one_line()}")
                    logits = None
                if logits is not None:
                    report.accuracy = accuracy_from_logits(logits, y_test)
                    report.provenance["accuracy"] = Provenance(
                        Method.BIT_EXACT,
                        f"integer pipeline in numpy on {n_test} test samples: {extra['quantization']['activation_type']} "
                        f"activations, int8 weights, int32 accumulators (wrap-around, overflows counted), "
                        f"requantization by 31-bit multiplier + rounding shift ({opts['rounding']}), saturation; "
                        "the C66x's arithmetic bit for bit (TIDL's own calibration constants are not public)")
                    extra["integer_stats"] = {
                        "accumulator_overflows": stats.total_overflows,
                        "clamped_outputs": int(sum(stats.saturated.values())),
                        "outputs": int(sum(stats.outputs.values())),
                        "note": "clamped outputs include ReLUs folded into the unsigned code range"}
                    if stats.total_overflows:
                        worst = sorted(stats.accumulator_overflows.items(), key=lambda kv: -kv[1])[:3]
                        warnings.append(
                            f"{stats.total_overflows} int32 accumulator overflow(s) wrapped around (as the C66x "
                            "ADD does) in " + ", ".join(f"{k} ({v})" for k, v in worst if v))
                    if program.float_nodes:
                        warnings.append("node(s) left in float by the quantizer ran in float32 on the host, "
                                        "not on the DSP: " + ", ".join(program.float_nodes))
                    try:
                        ref_q = run_onnx(load_onnx(qdq_path), x_test, optimize=True)
                        agree = float(np.mean(np.argmax(ref_q.reshape(n_test, -1), 1)
                                              == np.argmax(np.asarray(logits).reshape(n_test, -1), 1)))
                        extra["onnxruntime_int8_top1_agreement"] = agree
                        extra["onnxruntime_int8_top1"] = accuracy_from_logits(ref_q, y_test).top1
                    except Exception as exc:  # a cross-check only
                        warnings.append(f"onnxruntime could not run the QDQ model for the cross-check ({type(exc).__name__})")
                    if not qdq_given:
                        try:
                            ref_f = run_onnx(load_onnx(path), x_test, optimize=True)
                            float_acc = accuracy_from_logits(ref_f, y_test)
                            extra["float_top1"] = float_acc.top1
                            drop = float_acc.top1 - report.accuracy.top1
                            extra["int8_top1_drop"] = drop
                            if drop > opts["accuracy_tolerance"]:
                                warnings.append(
                                    f"8-bit accuracy loss: top-1 {report.accuracy.top1:.2%} on the C66x vs "
                                    f"{float_acc.top1:.2%} in float ({drop:.2%} drop > {opts['accuracy_tolerance']:.2%})")
                        except Exception as exc:
                            warnings.append(f"onnxruntime could not run the float model for comparison ({type(exc).__name__})")
            if report.accuracy is None:
                why = ("no labelled test data" if data is None or data.timing_only
                       else "the model cannot run on the integer pipeline (see warnings)")
                report.provenance["accuracy"] = Provenance(Method.BIT_EXACT, f"not measured: {why}")

            # ---------------------------------------------------------------- latency
            cost_src = qdq_path if qdq_path is not None else path
            try:
                cost = analyze_model(str(cost_src), batch_size=1)
            except BadInputError as exc:
                report.fits = False
                warnings.append(f"cannot cost the model: {exc.one_line()}")
                cost = None
        if cost is not None:
            if qdq_path is None:
                cost = cost.in_format("int8", from_formats=("fp32", "fp16"))
            timing = C66xTiming()
            est = estimate_c66x_latency(cost, target, opts["cores"], timing)
            latency_ms = est.latency_s * 1e3
            report.latency_ms_p50 = latency_ms
            report.latency_ms_p95 = latency_ms
            report.fps_batch1 = 1e3 / latency_ms if latency_ms > 0 else None
            report.fps_best = max(est.throughput_fps, report.fps_batch1 or 0.0)
            report.best_batch = est.throughput_batch if est.throughput_fps >= (report.fps_batch1 or 0) else 1
            clock = target.clock_hz / 1e6
            detail = (f"MAC/byte counts of the {'QDQ int8' if qdq_path else 'float model costed as int8'} graph; "
                      f"{est.cores} C66x core(s) at {clock:.0f} MHz, 8 real MACs/cycle × efficiency "
                      f"{dict(timing.efficiency)}, epilogue 0.25 cycle/output, memory via "
                      f"{'MSMC/' if target.extra.get('shared_sram_bytes') else ''}DDR at 60 % of peak, "
                      f"{timing.layer_overhead_s * 1e6:.0f} µs/layer (sigdl_target_c66x.latency); "
                      "deterministic on a DSP, so p95 = p50")
            report.provenance["latency_ms_p50"] = Provenance(Method.ANALYTICAL, detail)
            report.provenance["latency_ms_p95"] = Provenance(Method.ANALYTICAL, "equal to p50: the model has no variance")
            report.provenance["fps_batch1"] = Provenance(Method.ANALYTICAL, "1 / latency at batch 1")
            report.provenance["best_batch"] = Provenance(
                Method.ANALYTICAL, "images in flight at the best throughput: one per core, or one per DSP")
            report.provenance["fps_best"] = Provenance(
                Method.ANALYTICAL,
                f"best of one image split over a DSP's cores and one image per core on all {target.cores} cores "
                "(DDR shared by a DSP's cores)")
            weights = int(cost.weight_bytes)
            peak = weights + int(cost.peak_activation_bytes)
            report.peak_memory_bytes = peak
            report.provenance["peak_memory_bytes"] = Provenance(
                Method.ANALYTICAL, "int8 weights + largest set of live int8 activations (cost model); code and "
                                   "TIDL scratch buffers not counted")
            if peak > target.memory_bytes:
                report.fits = False
                warnings.append(f"does not fit: needs {peak / 2**20:.1f} MiB, the target has "
                                f"{target.memory_bytes / 2**20:.0f} MiB")
            used = est.cores / max(1, target.cores)
            util = est.utilisation * used
            power = estimate_power(float(target.idle_w), float(target.tdp_w), util)
            report.power_w = power
            report.energy_mj = energy_per_inference_mj(power, est.latency_s, 1)
            report.provenance["power_w"] = Provenance(
                Method.ANALYTICAL,
                f"estimate: idle {target.idle_w:g} W + (TDP {target.tdp_w:g} W − idle) × utilisation "
                f"{util:.2f} ({est.cores}/{target.cores} cores busy {est.utilisation:.0%} of the time); not measured")
            report.provenance["energy_mj"] = Provenance(Method.ANALYTICAL, "estimate: power × latency at batch 1")
            extra["macs"] = est.macs
            extra["latency_model"] = {**est.summary(), "timing": timing.to_dict()}
            extra["effective_gmac_per_s"] = est.macs / est.latency_s / 1e9 if est.latency_s else None
            l2 = int(target.extra.get("l2_bytes_per_core", 0))
            big = [l.name for l in est.layers if l.tier == "ddr"]
            extra["layers_streamed_from_ddr"] = len(big)
            if l2:
                extra["l2_bytes_per_core"] = l2
        if report.fits is False and report.latency_ms_p50 is not None:
            warnings.append("latency is the analytical estimate of the whole graph; the model cannot run as is")
        extra["seconds"] = time.perf_counter() - t0
        return report
