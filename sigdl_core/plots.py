"""The report's plots, drawn with matplotlib's object API (no pyplot global state).

* accuracy against compression ratio for every candidate, with the Pareto front, the
  budget's accuracy floor and the chosen point;
* the chosen model's per-layer density (weights kept) and bits per weight;
* each target's fps and p95 latency, baseline against chosen, with the budget's bounds.

Each function takes the run report (the dict written to ``report.json``) and writes one PNG
atomically; it returns the path, or None when the report holds nothing to draw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .files import atomic_path


def _figure(width: float = 7.0, height: float = 4.2) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points (ratio, accuracy) that no other point beats on both, by ratio."""
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return sorted(front, key=lambda i: points[i][0])


def plot_accuracy_vs_ratio(report: Mapping[str, Any], path: Path) -> Path | None:
    cands = [c for c in report.get("candidates", []) if c.get("accuracy") is not None and c.get("ratio")]
    if not cands:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    pts = [(c["ratio"], 100 * c["accuracy"]) for c in cands]
    met = [c.get("met") for c in cands]
    ax.scatter([p[0] for p, m in zip(pts, met, strict=True) if m], [p[1] for p, m in zip(pts, met, strict=True) if m],
               c="tab:green", label="meets the budget", zorder=3)
    ax.scatter([p[0] for p, m in zip(pts, met, strict=True) if not m], [p[1] for p, m in zip(pts, met, strict=True) if not m],
               c="tab:red", marker="x", label="misses the budget", zorder=3)
    front = pareto_front(pts)
    ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "--", c="tab:blue", label="Pareto front")
    baseline = report.get("baseline", {}).get("accuracy")
    if baseline is not None:
        ax.axhline(100 * baseline, c="grey", lw=1, label="baseline")
        floor = report.get("budget_floor")
        if floor is not None:
            ax.axhline(100 * floor, c="tab:orange", lw=1, ls=":", label="budget floor")
    chosen = report.get("chosen") or {}
    if chosen.get("ratio") and chosen.get("accuracy") is not None:
        ax.scatter([chosen["ratio"]], [100 * chosen["accuracy"]], s=220, facecolors="none",
                   edgecolors="black", linewidths=2, label="chosen", zorder=4)
    ax.set_xscale("log")
    ax.set_xlabel("compression ratio (fp32 weights / artifact bytes)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("Candidates: accuracy against compression")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_layers(report: Mapping[str, Any], path: Path) -> Path | None:
    layers = (report.get("chosen") or {}).get("layers") or {}
    if not layers:
        return None
    names = list(layers)
    density = [100 * layers[n]["kept"] / max(1, layers[n]["total"]) for n in names]
    bits = [layers[n]["weight_bits"] / max(1, layers[n]["kept"]) for n in names]
    index_bits = [layers[n].get("index_bits", 0) / max(1, layers[n]["kept"]) for n in names]
    fig = _figure(7.0, 1.6 + 0.35 * len(names))
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    y = range(len(names))
    ax1.barh(y, density, color="tab:blue")
    ax1.set_yticks(list(y), names, fontsize=8)
    ax1.invert_yaxis()
    ax1.set_xlabel("weights kept (%)")
    ax1.set_xlim(0, 100)
    ax2.barh(y, bits, color="tab:purple", label="value bits")
    ax2.barh(y, index_bits, left=bits, color="tab:gray", label="index bits")
    ax2.set_xlabel("bits per kept weight")
    ax2.legend(fontsize=8)
    fig.suptitle("Chosen model, per layer")
    return _save(fig, path)


def plot_targets(report: Mapping[str, Any], path: Path) -> Path | None:
    chosen = ((report.get("chosen") or {}).get("targets")) or {}
    if not chosen:
        return None
    base = report.get("baseline", {}).get("targets", {}) or {}
    budget = report.get("budget", {}) or {}
    names = list(chosen)
    fig = _figure(7.0, 3.6)
    ax1, ax2 = fig.subplots(1, 2)
    width = 0.38
    x = list(range(len(names)))
    for ax, key, label, bound in ((ax1, "fps_batch1", "fps (batch 1)", budget.get("min_fps")),
                                  (ax2, "latency_ms_p95", "latency p95 (ms)", budget.get("max_latency_ms"))):
        ax.bar([i - width / 2 for i in x], [(base.get(n) or {}).get(key) or 0 for n in names], width,
               label="baseline", color="tab:gray")
        ax.bar([i + width / 2 for i in x], [chosen[n].get(key) or 0 for n in names], width,
               label="chosen", color="tab:green")
        if bound is not None:
            ax.axhline(bound, c="tab:red", ls="--", label="budget")
        ax.set_xticks(x, names, rotation=20, fontsize=8)
        ax.set_ylabel(label)
        ax.grid(True, axis="y", alpha=0.3)
    ax1.legend(fontsize=8)
    fig.suptitle("Targets against the budget")
    return _save(fig, path)


def write_plots(report: Mapping[str, Any], folder: Path) -> dict[str, str]:
    """Writes every plot the report has data for; returns {name: file name}."""
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for name, draw in (("accuracy_vs_ratio", plot_accuracy_vs_ratio), ("layers", plot_layers),
                       ("targets", plot_targets)):
        path = draw(report, folder / f"{name}.png")
        if path is not None:
            made[name] = path.name
    return made
