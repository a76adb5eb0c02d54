"""The loop's benchmark: the default `sigdl run`, and LeNet-5 against Movidius and Jetson.

Each run is the real command in a fresh process (`sigdl run ... --json`), timed from start
to exit. Recorded: wall time, candidates tried, the chosen model's ratio, its top-1 drop
against the baseline, and each target's fps at batch 1.

Goal (issue 5): the default run finishes in at most 3 minutes on 2 cores and reaches at
least 30x within a 1-point accuracy drop.

    .venv/bin/python bench/loop.py
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

LENET5 = """\
model: lenet5
dataset: mnist5k
train: {epochs: 8, optimizer: adam, lr: 0.002, schedule: cosine, batch_size: 64}
compress:
  chain: [prune, quant, encode]
  retrain: {epochs: 2, lr: 0.01}
targets: [movidius-ma2450, jetson-tx2]
budget: {max_accuracy_drop: 1.0, min_fps: 30}
search: {sensitivity: [0.5, 0.7, 0.8, 0.9, 0.95], bisection_steps: 2}
limits: {max_candidates: 12, max_seconds: 400}
"""


def run(name: str, args: list[str], folder: Path) -> dict:
    out = folder / name
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "sigdl_core.cli", "run", *args, "-o", str(out), "--json"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"{name} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    report = json.loads(proc.stdout)
    chosen = report["chosen"] or {}
    base = report["baseline"]["accuracy"]
    return {
        "run": name,
        "command": "sigdl run " + " ".join(args),
        "exit_code": proc.returncode,
        "met": report["met"],
        "wall_s": round(wall, 1),
        "baseline_s": round(sum(report["stages"].get(s, {}).get("seconds", 0) for s in ("load", "train", "test")), 1),
        "candidates": len(report["candidates"]),
        "baseline_top1": base,
        "chosen_top1": chosen.get("accuracy"),
        "drop_points": round(100 * (base - chosen["accuracy"]), 2) if chosen.get("accuracy") is not None else None,
        "ratio": chosen.get("ratio"),
        "artifact_bytes": chosen.get("artifact_bytes"),
        "fps": {t: r.get("fps") for t, r in (chosen.get("targets") or {}).items()},
        "shortfalls": [s["text"] for s in report["shortfalls"]],
        "stopped": report.get("stopped"),
    }


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="sigdl-bench-loop-") as tmp:
        folder = Path(tmp)
        rows.append(run("default", [], folder))
        recipe = folder / "lenet5.yaml"
        recipe.write_text(LENET5)
        rows.append(run("lenet5-movidius-jetson", [str(recipe)], folder))
    machine = f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "loop.json").write_text(json.dumps({"machine": machine, "rows": rows, "lenet5_recipe": LENET5},
                                                  indent=2) + "\n")
    lines = ["| run | exit | wall time | of which baseline | candidates | chosen ratio | top-1 drop | fps (batch 1) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        fps = ", ".join(f"{t} {v:.0f}" for t, v in r["fps"].items() if v is not None)
        lines.append(f"| {r['run']} | {r['exit_code']} | {r['wall_s']:.0f} s | {r['baseline_s']:.0f} s | "
                     f"{r['candidates']} | {r['ratio']:.1f}× | {r['drop_points']:.2f} pt | {fps} |")
    md = (f"Command: `.venv/bin/python bench/loop.py` ({machine}). Each row is one `sigdl run` in a fresh "
          "process, timed from start to exit.\n\n" + "\n".join(lines) + "\n\nLeNet-5 recipe:\n\n```yaml\n"
          + LENET5 + "```\n")
    (RESULTS / "loop.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
