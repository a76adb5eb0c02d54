"""The Movidius emulator: registration, datasheet figures, the latency model against the
published NCS figure, and every reported number with its method."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sigdl_core.emulation import analyze_model, missing_provenance
from sigdl_core.errors import InvalidValueError
from sigdl_core.interfaces import Method
from sigdl_core.plugins import load_plugins

import sigdl_target_movidius.plugin as movidius_plugin
from sigdl_target_movidius.datasheet import movidius_targets
from sigdl_target_movidius.evidence import EVIDENCE
from sigdl_target_movidius.latency import MA2450_CONSTANTS, estimate_movidius_latency, usb_transfer_s


@pytest.fixture(scope="module")
def registry():
    return load_plugins(entry_points=False, extra=[("target_movidius", movidius_plugin)]).registry


def mobilenet_v1(resolution: int = 224, classes: int = 1000) -> onnx.ModelProto:
    """MobileNet v1 1.0 (Howard et al. 2017, Table 1): conv, BN, ReLU after every layer."""
    nodes, inits = [], []
    state = {"x": "input", "c": 3, "n": 0}

    def conv(out: int, k: int, stride: int, group: int = 1) -> None:
        state["n"] += 1
        i = state["n"]
        inits.append(numpy_helper.from_array(np.full((out, state["c"] // group, k, k), 0.01, np.float32), f"w{i}"))
        for p, v in (("s", 1.0), ("b", 0.0), ("m", 0.0), ("v", 1.0)):
            inits.append(numpy_helper.from_array(np.full(out, v, np.float32), f"{p}{i}"))
        nodes.append(helper.make_node("Conv", [state["x"], f"w{i}"], [f"c{i}"], pads=[k // 2] * 4,
                                      strides=[stride] * 2, group=group))
        nodes.append(helper.make_node("BatchNormalization", [f"c{i}", f"s{i}", f"b{i}", f"m{i}", f"v{i}"], [f"n{i}"]))
        nodes.append(helper.make_node("Relu", [f"n{i}"], [f"r{i}"]))
        state["x"], state["c"] = f"r{i}", out

    conv(32, 3, 2)
    for width, stride in [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]:
        conv(state["c"], 3, stride, group=state["c"])
        conv(width, 1, 1)
    nodes.append(helper.make_node("GlobalAveragePool", [state["x"]], ["g"]))
    nodes.append(helper.make_node("Flatten", ["g"], ["f"]))
    inits.append(numpy_helper.from_array(np.zeros((classes, 1024), np.float32), "fc"))
    nodes.append(helper.make_node("Gemm", ["f", "fc"], ["z"], transB=1))
    nodes.append(helper.make_node("Softmax", ["z"], ["logits"], axis=1))
    graph = helper.make_graph(nodes, "mobilenet_v1",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, resolution, resolution])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def test_movidius_target_is_registered_with_datasheet_figures(registry) -> None:
    t = registry.get("target", "movidius-ma2450")
    assert t.cores == 12 and t.clock_hz == 600e6
    assert t.peak_ops == {"fp16": pytest.approx(12 * 600e6 * 8 * 2)}  # 115.2 GFLOP/s, not 1 TFLOPS
    assert t.formats == ("fp16",)
    assert t.memory_bytes == 512 * 2**20  # 4 Gbit LPDDR3
    assert t.tdp_w == pytest.approx(1.0)
    assert registry.get("emulator", "movidius").name == "movidius"
    assert "movidius-ma2450" in load_plugins(allow=["target_movidius"]).registry.names("target")


def test_movidius_plugin_module_imports_nothing_heavy() -> None:
    code = ("import sys, sigdl_target_movidius.plugin as p; p.sigdl_targets(); p.sigdl_emulators(); "
            "heavy = [m for m in ('numpy', 'onnx', 'onnxruntime', 'torch') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_movidius_mobilenet_latency_matches_the_published_ncs_figure(tmp_path: Path, registry) -> None:
    path = tmp_path / "mobilenet.onnx"
    onnx.save(mobilenet_v1(), str(path))
    target = registry.get("target", "movidius-ma2450")
    report = registry.emulator("movidius").emulate(path, target, None, {})
    assert report.fits, report.warnings
    assert report.extra["macs"] == pytest.approx(568.7e6, rel=0.001)  # Howard et al.: 569 M
    published_ms = 38.0  # forum report of MobileNet v1 224 on the NCS, ±30 %
    assert abs(report.latency_ms_p50 - published_ms) / published_ms <= 0.25, report.latency_ms_p50
    for key in ("latency_ms_p50", "latency_ms_p95", "fps_batch1", "fps_best", "peak_memory_bytes",
                "power_w", "energy_mj"):
        assert report.provenance[key].method is Method.ANALYTICAL, key
    assert report.best_batch == 1 and report.fps_best == pytest.approx(report.fps_batch1)
    assert target.idle_w < report.power_w <= target.tdp_w
    assert report.energy_mj == pytest.approx(report.power_w * report.latency_ms_p50)
    # fp16 weights (4.2 M parameters ≈ 8.5 MB) plus activations, far below 512 MB
    assert 8e6 < report.peak_memory_bytes < 20e6
    assert report.extra["fp16_model_bytes"] < 9.5e6
    assert report.accuracy is None and "not measured" in report.provenance["accuracy"].detail
    assert missing_provenance(report) == []


def test_movidius_latency_sanity() -> None:
    target = movidius_targets()[0]
    small = analyze_model(mobilenet_v1(112, 10)).in_format("fp16")
    large = analyze_model(mobilenet_v1(224, 10)).in_format("fp16")
    e_small, _ = estimate_movidius_latency(small, target)
    e_large, machine = estimate_movidius_latency(large, target)
    assert e_small.latency_s < e_large.latency_s < 4 * e_small.latency_s + 1e-3
    # depthwise layers cost more per MAC than pointwise ones, by the ratio of their fitted rates
    dw = [n for n in e_large.nodes if n.op_class == "depthwise"]
    pw = [n for n in e_large.nodes if n.op_class == "conv1x1"]
    macs = {n.name: n.macs for n in large.nodes}
    ratio = (np.mean([n.compute_s / macs[n.name] for n in dw]) / np.mean([n.compute_s / macs[n.name] for n in pw]))
    assert ratio == pytest.approx(MA2450_CONSTANTS["rate_conv1x1"] / MA2450_CONSTANTS["rate_depthwise"], rel=0.01)
    assert not math.isnan(e_large.latency_s) and machine.peak_flops["fp16"] == pytest.approx(115.2e9)


def test_movidius_usb_option_adds_the_modelled_transfer(tmp_path: Path, registry) -> None:
    path = tmp_path / "m.onnx"
    model = mobilenet_v1(64, 10)
    onnx.save(model, str(path))
    target = registry.get("target", "movidius-ma2450")
    emu = registry.emulator("movidius")
    on_device = emu.emulate(path, target, None, {})
    with_usb = emu.emulate(path, target, None, {"usb": True})
    from sigdl_target_movidius.fp16 import fold_for_myriad

    cost = analyze_model(fold_for_myriad(model)).in_format("fp16", from_formats=("fp32",))
    # fp16 input 3×64×64 and 10 outputs over the NCAPI's fitted effective rate
    usb_ms = (2 * 3 * 64 * 64 + 2 * 10) / MA2450_CONSTANTS["usb_bandwidth"] * 1e3
    assert usb_transfer_s(cost) * 1e3 == pytest.approx(usb_ms)
    assert with_usb.latency_ms_p50 - on_device.latency_ms_p50 == pytest.approx(usb_ms, rel=1e-6)
    assert on_device.extra["latency_with_usb_ms"] == pytest.approx(with_usb.latency_ms_p50)
    assert "on-device" in on_device.provenance["latency_ms_p50"].detail
    assert "with the USB transfer" in with_usb.provenance["latency_ms_p50"].detail


def _bench_models():
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "bench" / "emulation_models.py"
        if candidate.is_file():
            spec = importlib.util.spec_from_file_location("sigdl_bench_emulation_models", candidate)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    return None


_KEYS = {"GoogLeNet (BVLC Caffe), 224²": "googlenet_caffe", "Inception v3 (TF-slim), 299²": "inception_v3",
         "Inception-ResNet v2, 299²": "inception_resnet_v2", "MobileNet-SSD (Caffe, VOC), 300²": "mobilenet_ssd",
         "SqueezeNet v1.0 (Caffe), 227²": "squeezenet_v1_0", "DenseNet-121, 224²": "densenet121",
         "MobileNet v1 1.0, 224²": "mobilenet_v1_1p0_224"}


@pytest.mark.slow
def test_movidius_calibration_table_is_reproducible_from_the_shipped_constants() -> None:
    """Every evidence row's prediction, recomputed from the graphs and MA2450_CONSTANTS."""
    models = _bench_models()
    if models is None:
        pytest.skip("bench/emulation_models.py is not in this checkout")
    from sigdl_target_movidius.fp16 import fold_for_myriad

    target = movidius_targets()[0]
    assert {r.model for r in EVIDENCE} == set(_KEYS) and len(EVIDENCE) == 8
    assert sum(r.set == "calibration" for r in EVIDENCE) == 7
    costs = {}
    for row in EVIDENCE:
        key = _KEYS[row.model]
        if key not in costs:
            costs[key] = analyze_model(fold_for_myriad(models.MODELS[key][0]())).in_format("fp16", from_formats=("fp32",))
        est, _ = estimate_movidius_latency(costs[key], target, usb=bool(row.options["usb"]))
        assert est.latency_ms == pytest.approx(row.predicted, rel=1e-5), row.model
        assert abs(row.error) <= (0.15 if row.set == "calibration" else 0.25), (row.model, row.error)


@pytest.mark.parametrize("options", [{"fp16_tolerance": -0.1}, {"max_samples": 0}, {"shaves": 4}])
def test_movidius_bad_options_are_input_errors(tmp_path: Path, registry, options) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(mobilenet_v1(32, 10), str(path))
    with pytest.raises(InvalidValueError):
        registry.emulator("movidius").emulate(path, registry.get("target", "movidius-ma2450"), None, options)
