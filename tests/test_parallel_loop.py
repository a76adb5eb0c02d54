"""The loop with its independent work on executors: a local process pool and a real Dask
LocalCluster (scheduler and workers on 127.0.0.1), against the serial run; workers lost."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

pytest.importorskip("sigdl_framework_torch")
pytest.importorskip("sigdl_compress_prune")
pytest.importorskip("sigdl_datasets")  # digits
distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow

RECIPE = """\
model: lenet300100
dataset: digits
train: {epochs: 2}
compress: {chain: [prune], retrain: {epochs: 1}}
targets: []
budget: {max_accuracy_drop: 5.0, min_fps: null}
search: {sensitivity: [0.5, 0.9], allocation: sensitivity}
limits: {max_candidates: 2, max_seconds: 300}
"""


@pytest.fixture(scope="module")
def local_cluster():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", processes=True,
                                       dashboard_address=None)
    yield cluster
    cluster.close()


def _run(sigdl_cli, folder: Path, *flags: str) -> dict:
    recipe = folder / "recipe.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    recipe.write_text(RECIPE)
    result = sigdl_cli(["run", str(recipe), "-o", str(folder / "run"), "--json", *flags])
    assert result.exit_code in (0, 1), result.output[-2000:]
    report = json.loads(result.stdout)
    report["sensitivity"] = json.loads((folder / "run" / "sensitivity.json").read_text())["curves"]
    return report


def test_a_small_loop_on_a_pool_and_a_local_cluster_equals_the_serial_run(sigdl_cli, tmp_path,
                                                                         local_cluster) -> None:
    serial = _run(sigdl_cli, tmp_path / "serial")
    pool = _run(sigdl_cli, tmp_path / "pool", "--jobs", "2")
    dask = _run(sigdl_cli, tmp_path / "dask", "--cluster", local_cluster.scheduler_address)
    for other in (pool, dask):
        assert other["sensitivity"] == serial["sensitivity"]
        assert [c["key"] for c in other["candidates"]] == [c["key"] for c in serial["candidates"]]
        assert other["chosen"]["key"] == serial["chosen"]["key"]
        assert other["chosen"]["accuracy"] == serial["chosen"]["accuracy"]  # sharded test split: exact
    assert pool["acceleration"]["jobs"] == 2 and dask["acceleration"]["cluster"] == local_cluster.scheduler_address
    assert serial["acceleration"]["parallel_parts"] == [] and pool["acceleration"]["parallel_parts"]


PIPELINE_RECIPE = """\
model: lenet300100
dataset: digits
train: {epochs: 2}
compress:
  chain: [prune, quant, encode]
  params: {quant: {bits_conv: 8, bits_fc: 5}}
  retrain: {epochs: 1}
targets: [atom-x5-e3930]
budget: {max_accuracy_drop: 3.0, min_fps: null}
limits: {max_candidates: 9, max_seconds: 300}
"""


def test_the_pipelined_search_tries_and_chooses_what_the_serial_one_does(sigdl_cli, tmp_path, local_cluster) -> None:
    """The default search (a pruning path, quantization, coding, an executing target) with its
    candidates' tails on workers and candidates launched ahead of the phase's questions: the
    same candidates, figures and choice as serially; the one graph is timed alone."""
    pytest.importorskip("sigdl_compress_quant")
    pytest.importorskip("sigdl_target_atom")
    runs = {}
    for name, flags in (("serial", ()), ("pool", ("--jobs", "2")),
                        ("dask", ("--cluster", local_cluster.scheduler_address))):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "recipe.yaml").write_text(PIPELINE_RECIPE)
        result = sigdl_cli(["run", str(folder / "recipe.yaml"), "-o", str(folder / "run"), "--json", *flags])
        assert result.exit_code in (0, 1), result.output[-2000:]
        runs[name] = json.loads(result.stdout)
    serial = runs["serial"]
    figures = ("key", "phase", "validation_accuracy", "paired", "artifact_bytes", "ratio", "emulated")
    assert {c["phase"] for c in serial["candidates"]} >= {"strength", "bits"}
    for name in ("pool", "dask"):
        other = runs[name]
        assert [[c.get(f) for f in figures] for c in other["candidates"]] == \
            [[c.get(f) for f in figures] for c in serial["candidates"]], name
        assert other["chosen"]["key"] == serial["chosen"]["key"]
        timed = [c for c in other["candidates"] if "timed_alone" in c]
        assert len(timed) == 1 and timed[0]["timed_alone"] is True  # one graph: timed once, alone
        ours = timed[0]["targets"]["atom-x5-e3930"]["latency_ms_p50"]
        theirs = serial["candidates"][0]["targets"]["atom-x5-e3930"]["latency_ms_p50"]
        assert 0.5 < ours / theirs < 2.0, (ours, theirs)  # the same measurement, not one taken under load
    for c in serial["candidates"][1:]:
        if c["emulated"]:
            assert c["targets"]["atom-x5-e3930"]["latency_ms_p50"] == serial["candidates"][0]["targets"][
                "atom-x5-e3930"]["latency_ms_p50"]  # one graph: later candidates reuse its timing


def _slow_square(k: int) -> int:
    time.sleep(1.5)
    return k * k


def test_a_dask_worker_killed_mid_task_has_its_task_retried(local_cluster) -> None:
    from sigdl_core.parallel import map_ordered, open_executor

    with open_executor(cluster=local_cluster.scheduler_address) as executor:
        client = executor._client
        killed = []

        def kill_one(_i: int, _r: int) -> None:
            if not killed:  # at the first result, the other worker is mid-task: kill its process
                processing = client.processing()
                pids = client.run(os.getpid)
                victim = next((a for a, keys in processing.items() if keys), next(iter(pids)))
                pid = pids[victim]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        results = map_ordered(executor, _slow_square, [(k,) for k in range(6)], on_result=kill_one)
    assert killed and results == [k * k for k in range(6)]


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_sigkill_of_the_driver_during_a_parallel_search_then_resume_loses_and_redoes_nothing(
        sigdl_cli, tmp_path) -> None:
    import subprocess
    import sys

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE.replace("max_candidates: 2", "max_candidates: 3"))
    killed = tmp_path / "killed"
    sigdl = Path(sys.executable).with_name("sigdl")
    proc = subprocess.Popen([str(sigdl), "run", str(recipe), "-o", str(killed), "-q", "--jobs", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and len(list((killed / "candidates").glob("*.json"))) < 1:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    workers = _children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    gone = time.time() + 10  # the pool's workers end with their driver instead of waiting forever
    while time.time() < gone and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "pool workers outlived the driver"
    before = {p.name: p.read_bytes() for p in (killed / "candidates").glob("*.json")}
    assert before and (killed / "sensitivity.json").is_file()  # the parallel grid was finished and kept
    grid = (killed / "sensitivity.json").read_bytes()

    resumed = sigdl_cli(["run", "--resume", str(killed), "--json"])
    assert resumed.exit_code in (0, 1), resumed.output[-3000:]
    report = json.loads(resumed.stdout)
    for name, content in before.items():  # finished candidates were neither redone nor lost
        assert (killed / "candidates" / name).read_bytes() == content
    assert (killed / "sensitivity.json").read_bytes() == grid
    fresh = sigdl_cli(["run", str(recipe), "-o", str(tmp_path / "fresh"), "--json"])
    expected = json.loads(fresh.stdout)
    assert [c["key"] for c in report["candidates"]] == [c["key"] for c in expected["candidates"]]
    assert report["chosen"]["key"] == expected["chosen"]["key"]


def test_the_loops_retraining_runs_data_parallel_and_keeps_the_masks(sigdl_cli, tmp_path, monkeypatch) -> None:
    import numpy as np

    import sigdl_core.accelerate as accelerate
    from sigdl_core.artifact import load_weights

    real, records = accelerate.train, []

    def recording(*args, **kwargs):  # the real training; records what each call did
        history = real(*args, **kwargs)
        records.append((kwargs.get("projection") is not None, history.parallel))
        return history

    monkeypatch.setattr(accelerate, "train", recording)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model: lenet300100\ndataset: digits\ntrain: {epochs: 1}\n"
                      "compress: {chain: [prune], params: {prune: {sparsity: 0.6}}, retrain: {epochs: 1}}\n"
                      "targets: []\nbudget: {max_accuracy_drop: 50.0, min_fps: null}\nsearch: {strategy: fixed}\n"
                      "accelerate: {train_workers: 2}\n")
    result = sigdl_cli(["run", str(recipe), "-o", str(tmp_path / "run"), "--json"])
    assert result.exit_code in (0, 1), result.output[-2000:]
    report = json.loads(result.stdout)
    retrained = [par for has_projection, par in records if has_projection]
    assert retrained and all(p is not None and p["world_size"] == 2 for p in retrained)
    assert all(len(set(p["rank_digests"])) == 1 for p in retrained)
    assert report["acceleration"]["train_workers"] == 2
    weights, _ = load_weights(tmp_path / "run" / "model.sigdl")
    fc = weights["fc1.weight"]
    assert abs(float(np.mean(fc == 0)) - 0.6) < 0.02  # the mask held through data-parallel retraining
