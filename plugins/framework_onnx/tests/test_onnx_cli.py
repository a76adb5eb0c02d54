"""`sigdl compress model.onnx` and `sigdl run model.onnx` through the CLI, with the installed
compressors and targets (skipped where they are not installed).

Post-training mode is tested with the torch plugin switched off (``SIGDL_DISABLE_PLUGINS``),
which is what an installation without it sees.
"""

from __future__ import annotations

import json

import onnx
import pytest

pytest.importorskip("sigdl_compress_prune")
pytest.importorskip("sigdl_compress_quant")

from sigdl_framework_onnx.framework import NEEDS_TORCH  # noqa: E402

DATASET = "onnx-digits"  # registered by the digits_plugin fixture (conftest.py)
COMPRESS = ["--with", "prune,quant,encode", "-p", "prune.sparsity=0.7", "--dataset", DATASET]


def test_compress_without_torch_is_post_training(sigdl_cli, mlp_onnx, digits_plugin, tmp_path, monkeypatch):
    monkeypatch.setenv("SIGDL_DISABLE_PLUGINS", "framework_torch")
    out = tmp_path / "out"
    result = sigdl_cli(["compress", str(mlp_onnx), *COMPRESS, "-o", str(out)],
                       plugins=[digits_plugin], entry_points=True)
    assert result.exit_code == 0, result.output
    assert "post-training: no retraining" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["retraining"].startswith(f"post-training: no retraining ({NEEDS_TORCH}")
    assert summary["ratio"] > 5
    onnx.checker.check_model(onnx.load(str(out / "model.onnx")))
    # asking for retraining explicitly is one line, exit 2
    again = sigdl_cli(["compress", str(mlp_onnx), *COMPRESS, "-o", str(tmp_path / "again"), "--retrain-epochs", "2", "-q"],
                      plugins=[digits_plugin], entry_points=True)
    text = again.output.strip()
    assert again.exit_code == 2 and len(text.splitlines()) == 1 and NEEDS_TORCH in text, text


def test_compress_with_torch_retrains(sigdl_cli, mlp_onnx, digits_plugin, tmp_path):
    pytest.importorskip("sigdl_framework_torch")
    out = tmp_path / "out"
    result = sigdl_cli(["compress", str(mlp_onnx), *COMPRESS, "-o", str(out), "--retrain-epochs", "1", "--json"],
                       plugins=[digits_plugin], entry_points=True)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["retraining"] is None and summary["ratio"] > 5


@pytest.mark.slow
def test_sigdl_run_model_onnx_meets_an_easy_budget(sigdl_cli, mlp_onnx, digits_plugin, tmp_path, monkeypatch):
    pytest.importorskip("sigdl_target_atom")
    monkeypatch.setenv("SIGDL_DISABLE_PLUGINS", "framework_torch")  # post-training: no retraining
    run = tmp_path / "run"
    result = sigdl_cli(["run", str(mlp_onnx), "--dataset", DATASET, "--max-drop", "5", "-o", str(run)],
                       plugins=[digits_plugin], entry_points=True)
    assert result.exit_code == 0, result.output
    report = json.loads((run / "report.json").read_text())
    assert report["met"] and report["model"]["framework"] == "onnx"
    assert report["retraining"].startswith("post-training: no retraining")
    assert "Post-training: no retraining" in (run / "report.md").read_text()
    assert report["chosen"]["ratio"] > 2
    onnx.checker.check_model(onnx.load(str(run / "model.onnx")))
