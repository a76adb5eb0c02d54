"""The loop's benchmark: the default `sigdl run` and `sigdl run --model lenet5` on seeds 0-2,
and LeNet-5 against Movidius and Jetson.

Each run is the real command in a fresh process (`sigdl run ... --json`), timed from start
to exit. Recorded: wall time and the child's user CPU time (the machine may be shared: the
load average before and after each run is recorded too), candidates tried, the chosen
model's ratio, its top-1 drop on the validation split (what decided) and on the test split
(reported only), and each target's fps at batch 1.

Goals (issue 13): the default run chooses >= 60x on LeNet-300-100 and `--model lenet5`
>= 80x, each with a validation drop <= 1.0 point and a test drop <= 1.5 points, in <= 90 s
on 2 cores, on seeds 0, 1 and 2. The default run is also measured on seeds 3 and 4, which
were looked at when the noise margin's rule was chosen (uncapped, beside distillation), not
when anything else was set.

    .venv/bin/python bench/loop.py            # every row
    .venv/bin/python bench/loop.py default    # only the rows whose name starts with "default"
"""

from __future__ import annotations

import json
import os
import platform
import resource
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


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def run(name: str, args: list[str], folder: Path) -> dict:
    out = folder / name
    load_before = _load()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "sigdl_core.cli", "run", *args, "-o", str(out), "--json"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        sys.exit(f"{name} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    report = json.loads(proc.stdout)
    chosen = report["chosen"] or {}
    base = report["baseline"]

    def drop(key: str) -> float | None:
        if base.get(key) is None or chosen.get(key) is None:
            return None
        return round(100 * (base[key] - chosen[key]), 2)

    return {
        "run": name,
        "command": "sigdl run " + " ".join(args),
        "exit_code": proc.returncode,
        "met": report["met"],
        "wall_s": round(wall, 1),
        "user_cpu_s": round(cpu_after.ru_utime - cpu_before.ru_utime, 1),
        "load_before": load_before,
        "load_after": _load(),
        "baseline_s": round(sum(report["stages"].get(s, {}).get("seconds", 0)
                                for s in ("load", "train", "validate", "test")), 1),
        "candidates": len(report["candidates"]),
        "baseline_validation_top1": base.get("validation_accuracy"),
        "baseline_test_top1": base.get("accuracy"),
        "chosen_validation_top1": chosen.get("validation_accuracy"),
        "chosen_test_top1": chosen.get("accuracy"),
        "validation_drop_points": drop("validation_accuracy"),
        "test_drop_points": drop("accuracy"),
        "ratio": chosen.get("ratio"),
        "artifact_bytes": chosen.get("artifact_bytes"),
        "fps": {t: r.get("fps") for t, r in (chosen.get("targets") or {}).items()},
        "shortfalls": [s["text"] for s in report["shortfalls"]],
        "stopped": report.get("stopped"),
    }


#: (name, arguments); a recipe file argument "LENET5" is written from :data:`LENET5`.
RUNS = [
    *[(f"default seed {s}", ["--seed", str(s)]) for s in (0, 1, 2, 3, 4)],
    *[(f"lenet5 seed {s}", ["--model", "lenet5", "--seed", str(s)]) for s in (0, 1, 2)],
    ("lenet5-movidius-jetson", ["LENET5"]),
]


def _fmt(value: float | None, form: str) -> str:
    return "—" if value is None else format(value, form)


def render(rows: list[dict], machine: str) -> str:
    """The Markdown fragment of the rows of ``loop.json``."""
    lines = ["| run | exit | wall time | user CPU | load before/after | candidates | chosen ratio "
             "| top-1 drop validation (decided) | top-1 drop test (reported) | fps (batch 1) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        fps = ", ".join(f"{t} {v:.0f}" for t, v in r["fps"].items() if v is not None)
        lines.append(f"| {r['run']} | {r['exit_code']} | {r['wall_s']:.0f} s | {r['user_cpu_s']:.0f} s | "
                     f"{r['load_before']:.1f} / {r['load_after']:.1f} | {r['candidates']} | {r['ratio']:.1f}× | "
                     f"{_fmt(r['validation_drop_points'], '.2f')} pt | {_fmt(r['test_drop_points'], '.2f')} pt | "
                     f"{fps} |")
    quiet = all(r["load_before"] < 1.5 and r["load_after"] < 1.5 for r in rows)
    where = ("Taken on a quiet machine (the load average, recorded, is about the run's own 1.0). " if quiet else
             "Taken on a shared machine (other engineers' jobs ran on the same two cores; the load average is "
             "recorded): read the wall times as noisy and the user CPU times as what the run itself needs. ")
    md_head = (f"Command: `.venv/bin/python bench/loop.py` ({machine}). Each row is one `sigdl run` in a fresh "
          "process, timed from start to exit; user CPU is the process's own. " + where + "The search decides on the "
          "validation split (10 % of the training data, 400 digits); the test split (1,000 digits) is "
          "evaluated only for the report. Retraining distils from the baseline (the recipe's default "
          "`compress.retrain.distill: 0.9`). Seeds 3 and 4 of the default run were looked at when the "
          "noise margin's rule was chosen.\n\n")
    md = (md_head + "\n".join(lines) + "\n\nLeNet-5 recipe:\n\n```yaml\n"
          + LENET5 + "```\n") if any(r["run"] == "lenet5-movidius-jetson" for r in rows) else \
        md_head + "\n".join(lines) + ("\n\nNot rerun this time: LeNet-5 against Movidius and Jetson "
                                       "(`.venv/bin/python bench/loop.py lenet5-movidius` measures it).\n")
    return md


def main() -> None:
    only = sys.argv[1:]
    rows = []
    with tempfile.TemporaryDirectory(prefix="sigdl-bench-loop-") as tmp:
        folder = Path(tmp)
        recipe = folder / "lenet5.yaml"
        recipe.write_text(LENET5)
        for name, args in RUNS:
            if only and not any(name.startswith(o) for o in only):
                continue
            rows.append(run(name.replace(" ", "-"), [str(recipe) if a == "LENET5" else a for a in args], folder))
    machine = f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    RESULTS.mkdir(exist_ok=True)
    if only and (RESULTS / "loop.json").is_file():  # a partial rerun keeps the other rows
        names = [n.replace(" ", "-") for n, _ in RUNS]
        kept = {r["run"]: r for r in json.loads((RESULTS / "loop.json").read_text()).get("rows", [])
                if r["run"] in names and "test_drop_points" in r}
        kept.update({r["run"]: r for r in rows})
        rows = [kept[n] for n in names if n in kept]
    (RESULTS / "loop.json").write_text(json.dumps({"machine": machine, "rows": rows, "lenet5_recipe": LENET5},
                                                  indent=2) + "\n")
    md = render(rows, machine)
    (RESULTS / "loop.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
