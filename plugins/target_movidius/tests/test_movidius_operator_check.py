"""The MA2450 operator check: every offending node named with its reason, never a crash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from sigdl_core.emulation import missing_provenance
from sigdl_core.interfaces import EmulationReport, Method
from sigdl_core.plugins import load_plugins

import sigdl_target_movidius.plugin as movidius_plugin
from sigdl_target_movidius.operator_check import check_movidius_support


def _w(name: str, shape, rng) -> onnx.TensorProto:
    return numpy_helper.from_array(rng.normal(0, 0.1, shape).astype(np.float32), name)


def _model(nodes, inits, in_shape=("N", 4, 16, 16), out_shape=("N", 10), extra_inputs=()) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(in_shape)), *extra_inputs]
    graph = helper.make_graph(nodes, "m", inputs,
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, list(out_shape))], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def _bad_model() -> onnx.ModelProto:
    """Seven rule breakers among supported layers."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["input", "w_ok"], ["c0"], pads=[1, 1, 1, 1], name="conv_ok"),
        helper.make_node("Relu", ["c0"], ["r0"], name="relu_ok"),
        helper.make_node("Conv", ["r0", "w_dil"], ["c1"], pads=[2, 2, 2, 2], dilations=[2, 2], name="conv_dilated"),
        helper.make_node("Erf", ["c1"], ["e1"], name="gelu_erf"),
        helper.make_node("Clip", ["e1", "lo", "hi"], ["k1"], name="clip_pm1"),
        helper.make_node("Conv", ["k1", "w_dw2"], ["c2"], pads=[1, 1, 1, 1], group=8, name="depthwise_x2"),
        helper.make_node("Conv", ["c2", "w_big"], ["c3"], pads=[6, 6, 6, 6], name="conv_13x13"),
        helper.make_node("Concat", ["c3", "c3"], ["cat"], axis=2, name="concat_h"),
        helper.make_node("GlobalAveragePool", ["cat"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Reshape", ["f", "seq_shape"], ["seq"], name="to_sequence"),
        helper.make_node("LSTM", ["seq", "lstm_w", "lstm_r"], ["h"], hidden_size=10, name="lstm"),
        helper.make_node("Reshape", ["h", "out_shape"], ["logits"], name="to_logits"),
    ]
    inits = [
        _w("w_ok", (8, 4, 3, 3), rng), _w("w_dil", (8, 8, 3, 3), rng), _w("w_dw2", (16, 1, 3, 3), rng),
        _w("w_big", (8, 16, 13, 13), rng),
        numpy_helper.from_array(np.array(-1.0, np.float32), "lo"),
        numpy_helper.from_array(np.array(1.0, np.float32), "hi"),
        numpy_helper.from_array(np.array([1, 1, 8], np.int64), "seq_shape"),
        _w("lstm_w", (1, 40, 8), rng), _w("lstm_r", (1, 40, 10), rng),
        numpy_helper.from_array(np.array([1, 10], np.int64), "out_shape"),
    ]
    return _model(nodes, inits)


OFFENDERS = {
    "conv_dilated": "dilat",
    "gelu_erf": "Erf",
    "clip_pm1": "neither ReLU nor ReLU6",
    "depthwise_x2": "multiplier 2",
    "conv_13x13": "13×13",
    "concat_h": "axis 2",
    "lstm": "LSTM",
}


def test_movidius_check_names_every_offending_node_and_why() -> None:
    report = check_movidius_support(_bad_model())
    assert not report.ok
    by_node = {}
    for u in report.unsupported:
        by_node.setdefault(u.node, []).append(u.reason)
    assert set(by_node) == set(OFFENDERS), by_node
    for node, needle in OFFENDERS.items():
        assert any(needle in r for r in by_node[node]), (node, by_node[node])
    # the supported layers around them are not blamed
    assert not {"conv_ok", "relu_ok", "gap", "flatten", "to_sequence"} & set(by_node)


def test_movidius_check_rejects_a_dynamic_resolution_and_fixes_the_batch() -> None:
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("GlobalAveragePool", ["c"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["logits"], name="flat")]
    dynamic = check_movidius_support(_model(nodes, [_w("w", (10, 3, 3, 3), rng)], in_shape=("N", 3, "H", "W")))
    assert [(u.node, u.op_type) for u in dynamic.unsupported] == [("input", "input")]
    assert "H, W" in dynamic.unsupported[0].reason and "fixed" in dynamic.unsupported[0].reason
    fixed = check_movidius_support(_model(nodes, [_w("w", (10, 3, 3, 3), rng)], in_shape=("N", 3, 32, 32)))
    assert fixed.ok and fixed.input_shape == (1, 3, 32, 32)
    assert any("fixed to 1" in n for n in fixed.notes)


def test_movidius_check_accepts_a_mobilenet_block_and_folds_shape_arithmetic() -> None:
    rng = np.random.default_rng(2)
    nodes = [
        helper.make_node("Conv", ["input", "w1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv1"),
        helper.make_node("BatchNormalization", ["c1", "s", "b", "m", "v"], ["n1"], name="bn1"),
        helper.make_node("Clip", ["n1", "zero", "six"], ["r1"], name="relu6"),
        helper.make_node("Conv", ["r1", "wd"], ["c2"], pads=[1, 1, 1, 1], group=8, name="dw"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu"),
        helper.make_node("Conv", ["r2", "wp"], ["c3"], name="pw"),
        helper.make_node("Add", ["c3", "c3"], ["a"], name="residual"),
        helper.make_node("GlobalAveragePool", ["a"], ["g"], name="gap"),
        helper.make_node("Shape", ["g"], ["shape"], name="shape"),
        helper.make_node("Gather", ["shape", "zero_idx"], ["batch"], axis=0, name="batch_dim"),
        helper.make_node("Unsqueeze", ["batch", "axes0"], ["batch1"], name="unsq"),
        helper.make_node("Concat", ["batch1", "minus1"], ["flat_shape"], axis=0, name="shape_concat"),
        helper.make_node("Reshape", ["g", "flat_shape"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["z"], transB=1, name="fc"),
        helper.make_node("Softmax", ["z"], ["logits"], axis=1, name="softmax"),
    ]
    inits = [_w("w1", (8, 4, 3, 3), rng), _w("wd", (8, 1, 3, 3), rng), _w("wp", (16, 8, 1, 1), rng),
             _w("fc", (10, 16), rng), _w("fcb", (10,), rng)]
    inits += [numpy_helper.from_array(a, n) for n, a in (
        ("s", np.ones(8, np.float32)), ("b", np.zeros(8, np.float32)), ("m", np.zeros(8, np.float32)),
        ("v", np.ones(8, np.float32)), ("zero", np.array(0, np.float32)), ("six", np.array(6, np.float32)),
        ("zero_idx", np.array(0, np.int64)), ("axes0", np.array([0], np.int64)),
        ("minus1", np.array([-1], np.int64)))]
    report = check_movidius_support(_model(nodes, inits))
    assert report.ok, [u.one_line() for u in report.unsupported]
    assert {"shape", "batch_dim", "unsq", "shape_concat"} <= set(report.folded)


def test_movidius_emulator_reports_instead_of_raising(tmp_path: Path) -> None:
    path = tmp_path / "bad.onnx"
    onnx.save(_bad_model(), str(path))
    registry = load_plugins(entry_points=False, extra=[("target_movidius", movidius_plugin)]).registry
    target = registry.get("target", "movidius-ma2450")
    report = registry.emulator(target.emulator).emulate(path, target, None, {})
    assert isinstance(report, EmulationReport)
    assert report.fits is False
    assert {u["node"] for u in report.extra["unsupported"]} == set(OFFENDERS)
    assert all(set(u) == {"node", "op_type", "reason"} for u in report.extra["unsupported"])
    for node in OFFENDERS:
        assert any(node in w for w in report.warnings), node
    assert report.latency_ms_p50 is None
    assert missing_provenance(report) == []
    assert report.provenance["latency_ms_p50"].method is Method.ANALYTICAL


def test_movidius_cli_test_shows_every_offending_node(tmp_path: Path) -> None:
    """``sigdl test --target movidius-ma2450`` prints the offending nodes (installed plugin)."""
    path = tmp_path / "bad.onnx"
    onnx.save(_bad_model(), str(path))
    code = "from sigdl_core.cli import main; main()"
    env_cmd = [sys.executable, "-c", code, "test", "--target", "movidius-ma2450", str(path)]
    done = subprocess.run(env_cmd, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "SIGDL_PLUGINS": "target_movidius", "COLUMNS": "200"})
    out = done.stdout + done.stderr
    assert "Traceback" not in out, out
    for node in OFFENDERS:
        assert node in out, (node, out)
