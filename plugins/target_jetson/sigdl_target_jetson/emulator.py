"""The Jetson TX2 emulator: a calibrated roofline of the Pascal GPU, and host-measured accuracy.

Latency
-------
The TX2 cannot be executed here, so latency is **analytical**: the roofline of
:mod:`sigdl_core.emulation.roofline` with the GPU's datasheet peaks (per power mode) and
one set of constants that describe TensorRT 3 on a 2-SM Pascal GPU (:data:`CALIBRATION`).
Each constant is a physical property, not a per-model fudge:

* ``conv_efficiency`` 0.51 — the fraction of peak FP32/FP16 that cuDNN/TensorRT's implicit-GEMM
  convolutions sustain on a fully occupied Pascal SM (register/shared-memory tiling and
  load latency keep it near one half);
* ``winograd_speedup`` 1.5 — 3×3 stride-1 convolutions run with Winograd F(2×2,3×3) (2.25×
  fewer multiplies, of which transforms and their memory traffic eat about a third);
* ``occupancy_half_outputs`` 24 576 — a layer needs enough independent outputs to fill 2 SMs
  × 2048 resident threads × ~6 outputs per thread; a layer with that many outputs reaches
  half its efficiency (``outputs / (outputs + 24576)``). This is what makes late, small
  layers and batch 1 inefficient, and larger batches pay off;
* ``fp16_efficiency`` 0.9 — FP16 (``HFMA2``) kernels reach 90 % of the efficiency of FP32
  ones relative to their doubled peak (packing and conversion overheads);
* ``depthwise_efficiency`` 0.01 (FP16 no faster) — TensorRT 3 / cuDNN 7.0 had no dedicated
  depthwise kernel: grouped convolutions ran as one tiny GEMM per group at about 1 % of peak,
  with no FP16 gain (TensorRT 3 timed MobileNet v1 at 12.9 ms in both precisions);
* ``bandwidth_efficiency`` 0.8 — attainable fraction of LPDDR4 peak for streaming kernels;
* ``per_node_overhead_s`` 10 µs — one kernel launch per unfused layer on the Tegra driver;
* ``per_inference_overhead_s`` 0.9 ms — the input copy, ``IExecutionContext::execute``'s
  enqueue and synchronisation, and the output copy of one call;
* TensorRT fuses convolution + bias + batch norm + ReLU and eliminates Concat (it writes
  each branch into its slice of the output): epilogues, views and concatenations cost nothing.

``conv_efficiency`` and ``per_inference_overhead_s`` were fitted (least squares on log error)
to the six published TX2 TensorRT timings of the issue (GoogLeNet, ResNet-50, Inception v3
× FP16/FP32); the others were set from the reasoning above and left alone. The same
unchanged constants then predict ResNet-101/152, VGG-16 and three MobileNets from the same
NVIDIA table, which they were not fitted to: see ``bench/results/emulation_calibration.md``.

Batch size: weights are read once per call and per-call overheads are amortised, and the
occupancy curve rises with the batch's outputs, so throughput rises with the batch until
the GPU is compute bound; the best batch is chosen among ``batch_sizes`` whose weights and
activations fit the memory.

Power modes scale the peaks with the GPU clock and the bandwidth with the EMC clock.

Accuracy
--------
Measured with onnxruntime on the host CPU (the harness, all host cores, no memory limit):
in FP32 for ``precision="fp32"``; for ``precision="fp16"`` (the default, TensorRT's fast
path) on a copy of the model whose weights and activations are rounded to FP16 after every
operator (:func:`sigdl_core.emulation.round_to_fp16`: FP16 storage, FP32 accumulation),
compared with FP32 and warned about when top-1 drops by more than 0.5 points.

Executing on a real GPU
-----------------------
When an NVIDIA GPU is present (``nvidia-smi`` answers, torch reports its SMs, and
onnxruntime has the CUDA execution provider), the model is *also* executed there at batch 1
and the time is scaled by CUDA cores × clock (host GPU / TX2), which is what the seed means
by "cards with the same core type stand in for the SoC". It is reported in
``extra["gpu_executed"]`` beside the roofline, with a warning when the two differ by more
than 2×; the roofline stays the reported latency, because a large GPU at batch 1 is far
from full and scaling its time by throughput favours the TX2. This path cannot be tested
on a machine without a GPU; the tests do not need one.

Memory: weights plus the largest set of live activations (cost model, in the run format)
against the 8 GB shared with the OS — analytical.

TensorRT generations: ``tensorrt=3`` (default) uses :data:`CALIBRATION` above;
``tensorrt=5`` uses :data:`CALIBRATION_TRT5`, the same constants with the conv efficiency
refitted on QuTiBench's GoogLeNet FP16 at Max-P (6.16 ms compute, no per-call overhead).

Power is an **estimate**: ``idle + (budget − idle) × active_fraction × u`` with ``u`` the
roofline's busy fraction of a call and ``active_fraction`` (:data:`POWER`) fitted on
QuTiBench's 8.07 W for that GoogLeNet row; energy per inference is power × latency.

Options: ``power_mode`` (``max-n`` | ``max-p`` | ``max-q``), ``precision`` (``fp16`` |
``fp32``), ``tensorrt`` (``3`` | ``5``), ``batch_sizes`` (default 1…64), ``compare_fp32`` (default True),
``max_accuracy_samples``, ``input_shape``, ``use_gpu`` (default True: execute on a GPU if
one is present).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sigdl_core.emulation import (
    Machine,
    ModelCost,
    ReportBuilder,
    analyze_model,
    batch_sweep,
    describe_machine,
    energy_per_inference_mj,
    estimate_latency,
    estimate_power,
    load_onnx,
    round_to_fp16,
    roofline_utilisation,
)
from sigdl_core.emulation.harness import HarnessLimits, host_cpus, run_limited
from sigdl_core.errors import InvalidValueError
from sigdl_core.files import read_regular_file
from sigdl_core.targets import validate_options
from sigdl_core.interfaces import ArrayDataset, Emulator, EmulationReport, Method, TargetSpec

from sigdl_core.interfaces import calibration_summary

from .datasheet import CUDA_CORES, EMULATOR_NAME, POWER_MODES, bandwidth, peak_ops
from .evidence import EVIDENCE
from .plugin import EMULATOR_OPTIONS

#: The TX2 + TensorRT 3 constants; see the module docstring for each one's reason.
CALIBRATION: dict[str, float] = {
    "conv_efficiency": 0.51,
    "depthwise_efficiency": 0.01,
    "winograd_speedup": 1.5,
    "occupancy_half_outputs": 24576.0,
    "fp16_efficiency": 0.9,
    "bandwidth_efficiency": 0.8,
    "per_node_overhead_s": 10e-6,
    "per_inference_overhead_s": 0.9e-3,
}

#: TensorRT 5 (JetPack 4.x) on the same GPU: the TensorRT 3 constants with the convolution
#: efficiency refitted on the one TensorRT 5 row of issue 14 (QuTiBench, GoogLeNet FP16,
#: Max-P, 6.16 ms *compute*: the GPU's time alone, so no per-call overhead — QuTiBench's
#: 9.93 ms system time adds host-side work this model does not cover); newer cuDNN/TensorRT
#: kernels keep the SMs busier. The other constants are TensorRT 3's, unverified for
#: TensorRT 5 (one row cannot set more than one).
CALIBRATION_TRT5: dict[str, float] = {**CALIBRATION, "conv_efficiency": 0.7925, "per_inference_overhead_s": 0.0}

#: The constant set of each TensorRT generation (the ``tensorrt`` option).
TENSORRT: dict[int, dict[str, float]] = {3: CALIBRATION, 5: CALIBRATION_TRT5}

#: The fraction of (budget − idle) drawn at full GPU utilisation, fitted on QuTiBench's
#: 8.07 W for GoogLeNet at Max-P (TensorRT 5, FP16): power = idle + (budget − idle) ×
#: active_fraction × utilisation.
POWER: dict[str, float] = {"active_fraction": 0.5531}

#: FP32 CUDA cores per SM by compute capability (NVIDIA CUDA C Programming Guide, "Arithmetic
#: Instructions" throughput table).
CORES_PER_SM = {(6, 0): 64, (6, 1): 128, (6, 2): 128, (7, 0): 64, (7, 2): 64, (7, 5): 64,
                (8, 0): 64, (8, 6): 128, (8, 7): 128, (8, 9): 128, (9, 0): 128,
                (10, 0): 128, (12, 0): 128}


def tx2_machine(mode: str = "max-n", calibration: Mapping[str, float] | None = None,
                tensorrt: int = 3) -> Machine:
    """The roofline of the TX2's GPU in a power mode, with the constants of a TensorRT
    generation (:data:`TENSORRT`), ``calibration`` overriding some of them."""
    if mode not in POWER_MODES:
        raise InvalidValueError(f"power mode '{mode}' is not one of {', '.join(POWER_MODES)}",
                                "use max-n, max-p or max-q")
    if tensorrt not in TENSORRT:
        raise InvalidValueError(f"tensorrt={tensorrt!r} is not one of {', '.join(map(str, TENSORRT))}",
                                "use tensorrt=3 (JetPack 3.x) or tensorrt=5 (JetPack 4.x)")
    c = dict(TENSORRT[tensorrt])
    c.update(calibration or {})
    gpu, emc, _budget, _label = POWER_MODES[mode]
    return Machine(
        name=f"jetson-tx2 {mode}",
        peak_flops=peak_ops(gpu),
        bandwidth=bandwidth(emc) * c["bandwidth_efficiency"],
        efficiency={
            "conv": c["conv_efficiency"],
            "depthwise": c["depthwise_efficiency"],
            # no FP16 gain: half the efficiency against the doubled FP16 peak
            "depthwise@fp16": c["depthwise_efficiency"] / 2,
            # pooling and elementwise are memory bound; 0.5 only matters if they are not
            "default": 0.5,
        },
        per_node_overhead_s=c["per_node_overhead_s"],
        per_inference_overhead_s=c["per_inference_overhead_s"],
        fuse_epilogues=True,
        occupancy_half_outputs=c["occupancy_half_outputs"],
        free_op_classes=frozenset({"view", "quant", "data"}),
        format_efficiency={"fp16": c["fp16_efficiency"]},
        winograd_speedup=c["winograd_speedup"],
    )


def predict_latency_ms(cost: ModelCost, precision: str = "fp16", mode: str = "max-n",
                       batch_size: int = 1, tensorrt: int = 3,
                       calibration: Mapping[str, float] | None = None) -> float:
    """The emulator's batch latency in ms for a cost model (used by the calibration bench)."""
    run = cost.in_format("fp16") if precision == "fp16" else cost
    return estimate_latency(run, tx2_machine(mode, calibration, tensorrt), batch_size).latency_ms


def predict_power_w(cost: ModelCost, precision: str = "fp16", mode: str = "max-n", tensorrt: int = 3,
                    active_fraction: float | None = None) -> float:
    """The emulator's power estimate in W at batch 1 (used by the calibration bench)."""
    run = cost.in_format("fp16") if precision == "fp16" else cost
    est = estimate_latency(run, tx2_machine(mode, tensorrt=tensorrt), 1)
    return tx2_power_w(mode, roofline_utilisation(est), active_fraction)


def tx2_power_w(mode: str, utilisation: float, active_fraction: float | None = None) -> float:
    """``idle + (budget − idle) × active_fraction × utilisation`` (:data:`POWER`)."""
    from .datasheet import IDLE_W

    budget = POWER_MODES[mode][2]
    k = POWER["active_fraction"] if active_fraction is None else active_fraction
    return estimate_power(IDLE_W, IDLE_W + (budget - IDLE_W) * k, utilisation)


def _options(options: Mapping[str, Any] | None, target: TargetSpec) -> dict[str, Any]:
    """The declared options (:data:`~sigdl_target_jetson.plugin.EMULATOR_OPTIONS`), checked
    by the core, with the target's own power mode as the default and batch 1 included."""
    opts = validate_options(EMULATOR_OPTIONS, options, target)
    if opts["power_mode"] is None:
        opts["power_mode"] = target.extra.get("power_mode", "max-n")
    opts["batch_sizes"] = sorted({1, *(int(b) for b in opts["batch_sizes"])})
    return opts


class JetsonEmulator(Emulator):
    """A calibrated roofline of the TX2's GPU, with accuracy measured on the host."""

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
        mode, precision = opts["power_mode"], opts["precision"]
        gpu, emc, budget, label = POWER_MODES[mode]

        model = load_onnx(path)
        sample_shape = None
        if opts["input_shape"] is not None:
            sample_shape = [int(d) for d in opts["input_shape"]]
        elif data is not None:
            sample_shape = list(data.input_shape)
        cost = analyze_model(model, 1, _symbolic_shapes(model, sample_shape))
        run_cost = cost.in_format("fp16") if precision == "fp16" else cost
        rb.extra("cost", cost.summary())
        tensorrt = int(opts.get("tensorrt", 3))
        machine = tx2_machine(mode, tensorrt=tensorrt)
        desc = describe_machine(machine, (precision,))
        rb.extra("machine", machine.to_dict())
        rb.extra("power_mode", {"mode": mode, "label": label, "gpu_clock_hz": gpu,
                                "emc_clock_hz": emc, "budget_w": budget})
        rb.extra("precision", precision)

        # latency, throughput -------------------------------------------------------------
        est = estimate_latency(run_cost, machine, 1)
        for w in est.warnings:
            rb.warn(w)
        calib_note = (f"the TensorRT {tensorrt} constant set (option tensorrt=3|5), "
                      + ("two constants fitted to the six published TensorRT 3 timings of GoogLeNet, "
                         "ResNet-50 and Inception v3 (FP16/FP32) and checked on twelve held-out ones"
                         if tensorrt == 3 else
                         "the TensorRT 3 set with the conv efficiency refitted on QuTiBench's GoogLeNet "
                         "FP16 Max-P row")
                      + f"; evidence: {calibration_summary([r for r in EVIDENCE if r.options.get('tensorrt', 3) == tensorrt])}")
        rb.set("latency_ms_p50", est.latency_ms, Method.ANALYTICAL,
               f"calibrated GPU roofline, TensorRT {tensorrt}, {precision}, {label}: {desc}; {calib_note}")
        rb.extra("evidence", [r.to_dict() for r in EVIDENCE])
        rb.extra("tensorrt", tensorrt)
        rb.set("latency_ms_p95", est.latency_ms, Method.ANALYTICAL,
               "the roofline predicts one time: p95 = p50 (TensorRT on an idle TX2 varies little; "
               "a loaded system does)")
        rb.set("fps_batch1", est.fps, Method.ANALYTICAL, "1 / roofline latency at batch 1")
        mem_limit = target.memory_bytes
        sweep = batch_sweep(run_cost, machine, opts["batch_sizes"], memory_limit_bytes=mem_limit)
        best = max(sweep, key=lambda e: (e.fps, -e.batch_size)) if sweep else est
        rb.set("fps_best", best.fps, Method.ANALYTICAL,
               f"roofline throughput, best of batch sizes {opts['batch_sizes']} that fit in memory "
               "(weights read once per batch, overheads amortised, occupancy rising with the batch)")
        rb.set("best_batch", int(best.batch_size), Method.ANALYTICAL,
               "the batch size with the highest roofline throughput")
        rb.extra("fps_by_batch", {str(e.batch_size): e.fps for e in sweep})
        rb.extra("roofline", est.summary())

        # memory --------------------------------------------------------------------------
        need = run_cost.weight_bytes + run_cost.peak_activation_bytes
        rb.set("peak_memory_bytes", int(need), Method.ANALYTICAL,
               f"weights ({run_cost.weight_bytes / 2**20:.2f} MiB) + largest set of live activations "
               f"({run_cost.peak_activation_bytes / 2**20:.2f} MiB) in {precision}; TensorRT's "
               "workspace and the CUDA context (~100-300 MiB) come on top")
        rb.set("memory_limit_bytes", int(mem_limit), Method.ANALYTICAL,
               "8 GB LPDDR4 shared by the CPU, the GPU and the OS (datasheet)")
        fits = need <= mem_limit
        rb.set("fits", fits, Method.ANALYTICAL, "weights + live activations against the 8 GB")
        if not fits:
            rb.warn(f"does not fit: the model needs {need / 2**30:.2f} GiB, the TX2 has "
                    f"{mem_limit / 2**30:.0f} GiB shared with the OS")

        # power ---------------------------------------------------------------------------
        u = roofline_utilisation(est)
        power = tx2_power_w(mode, u)
        rb.set("power_w", power, Method.ANALYTICAL,
               f"ESTIMATE: idle {target.idle_w:.1f} W (assumed) + ({label} budget {budget:g} W − idle) × "
               f"{POWER['active_fraction']:.3f} (fitted on QuTiBench's 8.07 W for GoogLeNet, Max-P) × "
               f"GPU busy fraction {u:.2f} from the roofline; not a measurement")
        rb.set("energy_mj", energy_per_inference_mj(power, est.latency_s), Method.ANALYTICAL,
               "ESTIMATE: estimated power × roofline latency")
        rb.warn("power and energy are estimates from the power budget and the roofline's "
                "utilisation, not measurements")

        # accuracy ------------------------------------------------------------------------
        if data is not None and not data.timing_only:
            self._accuracy(rb, path, model, data, opts, sample_shape)

        # a real GPU, when there is one ----------------------------------------------------
        if opts["use_gpu"]:
            self._gpu(rb, path, est.latency_ms, model, sample_shape, mode, precision, cost)
        return rb.finish()

    # -------------------------------------------------------------------------------------
    def _accuracy(self, rb: ReportBuilder, path: Path, model, data: ArrayDataset,
                  opts: dict[str, Any], sample_shape: list[int] | None) -> None:
        limits = HarnessLimits(cores=len(host_cpus()))
        common = dict(batch_sizes=(1,), repeats=5, warmup=1, max_seconds=5.0,
                      input_shape=sample_shape, max_accuracy_samples=opts["max_accuracy_samples"])
        fp32 = None
        if opts["precision"] == "fp32" or opts["compare_fp32"]:
            res32 = run_limited(path, limits, data.x_test, data.y_test, **common)
            fp32 = res32.accuracy
            for w in res32.warnings:
                if "IR version" in w:
                    continue
                rb.warn(w)
        if opts["precision"] == "fp32":
            if fp32 is not None:
                rb.set("accuracy", fp32, Method.EXECUTED,
                       f"onnxruntime FP32 on the host CPU, {fp32.samples} test samples: TensorRT "
                       "FP32 on the TX2 computes the same IEEE FP32 (summation order differs)")
            return
        with tempfile.TemporaryDirectory(prefix="sigdl-tx2-fp16-") as tmp:
            import onnx

            half_path = Path(tmp) / "model_fp16_rounded.onnx"
            half = round_to_fp16(model)  # the harness lowers a too-new IR version itself
            onnx.save(half, os.fspath(half_path))
            res16 = run_limited(half_path, limits, data.x_test, data.y_test, **common)
        if res16.accuracy is None:
            rb.warn(f"FP16 accuracy could not be measured: {res16.error}")
            return
        rb.set("accuracy", res16.accuracy, Method.EXECUTED,
               f"onnxruntime on the host CPU with weights and every activation rounded to FP16 "
               f"(FP16 storage, FP32 accumulation, as TensorRT's FP16 mode), "
               f"{res16.accuracy.samples} test samples")
        if fp32 is not None:
            rb.extra("accuracy_fp32", fp32.to_dict())
            drop = fp32.top1 - res16.accuracy.top1
            if drop > 0.005:
                rb.warn(f"FP16 accuracy loss: top-1 {fp32.top1:.4f} in FP32 → "
                        f"{res16.accuracy.top1:.4f} in FP16 ({drop * 100:.2f} points)")

    # -------------------------------------------------------------------------------------
    def _gpu(self, rb: ReportBuilder, path: Path, roofline_ms: float, model, sample_shape,
             mode: str, precision: str, cost: ModelCost) -> None:
        info = detect_cuda_gpu()
        if info is None:
            rb.extra("gpu_executed", {"available": False,
                                      "reason": "no NVIDIA GPU here (nvidia-smi/torch.cuda)"})
            return
        rb.extra("gpu_detected", info)
        if info.get("sms") is None or info.get("clock_hz") is None:
            rb.warn("an NVIDIA GPU is present but its SM count or clock is unknown "
                    "(install torch with CUDA); not executed on it")
            return
        res = run_limited(path, HarnessLimits(cores=len(host_cpus())), batch_sizes=(1,),
                          repeats=30, warmup=5, max_seconds=20.0, input_shape=sample_shape,
                          provider="CUDAExecutionProvider")
        if res.latency_ms_p50 is None:
            rb.warn(f"executing on the GPU failed ({res.error or 'no timing'}); "
                    "onnxruntime needs the CUDA execution provider (onnxruntime-gpu)")
            return
        cores = info["sms"] * info["cores_per_sm"]
        gpu_hz, _, _, _ = POWER_MODES[mode]
        scale = (cores * info["clock_hz"]) / (CUDA_CORES * gpu_hz)
        scaled = res.latency_ms_p50 * scale
        if precision == "fp16":  # executed in FP32; TX2 FP16 gains what the roofline says
            m = tx2_machine(mode)
            r16 = estimate_latency(cost.in_format("fp16"), m, 1).latency_ms
            r32 = estimate_latency(cost, m, 1).latency_ms
            scaled *= r16 / r32
        ratio = scaled / roofline_ms if roofline_ms > 0 else float("inf")
        rb.extra("gpu_executed", {
            "available": True, "gpu": info, "host_p50_ms": res.latency_ms_p50,
            "scale": scale, "scaled_ms": scaled, "roofline_ms": roofline_ms, "ratio": ratio,
            "method": "executed on the host GPU with onnxruntime CUDA (FP32), scaled by CUDA "
                      "cores × clock to the TX2's 256 cores at the mode's clock",
        })
        if not 0.5 <= ratio <= 2.0:
            rb.warn(f"the GPU-executed and scaled latency ({scaled:.2f} ms) and the roofline "
                    f"({roofline_ms:.2f} ms) differ by {max(ratio, 1 / ratio):.1f}x; a large GPU "
                    "at batch 1 is under-occupied, so scaling by throughput is rough")


def _symbolic_shapes(model, sample_shape):
    if sample_shape is None:
        return None
    inits = {t.name for t in model.graph.initializer}
    first = next((i for i in model.graph.input if i.name not in inits), None)
    if first is None:
        return None
    dims = list(first.type.tensor_type.shape.dim)[1:]
    if any(not (d.HasField("dim_value") and d.dim_value > 0) for d in dims):
        return {first.name: [1, *sample_shape]}
    return None


def detect_cuda_gpu() -> dict[str, Any] | None:
    """The first NVIDIA GPU's name, SM count, cores per SM and max SM clock, or None.

    Uses ``nvidia-smi`` for presence and clock and torch (if installed) for the SM count
    and compute capability; imports torch only when ``nvidia-smi`` finds a GPU.
    """
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,clocks.max.sm,compute_cap", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    parts = [p.strip() for p in out.stdout.strip().splitlines()[0].split(",")]
    info: dict[str, Any] = {"name": parts[0], "clock_hz": None, "sms": None,
                            "compute_capability": None, "cores_per_sm": None}
    try:
        info["clock_hz"] = float(parts[1]) * 1e6
    except (IndexError, ValueError):
        pass
    try:
        major, minor = (int(v) for v in parts[2].split("."))
        info["compute_capability"] = f"{major}.{minor}"
        info["cores_per_sm"] = CORES_PER_SM.get((major, minor), 128)
    except (IndexError, ValueError):
        pass
    try:
        import torch  # only with a GPU present

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            info["sms"] = int(props.multi_processor_count)
            cc = (int(props.major), int(props.minor))
            info["compute_capability"] = f"{cc[0]}.{cc[1]}"
            info["cores_per_sm"] = CORES_PER_SM.get(cc, 128)
    except Exception:  # torch missing or broken: SM count stays unknown
        pass
    return info


__all__ = ["CALIBRATION", "CALIBRATION_TRT5", "POWER", "TENSORRT", "JetsonEmulator", "predict_power_w", "tx2_power_w", "detect_cuda_gpu", "predict_latency_ms", "tx2_machine"]
