"""The child side of the execution harness: run one ONNX model under core and memory limits.

Started by :func:`sigdl_core.emulation.harness.run_limited` as
``python harness_child.py REQUEST.json RESULT.json`` — as a script, not as a package
module, so that the child's memory baseline holds the Python interpreter, NumPy and
onnxruntime and nothing of SigDL. It imports only the standard library, NumPy and
onnxruntime, and writes its findings as JSON (atomically: temp file, then rename). See
the harness module for the method; this file only carries it out, in this order:

1. pin itself to the allowed CPUs (``os.sched_setaffinity``);
2. import onnxruntime and make a one-node session with the same thread settings, and
   measure the baseline: the address space (``VmSize``) and resident set (``VmRSS``) of a
   Python with onnxruntime loaded and a thread pool started;
3. lower ``RLIMIT_AS`` (soft and hard) to ``baseline VmSize + allowance + target memory``;
4. load the model and time it (warm-up, then repeated runs) at each batch size; with a
   reference model, run it in alternation with the model at the first batch size; the
   timer is wall time, or (``timer="thread"``, one intra-op thread) the thread's CPU time;
5. record the peak resident set while running (``VmHWM``, reset after loading through
   ``/proc/self/clear_refs`` so that loading's transient copies do not count; the loading
   peak is reported apart) — before any test data is read;
6. evaluate top-1/top-5 on the test data, read from a raw file chunk by chunk.

An allocation that the limit refuses surfaces as ``MemoryError``, an onnxruntime
exception naming a failed allocation, or (inside C++) an abort; the parent reports all
three as "does not fit".
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback


def _status_kb(field: str) -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _write(path: str, obj: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


_ALLOC_WORDS = ("bad_alloc", "failed to allocate", "memoryerror", "out of memory",
                "cannot allocate", "std::bad_alloc", "allocate memory", "mmap")


def _is_alloc_error(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = f"{type(exc).__name__}: {exc}".lower()
    return any(w in text for w in _ALLOC_WORDS)


def main(request_path: str, result_path: str) -> int:
    with open(request_path) as fh:
        req = json.load(fh)
    result: dict = {"phase": "start", "ok": False}

    def save() -> None:
        _write(result_path, result)

    # 1. cores -----------------------------------------------------------------------
    cpus = [int(c) for c in req["cpus"]]
    try:
        os.sched_setaffinity(0, cpus)
    except (AttributeError, OSError) as exc:  # not Linux: thread count still limits
        result["affinity_error"] = str(exc)
    result["affinity"] = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    threads = int(req["threads"])
    result["threads"] = threads
    result["cpu_model"] = _cpu_model()
    save()

    # 2. baseline ----------------------------------------------------------------------
    result["phase"] = "baseline"
    import numpy as np
    import onnxruntime as ort

    result["onnxruntime"] = ort.__version__

    def options() -> ort.SessionOptions:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No arena: memory is taken when needed and returned, so the peak resident set is
        # what the model needs, not what an arena reserved ahead of it.
        so.enable_cpu_mem_arena = False
        # Idle threads sleep instead of spinning, so CPU time measures work done.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3
        return so

    tiny = req.get("tiny_model")
    if tiny:
        warm = ort.InferenceSession(tiny, options(), providers=["CPUExecutionProvider"])
        warm.run(None, {warm.get_inputs()[0].name: np.zeros((1,), np.float32)})
    base_vm = _status_kb("VmSize") * 1024
    base_rss = _status_kb("VmRSS") * 1024
    result["baseline_vm_bytes"] = base_vm
    result["baseline_rss_bytes"] = base_rss

    # 3. memory limit ------------------------------------------------------------------
    limit = req.get("memory_bytes")
    if limit is not None:
        allowance = int(req.get("allowance_bytes", 0))
        as_limit = base_vm + allowance + int(limit)
        resource.setrlimit(resource.RLIMIT_AS, (as_limit, as_limit))
        result["address_space_limit_bytes"] = as_limit
    save()

    try:
        # 4. load and time -------------------------------------------------------------
        result["phase"] = "load"
        provider = req.get("provider", "CPUExecutionProvider")
        sess = ort.InferenceSession(req["model"], options(), providers=[provider])
        result["providers"] = sess.get_providers()
        if provider not in sess.get_providers():
            raise RuntimeError(f"execution provider {provider} is not available here")
        inp = sess.get_inputs()[0]
        in_name = inp.name
        sample_shape = [int(d) for d in req["sample_shape"]]
        dtype = np.float16 if "float16" in inp.type else np.float32
        rng = np.random.default_rng(0)
        result["load_peak_rss_bytes"] = _status_kb("VmHWM") * 1024
        # Reset the resident high-water mark (Linux >= 4.0): the peak measured from here on
        # is the model's working set while it runs, not the transient copies of loading.
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            result["peak_reset"] = True
        except OSError:
            result["peak_reset"] = False
        result["phase"] = "timing"
        timings: dict[str, list[float]] = {}
        cpu_util: dict[str, float] = {}
        budget = float(req.get("max_seconds", 60.0))
        t_start = time.perf_counter()
        ref = None
        if req.get("reference"):
            # a reference layer timed in alternation with the model at the first batch size,
            # so that contention from other jobs weighs on both alike
            ref = ort.InferenceSession(req["reference"], options(), providers=[provider])
            ref_in = ref.get_inputs()[0]
            ref_x = rng.standard_normal([int(d) for d in req["reference_shape"]]).astype(np.float32)
            for _ in range(max(1, int(req["warmup"]))):
                ref.run(None, {ref_in.name: ref_x})
        ref_lat: list[float] = []
        # timer "thread": the calling thread's CPU time (one intra-op thread computes in the
        # caller), which time slices taken by other processes do not inflate
        tick = time.thread_time if req.get("timer") == "thread" else time.perf_counter
        for b in req["batch_sizes"]:
            x = rng.standard_normal((int(b), *sample_shape)).astype(dtype)
            for _ in range(int(req["warmup"])):
                sess.run(None, {in_name: x})
            lat: list[float] = []
            cpu = wall = 0.0
            interleave = ref is not None and b == req["batch_sizes"][0]
            first_batch = b == req["batch_sizes"][0]
            # at the first batch size, keep timing past `repeats` until `min_seconds` have
            # passed (a tiny model then gets hundreds of runs, so that a low quantile of its
            # times is well determined), but never past `max_repeats`
            min_s = float(req.get("min_seconds", 0.0)) if first_batch else 0.0
            max_repeats = max(int(req["repeats"]), int(req.get("max_repeats", req["repeats"])))
            t_batch = time.perf_counter()
            i = -1
            while True:
                i += 1
                # ABBA order: neither run always goes first in its pair (the first one
                # after a switch can pay for cache misses the second does not)
                ref_first = interleave and i % 2 == 0
                if ref_first:
                    t0 = tick()
                    ref.run(None, {ref_in.name: ref_x})
                    ref_lat.append(tick() - t0)
                c0 = time.process_time()  # CPU time of all the process's threads
                w0 = time.perf_counter()
                t0 = tick()
                sess.run(None, {in_name: x})
                dt = tick() - t0
                cpu += time.process_time() - c0
                wall += time.perf_counter() - w0
                lat.append(dt)
                if interleave and not ref_first:
                    t0 = tick()
                    ref.run(None, {ref_in.name: ref_x})
                    ref_lat.append(tick() - t0)
                spent = time.perf_counter() - t_start
                if i >= 4 and spent > budget * (0.6 if first_batch else 1.0):
                    break
                if i + 1 >= int(req["repeats"]) and (
                        time.perf_counter() - t_batch >= min_s or i + 1 >= max_repeats):
                    break
            timings[str(b)] = lat
            cpu_util[str(b)] = cpu / max(wall * max(1, min(threads, len(result["affinity"]) or threads)), 1e-9)
            result["timings_s"] = timings
            result["cpu_utilisation"] = cpu_util
            if ref_lat:
                result["reference_timings_s"] = ref_lat
            save()
            if time.perf_counter() - t_start > budget:
                result["budget_exhausted_after_batch"] = int(b)
                break

        # 4b. where the time goes: onnxruntime's profiler, per operator type ------------
        if int(req.get("profile_runs", 0)) > 0 and "1" in [str(b) for b in req["batch_sizes"]]:
            so = options()
            so.enable_profiling = True
            so.profile_file_prefix = os.path.join(req["profile_dir"], "profile")
            prof = ort.InferenceSession(req["model"], so, providers=[provider])
            x1 = rng.standard_normal((1, *sample_shape)).astype(dtype)
            prof.run(None, {in_name: x1})  # warm-up, profiled too; counted alike below
            for _ in range(int(req["profile_runs"])):
                prof.run(None, {in_name: x1})
            prof_file = prof.end_profiling()
            # each node's shortest time over the runs (the profiler times by wall clock, and
            # other jobs only add time), summed per operator type
            best: dict[str, tuple[str, float]] = {}
            with open(prof_file) as fh:
                for ev in json.load(fh):
                    name = str(ev.get("name", ""))
                    if ev.get("cat") == "Node" and name.endswith("_kernel_time"):
                        op = ev.get("args", {}).get("op_name", "?")
                        dur = float(ev.get("dur", 0))
                        if name not in best or dur < best[name][1]:
                            best[name] = (op, dur)
            by_op: dict[str, float] = {}
            for op, dur in best.values():
                by_op[op] = by_op.get(op, 0.0) + dur
            os.remove(prof_file)
            del prof
            result["kernel_us_by_op"] = by_op
            save()

        # 5. peak memory, before reading test data ------------------------------------
        hwm = _status_kb("VmHWM") * 1024
        result["peak_rss_bytes"] = hwm if (result["peak_reset"] and hwm) else (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        result["peak_vm_bytes"] = _status_kb("VmPeak") * 1024

        # 6. accuracy --------------------------------------------------------------------
        data = req.get("data")
        if data:
            result["phase"] = "accuracy"
            n = int(data["n"])
            per = int(np.prod(sample_shape))
            labels = np.fromfile(data["y"], dtype=np.int64, count=n)
            top1 = top5 = 0
            bs = int(data.get("batch", 32))
            item = np.dtype(np.float32).itemsize
            for s in range(0, n, bs):
                m = min(bs, n - s)
                xb = np.fromfile(data["x"], dtype=np.float32, count=m * per, offset=s * per * item)
                xb = xb.reshape((m, *sample_shape)).astype(dtype, copy=False)
                out = np.asarray(sess.run(None, {in_name: xb})[0], dtype=np.float32).reshape(m, -1)
                y = labels[s:s + m]
                k = min(5, out.shape[1])
                top = np.argpartition(-out, k - 1, axis=1)[:, :k] if k > 1 else np.argmax(out, 1)[:, None]
                top1 += int((np.argmax(out, axis=1) == y).sum())
                top5 += int((top == y[:, None]).any(axis=1).sum())
            result["accuracy"] = {"top1": top1 / max(n, 1), "top5": top5 / max(n, 1), "samples": n}
        result["phase"] = "done"
        result["ok"] = True
    except BaseException as exc:  # reported to the parent, which decides what it means
        result["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        result["alloc_error"] = _is_alloc_error(exc)
        result["traceback"] = traceback.format_exc()[-4000:]
        try:
            result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        except Exception:
            pass
    try:
        save()
    except MemoryError:  # even writing failed: the parent sees a missing or stale result
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
