"""The loop's retraining distils from the baseline (real torch, scikit-learn's digits)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("sigdl_framework_torch")
pytest.importorskip("sigdl_compress_prune")


def _run(sigdl_cli, tmp_path, distill: str) -> tuple[dict, dict]:
    recipe = tmp_path / f"recipe-{distill}.yaml"
    recipe.write_text("model: lenet300100\ndataset: digits\ntrain: {epochs: 3}\n"
                      "compress: {chain: [prune], params: {prune: {sparsity: 0.95}}, "
                      f"retrain: {{epochs: 2, distill: {distill}, temperature: 3}}}}\n"
                      "search: {strategy: fixed}\ntargets: []\nbudget: {max_accuracy_drop: null, min_fps: null}\n")
    out = tmp_path / f"run-{distill}"
    result = sigdl_cli(["run", str(recipe), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.stderr[-2000:]
    from sigdl_core.artifact import load_weights

    return json.loads(result.stdout), load_weights(out / "model.sigdl")[0]


def test_retraining_distils_from_the_baseline_and_says_so(sigdl_cli, tmp_path) -> None:
    distilled, w_distilled = _run(sigdl_cli, tmp_path, "0.9")
    labels, w_labels = _run(sigdl_cli, tmp_path, "0")
    assert distilled["distillation"] == {"teacher": "baseline", "weight": 0.9, "temperature": 3.0}
    assert labels["distillation"] is None
    # the same baseline, pruned alike; only the retraining loss differs
    assert distilled["baseline"]["accuracy"] == labels["baseline"]["accuracy"]
    assert not np.array_equal(w_distilled["fc1.weight"], w_labels["fc1.weight"])
    assert np.array_equal(w_distilled["fc1.weight"] == 0, w_labels["fc1.weight"] == 0)
    report_md = (tmp_path / "run-0.9" / "report.md").read_text()
    assert "Retraining distilled from the baseline (soft-target weight 0.9, temperature 3)" in report_md


@pytest.mark.parametrize("value,allowed", [("distill: 1.5", "less than or equal to 1"), ("temperature: 0", "greater than 0")])
def test_bad_distillation_settings_are_one_line_before_any_work(sigdl_cli, tmp_path, value, allowed) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"model: lenet300100\ndataset: digits\ncompress: {{chain: [prune], retrain: {{{value}}}}}\n")
    result = sigdl_cli(["run", str(recipe), "-o", str(tmp_path / "run")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "compress.retrain." + value.split(":")[0] in lines[0], lines
    assert allowed in lines[0]
    assert not (tmp_path / "run").exists()
