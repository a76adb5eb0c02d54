"""The report's plots, drawn with matplotlib's object API (no pyplot global state).

* validation accuracy (what the search decided on) against compression ratio for every
  candidate, with the Pareto front, the budget's accuracy floor and the chosen point; the
  ratio axis is logarithmic and reads 20×, 30×, …; the legend sits beside the axes, never
  on the points;
* the chosen model's per-layer density (weights kept) and bits per weight;
* each target's fps and p50 latency, baseline against chosen, with the budget's bounds and,
  when the emulator reports how its measurement spread (``extra["latency_ms_spread"]``:
  ``estimate_low``/``estimate_high``, else ``p5``/``p95``), that spread as error bars.

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


def ratio_label(value: float, _pos: Any = None) -> str:
    """A compression ratio as a tick label: ``20×``, ``1.5×``."""
    return f"{value:.3g}×"


def _ratio_axis(ax: Any, ratios: Sequence[float]) -> None:
    """A log x axis whose ticks read 10×, 20×, 30×, 50× (never 2×10¹)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    ax.set_xscale("log")
    lo, hi = min(ratios) / 1.15, max(ratios) * 1.15
    ax.set_xlim(lo, hi)
    ticks = [m * 10 ** e for e in range(-1, 6) for m in (1, 2, 3, 5)]
    shown = [t for t in ticks if lo <= t <= hi]
    if len(shown) < 3:
        ticks = [m * 10 ** e for e in range(-1, 6) for m in (1, 1.5, 2, 3, 4, 5, 6, 7, 8)]
        shown = [t for t in ticks if lo <= t <= hi]
    ax.xaxis.set_major_locator(FixedLocator(shown))
    ax.xaxis.set_major_formatter(FuncFormatter(ratio_label))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_accuracy_vs_ratio(report: Mapping[str, Any], path: Path) -> Path | None:
    fig = accuracy_vs_ratio_figure(report)
    return None if fig is None else _save(fig, path)


def accuracy_vs_ratio_figure(report: Mapping[str, Any]) -> Any:
    """The accuracy-against-ratio figure (a matplotlib ``Figure``), or None with no candidates."""
    cands = [c for c in report.get("candidates", []) if c.get("validation_accuracy") is not None and c.get("ratio")]
    if not cands:
        return None
    fig = _figure(8.0, 4.2)
    ax = fig.add_subplot()
    pts = [(c["ratio"], 100 * c["validation_accuracy"]) for c in cands]
    baseline = report.get("baseline", {}).get("validation_accuracy")
    floor = report.get("budget_floor")
    # a candidate far below the floor would squash the band that matters: draw it on the edge
    low = (100 * min(floor, baseline) - 3.0) if floor is not None and baseline is not None else None
    shown = [(p, c.get("met")) for p, c in zip(pts, cands, strict=True) if low is None or p[1] >= low]
    below = [p for p in pts if low is not None and p[1] < low]
    for met, colour, marker, label in ((True, "tab:green", "o", "meets the budget"),
                                       (False, "tab:red", "x", "misses the budget")):
        xs = [p[0] for p, m in shown if bool(m) == met]
        if xs:
            ax.scatter(xs, [p[1] for p, m in shown if bool(m) == met], c=colour, marker=marker, label=label,
                       zorder=3)
    if below:
        ax.scatter([p[0] for p in below], [low] * len(below), c="tab:red", marker="v", zorder=3,
                   label=f"below {low:.0f} % (drawn on the edge)")
        ax.set_ylim(bottom=low - 0.3)
    pts_all = pts
    front = pareto_front(pts_all)
    ax.plot([pts_all[i][0] for i in front], [pts_all[i][1] for i in front], "--", c="tab:blue", label="Pareto front")
    if baseline is not None:
        ax.axhline(100 * baseline, c="grey", lw=1, label="baseline")
        if floor is not None:
            ax.axhline(100 * floor, c="tab:orange", lw=1, ls=":", label="budget floor")
            margin = (report.get("chosen") or {}).get("noise_margin")
            if margin:
                ax.axhline(100 * floor + margin, c="tab:purple", lw=1, ls="-.",
                           label=f"floor + {margin:.2f}-pt margin\n(what the search kept)")
    chosen = report.get("chosen") or {}
    if chosen.get("ratio") and chosen.get("validation_accuracy") is not None:
        ax.scatter([chosen["ratio"]], [100 * chosen["validation_accuracy"]], s=220, facecolors="none",
                   edgecolors="black", linewidths=2, label=f"chosen ({chosen['ratio']:.1f}×)", zorder=4)
    _ratio_axis(ax, [p[0] for p in pts])
    ax.set_xlabel("compression ratio (fp32 weights / artifact bytes)")
    ax.set_ylabel("top-1 on the validation split (%)")
    ax.set_title("Candidates: validation accuracy (what decided) against compression")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return fig


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
    for i, d in zip(y, density, strict=True):  # small densities are the point: say them
        ax1.text(d + 1.5, i, f"{d:.1f} %" if d < 10 else f"{d:.0f} %", va="center", fontsize=8)
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
    fig = targets_figure(report)
    return None if fig is None else _save(fig, path)


def targets_figure(report: Mapping[str, Any]) -> Any:
    """The targets figure (a matplotlib ``Figure``), or None when no target was re-tested."""
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
    spread_shown = False
    for ax, key, label, bound in ((ax1, "fps_batch1", "fps (batch 1)", budget.get("min_fps")),
                                  (ax2, "latency_ms_p50", "latency p50 (ms)", None)):
        for offset, records, name, colour in ((-width / 2, base, "baseline", "tab:gray"),
                                              (width / 2, chosen, "chosen", "tab:green")):
            values = [(records.get(n) or {}).get(key) or 0 for n in names]
            errors = [latency_error(records.get(n) or {}, key) for n in names]
            yerr = None
            if any(e is not None for e in errors):
                spread_shown = True
                yerr = [[(e or (0, 0))[0] for e in errors], [(e or (0, 0))[1] for e in errors]]
            ax.bar([i + offset for i in x], values, width, yerr=yerr, capsize=4, label=name, color=colour,
                   error_kw={"elinewidth": 1.2, "ecolor": "black"})
        if bound is not None:
            ax.axhline(bound, c="tab:red", ls="--", label="budget")
        ax.set_xticks(x, names, rotation=20, fontsize=8)
        ax.set_ylabel(label)
        ax.grid(True, axis="y", alpha=0.3)
    if budget.get("max_latency_ms") is not None:
        ax2.axhline(budget["max_latency_ms"], c="tab:red", ls=":", label="budget (p95)")
    handles, labels = ax1.get_legend_handles_labels()
    extra_handles, extra_labels = ax2.get_legend_handles_labels()
    for h, lab in zip(extra_handles, extra_labels, strict=True):
        if lab not in labels:
            handles.append(h)
            labels.append(lab)
    fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncols=len(labels))
    fig.suptitle("Targets against the budget" + ("; error bars: the spread the emulator measured"
                                                  if spread_shown else ""), fontsize=10)
    return fig


def latency_error(record: Mapping[str, Any], key: str) -> tuple[float, float] | None:
    """(below, above) the bar of ``key`` (``latency_ms_p50`` or ``fps_batch1``) from the
    latency spread the emulator reported, or None when it reported none."""
    spread = (record.get("extra") or {}).get("latency_ms_spread")
    value = record.get(key)
    if not isinstance(spread, Mapping) or not value:
        return None
    low = spread.get("estimate_low", spread.get("p5"))
    high = spread.get("estimate_high", spread.get("p95"))
    p50 = record.get("latency_ms_p50")
    if not isinstance(low, (int, float)) or not isinstance(high, (int, float)) or not p50 or low <= 0:
        return None
    if key == "fps_batch1":  # the same relative spread, inverted: a slower run is fewer fps
        return max(0.0, value - value * p50 / high), max(0.0, value * p50 / low - value)
    return max(0.0, p50 - low), max(0.0, high - p50)


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
