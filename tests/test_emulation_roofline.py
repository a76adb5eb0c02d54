"""The roofline latency model and the power/energy estimates."""

from __future__ import annotations

import math

import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from sigdl_core.emulation import (
    Machine,
    analyze_model,
    batch_sweep,
    best_batch,
    energy_per_inference_mj,
    estimate_latency,
    estimate_power,
    machine_from_target,
    roofline_utilisation,
)
from sigdl_core.interfaces import TargetSpec


def _declared(name, shape):
    t = onnx.TensorProto()
    t.name, t.data_type = name, TensorProto.FLOAT
    t.dims.extend(shape)
    t.data_location = TensorProto.EXTERNAL
    e = t.external_data.add()
    e.key, e.value = "location", "none.bin"
    return t


def conv_fc_model(ch: int = 64, size: int = 28, fc: int = 4096) -> onnx.ModelProto:
    """Conv 3×3 (ch→ch) + ReLU, then a big fully connected layer: compute then weights."""
    nodes = [
        helper.make_node("Conv", ["input", "cw"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1] * 4),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fw"], ["h"], name="fc1", transB=1),
        helper.make_node("Gemm", ["h", "fw2"], ["logits"], name="fc2", transB=1),
    ]
    inits = [_declared("cw", (ch, ch, 3, 3)), _declared("fw", (fc, ch)), _declared("fw2", (10, fc))]
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", ch, size, size])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


MACHINE = Machine("test", {"fp32": 100e9, "fp16": 200e9}, 10e9, {"conv": 0.5, "default": 0.25},
                  per_node_overhead_s=5e-6, per_inference_overhead_s=50e-6)


def test_per_node_time_is_the_roofline_formula():
    cost = analyze_model(conv_fc_model())
    est = estimate_latency(cost, MACHINE)
    conv = next(n for n in cost.nodes if n.name == "conv")
    t = next(n for n in est.nodes if n.name == "conv")
    assert t.compute_s == pytest.approx(conv.flops / (100e9 * 0.5))
    assert t.memory_s == pytest.approx(conv.bytes / 10e9)
    assert t.time_s == pytest.approx(max(t.compute_s, t.memory_s) + 5e-6)
    # ReLU fuses into the conv, Flatten is a view: both free
    assert {n.name: n.bound for n in est.nodes}["relu"] == "fused"
    assert {n.name: n.bound for n in est.nodes}["flat"] == "free"
    assert est.latency_s == pytest.approx(sum(n.time_s for n in est.nodes) + 50e-6)
    # the big FC layer at batch 1 is memory bound (4096×64 + 10×4096 weights, 2 FLOP each)
    assert {n.name: n.bound for n in est.nodes}["fc1"] == "memory"


def test_no_fusion_makes_epilogues_cost():
    cost = analyze_model(conv_fc_model())
    fused = estimate_latency(cost, MACHINE)
    unfused = estimate_latency(cost, Machine(**{**MACHINE.__dict__, "fuse_epilogues": False}))
    assert unfused.latency_s > fused.latency_s


def test_throughput_rises_with_batch_until_compute_bound():
    cost = analyze_model(conv_fc_model(fc=32768))  # weights ≈ the conv's time at batch 1
    sweep = batch_sweep(cost, MACHINE, (1, 2, 4, 8, 16, 32, 64, 256))
    fps = [e.fps for e in sweep]
    lat = [e.latency_s for e in sweep]
    assert all(b >= a for a, b in zip(fps, fps[1:]))  # weights once per batch, overheads amortised
    assert all(b > a for a, b in zip(lat, lat[1:]))   # but a batch takes longer
    assert fps[-1] > 1.5 * fps[0]
    # the limit: every node compute or memory bound per sample, no overheads
    per_sample = sum(max(n.flops / (100e9 * MACHINE.efficiency_of(n.op_class)),
                         n.activation_bytes / 10e9)
                     for n in cost.nodes if n.op_class not in ("view",) and n.fuses_into is None)
    assert fps[-1] <= 1 / per_sample
    assert fps[-1] > 0.8 / per_sample


def test_best_batch_respects_memory():
    cost = analyze_model(conv_fc_model())
    free = best_batch(cost, MACHINE, (1, 8, 64))
    assert free.batch_size == 64
    tight = cost.weight_bytes + cost.for_batch(8).peak_activation_bytes
    limited = best_batch(cost, MACHINE, (1, 8, 64), memory_limit_bytes=tight)
    assert limited.batch_size == 8


@settings(max_examples=25, deadline=None)
@given(peak=st.floats(1e9, 1e13), bw=st.floats(1e8, 1e11), eff=st.floats(0.05, 1.0),
       factor=st.floats(1.01, 10))
def test_latency_is_monotone_in_the_machine(peak, bw, eff, factor):
    cost = analyze_model(conv_fc_model(ch=16, size=14, fc=256))
    m = Machine("m", {"fp32": peak}, bw, {"default": eff})
    base = estimate_latency(cost, m).latency_s
    faster = estimate_latency(cost, Machine("m", {"fp32": peak * factor}, bw, {"default": eff})).latency_s
    wider = estimate_latency(cost, Machine("m", {"fp32": peak}, bw * factor, {"default": eff})).latency_s
    assert faster <= base and wider <= base
    assert faster < base or wider < base  # each node is bound by one or the other


def test_fp16_runs_faster_and_formats_fall_back():
    cost = analyze_model(conv_fc_model())
    fp32 = estimate_latency(cost, MACHINE)
    fp16 = estimate_latency(cost.in_format("fp16"), MACHINE)
    assert fp16.latency_s < fp32.latency_s
    only32 = Machine("only32", {"fp32": 100e9}, 10e9)
    est = estimate_latency(cost.in_format("int8"), only32)
    assert any("no native path for int8" in w for w in est.warnings)


def test_efficiency_fallbacks_and_format_keys():
    m = Machine("m", {"fp32": 1e9}, 1e9, {"conv": 0.6, "depthwise": 0.1, "depthwise@fp16": 0.05,
                                          "elementwise": 0.3, "default": 0.2})
    assert m.efficiency_of("grouped") == 0.6      # grouped → conv
    assert m.efficiency_of("gemm") == 0.6         # gemm → conv
    assert m.efficiency_of("depthwise", "fp16") == 0.05
    assert m.efficiency_of("depthwise", "fp32") == 0.1
    assert m.efficiency_of("activation") == 0.3   # activation → elementwise
    assert m.efficiency_of("other") == 0.2
    with pytest.raises(ValueError):
        Machine("bad", {"fp32": 1e9}, 1e9, {"conv": 1.5})


def test_winograd_and_occupancy_apply_where_they_should():
    cost = analyze_model(conv_fc_model())
    base = estimate_latency(cost, Machine("m", {"fp32": 1e10}, 1e12, {"default": 0.5}))
    wino = estimate_latency(cost, Machine("m", {"fp32": 1e10}, 1e12, {"default": 0.5}, winograd_speedup=2.0))
    c0 = next(n for n in base.nodes if n.name == "conv")
    c1 = next(n for n in wino.nodes if n.name == "conv")
    assert c1.compute_s == pytest.approx(c0.compute_s / 2)
    f0 = next(n for n in base.nodes if n.name == "fc1")
    f1 = next(n for n in wino.nodes if n.name == "fc1")
    assert f1.compute_s == f0.compute_s  # a Gemm is not Winograd-eligible
    occ = estimate_latency(cost, Machine("m", {"fp32": 1e10}, 1e12, {"default": 0.5},
                                         occupancy_half_outputs=64 * 28 * 28))
    c2 = next(n for n in occ.nodes if n.name == "conv")
    assert c2.compute_s == pytest.approx(2 * c0.compute_s)  # exactly at the half point


def test_power_and_energy_estimates():
    assert estimate_power(1.0, 6.5, 0.0) == 1.0
    assert estimate_power(1.0, 6.5, 1.0) == 6.5
    assert estimate_power(1.0, 6.5, 0.5) == pytest.approx(3.75)
    assert estimate_power(1.0, 6.5, 7.0) == 6.5  # utilisation clipped to [0, 1]
    assert energy_per_inference_mj(5.0, 0.010) == pytest.approx(50.0)
    assert energy_per_inference_mj(5.0, 0.010, batch_size=10) == pytest.approx(5.0)
    est = estimate_latency(analyze_model(conv_fc_model()), MACHINE)
    u = roofline_utilisation(est)
    assert 0 < u < 1 and math.isclose(u, est.busy_s / est.latency_s)


def test_machine_from_target_reads_the_datasheet():
    spec = TargetSpec("t", "T", "e", cores=2, clock_hz=1e9, memory_bytes=1 << 30,
                      memory_bandwidth=5e9, peak_ops={"fp32": 16e9}, tdp_w=5,
                      extra={"roofline": {"efficiency": {"conv": 0.7}, "per_node_overhead_s": 1e-5}})
    m = machine_from_target(spec)
    assert m.peak_flops == {"fp32": 16e9} and m.bandwidth == 5e9
    assert m.efficiency_of("conv") == 0.7 and m.per_node_overhead_s == 1e-5
    m2 = machine_from_target(spec, efficiency={"conv": 0.3}, per_inference_overhead_s=1e-3)
    assert m2.efficiency_of("conv") == 0.3 and m2.per_inference_overhead_s == 1e-3
