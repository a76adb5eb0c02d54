"""A run's report: ``report.json`` for machines and ``report.md`` for people.

Both are written atomically into the run folder. The Markdown is rendered from the JSON
alone, so ``sigdl report RUN_DIR`` can render it again later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .files import atomic_write_json, atomic_write_text


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f} %"


def human_bytes(n: int | float | None) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, headers)) + " |",
             "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: Mapping[str, Any]) -> str:
    """The Markdown form of a run report."""
    recipe = report.get("recipe", {})
    model = report.get("model", {})
    baseline = report.get("baseline", {})
    out = [
        f"# SigDL run: {model.get('architecture', recipe.get('model', '?'))} on "
        f"{report.get('dataset', {}).get('name', recipe.get('dataset', '?'))}",
        "",
        f"SigDL {report.get('sigdl_version', '?')}, started {report.get('started', '?')}, "
        f"{report.get('seconds', 0):.1f} s in all. Recipe: {recipe.get('source', '?')}.",
        "",
        "## Baseline",
        "",
        markdown_table(
            ["model", "framework", "parameters", "fp32 weights", "top-1", "top-5"],
            [[model.get("architecture"), model.get("framework"),
              f"{baseline.get('parameters', 0):,}", human_bytes(baseline.get("weights_bytes")),
              percent(baseline.get("accuracy")), percent(baseline.get("top5"))]],
        ),
    ]
    train = baseline.get("train")
    if train and train.get("loss"):
        out += ["", "### Training", "",
                markdown_table(["epoch", "loss", "train top-1"],
                               [[i + 1, f"{l:.4f}", percent(a)] for i, (l, a) in
                                enumerate(zip(train["loss"], train["train_top1"]))]),
                "", f"{train.get('seconds', 0):.1f} s of training."]
    stages = report.get("stages", {})
    if stages:
        out += ["", "## Stages", "",
                markdown_table(["stage", "seconds"], [[k, f"{v.get('seconds', 0):.2f}"] for k, v in stages.items()])]
    files = report.get("files", {})
    if files:
        out += ["", "## Files", "", *[f"- {k}: `{v}`" for k, v in files.items()]]
    return "\n".join(out) + "\n"


def write_run_report(run_dir: Path, report: Mapping[str, Any]) -> tuple[Path, Path]:
    """Writes ``report.json`` and ``report.md`` into ``run_dir``; returns their paths."""
    json_path = atomic_write_json(run_dir / "report.json", report)
    md_path = atomic_write_text(run_dir / "report.md", render_markdown(report))
    return json_path, md_path
