"""The Movidius MA2450 emulator: operator check, FP16 accuracy, roofline latency, power.

``emulate(onnx_path, target, data, options)``:

1. **Operator check** (:mod:`.operator_check`): every node against the NCSDK v1 layer set
   and its attribute rules, and the input for a fixed resolution. A model that breaks a
   rule gets a report with ``fits=False``, one warning per offending node, and
   ``extra["unsupported"]`` = ``[{node, op_type, reason}, …]`` — never an exception.
2. **FP16 accuracy** (:mod:`.fp16`): batch norm folded, weights rounded to fp16, every
   tensor rounded to fp16 between nodes, executed by onnxruntime on the test set; the fp32
   model's accuracy alongside, and a warning when FP16 loses more than
   ``fp16_tolerance`` (top-1, default 0.01). A real FP16 ONNX model is written too
   (``fp16_model_path`` option, else a temporary one) and its size reported.
3. **Latency** (:mod:`.latency`): per-layer-type costs fitted on published NCS rows, at
   batch 1 (the NCS runs one image at a time); on-device time by default, with the USB
   transfer when ``usb`` is true (``extra`` gives both, and the evidence rows).
4. **Memory**: fp16 weights + the largest set of live fp16 activations against 512 MB.
   **Power**: ``idle + (1 W − idle) × utilisation`` — an estimate.

Options: ``fp16_tolerance`` (fraction), ``max_samples`` (test samples), ``fp16_model_path``
(where to keep the converted model), ``usb`` (count the USB transfer).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sigdl_core.errors import BadInputError
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

__all__ = ["MovidiusEmulator"]


class MovidiusEmulator(Emulator):
    """Re-tests an ONNX model on the Myriad 2 MA2450; see the module docstring."""

    name = "movidius"

    def export_target_model(
        self, onnx_path: Path, target: TargetSpec, data: ArrayDataset | None, folder: Path,
        options: Mapping[str, Any] | None = None,
    ) -> Path | None:
        """The FP16 model the MA2450 runs (batch norm folded), with a float32 interface
        (no option changes that form)."""
        import onnx

        from sigdl_core.files import atomic_path, read_regular_file

        from sigdl_core.emulation.onnx_tools import load_onnx

        from .fp16 import convert_to_fp16, fold_for_myriad

        fp16 = convert_to_fp16(fold_for_myriad(load_onnx(read_regular_file(onnx_path, "ONNX model"))))
        out = Path(folder) / "model.fp16.onnx"
        with atomic_path(out) as tmp:
            onnx.save(fp16, str(tmp))
        return out

    def emulate(
        self,
        onnx_path: Path,
        target: TargetSpec,
        data: ArrayDataset | None,
        options: Mapping[str, Any] | None = None,
    ) -> EmulationReport:
        import onnx

        from sigdl_core.emulation import (
            analyze_model,
            energy_per_inference_mj,
            estimate_power,
            roofline_utilisation,
        )
        from sigdl_core.files import atomic_path, read_regular_file

        from sigdl_core.emulation.onnx_tools import accuracy_from_logits, load_onnx, run_onnx

        from .fp16 import convert_to_fp16, fold_for_myriad, fp16_rounded_model
        from sigdl_core.interfaces import calibration_summary

        from .evidence import EVIDENCE
        from .latency import describe_constants, estimate_movidius_latency, usb_transfer_s
        from .operator_check import check_movidius_support

        t0 = time.perf_counter()
        opts = validate_options(EMULATOR_OPTIONS, options, target)
        path = read_regular_file(onnx_path, "ONNX model")
        model = load_onnx(path)
        report = EmulationReport(target=target.name, emulator=self.name,
                                 memory_limit_bytes=int(target.memory_bytes))
        warnings, extra = report.warnings, report.extra
        report.provenance["memory_limit_bytes"] = Provenance(Method.ANALYTICAL, "datasheet: 4 Gbit LPDDR3")

        # ------------------------------------------------------------ 1. operator check
        support = check_movidius_support(model)
        extra["unsupported"] = [u.to_dict() for u in support.unsupported]
        extra["folded_at_compile_time"] = support.folded
        extra["input_shape"] = list(support.input_shape) if support.input_shape else None
        extra["notes"] = list(support.notes)
        if not support.ok:
            report.fits = False
            warnings.append(f"does not run on the {target.title}: {len(support.unsupported)} offending "
                            f"node(s) (NCSDK v1 rules)")
            for u in support.unsupported:
                warnings.append(f"unsupported: {u.one_line()}")
            report.provenance["fits"] = Provenance(
                Method.ANALYTICAL, "operator check against the NCSDK v1 layer set and attribute rules")
            for key in ("accuracy", "latency_ms_p50", "latency_ms_p95", "fps_batch1", "fps_best", "best_batch",
                        "peak_memory_bytes", "power_w", "energy_mj"):
                report.provenance[key] = Provenance(
                    Method.ANALYTICAL, "not estimated: the model fails the MA2450 operator check "
                                       "(see extra['unsupported'])")
            extra["seconds"] = time.perf_counter() - t0
            return report

        # ------------------------------------------------------------ 2. FP16 model and accuracy
        folded = fold_for_myriad(model)
        fp16 = convert_to_fp16(folded)
        fp16_bytes = len(fp16.SerializeToString())
        extra["fp16_model_bytes"] = fp16_bytes
        if opts["fp16_model_path"]:
            out = Path(opts["fp16_model_path"])
            with atomic_path(out) as tmp:
                onnx.save(fp16, str(tmp))
            extra["fp16_model_path"] = str(out)
        extra["fp16_method"] = (
            "fp16-rounded execution: BN folded, weights rounded to fp16, a Cast→fp16→fp32 pair after "
            "every node (every inter-layer tensor is an fp16 value), onnxruntime CPU with graph "
            "optimizations off; each operator computes internally in fp32")
        timing_only = data is None or data.timing_only
        if not timing_only:
            n = len(data.y_test) if opts["max_samples"] is None else min(int(opts["max_samples"]), len(data.y_test))
            x, y = data.x_test[:n], np.asarray(data.y_test[:n])
            rounded = fp16_rounded_model(folded)
            logits16 = run_onnx(rounded, x)
            report.accuracy = accuracy_from_logits(logits16, y)
            report.provenance["accuracy"] = Provenance(
                Method.EXECUTED, f"{extra['fp16_method']}; {n} test samples")
            if not np.all(np.isfinite(logits16)):
                bad = int(np.count_nonzero(~np.isfinite(logits16).all(axis=-1)))
                warnings.append(f"FP16 overflow: {bad} of {n} samples produced inf/NaN outputs "
                                f"(a tensor exceeded ±{65504:g}); rescale the inputs or weights")
            logits32 = run_onnx(model, x, optimize=True)
            acc32 = accuracy_from_logits(logits32, y)
            extra["fp32_top1"] = acc32.top1
            extra["fp32_top5"] = acc32.top5
            drop = acc32.top1 - report.accuracy.top1
            extra["fp16_top1_drop"] = drop
            extra["fp16_max_abs_logit_error"] = float(np.nanmax(np.abs(
                np.asarray(logits16, np.float64) - np.asarray(logits32, np.float64)))) if n else 0.0
            if drop > opts["fp16_tolerance"]:
                warnings.append(f"FP16 accuracy loss: top-1 {report.accuracy.top1:.2%} in FP16 vs "
                                f"{acc32.top1:.2%} in FP32 ({drop:.2%} drop > {opts['fp16_tolerance']:.2%})")
            try:
                logits_native = run_onnx(fp16, x)
                extra["fp16_onnx_top1"] = accuracy_from_logits(logits_native, y).top1
                extra["fp16_onnx_note"] = ("the FP16 ONNX model in onnxruntime's CPU provider, which runs "
                                           "islands of fp16 nodes in fp32 between inserted Casts")
            except Exception as exc:  # a cross-check only
                warnings.append(f"onnxruntime could not run the FP16 ONNX model ({type(exc).__name__})")
        else:
            report.provenance["accuracy"] = Provenance(Method.EXECUTED, "not measured: no labelled test data")

        # ------------------------------------------------------------ 3. latency
        try:
            cost = analyze_model(folded, batch_size=1).in_format("fp16", from_formats=("fp32",))
        except BadInputError as exc:
            report.fits = False
            warnings.append(f"cannot cost the model: {exc.one_line()}")
            extra["seconds"] = time.perf_counter() - t0
            return report
        usb = bool(opts.get("usb", False))
        est, machine = estimate_movidius_latency(cost, target, usb=usb)
        on_device, _ = estimate_movidius_latency(cost, target, usb=False) if usb else (est, machine)
        usb_ms = usb_transfer_s(cost) * 1e3
        lat_ms = est.latency_s * 1e3
        report.latency_ms_p50 = lat_ms
        report.latency_ms_p95 = lat_ms
        report.fps_batch1 = 1e3 / lat_ms
        report.fps_best = report.fps_batch1
        report.best_batch = 1
        detail = (("with the USB transfer" if usb else "on-device, as mvNCProfile reports it (usb=true adds "
                   f"the transfer: +{usb_ms:.1f} ms)")
                  + f"; per-layer-type costs (conv 1×1 / 3×3 / k×k / depthwise rates, FC weights from "
                  f"LPDDR3, pooling, unfused passes) fitted on published NCS rows: "
                  f"{calibration_summary(EVIDENCE)} (sigdl_target_movidius.latency)")
        report.provenance["latency_ms_p50"] = Provenance(Method.ANALYTICAL, detail)
        report.provenance["latency_ms_p95"] = Provenance(
            Method.ANALYTICAL, "equal to p50: the model has no variance (USB and host jitter not modelled)")
        extra["latency_on_device_ms"] = on_device.latency_s * 1e3
        extra["latency_with_usb_ms"] = on_device.latency_s * 1e3 + usb_ms
        extra["usb_transfer_ms"] = usb_ms
        extra["evidence"] = [r.to_dict() for r in EVIDENCE]
        report.provenance["fps_batch1"] = Provenance(Method.ANALYTICAL, "1 / latency")
        report.provenance["fps_best"] = Provenance(Method.ANALYTICAL, "batch 1 only: NCSDK v1 graphs take one image")
        report.provenance["best_batch"] = Provenance(Method.ANALYTICAL, "1: NCSDK v1 graphs take one image")
        extra["macs"] = int(cost.macs)
        extra["flops"] = int(cost.flops)
        extra["roofline"] = {**est.summary(), "constants": describe_constants()}

        # ------------------------------------------------------------ 4. memory and power
        weights = int(cost.weight_bytes)
        peak = weights + int(cost.peak_activation_bytes)
        report.peak_memory_bytes = peak
        report.provenance["peak_memory_bytes"] = Provenance(
            Method.ANALYTICAL, "fp16 weights + largest set of live fp16 activations (cost model); "
                               "graph blob and firmware not counted")
        if peak > target.memory_bytes:
            report.fits = False
            warnings.append(f"does not fit: needs {peak / 2**20:.1f} MiB of the {target.memory_bytes / 2**20:.0f} MiB LPDDR3")
        cmx = int(target.extra.get("cmx_bytes", 0))
        if cmx and cost.peak_activation_bytes > cmx:
            extra["spills_to_dram"] = True
        util = roofline_utilisation(est)
        power = estimate_power(float(target.idle_w), float(target.tdp_w), util)
        report.power_w = power
        report.energy_mj = energy_per_inference_mj(power, est.latency_s, 1)
        report.provenance["power_w"] = Provenance(
            Method.ANALYTICAL, f"estimate: idle {target.idle_w:g} W + (1 W − idle) × roofline utilisation "
                               f"{util:.2f}; not measured")
        report.provenance["energy_mj"] = Provenance(Method.ANALYTICAL, "estimate: power × latency")
        report.provenance["fits"] = Provenance(
            Method.ANALYTICAL, "operator check passed; fp16 weights + peak activations against the LPDDR3")
        extra["seconds"] = time.perf_counter() - t0
        return report
