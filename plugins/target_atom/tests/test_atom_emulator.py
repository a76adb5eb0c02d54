"""The Atom target plugin: registration, datasheet, and a full emulation on a small model."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sigdl_core.emulation import missing_provenance
from sigdl_core.emulation.harness import host_cpus
from sigdl_core.errors import InvalidValueError
from sigdl_core.interfaces import ArrayDataset, Method
from sigdl_core.plugins import load_plugins

ATOM_TARGETS = {"atom-x5-e3930", "atom-x5-e3940", "aws-deeplens"}


@pytest.fixture(scope="module")
def registry():
    return load_plugins(allow=["target_atom"]).registry


def centroid_classifier(tmp_path, seed: int = 0):
    """Ten Gaussian classes in 8×8 'images' and the nearest-centroid classifier for them,
    as an ONNX model (Flatten → Gemm → ReLU-free logits) and the data, written by the test."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((10, 64)).astype(np.float32)
    y = rng.integers(0, 10, 400)
    x = (centres[y] + 0.9 * rng.standard_normal((400, 64))).astype(np.float32).reshape(400, 1, 8, 8)
    w = centres
    b = -0.5 * (centres ** 2).sum(1)
    g = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["f"]),
         helper.make_node("Gemm", ["f", "w", "b"], ["logits"], transB=1)],
        "centroids", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b.astype(np.float32), "b")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "centroids.onnx"
    onnx.save(model, str(path))
    logits = x.reshape(400, 64) @ w.T + b
    expected = float((logits.argmax(1) == y).mean())
    data = ArrayDataset("blobs", x[:200], y[:200], x, y, 10)
    return path, data, expected


def test_atom_targets_and_emulator_are_registered(registry):
    assert ATOM_TARGETS <= set(registry.names("target"))
    assert "atom" in registry.names("emulator")
    e3930 = registry.get("target", "atom-x5-e3930")
    assert e3930.emulator == "atom" and e3930.cores == 2 and e3930.tdp_w == 6.5
    # Goldmont: 8 FP32 FLOP per cycle per core (MULPS + ADDPS, 4 lanes each)
    assert e3930.peak_ops["fp32"] == pytest.approx(2 * 8 * 1.3e9)
    e3940 = registry.get("target", "atom-x5-e3940")
    assert e3940.cores == 4 and e3940.clock_hz == 1.6e9 and e3940.tdp_w == 9.5
    assert e3940.peak_ops["fp32"] == pytest.approx(4 * 8 * 1.6e9)
    assert registry.get("target", "aws-deeplens").memory_bytes == 8 << 30
    assert e3930.memory_bandwidth == pytest.approx(19.2e9)
    assert e3930.to_dict()["extra"]["burst_clock_hz"] == 1.8e9


def test_atom_plugin_module_imports_nothing_heavy():
    code = ("import sys, sigdl_target_atom.plugin as p; p.sigdl_targets(); "
            "bad = [m for m in ('numpy', 'onnx', 'onnxruntime', 'torch') if m in sys.modules]; "
            "print(','.join(bad)); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_atom_emulate_fills_every_field_with_provenance(registry, tmp_path):
    path, data, expected = centroid_classifier(tmp_path)
    target = registry.get("target", "atom-x5-e3930")
    emu = registry.emulator("atom")
    report = emu.emulate(path, target, data, {"repeats": 10, "max_seconds": 5})
    assert missing_provenance(report) == []
    for name in ("accuracy", "latency_ms_p50", "latency_ms_p95", "fps_batch1", "fps_best",
                 "best_batch", "peak_memory_bytes", "memory_limit_bytes", "power_w", "energy_mj"):
        assert getattr(report, name) is not None, name
        assert name in report.provenance, name
    assert report.fits is True
    assert report.accuracy.top1 == pytest.approx(expected) and report.accuracy.samples == 400
    assert report.provenance["latency_ms_p50"].method is Method.EXECUTED
    assert report.provenance["power_w"].method is Method.ANALYTICAL
    assert "ESTIMATE" in report.provenance["power_w"].detail
    cal = report.extra["calibration"]
    ex = report.extra["execution"]
    # the reported latency is the measured host latency times the documented factor
    assert report.latency_ms_p50 == pytest.approx(ex["latency_ms_p50"] * cal["factor"])
    assert cal["atom_gflops"] == pytest.approx(8 * 1.3 * 0.70 * 2)
    # Atom time = (model time / reference time, measured in back-to-back pairs) × the
    # reference layer's time at the Atom's 8 FLOP/cycle × 1.3 GHz × 0.70 × 2 cores
    assert cal["host_gflops"] > 0.5 and cal["model_to_reference"] > 0
    assert report.latency_ms_p50 == pytest.approx(
        cal["model_to_reference"] * cal["reference_flops"] / (cal["atom_gflops"] * 1e9) * 1e3)
    assert report.latency_ms_p50 <= report.latency_ms_p95
    assert report.fps_batch1 == pytest.approx(1e3 / report.latency_ms_p50)
    assert report.fps_best >= report.fps_batch1 * 0.999 and report.best_batch in (1, 2, 4, 8)
    assert 1.0 <= report.power_w <= 6.5
    assert report.energy_mj == pytest.approx(report.power_w * report.latency_ms_p50)
    assert report.extra["roofline"]["latency_ms"] > 0 and "ratio" in report.extra["cross_check"]
    assert report.memory_limit_bytes == 8 << 30


@pytest.mark.slow
def test_atom_clock_scaling_and_memory_limit(registry, tmp_path):
    path, data, _ = centroid_classifier(tmp_path)
    target = registry.get("target", "atom-x5-e3930")
    emu = registry.emulator("atom")
    opts = {"host_gflops": 20.0, "batch_sizes": [1], "repeats": 5, "max_seconds": 3}
    base = emu.emulate(path, target, None, opts)
    burst = emu.emulate(path, target, None, {**opts, "clock": "burst"})
    # the factor follows the clock: 20 GFLOP/s per host core used over 8 × f × 0.70 × 2 cores
    n = min(2, len(host_cpus()))
    assert base.extra["calibration"]["factor"] == pytest.approx(20.0 * n / (8 * 1.3 * 0.7 * 2))
    assert base.extra["calibration"]["factor"] / burst.extra["calibration"]["factor"] == pytest.approx(1.8 / 1.3)
    assert base.accuracy is None  # no data: timing only
    tiny = emu.emulate(path, target, None, {**opts, "memory_bytes": 1})
    assert tiny.fits is False and any("does not fit" in w for w in tiny.warnings)
    assert tiny.provenance["latency_ms_p50"].method is Method.ANALYTICAL  # nothing measured
    assert missing_provenance(tiny) == []


def test_atom_bad_options_are_bad_input(registry, tmp_path):
    path, _, _ = centroid_classifier(tmp_path)
    target = registry.get("target", "atom-x5-e3930")
    emu = registry.emulator("atom")
    for bad in ({"clock": "turbo"}, {"memory_bytes": -5}, {"batch_sizes": [0]}, {"repeats": 1},
                {"host_gflops": -1.0}):
        with pytest.raises(InvalidValueError):
            emu.emulate(path, target, None, bad)
