"""The "remote" emulator: re-tests a model on the real board over SSH.

Every number it reports has the method ``measured on the board``
(:attr:`~sigdl_core.interfaces.Method.MEASURED`): latency p50/p95 over ``runs`` timed runs
after ``warmup``, top-1 on the test split (sent as ``.npy``), the runner's peak resident
memory, and power sampled from ``power_command`` during the timed runs (else "not
measured"). The machinery is :mod:`.board`; the runner is :mod:`.board_runner`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sigdl_core.interfaces import Accuracy, ArrayDataset, EmulationReport, Emulator, Method, Provenance, TargetSpec

from .board import BoardAddress, run_on_board

__all__ = ["EMULATOR_NAME", "RemoteEmulator"]

EMULATOR_NAME = "remote"


def _defaults() -> dict[str, Any]:
    from .plugin import OPTIONS

    return {o.name: o.default for o in OPTIONS}


class RemoteEmulator(Emulator):
    """Runs the ONNX model with the board's own onnxruntime over SSH and measures it."""

    name = EMULATOR_NAME

    def emulate(self, onnx_path: Path, target: TargetSpec, data: ArrayDataset | None,
                options: Mapping[str, Any] | None = None) -> EmulationReport:
        import numpy as np

        from sigdl_core.errors import InvalidValueError

        opts = {**_defaults(), **dict(options or {})}
        if not opts.get("host"):
            raise InvalidValueError(f"target '{target.name}' has no board address",
                                    "write NAME@USER@HOST[:PORT], or remote: {host: ...} in the recipe")
        address = BoardAddress(host=str(opts["host"]), port=int(opts["port"]), user=opts.get("user"),
                               key_file=opts.get("key_file"), known_hosts=opts.get("known_hosts"),
                               accept_new_host_key=bool(opts["accept_new_host_key"]))
        label = f"{target.name}@{address.host}"
        request = {"runs": int(opts["runs"]), "warmup": int(opts["warmup"]), "threads": int(opts["threads"]),
                   "power_command": opts.get("power_command"), "power_scale": float(opts["power_scale"]),
                   "max_seconds": float(opts["command_timeout"]) / 2}
        with tempfile.TemporaryDirectory(prefix="sigdl-remote-") as tmp:
            files = {"model.onnx": Path(onnx_path)}
            has_accuracy = data is not None and not data.timing_only
            if data is not None:
                n = int(opts["max_samples"]) or len(data.y_test)
                np.save(Path(tmp) / "x_test.npy", np.ascontiguousarray(data.x_test[:n], dtype=np.float32))
                np.save(Path(tmp) / "y_test.npy", np.asarray(data.y_test[:n], dtype=np.int64))
                if has_accuracy:
                    files["x_test.npy"] = Path(tmp) / "x_test.npy"
                    files["y_test.npy"] = Path(tmp) / "y_test.npy"
                else:
                    request["input_shape"] = list(data.input_shape)
            res = run_on_board(address, files, request, python=str(opts["python"]),
                               connect_timeout=float(opts["connect_timeout"]),
                               command_timeout=float(opts["command_timeout"]))
        v = res.values
        how = (f"measured on the board {address.label()} with its onnxruntime {v.get('onnxruntime')} "
               f"(Python {v.get('python')}, {opts['python']})")
        rep = EmulationReport(target=label, emulator=self.name)

        def put(name: str, value: Any, detail: str) -> None:
            setattr(rep, name, value)
            rep.provenance[name] = Provenance(Method.MEASURED, detail)

        put("latency_ms_p50", float(v["latency_ms_p50"]),
            f"{how}: median of {v['runs']} timed runs at batch 1 after {opts['warmup']} warm-up runs")
        put("latency_ms_p95", float(v["latency_ms_p95"]), f"{how}: 95th percentile of {v['runs']} timed runs")
        put("fps_batch1", 1e3 / float(v["latency_ms_p50"]), "1 / measured p50 latency")
        put("fps_best", 1e3 / float(v["latency_ms_p50"]), "batch 1 only is timed on the board")
        put("best_batch", 1, "batch 1 only is timed on the board")
        put("peak_memory_bytes", int(v["peak_rss_bytes"]),
            "peak resident memory of the runner process on the board (ru_maxrss): Python, onnxruntime, "
            "the model and the test data")
        put("fits", True, "the model ran on the board")
        if has_accuracy and v.get("top1") is not None:
            put("accuracy", Accuracy(top1=float(v["top1"]), top5=float(v["top5"]), samples=int(v["samples"])),
                f"{how}: top-1/top-5 on {v['samples']} test samples sent as .npy")
        if v.get("power_w") is not None:
            put("power_w", float(v["power_w"]),
                f"measured on the board: mean of {v['power_samples']} readings of "
                f"'{opts['power_command']}' during the timed runs")
            put("energy_mj", float(v["power_w"]) * float(v["latency_ms_p50"]),
                "measured power × measured p50 latency")
        else:
            rep.warnings.append("power not measured: give power_command=... (e.g. tegrastats on a Jetson, an "
                                "INA2xx power1_input with power_scale=1e-6)"
                                + (f"; the command failed: {v['power_errors'][0]}" if v.get("power_errors") else ""))
        rep.extra.update({"board": address.label(), "remote_dir": res.remote_dir,
                          "seconds": round(res.seconds, 2), "runner": {k: v[k] for k in v if k != "pid"},
                          "method": Method.MEASURED.value})
        return rep
