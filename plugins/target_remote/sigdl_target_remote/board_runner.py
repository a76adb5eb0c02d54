"""The self-contained runner SigDL copies to a real board and runs there.

It needs only the board's Python 3 (3.8 or newer), NumPy and onnxruntime, and imports
nothing from SigDL. In its folder it finds ``model.onnx``, ``request.json`` and, for
accuracy, ``x_test.npy`` / ``y_test.npy``; it writes ``result.json`` and prints one JSON line.

1. onnxruntime (and NumPy) are imported first: if missing, the result says so and the exit
   code is 3.
2. ``warmup`` untimed runs at batch 1, then ``runs`` timed runs (``time.perf_counter``):
   p50 and p95 latency.
3. While the timed runs go, a thread runs ``power_command`` (if given) every
   ``power_interval_s`` and keeps the first number of its output scaled by ``power_scale``
   to watts; tegrastats output gives its ``VDD_IN``/``POM_5V_IN`` milliwatts instead, and a
   command that keeps streaming (plain ``tegrastats``) is read for what it printed in time.
4. Top-1 and top-5 over the test samples at batch 1..``batch`` (argmax of the logits).
5. Peak resident memory of this process: ``resource.getrusage(RUSAGE_SELF).ru_maxrss``.
6. On exit, whatever happened, it removes its own folder (SigDL removes it too; this way it
   goes also when the connection dropped mid-run).

Not imported by SigDL itself: it is copied as a file (``python3 board_runner.py DIR``).
"""

import json
import os
import re
import subprocess
import sys
import threading
import time

_TEGRA = re.compile(r"(?:VDD_IN|POM_5V_IN)\s+(\d+)\s*(?:mW)?/")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _finish(folder, result, code):
    with open(os.path.join(folder, "result.json.tmp"), "w") as fh:
        json.dump(result, fh)
    os.replace(os.path.join(folder, "result.json.tmp"), os.path.join(folder, "result.json"))
    print(json.dumps(result))
    sys.exit(code)


def _read_power(command, scale, timeout):
    """One reading: the command's output, or what a command that keeps streaming (plain
    ``tegrastats``) printed before ``timeout``."""
    try:
        out = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=timeout).stdout
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or ""
        out = out.decode(errors="replace") if isinstance(out, bytes) else out
    m = _TEGRA.search(out)
    if m:
        return float(m.group(1)) / 1000.0
    m = _NUMBER.search(out)
    return float(m.group(0)) * scale if m else None


class _PowerSampler(threading.Thread):
    def __init__(self, command, scale, interval):
        super().__init__(daemon=True)
        self.command, self.scale, self.interval = command, scale, interval
        self.samples, self.errors = [], []
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            try:
                value = _read_power(self.command, self.scale, max(1.0, 4 * self.interval))
                if value is not None:
                    self.samples.append(value)
            except Exception as exc:  # a failing command is reported, never fatal
                self.errors.append(str(exc)[:200])
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join(timeout=5)


def main(folder):
    with open(os.path.join(folder, "request.json")) as fh:
        req = json.load(fh)
    result = {"python": sys.version.split()[0], "pid": os.getpid()}
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError as exc:
        result["error"] = "missing_onnxruntime"
        result["detail"] = f"{sys.executable}: {exc}"
        _finish(folder, result, 3)
    result["onnxruntime"] = ort.__version__
    opts = ort.SessionOptions()
    if req.get("threads"):
        opts.intra_op_num_threads = int(req["threads"])
    sess = ort.InferenceSession(os.path.join(folder, "model.onnx"), opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [int(d) if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
    shape[0] = 1
    if req.get("input_shape"):
        shape = [1] + [int(d) for d in req["input_shape"]]
    x_path = os.path.join(folder, "x_test.npy")
    have_data = os.path.exists(x_path)
    x = np.load(x_path, allow_pickle=False) if have_data else None
    sample = (x[:1] if have_data else np.random.default_rng(0).standard_normal(shape)).astype(np.float32)
    for _ in range(int(req.get("warmup", 5))):
        sess.run(None, {inp.name: sample})
    sampler = None
    if req.get("power_command"):
        sampler = _PowerSampler(req["power_command"], float(req.get("power_scale", 1.0)),
                                float(req.get("power_interval_s", 0.2)))
        sampler.start()
    times = []
    deadline = time.monotonic() + float(req.get("max_seconds", 60))
    for i in range(int(req.get("runs", 50))):
        t0 = time.perf_counter()
        sess.run(None, {inp.name: sample})
        times.append(time.perf_counter() - t0)
        if i >= 4 and time.monotonic() > deadline:
            break
    if sampler is not None:
        sampler.stop()
        result["power_samples"] = len(sampler.samples)
        result["power_w"] = sum(sampler.samples) / len(sampler.samples) if sampler.samples else None
        result["power_errors"] = sampler.errors[:3]
    times.sort()
    result["runs"] = len(times)
    result["latency_ms_p50"] = 1e3 * times[len(times) // 2]
    result["latency_ms_p95"] = 1e3 * times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    if have_data:
        y = np.load(os.path.join(folder, "y_test.npy"), allow_pickle=False)
        batch, correct, correct5 = int(req.get("batch", 64)), 0, 0
        for i in range(0, len(x), batch):
            chunk = x[i:i + batch].astype(np.float32)
            try:
                logits = sess.run(None, {inp.name: chunk})[0]
            except Exception:  # a model with a fixed batch of 1
                logits = np.concatenate([sess.run(None, {inp.name: chunk[j:j + 1]})[0] for j in range(len(chunk))])
            logits = np.asarray(logits).reshape(len(chunk), -1)
            labels = y[i:i + batch]
            correct += int((logits.argmax(1) == labels).sum())
            top5 = np.argsort(-logits, axis=1)[:, :5]
            correct5 += int((top5 == labels[:, None]).any(1).sum())
        result["top1"] = correct / len(x)
        result["top5"] = correct5 / len(x)
        result["samples"] = int(len(x))
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["peak_rss_bytes"] = int(rss if sys.platform == "darwin" else rss * 1024)
    result["cpu"] = open("/proc/cpuinfo").read().count("processor") if os.path.exists("/proc/cpuinfo") else None
    _finish(folder, result, 0)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    finally:  # the folder goes even when SigDL's connection dropped and cannot remove it
        if os.path.basename(os.path.abspath(sys.argv[1])).startswith("sigdl-board-"):
            import shutil

            shutil.rmtree(sys.argv[1], ignore_errors=True)
