"""The loop decides on the validation split and only reports the test split.

Real compressors, the real Atom emulator and the real (NumPy) framework of
``tests/numpy_plugin.py``; the plot checks draw real matplotlib figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sigdl_core.interfaces import ArrayDataset

RECIPE = """\
model: softmax
dataset: digits-flat
validation: {validation}
train: {{epochs: 4, lr: 0.5, schedule: constant}}
compress:
  chain: [prune, quant, encode]
  retrain: {{epochs: 1, lr: 0.2}}
targets: [atom-x5-e3930]
budget: {{max_accuracy_drop: 3.0}}
search: {{sensitivity: [0.5, 0.8], bisection_steps: 1}}
limits: {{max_candidates: 3, max_seconds: 300}}
"""


def _recipe(folder: Path, validation: float = 0.2) -> Path:
    path = folder / "recipe.yaml"
    path.write_text(RECIPE.format(validation=validation))
    return path


def _needs_loop_plugins() -> None:
    pytest.importorskip("sigdl_compress_prune")
    pytest.importorskip("sigdl_compress_quant")
    pytest.importorskip("sigdl_target_atom")


def test_the_validation_split_is_deterministic_and_disjoint_from_train_and_test(numpy_plugin, tmp_path) -> None:
    from sigdl_core.loop import Session, SilentObserver
    from sigdl_core.plugins import load_plugins
    from sigdl_core.recipe import Recipe

    plugins = load_plugins(extra=[("numpy_plugin", numpy_plugin)], entry_points=False)
    recipe = Recipe.from_file(_recipe(tmp_path))
    first = Session(plugins, recipe, tmp_path / "a", SilentObserver()).load_data()
    again = Session(plugins, recipe, tmp_path / "b", SilentObserver()).load_data()
    assert first.y_val is not None and len(first.y_val) == pytest.approx(0.2 * 1437, abs=10)
    for a, b in ((first.x_train, again.x_train), (first.x_val, again.x_val), (first.x_test, again.x_test)):
        assert np.array_equal(a, b)  # the same split in every run under one seed
    other = Session(plugins, Recipe.from_mapping({**recipe.to_mapping(), "seed": 1}), tmp_path / "c",
                    SilentObserver()).load_data()
    assert not np.array_equal(first.x_val, other.x_val)  # and another one under another seed

    # disjoint: number every training sample, carve as the loop does, and look at the numbers
    ids = np.arange(100, dtype=np.float32)[:, None]
    labelled = ArrayDataset("ids", ids, np.arange(100) % 5, ids[:20] + 1000, np.arange(20) % 5, 5)
    carved = labelled.with_validation(0.2, seed=0)
    train, val, test = (set(carved.x_train[:, 0]), set(carved.x_val[:, 0]), set(carved.x_test[:, 0]))
    assert len(val) == 20 and len(train) == 80 and train | val == set(range(100))
    assert not train & val and not val & test and not train & test


def test_report_gives_validation_and_test_and_the_targets_saw_validation(sigdl_cli, numpy_plugin, tmp_path) -> None:
    _needs_loop_plugins()
    out = tmp_path / "run"
    result = sigdl_cli(["run", str(_recipe(tmp_path)), "-o", str(out), "--json"], plugins=[numpy_plugin],
                       entry_points=True)
    assert result.exit_code == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    base, chosen = report["baseline"], report["chosen"]
    for record in (base, chosen):
        assert 0 < record["validation_accuracy"] <= 1 and 0 < record["accuracy"] <= 1
    assert report["dataset"]["validation"] == report["decided_on"]["samples"] > 0
    assert report["budget_floor"] == pytest.approx(base["validation_accuracy"] - 0.03)
    for cand in report["candidates"]:  # every decision figure is a validation one
        assert "accuracy" not in cand and cand["validation_accuracy"] is not None
    # the emulator re-tested the chosen model on the validation split too
    target = chosen["targets"]["atom-x5-e3930"]
    assert target["accuracy"]["samples"] == report["decided_on"]["samples"]
    assert target["accuracy"]["top1"] == pytest.approx(chosen["validation_accuracy"])
    # the test figure is the chosen model's own, as `sigdl test` measures it
    test = sigdl_cli(["test", str(out / "model.onnx"), "-d", "digits-flat", "--json"], plugins=[numpy_plugin],
                     entry_points=True)
    assert json.loads(test.stdout)["accuracy"]["top1"] == pytest.approx(chosen["accuracy"])
    md = (out / "report.md").read_text()
    assert "top-1 validation (decided)" in md and "top-1 test (reported)" in md
    assert "taken on the validation split" in md


def test_a_search_that_reads_the_test_split_fails_the_run(sigdl_cli, numpy_plugin, tmp_path, monkeypatch) -> None:
    _needs_loop_plugins()
    import sigdl_core.search as search

    monkeypatch.setattr(search, "DECISION_SPLIT", "test")  # a search strategy gone wrong
    result = sigdl_cli(["run", str(_recipe(tmp_path)), "-o", str(tmp_path / "run")], plugins=[numpy_plugin],
                       entry_points=True)
    assert result.exit_code == 3, result.stderr[-2000:]
    assert "asked for accuracy on the test split" in result.stderr
    assert not (tmp_path / "run" / "model.sigdl").exists()


def test_a_search_without_a_validation_split_is_refused_before_any_work(sigdl_cli, numpy_plugin, tmp_path) -> None:
    _needs_loop_plugins()
    result = sigdl_cli(["run", str(_recipe(tmp_path, validation=0)), "-o", str(tmp_path / "run")],
                       plugins=[numpy_plugin], entry_points=True)
    assert result.exit_code == 2 and "'validation' is 0" in result.stderr
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- plots


def _report(spread: bool) -> dict:
    extra = {"latency_ms_spread": {"estimate_low": 0.50, "estimate_high": 0.62, "p5": 0.49, "p95": 0.7}} \
        if spread else {}
    target = {"fps_batch1": 1800.0, "latency_ms_p50": 0.55, "latency_ms_p95": 0.6, "extra": extra}
    cands = [{"index": i, "ratio": r, "validation_accuracy": a, "met": a >= 0.95}
             for i, (r, a) in enumerate([(9.0, 0.962), (18.0, 0.958), (26.0, 0.955), (41.0, 0.951), (64.0, 0.94)])]
    return {"candidates": cands, "baseline": {"validation_accuracy": 0.96, "targets": {"atom": dict(target)}},
            "budget_floor": 0.95, "budget": {"min_fps": 500},
            "chosen": {**cands[3], "targets": {"atom": dict(target)}}}


def test_the_ratio_axis_reads_times_and_the_legend_leaves_the_chosen_point_visible() -> None:
    from sigdl_core.plots import accuracy_vs_ratio_figure

    fig = accuracy_vs_ratio_figure(_report(spread=False))
    fig.canvas.draw()
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert {"10×", "20×", "30×", "50×"} <= set(labels), labels
    assert all("10^" not in s and "^{" not in s for s in ax.xaxis.get_majorticklabels() for s in [s.get_text()])
    legend = ax.get_legend().get_window_extent()
    x, y = ax.transData.transform((41.0, 95.1))  # the chosen point
    assert not legend.contains(x, y)
    assert not legend.overlaps(ax.get_window_extent())


def test_the_targets_plot_draws_the_emulators_spread_as_error_bars() -> None:
    from matplotlib.container import ErrorbarContainer

    from sigdl_core.plots import latency_error, targets_figure

    with_spread = targets_figure(_report(spread=True))
    bars = [c for ax in with_spread.axes for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 4  # baseline and chosen, fps and latency
    below, above = latency_error(_report(True)["chosen"]["targets"]["atom"], "latency_ms_p50")
    assert below == pytest.approx(0.05) and above == pytest.approx(0.07)
    without = targets_figure(_report(spread=False))
    assert not [c for ax in without.axes for c in ax.containers if isinstance(c, ErrorbarContainer)]


def test_choose_prefers_the_candidates_that_keep_the_noise_margin() -> None:
    from sigdl_core.search import choose

    edge = {"index": 2, "ratio": 90.0, "met": True, "within_margin": False, "validation_accuracy": 0.951}
    safe = {"index": 1, "ratio": 60.0, "met": True, "within_margin": True, "validation_accuracy": 0.957}
    assert choose([safe, edge])["index"] == 1
    assert choose([edge])["index"] == 2  # with none inside the margin, the budget alone decides
    missed = {"index": 3, "ratio": 200.0, "met": False, "within_margin": False, "validation_accuracy": 0.9,
              "shortfalls": [{"limit": "accuracy"}]}
    assert choose([missed, safe])["index"] == 1


def test_the_paired_standard_error_counts_only_discordant_samples() -> None:
    from sigdl_core.interfaces import paired_difference

    n = 400
    baseline = np.ones(n, dtype=bool)
    baseline[:12] = False  # the baseline misses 12 of 400 (97 %)
    candidate = baseline.copy()
    candidate[20:26] = False  # b = 6 the baseline alone gets right
    candidate[:2] = True  # c = 2 the candidate alone gets right
    diff, se, b, c = paired_difference(candidate, baseline)
    assert (b, c) == (6, 2)
    assert diff == pytest.approx(-4 / n)
    assert se == pytest.approx(np.sqrt(8 - 16 / n) / n)
    # the per-sample differences' own standard error, by definition
    d = candidate.astype(float) - baseline.astype(float)
    assert se == pytest.approx(d.std() / np.sqrt(n))
    # far below one model's SE, let alone that of two independent estimates
    p = baseline.mean()
    assert se < np.sqrt(p * (1 - p) / n) < np.sqrt(2 * p * (1 - p) / n)
    assert paired_difference(baseline, baseline)[1] == 0.0
    with pytest.raises(Exception, match="same samples"):
        paired_difference(candidate[:10], baseline)


def test_the_margin_is_the_paired_se_of_each_candidate(tmp_path) -> None:
    """One net drop (6 digits of 1000), two verdicts: a candidate that differs from the
    baseline on those 6 digits only passes, one that differs on 34 (20 lost, 14 won) does not."""
    from sigdl_core.budget import Budget
    from sigdl_core.search import Workbench

    rng = np.random.default_rng(0)
    n = 1000
    data = ArrayDataset(name="d", x_train=np.zeros((4, 2), np.float32), y_train=np.zeros(4, np.int64),
                        x_test=np.zeros((4, 2), np.float32), y_test=np.zeros(4, np.int64), num_classes=2,
                        x_val=rng.random((n, 2), dtype=np.float32), y_val=np.zeros(n, np.int64))
    bench = Workbench(plugins=None, framework=None, model=None, data=data, recipe=None, store=None,
                      baseline_weights={}, kinds={}, baseline_top1=0.97, targets=[],
                      budget=Budget(max_accuracy_drop=1.0), observer=None)
    top1 = 0.97 - 6 / n  # 0.6 points below the baseline
    close = {"validation_accuracy": top1, "paired": {"baseline_only": 6, "candidate_only": 0, "samples": n}}
    far = {"validation_accuracy": top1, "paired": {"baseline_only": 20, "candidate_only": 14, "samples": n}}
    assert bench.noise_margin(close) == pytest.approx(np.sqrt(6 - 36 / n) / n)  # 0.24 points
    assert bench.noise_margin(far) == pytest.approx(np.sqrt(34 - 36 / n) / n)  # 0.58 points, uncapped
    assert bench.accuracy_ok(close) and not bench.accuracy_ok(far)
    assert bench.accuracy_ok(far, margin=False)  # the budget itself lets both through
    # without per-sample hits: one model's SE, 0.54 points
    assert bench.noise_margin({"validation_accuracy": top1}) == pytest.approx(np.sqrt(0.97 * 0.03 / n))
