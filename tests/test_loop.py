"""The loop end to end: real compressors, a real target emulator, a real (NumPy) framework.

Cross-plugin integration tests: they need sigdl-compress-prune, sigdl-compress-quant and
sigdl-target-atom installed (``make test`` installs every plugin).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("sigdl_compress_prune")
pytest.importorskip("sigdl_compress_quant")
pytest.importorskip("sigdl_target_atom")

pytestmark = pytest.mark.slow

RECIPE = """\
model: softmax
dataset: digits-flat
train: {{epochs: 6, lr: 0.5, schedule: constant}}
compress:
  chain: [prune, quant, encode]
  retrain: {{epochs: 2, lr: 0.2}}
targets: [atom-x5-e3930]
budget: {budget}
search: {{sensitivity: [0.5, 0.8, 0.9], bisection_steps: 1}}
limits: {{max_candidates: {max_candidates}, max_seconds: 300}}
"""


def write_recipe(folder: Path, budget: str = "{max_accuracy_drop: 3.0}", max_candidates: int = 6) -> Path:
    path = folder / "recipe.yaml"
    path.write_text(RECIPE.format(budget=budget, max_candidates=max_candidates))
    return path


def run(sigdl_cli, numpy_plugin, *args: str):
    return sigdl_cli(["run", *args], plugins=[numpy_plugin], entry_points=True)


def test_an_easy_budget_is_met_with_exit_0_and_every_output(sigdl_cli, numpy_plugin, tmp_path) -> None:
    out = tmp_path / "run"
    result = run(sigdl_cli, numpy_plugin, str(write_recipe(tmp_path)), "-o", str(out), "--json")
    assert result.exit_code == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["met"] is True and report["shortfalls"] == []
    chosen = report["chosen"]
    assert chosen["met"] and chosen["ratio"] > 4
    assert chosen["accuracy"] >= report["baseline"]["accuracy"] - 0.03
    target = chosen["targets"]["atom-x5-e3930"]
    for key in ("fps", "latency_ms_p50", "latency_ms_p95", "power_w", "energy_mj"):
        assert isinstance(target[key], float) and target[key] > 0, key
    assert target["provenance"]["latency_ms_p50"]["method"] in {"executed", "analytical", "bit-exact"}
    assert len(report["candidates"]) >= 2
    assert {c["phase"] for c in report["candidates"]} >= {"strength"}
    for name in ("model.sigdl", "model.onnx", "report.json", "report.md", "report.html", "recipe.json",
                 "baseline.npz"):
        assert (out / name).is_file(), name
    # the artifact is what the report says, and it decodes to the chosen model's accuracy
    assert (out / "model.sigdl").stat().st_size == chosen["artifact_bytes"]
    test = sigdl_cli(["test", str(out / "model.onnx"), "--target", "atom-x5-e3930", "-d", "digits-flat", "--json"],
                     plugins=[numpy_plugin], entry_points=True)
    assert test.exit_code == 0, test.stderr
    assert json.loads(test.stdout)["targets"]["atom-x5-e3930"]["accuracy"]["top1"] == pytest.approx(chosen["accuracy"])
    # plots are real PNG images
    from PIL import Image

    assert set(report["plots"]) == {"accuracy_vs_ratio", "layers", "targets"}
    for rel in report["plots"].values():
        with Image.open(out / rel) as img:
            assert img.format == "PNG" and img.size[0] > 300
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3


def test_an_impossible_budget_exits_1_saves_the_best_and_names_the_limit(sigdl_cli, numpy_plugin, tmp_path) -> None:
    out = tmp_path / "run"
    recipe = write_recipe(tmp_path, budget="{max_accuracy_drop: 3.0, min_fps: 1.0e12}", max_candidates=3)
    result = run(sigdl_cli, numpy_plugin, str(recipe), "-o", str(out))
    assert result.exit_code == 1, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["met"] is False
    assert report["chosen"] is not None and (out / "model.sigdl").is_file() and (out / "model.onnx").is_file()
    fps = [s for s in report["shortfalls"] if s["limit"] == "fps"]
    assert fps and fps[0]["target"] == "atom-x5-e3930" and fps[0]["by"] > 0
    assert "missed by" in fps[0]["text"]
    assert "missed: fps on atom-x5-e3930" in result.stdout
    assert "NOT met" in (out / "report.md").read_text()


DRIVER = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("sigdl_tests_numpy_plugin", {plugin!r})
module = importlib.util.module_from_spec(spec); sys.modules[spec.name] = module; spec.loader.exec_module(module)
from sigdl_core.cli import main, use_plugins
with use_plugins([("numpy_plugin", module)], entry_points=True):
    main(sys.argv[1:])
"""


def test_resume_after_sigkill_redoes_and_loses_no_candidate(sigdl_cli, numpy_plugin, tmp_path) -> None:
    recipe = write_recipe(tmp_path, max_candidates=5)
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(DRIVER.format(plugin=str(Path(__file__).with_name("numpy_plugin.py")))))
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(driver), "run", str(recipe), "-o", str(killed), "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and len(list((killed / "candidates").glob("*.json"))) < 2:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p.name: p.read_bytes() for p in (killed / "candidates").glob("*.json")}
    assert len(before) >= 2

    resumed = run(sigdl_cli, numpy_plugin, "--resume", str(killed), "--json")
    assert resumed.exit_code == 0, resumed.stderr[-3000:]
    report = json.loads(resumed.stdout)
    for name, content in before.items():  # finished candidates were neither redone nor lost
        assert (killed / "candidates" / name).read_bytes() == content
    fresh = run(sigdl_cli, numpy_plugin, str(recipe), "-o", str(tmp_path / "fresh"), "--json")
    expected = json.loads(fresh.stdout)
    assert [c["key"] for c in report["candidates"]] == [c["key"] for c in expected["candidates"]]
    assert ([c["validation_accuracy"] for c in report["candidates"]]
            == [c["validation_accuracy"] for c in expected["candidates"]])
    assert report["chosen"]["key"] == expected["chosen"]["key"]


def test_resume_of_a_folder_without_a_run_is_bad_input(sigdl_cli, numpy_plugin, tmp_path) -> None:
    result = run(sigdl_cli, numpy_plugin, "--resume", str(tmp_path))
    assert result.exit_code == 2 and "holds no run to resume" in result.stderr


def test_compress_runs_gradual_pruning_through_the_loops_retraining(sigdl_cli, numpy_plugin, tmp_path) -> None:
    out = tmp_path / "agp"
    result = sigdl_cli(["compress", "softmax", "-d", "digits-flat", "--epochs", "4", "--with", "prune,encode",
                        "-p", "prune.sparsity=0.8", "-p", "prune.agp_steps=3", "-p", "prune.initial_sparsity=0.3",
                        "--retrain-epochs", "1", "-o", str(out), "--json"],
                       plugins=[numpy_plugin], entry_points=True)
    assert result.exit_code == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["layers"]["fc.weight"]["kept"] == round(0.2 * 640)
    # the baseline trained once (4 epochs); then the loop's retraining ran at every AGP step
    # (without the schedule there would be one retrain after the prune stage: 2 calls in all)
    assert numpy_plugin.TRAIN_CALLS[0] == 4
    assert len(numpy_plugin.TRAIN_CALLS) >= 1 + 3
