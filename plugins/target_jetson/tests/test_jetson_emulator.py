"""The Jetson TX2 target plugin: registration, power modes, the calibrated roofline, and a
full emulation with FP16 accuracy measured on the host."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sigdl_core.emulation import analyze_model, missing_provenance
from sigdl_core.errors import InvalidValueError
from sigdl_core.interfaces import ArrayDataset, Method
from sigdl_core.plugins import load_plugins

TX2_TARGETS = {"jetson-tx2", "jetson-tx2-maxp", "jetson-tx2-maxq"}


@pytest.fixture(scope="module")
def registry():
    return load_plugins(allow=["target_jetson"]).registry


def conv_net() -> onnx.ModelProto:
    """Two conv+BN+ReLU layers, a pool and a classifier: enough for batch and format effects."""
    rng = np.random.default_rng(0)
    inits, nodes = [], []

    def conv(x, cin, cout, name):
        inits.append(numpy_helper.from_array((rng.standard_normal((cout, cin, 3, 3)) * 0.1).astype(np.float32), f"{name}.w"))
        for p, v in (("s", 1.0), ("b", 0.0), ("m", 0.0), ("v", 1.0)):
            inits.append(numpy_helper.from_array(np.full(cout, v, np.float32), f"{name}.{p}"))
        nodes.append(helper.make_node("Conv", [x, f"{name}.w"], [f"{name}.c"], kernel_shape=[3, 3], pads=[1] * 4, name=name))
        nodes.append(helper.make_node("BatchNormalization", [f"{name}.c"] + [f"{name}.{p}" for p in "sbmv"],
                                      [f"{name}.n"], name=name + ".bn"))
        nodes.append(helper.make_node("Relu", [f"{name}.n"], [f"{name}.r"], name=name + ".relu"))
        return f"{name}.r"

    x = conv("input", 3, 64, "conv1")
    x = conv(x, 64, 64, "conv2")
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="flat"))
    inits.append(numpy_helper.from_array((rng.standard_normal((10, 64)) * 0.1).astype(np.float32), "fc.w"))
    nodes.append(helper.make_node("Gemm", ["flat", "fc.w"], ["logits"], transB=1, name="fc"))
    g = helper.make_graph(nodes, "convnet", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 56, 56])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def centroid_classifier(tmp_path):
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((10, 64)).astype(np.float32)
    y = rng.integers(0, 10, 300)
    x = (centres[y] + 0.9 * rng.standard_normal((300, 64))).astype(np.float32).reshape(300, 1, 8, 8)
    b = (-0.5 * (centres ** 2).sum(1)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["f"]),
         helper.make_node("Gemm", ["f", "w", "b"], ["logits"], transB=1)],
        "centroids", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(centres, "w"), numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = tmp_path / "centroids.onnx"
    onnx.save(m, str(path))
    expected = float(((x.reshape(300, 64) @ centres.T + b).argmax(1) == y).mean())
    return path, ArrayDataset("blobs", x[:100], y[:100], x, y, 10), expected


def test_jetson_targets_and_emulator_are_registered(registry):
    assert TX2_TARGETS <= set(registry.names("target"))
    assert "jetson" in registry.names("emulator")
    tx2 = registry.get("target", "jetson-tx2")
    assert tx2.emulator == "jetson" and tx2.cores == 256
    assert tx2.peak_ops["fp32"] == pytest.approx(665.6e9)   # 256 × 2 × 1.30 GHz
    assert tx2.peak_ops["fp16"] == pytest.approx(1331.2e9)
    assert tx2.memory_bandwidth == pytest.approx(59.7e9)
    assert tx2.memory_bytes == 8 << 30
    maxq = registry.get("target", "jetson-tx2-maxq")
    assert maxq.clock_hz == 0.85e9 and maxq.tdp_w == 7.5
    assert maxq.peak_ops["fp32"] == pytest.approx(256 * 2 * 0.85e9)
    assert registry.get("target", "jetson-tx2-maxp").clock_hz == 1.12e9


def test_jetson_plugin_module_imports_nothing_heavy():
    code = ("import sys, sigdl_target_jetson.plugin as p; p.sigdl_targets(); "
            "bad = [m for m in ('numpy', 'onnx', 'onnxruntime', 'torch') if m in sys.modules]; "
            "print(','.join(bad)); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_jetson_modes_precision_and_batch_effects():
    from sigdl_target_jetson.emulator import predict_latency_ms, tx2_machine

    cost = analyze_model(conv_net())
    n, p, q = (predict_latency_ms(cost, "fp32", m) for m in ("max-n", "max-p", "max-q"))
    assert n < p < q
    assert predict_latency_ms(cost, "fp16") < predict_latency_ms(cost, "fp32")
    # per-call overhead amortised, occupancy rising: throughput grows with the batch
    fps = [b / predict_latency_ms(cost, "fp16", batch_size=b) for b in (1, 2, 4, 8, 16, 32)]
    assert all(b > a for a, b in zip(fps, fps[1:]))
    assert tx2_machine("max-q").bandwidth < tx2_machine("max-n").bandwidth
    with pytest.raises(InvalidValueError):
        tx2_machine("warp-speed")


@pytest.mark.slow
def test_jetson_emulate_reports_everything_with_fp16_accuracy(registry, tmp_path):
    path, data, expected = centroid_classifier(tmp_path)
    report = registry.emulator("jetson").emulate(path, registry.get("target", "jetson-tx2"), data, {})
    assert missing_provenance(report) == []
    for name in ("accuracy", "latency_ms_p50", "latency_ms_p95", "fps_batch1", "fps_best",
                 "best_batch", "peak_memory_bytes", "memory_limit_bytes", "power_w", "energy_mj"):
        assert getattr(report, name) is not None, name
    assert report.fits is True
    assert report.provenance["latency_ms_p50"].method is Method.ANALYTICAL
    assert report.provenance["accuracy"].method is Method.EXECUTED
    assert "FP16" in report.provenance["accuracy"].detail
    assert report.extra["accuracy_fp32"]["top1"] == pytest.approx(expected)
    assert abs(report.accuracy.top1 - expected) <= 0.01  # FP16 rounding barely moves a linear model
    assert report.fps_best > report.fps_batch1 and report.best_batch > 1
    assert report.energy_mj == pytest.approx(report.power_w * report.latency_ms_p50)
    assert 1.5 <= report.power_w <= 15.0
    if shutil.which("nvidia-smi") is None:
        assert report.extra["gpu_executed"]["available"] is False


def test_jetson_timing_only_and_bad_options(registry, tmp_path):
    path = tmp_path / "net.onnx"
    onnx.save(conv_net(), str(path))
    tx2 = registry.get("target", "jetson-tx2")
    emu = registry.emulator("jetson")
    x = np.zeros((2, 3, 56, 56), np.float32)
    synthetic = ArrayDataset("synthetic", x, np.zeros(2, np.int64), x, np.zeros(2, np.int64), 10, timing_only=True)
    fp16 = emu.emulate(path, tx2, synthetic, {"use_gpu": False})
    fp32 = emu.emulate(path, tx2, synthetic, {"precision": "fp32", "use_gpu": False})
    maxq = emu.emulate(path, registry.get("target", "jetson-tx2-maxq"), synthetic, {"use_gpu": False})
    assert fp16.accuracy is None and "accuracy" not in fp16.provenance
    assert fp16.latency_ms_p50 < fp32.latency_ms_p50 < maxq.extra["roofline"]["latency_ms"] * 2
    assert maxq.latency_ms_p50 > fp16.latency_ms_p50
    assert emu.emulate(path, tx2, synthetic, {"power_mode": "max-q", "use_gpu": False}).latency_ms_p50 == \
        pytest.approx(maxq.latency_ms_p50)
    assert missing_provenance(fp32) == []
    for bad in ({"power_mode": "ludicrous"}, {"precision": "int4"}, {"batch_sizes": [-1]}):
        with pytest.raises(InvalidValueError):
            emu.emulate(path, tx2, None, bad)


def _bench_models():
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "bench" / "emulation_models.py"
        if candidate.is_file():
            spec = importlib.util.spec_from_file_location("sigdl_bench_emulation_models", candidate)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    return None


@pytest.mark.slow
def test_jetson_predictions_match_the_published_tensorrt_timings():
    """The issue's six TX2 rows (TensorRT 3, batch 1) within ±25 %, with the constants as shipped."""
    from sigdl_target_jetson.emulator import predict_latency_ms

    models = _bench_models()
    if models is None:
        pytest.skip("bench/emulation_models.py is not in this checkout")
    published = {"inception_v1": (7.98, 12.8), "resnet_v1_50": (15.7, 27.1), "inception_v3": (26.3, 46.1)}
    for name, (fp16, fp32) in published.items():
        cost = analyze_model(models.MODELS[name][0]())
        for precision, ms in (("fp16", fp16), ("fp32", fp32)):
            pred = predict_latency_ms(cost, precision)
            assert abs(pred / ms - 1) <= 0.25, (name, precision, pred, ms)


def test_jetson_tensorrt_generation_option_and_fitted_power(registry, tmp_path):
    from sigdl_target_jetson.datasheet import IDLE_W
    from sigdl_target_jetson.emulator import CALIBRATION, CALIBRATION_TRT5, POWER, tx2_power_w

    path = tmp_path / "conv.onnx"
    onnx.save(conv_net(), str(path))
    spec = registry.get("target", "jetson-tx2-maxp")
    emu = registry.emulator("jetson")
    trt3 = emu.emulate(path, spec, None, {"use_gpu": False})
    trt5 = emu.emulate(path, spec, None, {"use_gpu": False, "tensorrt": 5})
    assert trt3.extra["tensorrt"] == 3 and trt5.extra["tensorrt"] == 5
    # TensorRT 5's refitted conv efficiency is higher and its per-call overhead is not counted
    assert CALIBRATION_TRT5["conv_efficiency"] > CALIBRATION["conv_efficiency"]
    assert trt5.latency_ms_p50 < trt3.latency_ms_p50
    assert "TensorRT 5" in trt5.provenance["latency_ms_p50"].detail
    # power = idle + (budget − idle) × fitted fraction × utilisation
    u = trt5.extra["roofline"]["utilisation"]
    assert trt5.power_w == pytest.approx(IDLE_W + (15.0 - IDLE_W) * POWER["active_fraction"] * u)
    assert tx2_power_w("max-p", 1.0) < 15.0
    with pytest.raises(InvalidValueError):
        emu.emulate(path, spec, None, {"tensorrt": 4})


@pytest.mark.slow
def test_jetson_calibration_table_is_reproducible_from_the_shipped_constants():
    """Every evidence row's prediction (latency and power), recomputed from the graphs and the
    shipped constants of its TensorRT generation."""
    from sigdl_target_jetson.emulator import predict_latency_ms, predict_power_w
    from sigdl_target_jetson.evidence import EVIDENCE

    models = _bench_models()
    if models is None:
        pytest.skip("bench/emulation_models.py is not in this checkout")
    by_desc = {desc: key for key, (_build, desc) in models.MODELS.items()}
    assert len(EVIDENCE) == 20 and sum(r.set == "calibration" for r in EVIDENCE) == 8
    costs = {}
    for row in EVIDENCE:
        key = by_desc[row.model]
        if key not in costs:
            costs[key] = analyze_model(models.MODELS[key][0]())
        mode = "max-p" if row.target == "jetson-tx2-maxp" else "max-n"
        prec, trt = row.options["precision"], row.options["tensorrt"]
        pred = (predict_latency_ms(costs[key], prec, mode, 1, trt) if row.quantity == "latency_ms"
                else predict_power_w(costs[key], prec, mode, trt))
        assert pred == pytest.approx(row.predicted, rel=1e-5), row
        assert abs(row.error) <= (0.15 if row.set == "calibration" else 0.25), (row.model, row.error)
