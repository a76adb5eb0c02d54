"""The CLI and the loop, through the real plugin machinery and a real (NumPy) framework."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest


@pytest.fixture
def plain(tmp_path) -> str:
    """A recipe that only trains and tests: no compressors, no targets."""
    path = tmp_path / "plain.yaml"
    path.write_text("model: softmax\ndataset: digits-flat\ncompress: {chain: []}\ntargets: []\n")
    return str(path)


def one_error_line(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def test_run_writes_the_run_folder_and_fires_every_hook(sigdl_cli, numpy_plugin, plain, tmp_path) -> None:
    out = tmp_path / "run"
    result = sigdl_cli(["run", plain, "--model", "softmax", "--dataset", "digits-flat", "--epochs", "8",
                        "--lr", "0.5", "--out", str(out), "--json"], plugins=[numpy_plugin])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["baseline"]["accuracy"] > 0.90
    assert report["baseline"]["parameters"] == 650
    assert report["met"] is True
    for name in ("baseline.npz", "model.onnx", "report.json", "report.md", "report.html", "recipe.json"):
        assert (out / name).is_file(), name
    onnx.checker.check_model(onnx.load(out / "model.onnx"))
    assert json.loads((out / "report.json").read_text())["baseline"] == report["baseline"]
    assert "## Baseline" in (out / "report.md").read_text()
    stages = [s for kind, s in numpy_plugin.EVENTS if kind == "started"]
    assert stages == ["load", "train", "validate", "test", "export", "report"]
    assert [s for kind, s in numpy_plugin.EVENTS if kind == "finished"] == stages
    assert numpy_plugin.EVENTS[-1] == ("run_finished", str(out))


def test_run_then_test_the_saved_model(sigdl_cli, numpy_plugin, plain, tmp_path) -> None:
    out = tmp_path / "run"
    assert sigdl_cli(["run", plain, "--epochs", "3", "--lr", "0.5",
                      "-o", str(out), "-q"], plugins=[numpy_plugin]).exit_code == 0
    result = sigdl_cli(["test", str(out / "baseline.npz"), "--dataset", "digits-flat", "--json"],
                       plugins=[numpy_plugin])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["accuracy"]["top1"] > 0.85


def test_run_from_a_recipe_file_with_a_flag_overriding_it(sigdl_cli, numpy_plugin, tmp_path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model: softmax\ndataset: digits-flat\ntrain:\n  epochs: 1\n  lr: 0.5\n"
                      "compress: {chain: []}\ntargets: []\n")
    result = sigdl_cli(["run", str(recipe), "--epochs", "2", "-o", str(tmp_path / "r"), "--json"],
                       plugins=[numpy_plugin])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["recipe"]["train"]["epochs"] == 2
    assert report["recipe"]["train"]["lr"] == 0.5
    assert len(report["baseline"]["train"]["loss"]) == 2


def test_listings_show_the_plugins_specs(sigdl_cli, numpy_plugin) -> None:
    models = sigdl_cli(["models", "--json"], plugins=[numpy_plugin])
    assert json.loads(models.stdout)[0]["name"] == "softmax"
    table = sigdl_cli(["datasets"], plugins=[numpy_plugin])
    assert "digits-flat" in table.stdout
    plugins = json.loads(sigdl_cli(["plugins", "--json"], plugins=[numpy_plugin]).stdout)["plugins"]
    assert plugins[0]["hooks"] == ["sigdl_datasets", "sigdl_frameworks", "sigdl_models",
                                   "sigdl_run_finished", "sigdl_stage_finished", "sigdl_stage_started"]


@pytest.mark.parametrize("args, words", [
    (["run", "--model", "resnet9000", "-d", "digits-flat"], "unknown model 'resnet9000'"),
    (["run", "--model", "softmax", "-d", "imagenet"], "unknown dataset 'imagenet'"),
    (["run", "--model", "softmax", "-d", "digits-flat", "--optimizer", "rmsprop"], "optimizer"),
    (["run", "--model", "softmax", "-d", "digits-flat", "--epochs", "-1"], "epochs"),
    (["run", "--no-such-flag"], "No such option"),
    (["frobnicate"], "No such command"),
    (["test", "missing.npz", "-d", "digits-flat"], "does not exist"),
    (["test", "model.pt", "-d", "digits-flat"], "no installed framework reads"),
])
def test_bad_input_gets_one_line_and_exit_2(sigdl_cli, numpy_plugin, plain, tmp_path, monkeypatch, args, words) -> None:
    monkeypatch.chdir(tmp_path)
    Path("model.pt").write_bytes(b"not a model")
    if args[0] == "run" and len(args) > 2:
        args = ["run", plain, *args[1:]]
    line = one_error_line(sigdl_cli(args, plugins=[numpy_plugin]))
    assert words in line


def test_corrupt_model_file_gets_one_line(sigdl_cli, numpy_plugin, tmp_path) -> None:
    bad = tmp_path / "model.npz"
    bad.write_bytes(b"PK\x03\x04 truncated zip")
    assert "is not a numpy model" in one_error_line(
        sigdl_cli(["test", str(bad), "-d", "digits-flat"], plugins=[numpy_plugin]))


@pytest.mark.parametrize("text, words", [
    ("model: softmax\nepochz: 3\n", "unknown recipe key 'epochz'"),
    ("train:\n  epocs: 3\n", "unknown recipe key 'train.epocs'; did you mean 'epochs'?"),
    ("train:\n  epochs: three\n", "'train.epochs' is 'three', expected a whole number"),
    ("train:\n  epochs: true\n", "expected a whole number"),
    ("train:\n  optimizer: 3\n", "'train.optimizer' is 3, expected text"),
    ("train:\n  schedule: 3\n", "'train.schedule' is 3, expected text"),
    ("search:\n  strategy: greedy\n", "allowed: auto, fixed"),
    ("- just\n- a list\n", "must be a mapping"),
    ("model: [unclosed\n", "is not valid YAML"),
])
def test_bad_recipes_are_rejected_before_any_work(sigdl_cli, numpy_plugin, tmp_path, text, words) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text)
    out = tmp_path / "never"
    line = one_error_line(sigdl_cli(["run", str(recipe), "-o", str(out)], plugins=[numpy_plugin]))
    assert words in line
    assert not out.exists()


def test_example_recipe_is_a_valid_recipe(sigdl_cli, tmp_path) -> None:
    from sigdl_core.recipe import Recipe

    text = sigdl_cli(["run", "--example"]).stdout
    path = tmp_path / "example.yaml"
    path.write_text(text)
    assert Recipe.from_file(path).to_mapping() == Recipe.default().to_mapping()


def test_toml_recipes_are_read_too(tmp_path) -> None:
    from sigdl_core.recipe import Recipe

    path = tmp_path / "r.toml"
    path.write_text('model = "lenet5"\n[train]\nepochs = 3\n')
    r = Recipe.from_file(path)
    assert (r.model, r.train.epochs) == ("lenet5", 3)


def test_no_arguments_prints_help_and_version_works(sigdl_cli) -> None:
    assert "Usage" in sigdl_cli([]).stdout
    assert sigdl_cli(["--version"]).stdout.startswith("sigdl ")


@pytest.mark.parametrize("text, words", [
    ("compress: {chain: [prune], params: {quant: {bits: 4}}}\n", "'compress.params.quant' names a compressor not in the chain"),
    ("compress: {chain: [3]}\n", "must be a list of names"),
    ("budget: {min_fps: -5}\n", "budget 'min_fps' is -5"),
    ("budget: {min_fpz: 5}\n", "did you mean 'min_fps'?"),
    ("search: {sensitivity: [0.5, 1.5]}\n", "strictly between 0 and 1"),
    ("limits: {max_candidates: 0}\n", "max_candidates"),
    ("targets: [no-such-board]\ncompress: {chain: []}\n", "unknown target 'no-such-board'"),
    ("compress: {chain: [no-such-compressor]}\ntargets: []\n", "unknown compressor 'no-such-compressor'"),
])
def test_bad_loop_recipes_are_rejected_before_any_work(sigdl_cli, numpy_plugin, tmp_path, text, words) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model: softmax\ndataset: digits-flat\n" + text)
    out = tmp_path / "never"
    assert words in one_error_line(sigdl_cli(["run", str(recipe), "-o", str(out)], plugins=[numpy_plugin]))
    assert not out.exists()


def test_train_with_a_seed_is_deterministic(sigdl_cli, numpy_plugin, tmp_path) -> None:
    runs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.npz"
        result = sigdl_cli(["train", "-m", "softmax", "-d", "digits-flat", "--epochs", "2", "--lr", "0.5",
                            "--seed", "7", "-o", str(out), "--json"], plugins=[numpy_plugin])
        assert result.exit_code == 0, result.stderr
        runs.append(json.loads(result.stdout)["train"]["loss"])
    assert runs[0] == runs[1]


def test_a_fresh_run_into_a_used_folder_forgets_the_old_run(sigdl_cli, numpy_plugin, tmp_path) -> None:
    from sigdl_core.runstore import RunStore

    out = tmp_path / "run"
    stale = {"index": 1, "key": "stale", "ratio": 1000.0, "met": True, "accuracy": 1.0}
    RunStore(out).add(stale)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: softmax\ndataset: digits-flat\ncompress: {chain: []}\ntargets: []\n")
    result = sigdl_cli(["run", str(recipe), "-o", str(out), "--json"], plugins=[numpy_plugin])
    assert result.exit_code == 0, result.stderr
    assert not (out / "candidates").exists()
    assert RunStore(out).lookup("stale") is None
