"""The ARM target plugin: datasheets, the cost terms of the latency model, options, and a
full emulation with fp32 and int8 (QDQ through onnxruntime) accuracy measured on the host."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sigdl_core.emulation import analyze_model, missing_provenance
from sigdl_core.errors import InvalidValueError
from sigdl_core.interfaces import ArrayDataset, Method
from sigdl_core.plugins import load_plugins

ARM_TARGETS = {"rpi4-a72", "rpi4-a72-1800", "rpi3bplus-a53", "rpi-zero-w", "jetson-tx2-cpu",
               "jetson-nano-cpu"}


@pytest.fixture(scope="module")
def registry():
    return load_plugins(allow=["target_arm"]).registry


def _model(layers, input_shape, name="net") -> onnx.ModelProto:
    """A graph from (kind, args) layers; kinds conv(cout, k, stride, group), relu, gap, fc(n)."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    x, c, h = "input", input_shape[0], input_shape[1]
    for i, (kind, *a) in enumerate(layers):
        out = f"t{i}"
        if kind == "conv":
            cout, k, s, g = a
            inits.append(numpy_helper.from_array((rng.standard_normal((cout, c // g, k, k)) * 0.2).astype(np.float32), f"w{i}"))
            nodes.append(helper.make_node("Conv", [x, f"w{i}"], [out], kernel_shape=[k, k], strides=[s, s],
                                          pads=[k // 2] * 4, group=g, name=f"conv{i}"))
            c, h = cout, (h + 2 * (k // 2) - k) // s + 1
        elif kind == "relu":
            nodes.append(helper.make_node("Relu", [x], [out], name=f"relu{i}"))
        elif kind == "gap":
            nodes.append(helper.make_node("GlobalAveragePool", [x], [f"p{i}"], name=f"gap{i}"))
            nodes.append(helper.make_node("Flatten", [f"p{i}"], [out], name=f"flat{i}"))
            h = 1
        elif kind == "fc":
            (n,) = a
            inits.append(numpy_helper.from_array((rng.standard_normal((n, c)) * 0.05).astype(np.float32), f"w{i}"))
            nodes.append(helper.make_node("Gemm", [x, f"w{i}"], [out], transB=1, name=f"fc{i}"))
            c = n
        x = out
    nodes.append(helper.make_node("Identity", [x], ["logits"], name="out"))
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *input_shape])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", c])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _predict(registry, model, target="rpi4-a72", threads=1, precision="fp32", clock=None):
    from sigdl_target_arm.latency import predict

    return predict(analyze_model(model, 1), registry.get("target", target), threads, precision, clock)


def test_five_arm_boards_are_registered_with_datasheets(registry):
    assert ARM_TARGETS <= set(registry.names("target"))
    assert "arm" in registry.names("emulator")
    pi4 = registry.get("target", "rpi4-a72")
    assert pi4.cores == 4 and pi4.clock_hz == 1.5e9 and pi4.memory_bandwidth == 12.8e9
    assert pi4.peak_ops["fp32"] == pytest.approx(4 * 1.5e9 * 8)  # 128-bit FMLA per cycle
    assert registry.get("target", "rpi4-a72-1800").clock_hz == 1.8e9
    a72 = pi4.extra["core_types"]["cortex-a72"]
    assert a72["has_sdot"] is False and "SMLAL" in a72["int8_path"]
    a53 = registry.get("target", "rpi3bplus-a53").extra["core_types"]["cortex-a53"]
    assert a53["simd_bits"] == 64 and a53["has_sdot"] is False
    zero = registry.get("target", "rpi-zero-w")
    assert zero.cores == 1 and "no NEON" in zero.extra["core_types"]["arm1176jzf-s"]["int8_path"]
    tx2 = registry.get("target", "jetson-tx2-cpu")
    assert tx2.cores == 6 and {c["core"] for c in tx2.extra["clusters"]} == {"denver2", "cortex-a57"}
    assert registry.get("target", "jetson-nano-cpu").clock_hz == 1.43e9
    for name in ARM_TARGETS:
        t = registry.get("target", name)
        assert t.tdp_w > t.idle_w > 0 and t.extra["sources"]


def test_arm_plugin_module_imports_nothing_heavy():
    code = ("import sys, sigdl_target_arm.plugin as p; p.sigdl_targets(); p.sigdl_emulators(); "
            "bad = [m for m in ('numpy', 'onnx', 'onnxruntime', 'torch') if m in sys.modules]; "
            "print(','.join(bad)); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_winograd_for_wide_3x3_stride1_im2col_otherwise(registry):
    m = _model([("conv", 64, 3, 1, 1), ("relu",), ("conv", 64, 3, 1, 1), ("conv", 64, 5, 2, 1),
                ("conv", 128, 1, 1, 1), ("gap",), ("fc", 10)], (3, 56, 56))
    _est, plan, _m = _predict(registry, m)
    algo = plan.algorithms
    assert algo["conv2"] == "winograd-f63"  # 64→64 3×3/1: Winograd pays
    assert algo["conv3"] == "im2col-gemm"   # 5×5 stride 2: no Winograd
    assert algo["conv4"] == "gemm-1x1"      # 1×1 stride 1: a plain GEMM
    _e8, plan8, _ = _predict(registry, m, precision="int8")
    assert plan8.algorithms["conv2"] == "winograd-f43"  # ncnn's int8 Winograd tile


def test_threads_speed_up_less_than_linearly_and_big_fc_is_memory_bound(registry):
    conv = _model([("conv", 128, 3, 1, 1), ("conv", 128, 3, 1, 1), ("gap",), ("fc", 10)], (64, 56, 56))
    one, _, _ = _predict(registry, conv, threads=1)
    four, _, _ = _predict(registry, conv, threads=4)
    assert one.latency_s / 4 < four.latency_s < one.latency_s
    fc = _model([("gap",), ("fc", 4096), ("fc", 4096)], (4096, 1, 1))
    est, _, _ = _predict(registry, fc, threads=4)
    bounds = {n.name: n.bound for n in est.nodes}
    assert bounds["fc2"] == "memory"  # 64 MB of fp32 weights at batch 1
    e8, _, _ = _predict(registry, fc, threads=4, precision="int8")
    assert e8.latency_s < est.latency_s / 2  # int8 weights: a quarter of the bytes


def test_per_layer_overhead_and_clock(registry):
    from sigdl_target_arm.latency import CALIBRATION

    small = _model([("conv", 8, 3, 1, 1), ("gap",), ("fc", 10)], (3, 8, 8))
    deeper = _model([("conv", 8, 3, 1, 1)] + [("conv", 8, 3, 1, 1)] * 10 + [("gap",), ("fc", 10)], (3, 8, 8))
    a, _, _ = _predict(registry, small)
    b, _, _ = _predict(registry, deeper)
    per_layer = CALIBRATION["cortex-a72"].layer_overhead_cycles / 1.5e9
    assert b.latency_s - a.latency_s >= 10 * per_layer  # tiny layers cost their overhead
    big = _model([("conv", 128, 3, 1, 1), ("conv", 128, 3, 1, 1)], (128, 56, 56))
    slow, _, _ = _predict(registry, big, clock=1.5e9)
    fast, _, _ = _predict(registry, big, clock=1.8e9)
    assert fast.latency_s == pytest.approx(slow.latency_s * 1.5 / 1.8, rel=0.1)


def test_a53_is_slower_than_a72_per_clock(registry):
    m = _model([("conv", 64, 3, 1, 1), ("conv", 64, 3, 1, 1), ("gap",), ("fc", 10)], (32, 56, 56))
    a72, _, _ = _predict(registry, m, "rpi4-a72", clock=1.4e9)
    a53, _, _ = _predict(registry, m, "rpi3bplus-a53")
    assert a53.latency_s > 1.5 * a72.latency_s  # half the NEON width, slower DRAM


def test_options_are_declared_and_checked(registry):
    from sigdl_target_arm.emulator import arm_options

    spec = registry.get("emulator", "arm")
    assert {o.name for o in spec.options} >= {"threads", "precision", "clock"}
    assert next(o for o in spec.options if o.name == "precision").choices == ("fp32", "int8")
    pi4 = registry.get("target", "rpi4-a72")
    assert arm_options({}, pi4)["threads"] == 4
    assert arm_options({"threads": 2, "clock": 1.8}, pi4)["threads"] == 2
    for bad in ({"threads": 5}, {"precision": "fp16"}, {"clock": "fast"}, {"cores": 2}, {"threads": True}):
        with pytest.raises(InvalidValueError):
            arm_options(bad, pi4)


def _blobs_classifier(tmp_path):
    """A trained-by-construction conv classifier on Gaussian blobs: real accuracy."""
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((10, 4, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, 400)
    x = (centres[y] + 0.9 * rng.standard_normal((400, 4, 8, 8))).astype(np.float32)
    w = centres.reshape(10, 4 * 8 * 8)
    b = (-0.5 * (w ** 2).sum(1)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["input", "cw"], ["c"], kernel_shape=[1, 1], name="conv"),
             helper.make_node("Flatten", ["c"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "w", "b"], ["logits"], transB=1, name="fc")]
    inits = [numpy_helper.from_array(np.eye(4, dtype=np.float32).reshape(4, 4, 1, 1), "cw"),
             numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
    g = helper.make_graph(nodes, "blobs", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4, 8, 8])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = tmp_path / "blobs.onnx"
    onnx.save(m, str(path))
    expected = float(((x.reshape(400, -1) @ w.T + b).argmax(1) == y).mean())
    return path, ArrayDataset("blobs", x[:200], y[:200], x[200:], y[200:], 10), expected, x[200:], y[200:], w, b


def test_emulate_fp32_and_int8_accuracy_through_onnxruntime(registry, tmp_path):
    path, data, _exp, xt, yt, w, b = _blobs_classifier(tmp_path)
    expected = float(((xt.reshape(len(xt), -1) @ w.T + b).argmax(1) == yt).mean())
    emu = registry.emulator("arm")
    pi4 = registry.get("target", "rpi4-a72")
    rep = emu.emulate(path, pi4, data, {"threads": 2})
    assert not missing_provenance(rep)
    assert rep.accuracy.top1 == pytest.approx(expected, abs=1e-9)
    assert rep.provenance["accuracy"].method is Method.EXECUTED
    assert "last bits" in rep.provenance["accuracy"].detail
    assert rep.provenance["latency_ms_p50"].method is Method.ANALYTICAL
    assert rep.latency_ms_p50 > 0 and rep.fits and rep.best_batch == 1
    assert rep.extra["plan"]["threads"] == 2
    rep8 = emu.emulate(path, pi4, data, {"precision": "int8"})
    assert rep8.extra["precision"] == "int8"
    assert "QDQ int8" in rep8.provenance["accuracy"].detail
    assert abs(rep8.accuracy.top1 - expected) <= 0.03  # int8 keeps the blobs apart
    out = emu.export_target_model(path, pi4, data, tmp_path / "export", {"precision": "int8"})
    qdq = onnx.load(str(out))
    assert any(n.op_type == "QuantizeLinear" for n in qdq.graph.node)


def test_calibration_evidence_is_the_pi4_rows_and_held_out_boards(registry):
    rows = registry.get("emulator", "arm").calibration
    calib = [r for r in rows if r.set == "calibration"]
    held = [r for r in rows if r.set == "held-out"]
    assert len(calib) == 22 and {r.target for r in calib} == {"rpi4-a72-1800"}
    assert {r.options["threads"] for r in calib} == {1, 4}
    assert {r.options["precision"] for r in calib} == {"fp32", "int8"}
    assert {r.target for r in held} == {"rpi3bplus-a53", "jetson-nano-cpu", "jetson-tx2-cpu"}
    assert all(not r.sets for r in held) and all(r.sets for r in calib)
    assert all(abs(r.error) <= 0.15 for r in calib)  # the shipped constants' record


def test_int8_blobs_stay_int8_only_between_int8_layers():
    from sigdl_target_arm.latency import int8_links

    m = _model([("conv", 8, 3, 1, 1), ("relu",), ("conv", 8, 3, 1, 1), ("relu",), ("conv", 8, 1, 1, 1),
                ("gap",), ("fc", 10)], (3, 16, 16))
    links = int8_links(m)
    assert links["conv0"] == (False, True)   # fed the fp32 input; its ReLU'd output feeds conv2
    assert links["conv2"] == (True, True)
    assert links["conv4"] == (True, False)   # its output meets the average pool: dequantized
    assert links["fc6"] == (False, False)    # after the pool, and the graph's output
