"""Acceleration benchmark (issue 10): data-parallel training and the search on executors.

Measured:

1. Training samples/s with 1 and 2 workers (one thread each, `sigdl_core.accelerate.train`):
   LeNet-5 on `mnist5k` (with the test top-1 of each: the goal is the same accuracy within
   0.5 point), and MobileNet v1 on `synthetic:` data at a reduced resolution, where compute
   dominates the all-reduce (1024 standard-normal samples, 32 steps of 32: the `synthetic:`
   loader's 64 would be 2 steps, which time little but the first step). 1 and 2 workers are
   interleaved (A B B A A B, the best of three each) so that the machine's load hits both alike. samples/s is the
   training loop's own (the workers' start-up and the transfer of weights are recorded
   apart, under "where time went", and in each run's wall time).
2. The search phase of the default `sigdl run` (a real process each) with `--jobs 1`,
   `--jobs 2`, and `--cluster` on a Dask `LocalCluster` of 2 one-thread workers on
   127.0.0.1: the search's seconds, candidates per minute, where its time went (the
   report's `acceleration.search_time`) and the candidates and chosen key (which must be
   the same).

Goals (issue 10): >= 1.7x on the compute-bound model, LeNet-5's ratio recorded whatever it
is, the search >= 1.6x with 2 jobs and the same chosen candidate. Figures taken on a shared,
loaded machine mean little: the load average is recorded with them.

    .venv/bin/python bench/acceleration.py           # the full benchmark
    .venv/bin/python bench/acceleration.py --quick   # a reduced form (fewer epochs and candidates)
    .venv/bin/python bench/acceleration.py --only=search   # remeasure one part, keep the other

Writes bench/results/acceleration.json and bench/results/acceleration.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent
SIGDL = Path(sys.executable).with_name("sigdl")


def load() -> float:
    return round(os.getloadavg()[0], 2)


def _busy_and_own() -> tuple[float, float]:
    """CPU seconds the whole machine has been busy (Linux /proc/stat), and this process's and its children's."""
    import resource

    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    own = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for f in ("ru_utime", "ru_stime"))
    return busy, own


def wait_for_quiet(limit_s: float = 120.0, window_s: float = 2.0) -> float:
    """Waits (at most ``limit_s``) until other processes keep under a tenth of a core busy over
    ``window_s``, so that a timed run starts on a quiet machine; returns the seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit_s:
        try:
            before = _busy_and_own()
        except OSError:
            break
        time.sleep(window_s)
        if (others_cores(before, window_s) or 0.0) < 0.1:
            break
    return round(time.perf_counter() - start, 1)


def others_cores(before: tuple[float, float], seconds: float) -> float | None:
    """How many cores other processes kept busy on average since ``before`` (None off Linux)."""
    try:
        busy, own = _busy_and_own()
    except OSError:
        return None
    return round(max(0.0, ((busy - before[0]) - (own - before[1])) / max(seconds, 1e-9)), 2)


def train_rows(quick: bool) -> list[dict]:
    import dataclasses

    import numpy as np

    from sigdl_core.accelerate import DataParallel, train
    from sigdl_core.plugins import load_plugins

    os.environ["SIGDL_TORCH_THREADS"] = "1"  # the one-worker runs on one thread too
    registry = load_plugins().registry
    fw = registry.framework("torch")
    from sigdl_core.interfaces import TrainSettings

    cases = [
        ("lenet5", "mnist5k", (1, 28, 28), TrainSettings(epochs=1 if quick else 4, batch_size=64, lr=0.02, seed=0)),
        ("mobilenet", f"synthetic:3x{32 if quick else 96}x{32 if quick else 96}",
         (3, 32 if quick else 96, 32 if quick else 96), TrainSettings(epochs=1, batch_size=32, lr=0.01, seed=0)),
    ]
    rows = []
    for arch, dataset, shape, settings in cases:
        name, _, arg = dataset.partition(":")
        spec = registry.get("dataset", name)
        data = spec.loader(arg or None, 0)
        if arch == "mobilenet":  # a timing run on more samples than the loader's 64: 2 steps would time start-up
            keep = 256 if quick else 1024
            rng = np.random.default_rng(0)
            data = dataclasses.replace(data, x_train=rng.standard_normal((keep, *shape), dtype=np.float32),
                                       y_train=rng.integers(0, data.num_classes, keep))
        measured: dict[int, list[dict]] = {1: [], 2: []}
        for workers in (1, 2, 2, 1, 1, 2):  # three runs each, interleaved: the host's noise hits both alike
            model = fw.build(arch, shape, data.num_classes, seed=0)
            waited = wait_for_quiet()
            before = load()
            cpu = _busy_and_own()
            t0 = time.perf_counter()
            history = train(fw, model, data, settings, DataParallel(workers=workers))
            wall = round(time.perf_counter() - t0, 3)
            others = others_cores(cpu, wall)
            n = settings.epochs * len(data.y_train)
            if history.parallel:
                sps = history.parallel["samples_per_s"]
                where = history.parallel["seconds"]
                probe = history.parallel["probe"]
            else:
                sps, where, probe = round(n / history.seconds, 2), {"train": round(history.seconds, 3)}, None
            top1 = None if data.timing_only else fw.evaluate(model, data, "test").top1
            measured[workers].append({"samples_per_s": sps, "seconds": where, "wall_s": wall, "probe": probe,
                                      "test_top1": top1, "load": [before, load()], "others_cores": others,
                                      "waited_for_quiet_s": waited})
        best = {w: max(r["samples_per_s"] for r in measured[w]) for w in measured}
        walls = {w: min(r["wall_s"] for r in measured[w]) for w in measured}
        rows.append({"model": arch, "dataset": dataset, "samples": len(data.y_train), "settings": settings.to_dict(),
                     "runs": measured, "samples_per_s": best, "speedup": round(best[2] / best[1], 3),
                     "wall_s": walls, "wall_speedup": round(walls[1] / walls[2], 3),
                     "top1": {w: measured[w][0]["test_top1"] for w in measured}})
    return rows


def search_rows(quick: bool) -> list[dict]:
    """The default `sigdl run` (its built-in recipe; `--quick`: a candidate limit) with
    --jobs 1, --jobs 2 and a Dask LocalCluster of 2 one-thread workers, in the order
    1, 2, dask, dask, 2, 1; each configuration's faster run is kept."""
    from distributed import LocalCluster

    folder = Path(tempfile.mkdtemp(prefix="sigdl-bench-acc-"))
    recipe = []
    if quick:
        (folder / "recipe.yaml").write_text("limits: {max_candidates: 4}\n")
        recipe = [str(folder / "recipe.yaml")]
    # Dask's nanny sets its workers' environment in this process's os.environ (among others
    # MALLOC_TRIM_THRESHOLD_=65536, which made every later `sigdl run` here 30-40 % slower):
    # the runs get the environment from before the cluster
    environment = dict(os.environ)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", processes=True,
                           dashboard_address=None)
    configs = {"jobs 1": [], "jobs 2": ["--jobs", "2"],
               "dask LocalCluster, 2 workers": ["--cluster", cluster.scheduler_address]}
    order = ["jobs 1", "jobs 2", "dask LocalCluster, 2 workers"]
    runs: dict[str, list[dict]] = {label: [] for label in order}
    try:
        for n, label in enumerate(order + order[::-1]):
            out = folder / f"{n}-{label.replace(' ', '_').replace(',', '')}"
            waited = wait_for_quiet()
            before = load()
            cpu = _busy_and_own()
            t0 = time.perf_counter()
            proc = subprocess.run([str(SIGDL), "run", *recipe, "-o", str(out), "--json", "-q", *configs[label]],
                                  capture_output=True, text=True, cwd=ROOT, env=environment)
            wall = time.perf_counter() - t0
            others = others_cores(cpu, wall)
            if proc.returncode not in (0, 1):
                raise SystemExit(f"{label}: sigdl run failed: {proc.stderr[-800:]}")
            report = json.loads(proc.stdout)
            acc = report["acceleration"]
            runs[label].append({"others_cores": others, "label": label, "wall_s": round(wall, 2), "search_s": acc["search_seconds"],
                                "candidates": len(report["candidates"]),
                                "candidates_per_minute": acc["candidates_per_minute"],
                                "search_time": acc.get("search_time"),
                                "keys": [c["key"] for c in report["candidates"]],
                                "chosen_key": (report["chosen"] or {}).get("key"),
                                "chosen_ratio": (report["chosen"] or {}).get("ratio"), "load": [before, load()],
                                "waited_for_quiet_s": waited})
    finally:
        cluster.close()
    rows = []
    for label in order:
        best = dict(min(runs[label], key=lambda r: r["search_s"]))
        best["search_s_runs"] = [r["search_s"] for r in runs[label]]
        best["load"] = [x for r in runs[label] for x in r["load"]]
        rows.append(best)
    serial = rows[0]["search_s"]
    for r in rows:
        r["speedup"] = round(serial / r["search_s"], 3) if r["search_s"] else None
        r["same_candidates"] = r["keys"] == rows[0]["keys"]
    return rows


def main() -> None:
    quick = "--quick" in sys.argv[1:]
    only = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--only=")), None)
    start_load = load()
    kept = json.loads((RESULTS / "acceleration.json").read_text()) if only else {}
    training = kept["training"] if only == "search" else train_rows(quick)
    search = kept["search"] if only == "training" else search_rows(quick)
    command = "python bench/acceleration.py" + (" --quick" if quick else "")
    if only:
        command += f" (then --only={only}: the other part kept from the run before)"
    result = {"command": command, "quick": quick, "cpus": os.cpu_count(), "load_at_start": start_load,
              "training": training, "search": search,
              "same_choice": len({r["chosen_key"] for r in search}) == 1}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "acceleration.json").write_text(json.dumps(result, indent=2) + "\n")
    text = render(result)
    (RESULTS / "acceleration.md").write_text(text)
    print(text)


def render(result: dict) -> str:
    """acceleration.md from the recorded result (``--markdown`` rewrites it from acceleration.json)."""
    def workers_as_ints(value: object) -> object:  # JSON turned the worker counts (dict keys) into strings
        if isinstance(value, dict):
            return {int(k) if isinstance(k, str) and k.isdigit() else k: workers_as_ints(v) for k, v in value.items()}
        return [workers_as_ints(v) for v in value] if isinstance(value, list) else value

    result = workers_as_ints(result)
    training, search, command, quick = result["training"], result["search"], result["command"], result["quick"]
    loads = [x for r in training for w in r["runs"].values() for run in w for x in run["load"]]
    loads += [x for r in search for x in r["load"]]
    others = [run["others_cores"] for r in training for w in r["runs"].values() for run in w
              if run["others_cores"] is not None]
    quiet = bool(others) and max(others) <= 0.1
    lines = [
        f"`{command}` on {result['cpus']} cores. "
        + (f"Quiet machine during the training runs (other processes at most {max(others):.2f} cores); the load "
           f"average, {min(loads):.1f}-{max(loads):.1f}, counts the benchmark's own workers." if quiet else
           f"**Shared machine, load average {min(loads):.1f}-{max(loads):.1f}** during the runs: these speed-ups "
           "are not the machine's; rerun on a quiet machine.")
        + (" Reduced form (`--quick`): fewer epochs, samples and candidates." if quick else ""),
        "",
        "| training | samples/s, 1 worker | samples/s, 2 workers | speed-up | all-reduce / step (2 workers) | "
        "test top-1, 1 / 2 workers | wall s with start-up, 1 / 2 workers |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in training:
        probe = r["runs"][2][0]["probe"] or {}
        t1, t2 = r["top1"][1], r["top1"][2]
        acc = "—" if t1 is None else f"{100 * t1:.2f} % / {100 * t2:.2f} %"
        lines.append(f"| {r['model']} on `{r['dataset']}`, {r['samples']} samples x {r['settings']['epochs']} epochs | "
                     f"{r['samples_per_s'][1]:.0f} | {r['samples_per_s'][2]:.0f} | "
                     f"{r['speedup']:.2f}x | {probe.get('allreduce_per_step', '—')} | {acc} | "
                     f"{r['wall_s'][1]:.1f} / {r['wall_s'][2]:.1f} ({r['wall_speedup']:.2f}x) |")
    lines += ["", "samples/s is the training loop's (best of three runs each, in the order 1 2 2 1 1 2 workers); a worker's start-up (importing "
              "torch, the probe steps that warm its kernels and optimizer, the rendezvous) and the transfer of "
              "weights are the wall time's, in the last column."
              + (f" Other processes kept {min(others):.2f}-{max(others):.2f} cores busy during the training runs "
                 "(from /proc/stat, less this process's and its workers' CPU time)." if others else "")]
    lines += ["", "| search (the default `sigdl run`) | search s (both runs) | speed-up | candidates | "
              "candidates/min | pruning paths s | tails s | waiting s | re-testing s | launched ahead (unused) | "
              "wall s | chosen |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in search:
        t = r.get("search_time") or {}
        lines.append(f"| {r['label']} | {r['search_s']} ({', '.join(str(x) for x in r.get('search_s_runs', []))}) | "
                     f"{r.get('speedup', '—')}x | {r['candidates']} | {r['candidates_per_minute']} | "
                     f"{t.get('pruning_path_s', '—')} | {t.get('tails_s', '—')} | {t.get('waiting_for_workers_s', '—')} | "
                     f"{t.get('retesting_s', '—')} | {t.get('launched_ahead', '—')} ({t.get('launched_ahead_unused', '—')}) | "
                     f"{r['wall_s']} | `{r['chosen_key'][:16]}` ({r['chosen_ratio']:.1f}x) |")
    same = all(r.get("same_candidates", True) for r in search)
    lines += ["", f"Same candidates, in the same order, and the same chosen one with every executor: "
              f"**{'yes' if result['same_choice'] and same else 'NO'}**. With workers the search pipelines: "
              "each candidate's tail (quantization, coding, its validation test, its ONNX export) runs on a "
              "worker while this process computes the next candidate's pruning-path step, launched ahead by "
              "replaying the phase with a guessed answer. The pruning path itself is a chain (each rung "
              "retrains from the last one's weights), so its seconds bound the search whatever the number "
              "of jobs (docs/acceleration.md)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--markdown"]:
        (RESULTS / "acceleration.md").write_text(render(json.loads((RESULTS / "acceleration.json").read_text())))
    else:
        main()
