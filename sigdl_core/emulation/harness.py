"""The execution harness: run an ONNX model with onnxruntime in a child process that is
limited to a target's cores and memory, and measure latency, throughput, memory and accuracy.

Why a child process: limits set with ``sched_setaffinity`` and ``setrlimit`` hold for a
whole process, and an address-space limit that a model exceeds must kill or fail that
process, not the caller. The child is a small script (``harness_child.py``) run with the
same Python, so its memory baseline is the interpreter, NumPy and onnxruntime only.
onnxruntime is imported there, never here: it is a dependency of the target plugins that
use this harness, not of ``sigdl-core``.

**Cores.** The child pins itself to ``min(target cores, host cores)`` of the CPUs this
process may use (``os.sched_setaffinity``) and gives onnxruntime as many intra-op threads
(one inter-op thread, sequential execution, no spinning so CPU time measures work). The
child reports the affinity it really had; a target with more cores than the host gets a
warning, and the emulator must scale for the missing cores.

**Memory.** ``RLIMIT_AS`` (the address-space limit) is set in the child to

    baseline VmSize + allowance + target memory

where the *baseline* is measured in the child after onnxruntime is imported and a
one-node session with the same thread settings has run (the runtime's own footprint,
which on the board is part of the OS image, not of the model's budget), and the
*allowance* covers the address space a real session reserves without using it: one
8 MiB stack per extra thread and 64 MiB of slack for lazily mapped kernels. glibc's
per-thread malloc arenas, which reserve 64 MiB of address space each, are turned off
(``MALLOC_ARENA_MAX=1``) so that reservations do not pass for use, and freed buffers stay
in the heap (``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` at 1 GiB) so that runs
reuse memory instead of paying page faults that depend on what ran before. An allocation that the
limit refuses makes the run fail; the harness reports that as **does not fit**
(``fits=False`` and a warning), never as a crash. As a second check, the measured peak
resident set above the baseline must not exceed the target memory either.

**Latency and throughput.** For each batch size: warm-up runs, then repeated timed runs
(``time.perf_counter`` around ``InferenceSession.run``) with random inputs, within a time
budget; p50/p95 at the first batch size (1 by default), throughput ``batch / p50`` at each.

**Utilisation** is the CPU time of the process's threads (``time.process_time``) during
the model's timed runs over their wall time × cores: the busy fraction of the cores.

**A reference layer** (optional) runs in the same child in alternation with the model at
the first batch size (ABBA order); ``model_to_reference`` is the median ratio of
back-to-back pairs, and ``model_to_reference_low`` the ratio of the two time series' low
quantiles (``low_quantile``, 10 % by default): contention from other jobs only ever adds
time, so the low quantile of many runs is the uncontended time, and on a busy 2-core host
it moved by ±5 % between runs where the pair median moved by −17/+31 % (single-threaded,
load 1.0-1.4). ``model_to_reference_subsets`` is the low ratio of the four consecutive
quarters of the pairs: the statistic's own spread. ``threads`` below the pinned CPUs lets
the scheduler move a single-threaded run to a free CPU, and ``timer="thread"`` times it by
the thread's CPU time, which other processes' time slices do not inflate (at load 11 on
two cores, wall-clock low quantiles still moved by 2-3×); ``min_seconds`` gives fast
models hundreds of runs; ``host_load`` records the 1-minute load average before and after.

**Peak memory** is the child's resident high-water mark while the model runs (reset
after loading, so that the parser's transient copies of the weights do not count; the
loading peak is reported apart), read before any test data is loaded: the runtime, the
weights and the activations. ``model_bytes`` is that minus the baseline resident set.

**Accuracy** (top-1, top-5) is computed in the child on the test split, read from a raw
file in chunks of 32 so that the data does not count against the memory limit.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidValueError, ModelFileError, UnsupportedModelError
from ..interfaces import Accuracy

__all__ = ["HarnessLimits", "HarnessResult", "host_cpus", "low_ratio", "run_limited", "CHILD_SCRIPT"]

#: The script the child runs.
CHILD_SCRIPT = Path(__file__).with_name("harness_child.py")

#: Address space a session reserves beyond what it uses: a stack per extra thread …
THREAD_STACK_BYTES = 8 << 20
#: … and slack for code pages and small reservations mapped on first use.
SLACK_BYTES = 64 << 20


def host_cpus() -> list[int]:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


@dataclass(frozen=True)
class HarnessLimits:
    """What the child may use: ``cores`` CPUs and ``memory_bytes`` of memory (None: no
    limit) beyond the runtime's own baseline."""

    cores: int
    memory_bytes: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.cores, int) or self.cores < 1:
            raise InvalidValueError(f"cores={self.cores!r} must be a whole number >= 1")
        if self.memory_bytes is not None and self.memory_bytes < 1:
            raise InvalidValueError(f"memory_bytes={self.memory_bytes!r} must be >= 1")


@dataclass
class HarnessResult:
    """What the child measured. Times are seconds unless the name says otherwise.

    ``cpu_utilisation`` is CPU time over wall time × cores used, in [0, 1], at the first
    batch size; ``cpu_load`` is the same without dividing by the cores (CPU seconds per
    second: at most the number of cores the child was allowed).
    """

    fits: bool
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    latency_ms_mean: float | None = None
    runs: int = 0
    reference_ms_p50: float | None = None
    model_to_reference: float | None = None
    low_quantile: float = 0.1
    latency_ms_low: float | None = None
    reference_ms_low: float | None = None
    model_to_reference_low: float | None = None
    model_to_reference_subsets: list[float] = field(default_factory=list)
    host_load: tuple[float, float] | None = None
    latencies_ms: list[float] = field(default_factory=list)
    kernel_us_by_op: dict[str, float] = field(default_factory=dict)
    fps_by_batch: dict[int, float] = field(default_factory=dict)
    latency_ms_by_batch: dict[int, float] = field(default_factory=dict)
    peak_rss_bytes: int | None = None
    load_peak_rss_bytes: int | None = None
    baseline_rss_bytes: int | None = None
    model_bytes: int | None = None
    accuracy: Accuracy | None = None
    cpu_utilisation: float | None = None
    cpu_load: float | None = None
    affinity: list[int] = field(default_factory=list)
    threads: int = 0
    cores_used: int = 0
    address_space_limit_bytes: int | None = None
    cpu_model: str = ""
    onnxruntime: str = ""
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    wall_s: float = 0.0
    #: The model whose timing this result reuses (an identical graph, see timing_reuse), or None.
    timing_reused: str | None = None

    @property
    def best_batch(self) -> int | None:
        if not self.fps_by_batch:
            return None
        return max(self.fps_by_batch, key=lambda b: (self.fps_by_batch[b], -b))

    @property
    def fps_best(self) -> float | None:
        b = self.best_batch
        return None if b is None else self.fps_by_batch[b]

    def to_dict(self) -> dict[str, Any]:
        return {
            "fits": self.fits,
            "latency_ms_p50": self.latency_ms_p50,
            "latency_ms_p95": self.latency_ms_p95,
            "latency_ms_mean": self.latency_ms_mean,
            "runs": self.runs,
            "reference_ms_p50": self.reference_ms_p50,
            "model_to_reference": self.model_to_reference,
            "low_quantile": self.low_quantile,
            "latency_ms_low": self.latency_ms_low,
            "reference_ms_low": self.reference_ms_low,
            "model_to_reference_low": self.model_to_reference_low,
            "model_to_reference_subsets": list(self.model_to_reference_subsets),
            "host_load": list(self.host_load) if self.host_load else None,
            "kernel_us_by_op": dict(self.kernel_us_by_op),
            "fps_by_batch": {str(k): v for k, v in self.fps_by_batch.items()},
            "latency_ms_by_batch": {str(k): v for k, v in self.latency_ms_by_batch.items()},
            "peak_rss_bytes": self.peak_rss_bytes,
            "load_peak_rss_bytes": self.load_peak_rss_bytes,
            "baseline_rss_bytes": self.baseline_rss_bytes,
            "model_bytes": self.model_bytes,
            "accuracy": self.accuracy.to_dict() if self.accuracy else None,
            "cpu_utilisation": self.cpu_utilisation,
            "cpu_load": self.cpu_load,
            "affinity": self.affinity,
            "threads": self.threads,
            "cores_used": self.cores_used,
            "address_space_limit_bytes": self.address_space_limit_bytes,
            "cpu_model": self.cpu_model,
            "onnxruntime": self.onnxruntime,
            "warnings": list(self.warnings),
            "error": self.error,
            "wall_s": self.wall_s,
            "timing_reused": self.timing_reused,
        }


def _tiny_model(path: Path) -> None:
    """A one-node Identity model, run once in the child to start the runtime."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, os.fspath(path))


def _sample_shape(onnx_path: Path, x_test: np.ndarray | None,
                  input_shape: Sequence[int] | None) -> list[int]:
    if input_shape is not None:
        return [int(d) for d in input_shape]
    if x_test is not None:
        return [int(d) for d in x_test.shape[1:]]
    from .cost import load_onnx

    model = load_onnx(onnx_path)  # ModelFileError for a corrupt file
    inits = {t.name for t in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims = inp.type.tensor_type.shape.dim[1:]
        if all(d.HasField("dim_value") and d.dim_value > 0 for d in dims):
            return [int(d.dim_value) for d in dims]
        raise UnsupportedModelError(
            f"the model's input '{inp.name}' has symbolic sizes besides the batch axis",
            "give the input shape (--dataset synthetic:1x3x224x224)",
        )
    raise UnsupportedModelError("the model has no graph input", "export a model with an input")


def run_limited(
    onnx_path: os.PathLike[str] | str,
    limits: HarnessLimits,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    *,
    batch_sizes: Sequence[int] = (1,),
    repeats: int = 30,
    warmup: int = 3,
    max_seconds: float = 30.0,
    input_shape: Sequence[int] | None = None,
    timeout_s: float = 600.0,
    max_accuracy_samples: int | None = None,
    provider: str = "CPUExecutionProvider",
    reference: os.PathLike[str] | str | None = None,
    reference_shape: Sequence[int] | None = None,
    threads: int | None = None,
    min_seconds: float = 0.0,
    max_repeats: int | None = None,
    low_quantile: float = 0.1,
    timer: str = "wall",
    profile_runs: int = 0,
) -> HarnessResult:
    """Runs ``onnx_path`` in a child process under ``limits`` and measures it.

    :param onnx_path: the ONNX model (one float input, batch axis first).
    :param limits: cores and memory the child may use.
    :param x_test: test inputs (N×…, float32) for accuracy; None for timing only.
    :param y_test: their labels (int64); needed with ``x_test``.
    :param batch_sizes: batch sizes to time; the first one gives p50/p95.
    :param repeats: timed runs per batch size (fewer if ``max_seconds`` runs out; at least 5).
    :param warmup: untimed runs before timing, per batch size.
    :param max_seconds: time budget for all timed runs in the child.
    :param input_shape: one sample's shape, where the model's input has symbolic sizes.
    :param timeout_s: the child is killed after this many seconds (reported, not raised).
    :param max_accuracy_samples: evaluate on at most this many test samples.
    :param provider: the onnxruntime execution provider (``CUDAExecutionProvider`` runs on
        a GPU; the address-space limit is then not set, since CUDA reserves far more
        address space than it uses).
    :param reference: an ONNX model timed in alternation with ``onnx_path`` at the first
        batch size, in the same process on the same cores (a calibration layer whose
        speed ratio to the model must not suffer from contention that comes and goes);
        its activations (a few MB) count in the peak memory.
    :param reference_shape: the reference model's full input shape.
    :param threads: onnxruntime intra-op threads (default: one per CPU the child is pinned
        to). Fewer threads than CPUs leave the scheduler a free CPU to run on when another
        job holds one: the single-threaded timing the Atom emulator uses.
    :param min_seconds: at the first batch size, keep timing past ``repeats`` until this
        much time has passed (at most ``max_repeats`` runs), so that a fast model gets
        enough runs for its low quantile to be well determined.
    :param max_repeats: the most timed runs at the first batch size (default ``repeats``).
    :param low_quantile: the quantile of the *low* statistics (``latency_ms_low``,
        ``reference_ms_low``, ``model_to_reference_low``): contention from other jobs only
        ever adds time, so a low quantile of many runs is the host's uncontended time.
    :param timer: ``wall`` (``time.perf_counter``) or ``thread``: the CPU time of the thread
        that runs the model (``time.thread_time``; needs ``threads=1``, where onnxruntime
        computes in the calling thread). Time slices other processes take do not count in
        it, so on a host with more runnable jobs than cores it stays what an idle core takes;
        their cache and memory traffic still does.
    :param profile_runs: after timing, run the model this many more times at batch 1 under
        onnxruntime's profiler and return its kernel time per operator type
        (``kernel_us_by_op``: each node's shortest time over the runs, in µs, summed per
        type): where the time goes.
    :return: a :class:`HarnessResult`; ``fits`` is False when the memory limit was hit.

    Raises :class:`~sigdl_core.errors.ModelFileError` when onnxruntime cannot load the
    file for a reason other than memory, and ``InvalidValueError`` for bad arguments.
    """
    path = Path(onnx_path)
    try:
        return _run_limited(path, limits, x_test, y_test, batch_sizes=batch_sizes, repeats=repeats,
                            warmup=warmup, max_seconds=max_seconds, input_shape=input_shape,
                            timeout_s=timeout_s, max_accuracy_samples=max_accuracy_samples,
                            provider=provider, reference=reference, reference_shape=reference_shape,
                            threads=threads, min_seconds=min_seconds, max_repeats=max_repeats,
                            low_quantile=low_quantile, timer=timer, profile_runs=profile_runs)
    except ModelFileError as exc:
        # A model written by a newer onnx than this onnxruntime reads: same graph, older
        # IR version number. Rewrite a copy with the highest IR version it supports.
        m = re.search(r"Unsupported model IR version: (\d+), max supported IR version: (\d+)", str(exc))
        if not m:
            raise
        import onnx

        model = onnx.load(os.fspath(path))
        model.ir_version = int(m.group(2))
        with tempfile.TemporaryDirectory(prefix="sigdl-ir-") as tmp:
            copy = Path(tmp) / path.name
            onnx.save(model, os.fspath(copy))
            del model
            res = _run_limited(copy, limits, x_test, y_test, batch_sizes=batch_sizes,
                               repeats=repeats, warmup=warmup, max_seconds=max_seconds,
                               input_shape=input_shape, timeout_s=timeout_s,
                               max_accuracy_samples=max_accuracy_samples, provider=provider,
                               reference=reference, reference_shape=reference_shape,
                               threads=threads, min_seconds=min_seconds, max_repeats=max_repeats,
                               low_quantile=low_quantile, timer=timer, profile_runs=profile_runs)
        res.warnings.append(f"the model's IR version {m.group(1)} was lowered to {m.group(2)} "
                            "for this onnxruntime")
        return res


def _run_limited(
    path: Path,
    limits: HarnessLimits,
    x_test: np.ndarray | None,
    y_test: np.ndarray | None,
    *,
    batch_sizes: Sequence[int],
    repeats: int,
    warmup: int,
    max_seconds: float,
    input_shape: Sequence[int] | None,
    timeout_s: float,
    max_accuracy_samples: int | None,
    provider: str = "CPUExecutionProvider",
    reference: os.PathLike[str] | str | None = None,
    reference_shape: Sequence[int] | None = None,
    threads: int | None = None,
    min_seconds: float = 0.0,
    max_repeats: int | None = None,
    low_quantile: float = 0.1,
    timer: str = "wall",
    profile_runs: int = 0,
) -> HarnessResult:
    if not path.is_file():
        raise ModelFileError(f"ONNX model '{path}' does not exist", "check the path")
    if not batch_sizes or any(int(b) < 1 for b in batch_sizes):
        raise InvalidValueError(f"batch_sizes={list(batch_sizes)!r} must be whole numbers >= 1")
    if repeats < 1 or warmup < 0:
        raise InvalidValueError("repeats must be >= 1 and warmup >= 0")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise InvalidValueError(f"threads={threads!r} must be a whole number >= 1")
    if timer not in ("wall", "thread") or (timer == "thread" and threads != 1):
        raise InvalidValueError(f"timer={timer!r} must be 'wall', or 'thread' with threads=1")
    if not 0.0 < low_quantile < 0.5:
        raise InvalidValueError(f"low_quantile={low_quantile!r} must lie in (0, 0.5)")
    if x_test is not None and (y_test is None or len(y_test) != len(x_test)):
        raise InvalidValueError("y_test must be given with x_test, one label per sample")

    available = host_cpus()
    n = min(limits.cores, len(available))
    cpus = available[:n]
    warnings: list[str] = []
    if limits.cores > len(available):
        warnings.append(
            f"the target has {limits.cores} cores but this host lets us use {len(available)}: "
            f"measured on {n} cores"
        )
    sample_shape = _sample_shape(path, x_test, input_shape)
    # inside timing_reuse(): a graph timed before under the same arguments is not timed again
    from . import timing_reuse as reuse

    key = reuse.reuse_key(path, reference, {
        "limits": [limits.cores, limits.memory_bytes], "cpus": cpus, "sample_shape": sample_shape,
        "batch_sizes": [int(b) for b in batch_sizes], "repeats": repeats, "warmup": warmup,
        "max_seconds": max_seconds, "timeout_s": timeout_s, "provider": provider,
        "reference_shape": list(reference_shape) if reference_shape is not None else None,
        "threads": threads, "min_seconds": min_seconds, "max_repeats": max_repeats,
        "low_quantile": low_quantile, "timer": timer, "profile_runs": profile_runs})
    hit = reuse.lookup(key)
    if hit is not None:
        res, first = hit
        res.accuracy = None
        if x_test is not None:
            xs, ys = x_test, y_test
            if max_accuracy_samples is not None:
                xs, ys = xs[:max_accuracy_samples], ys[:max_accuracy_samples]
            xs = np.asarray(xs, dtype=np.float32).reshape((len(xs), *sample_shape))  # as the child reads it
            res.accuracy = reuse.accuracy_in_process(path, xs, ys, min(n, threads) if threads else n, provider)
        res.timing_reused = first
        res.warnings.append(f"timing, memory and profile reused from {first}, an identical graph (same "
                            "operators, shapes and dtypes; only weight values differ) executed earlier in "
                            "this run; accuracy executed for this model")
        return res

    with tempfile.TemporaryDirectory(prefix="sigdl-harness-") as tmp:
        tmpd = Path(tmp)
        tiny = tmpd / "tiny.onnx"
        _tiny_model(tiny)
        request: dict[str, Any] = {
            "model": os.fspath(path.resolve()),
            "tiny_model": os.fspath(tiny),
            "cpus": cpus,
            "threads": min(n, threads) if threads is not None else n,
            "min_seconds": float(min_seconds),
            "timer": timer,
            "profile_runs": int(profile_runs),
            "profile_dir": os.fspath(tmpd),
            "max_repeats": int(max_repeats if max_repeats is not None else repeats),
            "sample_shape": sample_shape,
            "batch_sizes": [int(b) for b in batch_sizes],
            "repeats": int(repeats),
            "warmup": int(warmup),
            "max_seconds": float(max_seconds),
            "memory_bytes": limits.memory_bytes if provider == "CPUExecutionProvider" else None,
            "provider": provider,
            "reference": os.fspath(Path(reference).resolve()) if reference is not None else None,
            "reference_shape": [int(d) for d in reference_shape] if reference_shape is not None else None,
            "allowance_bytes": n * THREAD_STACK_BYTES + SLACK_BYTES,
        }
        if x_test is not None:
            xs, ys = x_test, y_test
            if max_accuracy_samples is not None:
                xs, ys = xs[:max_accuracy_samples], ys[:max_accuracy_samples]
            np.ascontiguousarray(xs, dtype=np.float32).tofile(tmpd / "x.bin")
            np.ascontiguousarray(ys, dtype=np.int64).tofile(tmpd / "y.bin")
            request["data"] = {"x": os.fspath(tmpd / "x.bin"), "y": os.fspath(tmpd / "y.bin"),
                               "n": int(len(ys))}
        req_path, res_path = tmpd / "request.json", tmpd / "result.json"
        req_path.write_text(json.dumps(request))
        env = dict(os.environ)
        env["MALLOC_ARENA_MAX"] = "1"
        # Keep freed buffers in the heap instead of unmapping them: every run then reuses
        # memory as a runtime with preallocated buffers does, rather than paying page
        # faults that depend on what ran just before.
        env["MALLOC_MMAP_THRESHOLD_"] = str(1 << 30)
        env["MALLOC_TRIM_THRESHOLD_"] = str(1 << 30)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(n)
        load_before = _load()
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                [sys.executable, os.fspath(CHILD_SCRIPT), os.fspath(req_path), os.fspath(res_path)],
                env=env, capture_output=True, text=True, timeout=timeout_s,
            )
            rc, stderr = proc.returncode, proc.stderr
        except subprocess.TimeoutExpired as exc:
            rc, stderr = None, (exc.stderr or b"").decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        wall = time.perf_counter() - t0
        child: dict[str, Any] = {}
        if res_path.exists():
            try:
                child = json.loads(res_path.read_text())
            except json.JSONDecodeError:
                child = {}
    res = _interpret(child, rc, stderr, limits, n, warnings, wall, timeout_s, batch_sizes,
                     low_quantile)
    res.host_load = (load_before, _load())
    reuse.remember(key, res, path)
    return res


def _load() -> float:
    """The host's 1-minute load average (what else ran while we measured)."""
    try:
        return float(os.getloadavg()[0])
    except OSError:  # not available on this platform
        return float("nan")


def low_ratio(model_s: Sequence[float], reference_s: Sequence[float], q: float) -> float:
    """``quantile_q(model) / quantile_q(reference)``: the ratio of the uncontended times.

    Contention from other jobs only adds time to a run, so the low quantile of many runs is
    what each would take on an idle host, and the ratio of two of them, taken from the same
    interleaved sequence, is the model's time in units of the reference's.
    """
    return float(np.quantile(np.asarray(model_s), q) / np.quantile(np.asarray(reference_s), q))


def _interpret(
    child: dict[str, Any], rc: int | None, stderr: str, limits: HarnessLimits, n: int,
    warnings: list[str], wall: float, timeout_s: float, batch_sizes: Sequence[int],
    low_quantile: float = 0.1,
) -> HarnessResult:
    res = HarnessResult(fits=True, warnings=warnings, wall_s=wall, low_quantile=low_quantile)
    res.affinity = [int(c) for c in child.get("affinity", [])]
    res.threads = int(child.get("threads", n))
    res.cores_used = len(res.affinity) or n
    res.cpu_model = str(child.get("cpu_model", ""))
    res.onnxruntime = str(child.get("onnxruntime", ""))
    res.address_space_limit_bytes = child.get("address_space_limit_bytes")
    res.baseline_rss_bytes = child.get("baseline_rss_bytes")
    res.peak_rss_bytes = child.get("peak_rss_bytes")
    res.load_peak_rss_bytes = child.get("load_peak_rss_bytes")
    if res.peak_rss_bytes is not None and res.baseline_rss_bytes is not None:
        res.model_bytes = max(0, int(res.peak_rss_bytes) - int(res.baseline_rss_bytes))

    timings = {int(b): v for b, v in child.get("timings_s", {}).items() if v}
    first = int(batch_sizes[0])
    if first in timings:
        lat = np.asarray(timings[first]) * 1e3
        res.latency_ms_p50 = float(np.percentile(lat, 50))
        res.latency_ms_p95 = float(np.percentile(lat, 95))
        res.latency_ms_mean = float(lat.mean())
        res.latency_ms_low = float(np.quantile(lat, low_quantile))
        res.latencies_ms = [float(v) for v in lat]
        res.runs = int(lat.size)
    ref = child.get("reference_timings_s")
    if ref and first in timings:
        n_pairs = min(len(ref), len(timings[first]))
        res.reference_ms_p50 = float(np.median(ref)) * 1e3
        # the median of per-pair ratios: each pair ran back to back under the same load
        res.model_to_reference = float(np.median(
            np.asarray(timings[first][:n_pairs]) / np.asarray(ref[:n_pairs])))
        m_s, r_s = timings[first][:n_pairs], ref[:n_pairs]
        res.reference_ms_low = float(np.quantile(r_s, low_quantile)) * 1e3
        res.model_to_reference_low = low_ratio(m_s, r_s, low_quantile)
        # the same statistic on the four consecutive quarters of the pairs (each holds both
        # orders of the ABBA sequence): how much it moves over the run (a spread, for the report)
        if n_pairs >= 8:
            q = n_pairs // 4
            res.model_to_reference_subsets = [
                low_ratio(m_s[k * q:(k + 1) * q], r_s[k * q:(k + 1) * q], low_quantile)
                for k in range(4)]
    for b, v in timings.items():
        med = float(np.median(v))
        res.latency_ms_by_batch[b] = med * 1e3
        res.fps_by_batch[b] = b / med if med > 0 else math.inf
    util = child.get("cpu_utilisation", {})
    if str(first) in util:
        # CPU seconds per wall second over the cores the child had, and unnormalised
        res.cpu_load = float(util[str(first)]) * max(1, res.cores_used)
        res.cpu_utilisation = float(min(1.0, max(0.0, util[str(first)])))
    res.kernel_us_by_op = {str(k): float(v) for k, v in child.get("kernel_us_by_op", {}).items()}
    if child.get("accuracy"):
        a = child["accuracy"]
        res.accuracy = Accuracy(float(a["top1"]), float(a["top5"]), int(a["samples"]))
    if "budget_exhausted_after_batch" in child:
        warnings.append(
            f"the time budget ran out after batch {child['budget_exhausted_after_batch']}; "
            "larger batches were not timed"
        )

    limit_mb = (limits.memory_bytes or 0) / 2**20
    if rc is None:
        res.error = f"the child was stopped after {timeout_s:.0f} s"
        warnings.append(f"execution timed out after {timeout_s:.0f} s; measured figures may be missing")
    elif child.get("ok"):
        pass
    elif child.get("alloc_error") or (rc is not None and rc < 0 and limits.memory_bytes is not None
                                      and child.get("phase") in ("load", "timing", "accuracy")):
        res.fits = False
        res.error = child.get("error") or f"the child died with signal {-rc if rc else '?'}"
        warnings.append(
            f"does not fit: the model needs more than the target's {limit_mb:.0f} MiB "
            f"(allocation refused during {child.get('phase', '?')}: {res.error.splitlines()[0][:200]})"
        )
    elif child.get("phase") == "load":
        error = str(child.get("error", "unknown error"))
        ir = re.search(r"Unsupported model IR version: \d+, max supported IR version: \d+", error)
        raise ModelFileError(
            f"onnxruntime could not load the model: {ir.group(0) if ir else error[:300]}",
            "check that the file is a complete ONNX model with operators onnxruntime supports",
        )
    else:
        detail = child.get("error") or (stderr.strip().splitlines()[-1] if stderr.strip() else "")
        if rc is not None and rc < 0:
            detail = detail or f"killed by {signal.Signals(-rc).name}"
        res.error = detail or f"the child exited with status {rc}"
        warnings.append(f"execution failed in phase {child.get('phase', '?')}: {res.error[:300]}")
        if child.get("phase") in (None, "start", "baseline"):
            raise RuntimeError(f"the execution harness could not start: {res.error}\n{stderr[-2000:]}")

    if res.fits and limits.memory_bytes is not None and res.model_bytes is not None \
            and res.model_bytes > limits.memory_bytes:
        res.fits = False
        warnings.append(
            f"does not fit: the model's peak resident memory above the runtime "
            f"({res.model_bytes / 2**20:.0f} MiB) exceeds the target's {limit_mb:.0f} MiB"
        )
    return res
