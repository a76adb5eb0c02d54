"""Latency of an FP16 network on the MA2450: per-layer-type costs fitted to published rows.

Every node of the FP16 graph (batch norm folded, ReLU fused into the convolution before it,
as ``mvNCCompile`` does; views free) costs, by its kind (:func:`layer_kind`):

* ``conv1x1``, ``conv3x3``, ``convkxk`` (every other kernel: 5×5, 7×7, 1×7, 7×1, 1×3 …),
  ``depthwise``: ``MACs / rate[kind]`` — the MvTensor kernels of each shape run at their own
  fraction of the 12 SHAVEs' 57.6 GMAC/s fp16 peak;
* ``fc``: its weights stream once from the LPDDR3 (``weight bytes / (7.46 GB/s × 0.7)``; the
  datasheet bandwidth, not fitted: a batch-1 FC layer reads each weight once);
* ``pool``: its bytes at the CMX's SIMD rate (12 SHAVEs × 1 byte/cycle × 600 MHz =
  7.2 GB/s; a datasheet figure, not fitted);
* ``concat``: free — the NCSDK writes each branch into its slice of the output (the fit,
  given a per-byte cost for it, sets it to zero);
* ``pass`` (unfused batch norm, ReLU, Add, Mul, LRN, softmax: one read and one write of a
  tensor that does not fit in the 2 MB CMX): ``bytes / pass_bandwidth``;
* plus ``per_layer_s`` per dispatched layer (fitted; the fit puts it at zero, the SHAVE
  kernels' start-up being inside the per-kind rates);
* and, with ``usb=True``, the USB transfer: ``(input + output bytes in fp16) / usb_bandwidth``
  — the NCAPI's effective rate through ``mvncLoadTensor``/``mvncGetResult`` (host-side fp16
  conversion and protocol included), 16.5 ms for GoogLeNet's 301 KB.

Which published row set which constant (bench/emulation_calibration.py prints them with
their errors): least squares on the relative error over the six rows of issue 14 —
GoogLeNet 88.66 ms, Inception v3 323.57 ms, Inception-ResNet v2 740.28 ms and
MobileNet-SSD 80.41 ms measured on the device, SqueezeNet v1.0 53.0 ms and DenseNet-121
199.0 ms through USB (their USB time modelled and subtracted). ``depthwise`` is set by
MobileNet-SSD alone (the only row with depthwise layers); ``convkxk`` mostly by Inception v3
and Inception-ResNet v2 (1×7/7×1) and GoogLeNet (5×5); ``pass`` by DenseNet-121 (its
pre-activation BN+ReLU cannot fuse) and Inception-ResNet v2 (residual adds and scales);
``usb_bandwidth`` by the GoogLeNet pair 88.66 ms on the device / 105.2 ms through OpenCV.

The NCS runs batch 1 only, so the best batch is 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sigdl_core.emulation import Machine, ModelCost, NodeTime, RooflineEstimate
from sigdl_core.interfaces import TargetSpec

__all__ = ["MA2450_CONSTANTS", "KINDS", "layer_kind", "movidius_machine", "estimate_movidius_latency",
           "usb_transfer_s", "describe_constants"]

#: Fitted by ``bench/emulation_calibration.py --fit`` (rates in MAC/s, bandwidths in B/s).
MA2450_CONSTANTS: dict[str, float] = {
    "rate_conv1x1": 24.876e9,
    "rate_conv3x3": 25.806e9,
    "rate_convkxk": 12.199e9,
    "rate_depthwise": 0.8912e9,
    "pass_bandwidth": 1.2339e9,
    "per_layer_s": 0.0,
    "usb_bandwidth": 18.323e6,
    # datasheet figures, not fitted
    "fc_bandwidth": 7.464e9 * 0.7,
    "pool_bandwidth": 12 * 600e6,
}

#: The kinds of layer the model costs separately.
KINDS = ("conv1x1", "conv3x3", "convkxk", "depthwise", "fc", "pool", "concat", "pass")


def layer_kind(node) -> str | None:
    """The cost kind of a node (see the module docstring); None for a node that costs
    nothing (a folded constant, a view, an epilogue fused into the layer before it)."""
    if node.constant or node.op_class in ("view", "quant") or node.fuses_into is not None:
        return None
    if node.op_class == "depthwise":
        return "depthwise"
    if node.op_class in ("conv", "grouped"):
        taps = math.prod(node.kernel_shape) if node.kernel_shape else 1
        return "conv1x1" if taps == 1 else "conv3x3" if taps == 9 else "convkxk"
    if node.op_class == "gemm":
        return "fc"
    if node.op_class == "pool":
        return "pool"
    if node.op_class == "data":
        return "concat" if node.op_type == "Concat" else "pass"
    return "pass"


def _node_time(node, kind: str, c: Mapping[str, float]) -> tuple[float, float]:
    """(compute seconds, memory seconds) of one node."""
    if kind.startswith("conv") or kind == "depthwise":
        return node.macs / c[f"rate_{kind}"], 0.0
    if kind == "fc":
        return 0.0, node.weight_bytes / c["fc_bandwidth"]
    if kind == "pool":
        return 0.0, node.activation_bytes / c["pool_bandwidth"]
    if kind == "concat":
        return 0.0, 0.0
    return 0.0, node.activation_bytes / c["pass_bandwidth"]


def usb_transfer_s(cost: ModelCost, c: Mapping[str, float] = MA2450_CONSTANTS) -> float:
    """The host ↔ stick transfer of one inference: the fp16 input and the fp16 output (the
    last node's, the graph's result) over the NCAPI."""
    inputs = sum(2 * math.prod(s[1:]) for s in cost.input_shapes.values())
    shaped = [n for n in cost.nodes if n.output_shapes and n.output_shapes[0]]
    outputs = 2 * math.prod(shaped[-1].output_shapes[0][1:]) if shaped else 0
    return (inputs + outputs) / c["usb_bandwidth"]


def movidius_machine(target: TargetSpec) -> Machine:
    """The MA2450 as a :class:`~sigdl_core.emulation.Machine` (for its description)."""
    c = MA2450_CONSTANTS
    return Machine(
        name=target.name,
        peak_flops={"fp16": float(target.peak_ops["fp16"])},
        bandwidth=c["fc_bandwidth"],
        efficiency={k: 2 * c[f"rate_{k}"] / float(target.peak_ops["fp16"])
                    for k in ("conv1x1", "conv3x3", "convkxk", "depthwise")},
        per_node_overhead_s=c["per_layer_s"],
        per_inference_overhead_s=0.0,
        fuse_epilogues=True,
    )


def estimate_movidius_latency(cost: ModelCost, target: TargetSpec, usb: bool = False,
                              constants: Mapping[str, float] | None = None
                              ) -> tuple[RooflineEstimate, Machine]:
    """The batch-1 latency of an FP16 cost (``cost.in_format("fp16")``) on the stick, with
    the USB transfer when ``usb``; the estimate's ``overhead_s`` holds layers + USB."""
    c = dict(MA2450_CONSTANTS)
    c.update(constants or {})
    one = cost.for_batch(1)
    nodes, compute, memory, layers = [], 0.0, 0.0, 0
    for n in one.nodes:
        kind = layer_kind(n)
        if kind is None:
            nodes.append(NodeTime(n.name, n.op_type, n.op_class, n.fmt, 0.0, 0.0, 0.0, 0.0, "free"))
            continue
        cs, ms = _node_time(n, kind, c)
        layers += 1
        t = cs + ms + c["per_layer_s"]
        compute += cs
        memory += ms
        nodes.append(NodeTime(n.name, n.op_type, kind, n.fmt, cs, ms, c["per_layer_s"], t,
                              "compute" if cs >= ms else "memory"))
    usb_s = usb_transfer_s(one, c) if usb else 0.0
    overhead = layers * c["per_layer_s"] + usb_s
    est = RooflineEstimate(machine=target.name, batch_size=1, latency_s=compute + memory + overhead,
                           compute_s=compute, memory_s=memory, overhead_s=overhead,
                           busy_s=compute + memory, flops=int(one.flops),
                           bytes=int(one.weight_bytes + one.activation_bytes), nodes=tuple(nodes))
    return est, movidius_machine(target)


def describe_constants() -> dict[str, Any]:
    """The constants, for a report."""
    return dict(MA2450_CONSTANTS)
