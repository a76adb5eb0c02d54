"""The Atom target plugin: registration, datasheet, and a full emulation on a small model."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sigdl_core.emulation import missing_provenance
from sigdl_core.errors import InvalidValueError
from sigdl_core.interfaces import ArrayDataset, Method
from sigdl_core.plugins import load_plugins
from sigdl_target_atom.calibration import ATOM_CONSTANTS, int8_kernel_fraction, parallel_factor, single_core_ms

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
    # Atom time = (model / reference time on one host core, 10th percentiles of interleaved
    # runs) × the reference layer's time on one Atom core (8 FLOP/cycle × 1.3 GHz × η)
    # + layers × per-layer time, × the Amdahl factor of the target's 2 cores
    c = ATOM_CONSTANTS
    assert cal["model_to_reference"] == pytest.approx(ex["model_to_reference_low"])
    assert cal["atom_reference_ms"] == pytest.approx(cal["reference_flops"] / (8 * 1.3e9 * c["fp32_efficiency"]) * 1e3)
    assert cal["parallel_factor"] == pytest.approx((1 - c["parallel_fraction"]) + c["parallel_fraction"] / 2)
    assert report.latency_ms_p50 == pytest.approx(
        (cal["model_to_reference"] * cal["atom_reference_ms"] + cal["layers"] * c["per_layer_s"] * 1e3)
        * cal["parallel_factor"])
    assert ex["threads"] == 1 and ex["runs"] >= 10
    spread = report.extra["latency_ms_spread"]
    assert spread["runs"] == ex["runs"] and spread["p5"] <= spread["p50"] <= spread["p95"]
    assert spread["estimate"] == pytest.approx(report.latency_ms_p50, rel=1e-6)
    assert 0 < spread["estimate_low"] <= spread["estimate_high"]
    assert report.latency_ms_p95 == pytest.approx(max(report.latency_ms_p50, spread["estimate_high"]))
    evidence = report.extra["evidence"]
    assert all({"model", "published", "predicted", "error", "sets"} <= set(r) for r in evidence)
    assert report.latency_ms_p50 <= report.latency_ms_p95
    assert report.fps_batch1 == pytest.approx(1e3 / report.latency_ms_p50)
    assert report.fps_best >= report.fps_batch1 * 0.999 and report.best_batch in (1, 2, 4, 8)
    # idle + (TDP − idle) × the 2 cores' busy fraction in one request (Amdahl, p = 0.95)
    assert report.power_w == pytest.approx(1.0 + 5.5 / (2 * (0.05 + 0.95 / 2)))
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
    # with the host's speed given, the ratio is the model's uncontended time over the
    # reference's FLOPs at 20 GFLOP/s; the compute part follows the clock, layers do not
    for rep, hz in ((base, 1.3e9), (burst, 1.8e9)):
        cal, ex = rep.extra["calibration"], rep.extra["execution"]
        ratio = ex["latency_ms_low"] / (cal["reference_flops"] / 20e9 * 1e3)
        assert cal["model_to_reference"] == pytest.approx(ratio)
        assert rep.latency_ms_p50 == pytest.approx(
            single_core_ms(ratio, cal["reference_flops"], cal["layers"], "fp32", hz) * parallel_factor(2))
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


def conv_net(tmp_path, seed: int = 0):
    """Two 3×3 convolutions (16→32→32 at 32²), global pooling and a 10-way Gemm."""
    rng = np.random.default_rng(seed)

    def w(*shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.1).astype(np.float32))

    inits = [w(32, 16, 3, 3), w(32), w(32, 32, 3, 3), w(32), w(10, 32), w(10)]
    for t, name in zip(inits, ("w1", "b1", "w2", "b2", "wf", "bf")):
        t.name = name
    g = helper.make_graph(
        [helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1] * 4),
         helper.make_node("Relu", ["c1"], ["r1"]),
         helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], kernel_shape=[3, 3], pads=[1] * 4),
         helper.make_node("Relu", ["c2"], ["r2"]),
         helper.make_node("GlobalAveragePool", ["r2"], ["p"]),
         helper.make_node("Flatten", ["p"], ["f"]),
         helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], transB=1)],
        "convnet", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 16, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / f"convnet{seed}.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.slow
def test_atom_int8_runs_the_int8_model_and_is_faster_than_fp32(registry, tmp_path):
    path = conv_net(tmp_path)
    target = registry.get("target", "atom-x5-e3940")
    emu = registry.emulator("atom")
    opts = {"batch_sizes": [1], "repeats": 20, "max_seconds": 5}
    fp32 = emu.emulate(path, target, None, opts)
    int8 = emu.emulate(path, target, None, {**opts, "precision": "int8"})
    cal8 = int8.extra["calibration"]
    assert cal8["precision"] == "int8" and "quantize_static" in cal8["int8_model"]
    assert "int8" in int8.extra["calibration"]["reference"]
    # scaled by the int8 reference at 32 ops/cycle × η_int8, timed the same way as fp32
    assert cal8["atom_reference_ms"] == pytest.approx(
        cal8["reference_flops"] / (32 * 1.6e9 * ATOM_CONSTANTS["int8_efficiency"]) * 1e3)
    assert int8.latency_ms_p50 < fp32.latency_ms_p50
    assert "executed (int8" in int8.provenance["latency_ms_p50"].detail
    # the int8 kernels' share of the profiled host time scales the ratio (OpenVINO folds the
    # quantize/dequantize glue); QLinearConv is onnxruntime's fused int8 convolution
    assert 0 < cal8["kernel_fraction"] <= 1 and "QLinearConv" in cal8["kernel_us_by_op"]
    assert cal8["kernel_fraction"] == pytest.approx(int8_kernel_fraction(cal8["kernel_us_by_op"]))
    assert cal8["model_to_reference"] == pytest.approx(
        int8.extra["execution"]["model_to_reference_low"] * cal8["kernel_fraction"])
    assert fp32.extra["calibration"]["kernel_fraction"] == 1.0


@pytest.mark.slow
def test_atom_spread_is_reported_and_same_graphs_agree_in_kind(registry, tmp_path):
    """Presence and consistency of the spread (not a timing test): two models with the same
    graph and different weights get estimates whose ranges are reported alike."""
    target = registry.get("target", "atom-x5-e3930")
    emu = registry.emulator("atom")
    reps = [emu.emulate(conv_net(tmp_path, seed), target, None, {"batch_sizes": [1], "repeats": 20})
            for seed in (0, 1)]
    for rep in reps:
        s = rep.extra["latency_ms_spread"]
        assert set(s) >= {"p5", "p50", "p95", "runs", "estimate", "estimate_low", "estimate_high", "host_load"}
        assert s["runs"] >= 20 and s["estimate_low"] <= s["estimate_high"]
    # the same graph: the same layer count and reference, so only the measured ratio differs
    a, b = (r.extra["calibration"] for r in reps)
    assert a["layers"] == b["layers"] and a["reference_flops"] == b["reference_flops"]


def test_atom_calibration_table_is_reproducible_from_the_shipped_constants():
    """Every E3940 row's prediction follows from the host ratios the benchmark measured
    (``MEASURED``; timing-based, owned by the benchmark) and the shipped constants."""
    from sigdl_target_atom.calibration import EVIDENCE, MEASURED, PUBLISHED, predict_row

    assert len(EVIDENCE) == len(PUBLISHED) == 10
    desc = {d: k for k, d, *_ in PUBLISHED}
    for row in EVIDENCE:
        prec = row.options["precision"]
        assert (desc[row.model], prec) in MEASURED
        assert predict_row(desc[row.model], row.quantity, prec) == pytest.approx(row.predicted, rel=1e-5), row
        assert row.method == "executed" and row.sets
    # the E3930 and DeepLens are derived from the E3940's constants, not calibrated themselves
    assert {r.target for r in EVIDENCE} == {"atom-x5-e3940"}


def test_atom_evidence_is_listed_by_sigdl_emulators(sigdl_cli):
    import json

    from sigdl_target_atom import plugin

    result = sigdl_cli(["emulators", "--json"], plugins=[plugin])
    assert result.exit_code == 0, result.stdout
    atom = next(e for e in json.loads(result.stdout) if e["name"] == "atom")
    assert len(atom["calibration"]) == 10
    assert all({"published", "predicted", "error", "sets", "source"} <= set(r) for r in atom["calibration"])
    assert any(o["name"] == "precision" for o in atom["options"])


def test_int8_kernel_fraction_leaves_out_the_glue_openvino_folds():
    assert int8_kernel_fraction({}) == 1.0
    assert int8_kernel_fraction({"QLinearConv": 60.0, "QuantizeLinear": 10.0, "QLinearConcat": 20.0,
                                 "BatchNormalization": 10.0}) == pytest.approx(0.6)


@pytest.mark.slow
def test_sigdl_test_takes_the_int8_option_on_the_command_line(sigdl_cli, tmp_path):
    import json

    from sigdl_target_atom import plugin

    path = conv_net(tmp_path)
    result = sigdl_cli(["test", str(path), "--target", "atom-x5-e3940:precision=int8", "--json"], plugins=[plugin])
    assert result.exit_code == 0, result.stdout
    rep = json.loads(result.stdout)["targets"]["atom-x5-e3940"]
    assert rep["extra"]["calibration"]["precision"] == "int8" and rep["latency_ms_p50"] > 0
    assert rep["extra"]["evidence"] and "latency_ms_spread" in rep["extra"]
    bad = sigdl_cli(["test", str(path), "--target", "atom-x5-e3940:precision=int4"], plugins=[plugin])
    assert bad.exit_code == 2 and "fp32, int8" in bad.stdout + (bad.stderr or "")
