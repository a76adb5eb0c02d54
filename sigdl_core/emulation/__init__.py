"""Emulation machinery every target plugin shares: cost model, roofline, execution harness.

Three layers, each usable alone (the core imports onnx and numpy only; onnxruntime is
imported lazily, in the harness's child process):

**Cost model** (:mod:`.cost`) — what a graph asks of a machine::

    from sigdl_core.emulation import analyze_model
    cost = analyze_model("model.onnx", batch_size=1)      # or an onnx.ModelProto
    cost.macs, cost.flops, cost.params, cost.weight_bytes, cost.activation_bytes
    cost.peak_activation_bytes                             # live activations, graph order
    cost.nodes          # tuple[NodeCost]: name, op_type, op_class, fmt, macs, flops,
                        # weight_bytes, input_bytes, output_bytes, params, output_shapes,
                        # constant (folded away), fuses_into (Conv/Gemm it fuses into)
    cost.for_batch(8)   # work and activations × 8, weights once
    cost.in_format("fp16")                                 # an FP32 graph run in FP16
    cost.by_op_class(), cost.by_format(), cost.summary()

Op classes (:data:`OP_CLASSES`): conv, grouped, depthwise, gemm, pool, norm, activation,
elementwise, softmax, reduce, data, view, quant, other. Formats: fp32, fp16, bf16, int8,
int16, … (:data:`FORMAT_BYTES`); a QDQ int8 model counts as int8.

**Roofline** (:mod:`.roofline`) — how long a target takes::

    from sigdl_core.emulation import Machine, estimate_latency, best_batch
    m = Machine("my-dsp", peak_flops={"fp32": 20e9, "int8": 80e9}, bandwidth=10e9,
                efficiency={"conv": 0.6, "depthwise": 0.2, "default": 0.3},
                per_node_overhead_s=20e-6, per_inference_overhead_s=0.5e-3,
                fuse_epilogues=True, occupancy_half_outputs=0.0, winograd_speedup=1.0)
    # efficiency keys: an op class, "default", or "<class>@<format>" ("depthwise@fp16")
    # or machine_from_target(target_spec, efficiency=..., per_node_overhead_s=...)
    est = estimate_latency(cost, m, batch_size=1)     # RooflineEstimate
    est.latency_s, est.fps, est.compute_s, est.memory_s, est.overhead_s, est.nodes
    best = best_batch(cost, m, memory_limit_bytes=target.memory_bytes)
    m.scaled(compute=850/1300, bandwidth=0.71)         # a lower-clock power mode

**Power** — always an estimate, say so in reports::

    p = estimate_power(idle_w, tdp_w, utilisation)       # idle + (TDP − idle) · u
    e = energy_per_inference_mj(p, latency_s, batch_size=1)
    roofline_utilisation(est)                            # busy fraction of a call

**Execution harness** (:mod:`.harness`) — runs the model with onnxruntime in a child
process limited to the target's cores and memory::

    from sigdl_core.emulation.harness import run_limited, HarnessLimits
    res = run_limited("model.onnx", HarnessLimits(cores=2, memory_bytes=8 << 30),
                      x_test=x, y_test=y, batch_sizes=(1, 4, 16))
    res.fits, res.latency_ms_p50, res.latency_ms_p95, res.fps_by_batch, res.peak_rss_bytes,
    res.accuracy, res.cpu_utilisation, res.affinity, res.warnings

**Helpers**: :func:`round_to_fp16` (:mod:`.precision`) gives a copy of an FP32 model that
computes with FP16-rounded weights and activations, for FP16 accuracy on a CPU;
:class:`ReportBuilder` (:mod:`.reporting`) fills an ``EmulationReport`` field by field with
the provenance of each number and refuses a number without one.

The stable API is what this package exports (``__all__``); names starting with ``_`` may
change.
"""

from .cost import FORMAT_BYTES, OP_CLASSES, ModelCost, NodeCost, analyze_model, load_onnx, op_class_of
from .precision import round_to_fp16
from .reporting import NUMBER_FIELDS, ReportBuilder, missing_provenance
from .roofline import (
    DEFAULT_BATCH_SIZES,
    Machine,
    NodeTime,
    RooflineEstimate,
    batch_sweep,
    best_batch,
    bytes_per_element,
    describe_machine,
    energy_per_inference_mj,
    estimate_latency,
    estimate_power,
    machine_from_target,
    roofline_utilisation,
)

__all__ = [
    "DEFAULT_BATCH_SIZES",
    "FORMAT_BYTES",
    "OP_CLASSES",
    "Machine",
    "NUMBER_FIELDS",
    "ReportBuilder",
    "ModelCost",
    "NodeCost",
    "NodeTime",
    "RooflineEstimate",
    "analyze_model",
    "batch_sweep",
    "best_batch",
    "bytes_per_element",
    "describe_machine",
    "energy_per_inference_mj",
    "estimate_latency",
    "estimate_power",
    "load_onnx",
    "machine_from_target",
    "missing_provenance",
    "round_to_fp16",
    "op_class_of",
    "roofline_utilisation",
]
