"""The execution harness really enforces the core and memory limits, and measures."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sigdl_core.emulation.harness import HarnessLimits, host_cpus, run_limited
from sigdl_core.errors import InvalidValueError, ModelFileError

pytest.importorskip("onnxruntime")


def _save(model: onnx.ModelProto, path) -> str:
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


def conv_model(path) -> str:
    """A compute-heavy layer: 3×3 conv, 64→64 channels at 56×56 (0.23 GFLOP)."""
    w = (np.random.default_rng(0).standard_normal((64, 64, 3, 3)) * 0.05).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["logits"], kernel_shape=[3, 3], pads=[1] * 4)],
        "conv", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 64, 56, 56])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w")])
    return _save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


def gemm_model(path, n_in: int, n_out: int, weight: np.ndarray | None = None) -> str:
    w = weight if weight is not None else np.random.default_rng(1).standard_normal((n_out, n_in)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("Gemm", ["input", "w"], ["logits"], transB=1)],
        "gemm", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", n_in])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w.astype(np.float32), "w")])
    return _save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


@pytest.mark.slow
def test_core_limit_is_enforced(tmp_path):
    path = conv_model(tmp_path / "conv.onnx")
    one = run_limited(path, HarnessLimits(cores=1), repeats=8, max_seconds=10)
    assert one.fits and one.error is None
    assert one.affinity == host_cpus()[:1]  # the child itself reports its CPU set
    assert one.threads == 1 and one.cores_used == 1
    # pinned to one CPU, the child cannot do more than one CPU-second per second of work
    assert one.cpu_load is not None and one.cpu_load <= 1.05
    assert one.latency_ms_p50 <= one.latency_ms_p95
    if len(host_cpus()) >= 2:
        two = run_limited(path, HarnessLimits(cores=2), repeats=5, max_seconds=10)
        assert len(two.affinity) == 2 and two.threads == 2


def test_more_cores_than_the_host_is_a_warning(tmp_path):
    path = gemm_model(tmp_path / "g.onnx", 16, 4)
    res = run_limited(path, HarnessLimits(cores=len(host_cpus()) + 3), repeats=5, max_seconds=5)
    assert res.cores_used == len(host_cpus())
    assert any("cores" in w for w in res.warnings)


@pytest.mark.slow
def test_memory_limit_reports_does_not_fit(tmp_path):
    path = gemm_model(tmp_path / "big.onnx", 4096, 4096)  # 64 MiB of weights
    small = run_limited(path, HarnessLimits(cores=1, memory_bytes=8 << 20), repeats=5, max_seconds=5)
    assert small.fits is False
    assert any("does not fit" in w for w in small.warnings)
    assert small.latency_ms_p50 is None
    roomy = run_limited(path, HarnessLimits(cores=1, memory_bytes=1 << 30), repeats=5, max_seconds=5)
    assert roomy.fits is True and roomy.latency_ms_p50 > 0
    # the working set holds the 64 MiB weights (and is far below the limit)
    assert 64 << 20 <= roomy.model_bytes < 1 << 30


def test_accuracy_and_throughput_are_measured(tmp_path):
    path = gemm_model(tmp_path / "eye.onnx", 10, 10, np.eye(10, dtype=np.float32))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 300)
    x = (np.eye(10, dtype=np.float32)[y] + 0.1 * rng.random((300, 10), dtype=np.float32)).astype(np.float32)
    res = run_limited(path, HarnessLimits(cores=1, memory_bytes=256 << 20), x, y,
                      batch_sizes=(1, 4), repeats=10, max_seconds=5)
    assert res.accuracy is not None and res.accuracy.samples == 300
    assert res.accuracy.top1 == 1.0 and res.accuracy.top5 == 1.0
    wrong = run_limited(path, HarnessLimits(cores=1), x, (y + 1) % 10, repeats=5, max_seconds=5)
    assert wrong.accuracy.top1 == 0.0 and 0.0 < wrong.accuracy.top5 <= 1.0
    assert set(res.fps_by_batch) == {1, 4} and all(v > 0 for v in res.fps_by_batch.values())
    assert res.best_batch in (1, 4) and res.runs >= 5


def test_bad_input_is_reported(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 20)
    with pytest.raises(ModelFileError):
        run_limited(bad, HarnessLimits(cores=1), repeats=5)
    with pytest.raises(ModelFileError):
        run_limited(tmp_path / "missing.onnx", HarnessLimits(cores=1))
    with pytest.raises(InvalidValueError):
        HarnessLimits(cores=0)
    with pytest.raises(InvalidValueError):
        run_limited(gemm_model(tmp_path / "g.onnx", 4, 2), HarnessLimits(cores=1), batch_sizes=(0,))


def test_reference_layer_is_timed_in_alternation(tmp_path):
    model = conv_model(tmp_path / "model.onnx")
    ref = conv_model(tmp_path / "reference.onnx")
    res = run_limited(model, HarnessLimits(cores=1), repeats=20, max_seconds=10,
                      reference=ref, reference_shape=(1, 64, 56, 56))
    assert res.reference_ms_p50 > 0
    # the same layer against itself, pair by pair: a ratio near one even on a busy host
    # (the medians of the two series alone can differ far more under contention)
    assert 0.75 < res.model_to_reference < 1.33
