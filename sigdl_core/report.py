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


def _fmt(v: Any, unit: str = "", digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}g}{unit}"
    return f"{v}{unit}"


def _budget_lines(budget: Mapping[str, Any]) -> list[str]:
    names = {"max_accuracy_drop": ("accuracy drop", "≤ {} points"), "max_relative_drop": ("relative drop", "≤ {}"),
             "min_fps": ("fps at batch 1", "≥ {}"), "max_latency_ms": ("p95 latency", "≤ {} ms"),
             "max_artifact_bytes": ("artifact", "≤ {} bytes"), "max_power_w": ("power", "≤ {} W"),
             "max_energy_mj": ("energy per inference", "≤ {} mJ")}
    return [f"{label} {form.format(budget[k])}" for k, (label, form) in names.items() if budget.get(k) is not None]


def _target_value(rep: Mapping[str, Any], key: str, unit: str) -> str:
    v = rep.get(key)
    if key == "accuracy":
        return percent((v or {}).get("top1")) if v else "—"
    if key == "peak_memory_bytes":
        return human_bytes(v)
    return _fmt(v, unit)


def target_rows(baseline: Mapping[str, Any], chosen: Mapping[str, Any] | None) -> list[list[Any]]:
    """Per target and measure: baseline, chosen, and the method behind the chosen figure."""
    rows = []
    chosen_targets = (chosen or {}).get("targets") or {}
    base_targets = baseline.get("targets") or {}
    for name in sorted(set(base_targets) | set(chosen_targets)):
        b, c = base_targets.get(name, {}), chosen_targets.get(name, {})
        for key, label, unit in (("accuracy", "top-1 (validation)", ""), ("latency_ms_p50", "latency p50", " ms"),
                                 ("latency_ms_p95", "latency p95", " ms"), ("fps_batch1", "fps (batch 1)", ""),
                                 ("peak_memory_bytes", "peak memory", ""), ("power_w", "power", " W"),
                                 ("energy_mj", "energy / inference", " mJ")):
            method = ((c or b).get("provenance") or {}).get(key, {}).get("method", "")
            rows.append([name, label, _target_value(b, key, unit),
                         _target_value(c, key, unit) if c else "—", method])
        if "@" in name:  # a real board (NAME@HOST) beside its emulator (NAME): the emulator's error
            twin = name.split("@", 1)[0]
            rows.append([name, "emulator error, latency p50 (vs board)",
                         _board_error(base_targets.get(twin), b), _board_error(chosen_targets.get(twin), c),
                         "emulator / measured − 1"])
    return rows


def _board_error(emulated: Mapping[str, Any] | None, measured: Mapping[str, Any] | None) -> str:
    e, m = (emulated or {}).get("latency_ms_p50"), (measured or {}).get("latency_ms_p50")
    return f"{(e / m - 1) * 100:+.1f} %" if e is not None and m else "—"


def render_markdown(report: Mapping[str, Any]) -> str:
    """The Markdown form of a run report."""
    recipe = report.get("recipe", {})
    model = report.get("model", {})
    baseline = report.get("baseline", {})
    chosen = report.get("chosen")
    verdict = "**met**" if report.get("met") else "**NOT met**"
    out = [
        f"# SigDL run: {model.get('architecture', recipe.get('model', '?'))} on "
        f"{report.get('dataset', {}).get('name', recipe.get('dataset', '?'))}",
        "",
        f"SigDL {report.get('sigdl_version', '?')}, started {report.get('started', '?')}, "
        f"{report.get('seconds', 0):.1f} s in all. Recipe: {recipe.get('source', '?')}.",
        "",
        f"Budget {verdict}: " + ("; ".join(_budget_lines(report.get("budget") or {})) or "no limits") + ".",
    ]
    if report.get("retraining"):
        out += ["", report["retraining"][:1].upper() + report["retraining"][1:] + "."]
    if report.get("distillation"):
        d = report["distillation"]
        out += ["", f"Retraining distilled from the {d['teacher']} (soft-target weight {d['weight']:g}, "
                    f"temperature {d['temperature']:g})."]
    acc = report.get("acceleration") or {}
    spent = acc.get("search_time")
    if acc.get("search_seconds") and spent:
        where = "a Dask cluster" if acc.get("cluster") else f"{acc.get('jobs', 1)} job(s)"
        out += ["", f"The search took {acc['search_seconds']:.1f} s on {where} "
                    f"({acc.get('candidates_per_minute') or 0:g} candidates a minute): pruning paths "
                    f"{spent['pruning_path_s']:.1f} s (sequential: each step retrains from the last), the rest of "
                    f"the candidates {spent['tails_s']:.1f} s, waiting for workers "
                    f"{spent['waiting_for_workers_s']:.1f} s, re-testing on the targets {spent['retesting_s']:.1f} s."]
        share = spent["pruning_path_s"] / acc["search_seconds"]
        if (acc.get("jobs", 1) > 1 or acc.get("cluster")) and share > 0.5:
            out[-1] += (f" Parallel jobs pay little here: the pruning path, a chain that no number of jobs "
                        f"shortens, took {100 * share:.0f} % of the search (docs/acceleration.md).")
    if report.get("shortfalls"):
        out += ["", "Limits missed by the " + ("chosen" if report.get("met") else "best") + " model:", ""]
        out += [f"- {s['text']}" for s in report["shortfalls"]]
    if report.get("stopped"):
        out += ["", f"The search stopped early: {report['stopped']}."]
    rows = [["baseline", f"{baseline.get('parameters', 0):,}", human_bytes(baseline.get("weights_bytes")), "1×",
             percent(baseline.get("validation_accuracy")), percent(baseline.get("accuracy")),
             percent(baseline.get("top5"))]]
    if chosen:
        rows.append([f"chosen (candidate {chosen['index']})", "", human_bytes(chosen.get("artifact_bytes")),
                     f"{chosen.get('ratio', 0):.1f}×", percent(chosen.get("validation_accuracy")),
                     percent(chosen.get("accuracy")), percent(chosen.get("top5"))])
    out += ["", "## Model", "", markdown_table(
        ["", "parameters", "size", "ratio", "top-1 validation (decided)", "top-1 test (reported)", "top-5 test"], rows)]
    decided = report.get("decided_on") or {}
    if decided.get("samples"):
        drop = ""
        if chosen and chosen.get("validation_accuracy") is not None and baseline.get("validation_accuracy") is not None:
            drop = f" The chosen model loses {100 * (baseline['validation_accuracy'] - chosen['validation_accuracy']):.2f} points on validation"
            if chosen.get("accuracy") is not None and baseline.get("accuracy") is not None:
                drop += f" and {100 * (baseline['accuracy'] - chosen['accuracy']):.2f} on test"
            drop += "."
        out += ["", f"Every decision (search, budget) was taken on the validation split ({decided['samples']:,} "
                f"samples held out of training); the test split ({decided.get('test_samples', 0):,} samples) "
                f"was evaluated only for this report.{drop} Accuracy on a target is on the validation split."]
        margin = (chosen or {}).get("noise_margin")
        if margin:
            pair = (chosen or {}).get("paired")
            how = (f"the paired standard error of its drop from the baseline on the same samples (it and the "
                   f"baseline disagree on {pair['baseline_only'] + pair['candidate_only']} of {pair['samples']}: "
                   f"{pair['baseline_only']} only the baseline gets right, {pair['candidate_only']} only it)"
                   if pair else "one standard error of the validation estimate")
            out += ["", f"The search kept the chosen model {margin:.2f} points above the budget's floor: {how}, "
                    "since the most compressed candidate a small split lets through is where its luck is best."]
    if report.get("new_data"):
        out += ["", f"New data from the field: {report['new_data']['train']} samples added to retraining; "
                f"accuracy on its held-out part: baseline {percent(baseline.get('new_data_accuracy'))}, chosen "
                f"{percent((chosen or {}).get('new_data_accuracy'))} (old test set above)."]
    trows = target_rows(baseline, chosen)
    if trows:
        out += ["", "## Targets", "", markdown_table(["target", "measure", "baseline", "chosen", "method"], trows)]
        warnings = {(n, w) for n, r in ((chosen or {}).get("targets") or baseline.get("targets") or {}).items()
                    for w in r.get("warnings", [])}
        out += [f"- warning, {n}: {w}" for n, w in sorted(warnings)]
    if chosen and chosen.get("layers"):
        out += ["", "## Chosen model, per layer", "", markdown_table(
            ["layer", "kept", "of", "bits per weight", "index bits", "entropy bound (bits)"],
            [[n, f"{l.get('kept', 0):,}", f"{l.get('total', 0):,}", _fmt(l.get("bits_per_weight")),
              f"{l.get('index_bits', 0):,}", f"{l.get('entropy_bits', 0):,.0f}" if l.get("entropy_bits") is not None else "—"]
             for n, l in chosen["layers"].items()])]
    if chosen and chosen.get("execution_plan"):
        out += ["", "## Execution plan (per layer, timed on this machine at batch 1)", "", markdown_table(
            ["layer", "kind", "shape", "chosen", "timings (ms)"],
            [[p.get("layer"), p.get("kind"), "×".join(str(d) for d in p.get("shape") or []), p.get("chosen"),
              ", ".join(f"{k} {v:.3f}" for k, v in (p.get("timings_ms") or {}).items()) or "direct only"]
             for p in chosen["execution_plan"]])]
    freq = (chosen or {}).get("frequency_form")
    if freq:
        out += ["", f"Frequency form: `{freq['file']}` ({len(freq.get('layers') or [])} layers through ONNX DFT; "
                    f"dense equivalent `{freq.get('dense_equivalent')}`)." if freq.get("file")
                else f"No frequency form: {freq.get('note')}."]
    cands = report.get("candidates") or []
    if cands:
        out += ["", f"## Candidates ({len(cands)})", "", markdown_table(
            ["#", "phase", "setting", "top-1 (validation)", "ratio", "bytes", "met", "missed"],
            [[c["index"], c.get("phase"), c.get("note"), percent(c.get("validation_accuracy")), _fmt(c.get("ratio"), "×"),
              f"{c.get('artifact_bytes', 0):,}", "yes" if c.get("met") else "no",
              "; ".join(s["limit"] + (f" ({s['target']})" if s.get("target") else "") for s in c.get("shortfalls", []))]
             for c in cands])]
    train = baseline.get("train")
    if train and train.get("loss"):
        out += ["", "## Baseline training", "",
                markdown_table(["epoch", "loss", "train top-1"],
                               [[i + 1, f"{l:.4f}", percent(a)] for i, (l, a) in
                                enumerate(zip(train["loss"], train["train_top1"], strict=True))]),
                "", f"{train.get('seconds', 0):.1f} s of training."]
    for name, path in (report.get("plots") or {}).items():
        out += ["", f"![{name}]({path})"]
    stages = report.get("stages", {})
    if stages:
        out += ["", "## Stages", "",
                markdown_table(["stage", "seconds"], [[k, f"{v.get('seconds', 0):.2f}"] for k, v in stages.items()])]
    files = report.get("files", {})
    if files:
        out += ["", "## Files", "", *[f"- {k}: `{v}`" for k, v in files.items()]]
    return "\n".join(out) + "\n"


def render_html(report: Mapping[str, Any], run_dir: Path) -> str:
    """A self-contained HTML page: the Markdown report's content, plots embedded."""
    import base64
    import html

    md = render_markdown(report)
    body = []
    in_table = False
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            if all(set(c) <= {"-"} for c in cells):
                continue
            tag = "th" if not in_table else "td"
            if not in_table:
                body.append("<table>")
                in_table = True
            body.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>")
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("!["):
            name, path = line[2:].split("](", 1)
            data = (run_dir / path.rstrip(")")).read_bytes()
            body.append(f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,'
                        f'{base64.b64encode(data).decode()}"></figure>')
        elif line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## ") or line.startswith("### "):
            body.append(f"<h2>{html.escape(line.lstrip('#').strip())}</h2>")
        elif line.startswith("- "):
            body.append(f"<li>{html.escape(line[2:])}</li>")
        elif line.strip():
            text = html.escape(line).replace("**", "")
            body.append(f"<p>{text}</p>")
    if in_table:
        body.append("</table>")
    style = ("body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
             "font-size:13px;text-align:left}th{background:#f3f3f3}img{max-width:100%}")
    title = html.escape(md.splitlines()[0].lstrip("# "))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_run_report(run_dir: Path, report: Mapping[str, Any]) -> tuple[Path, Path, Path]:
    """Writes ``report.json``, ``report.md`` and ``report.html`` into ``run_dir``."""
    json_path = atomic_write_json(run_dir / "report.json", report)
    md_path = atomic_write_text(run_dir / "report.md", render_markdown(report))
    html_path = atomic_write_text(run_dir / "report.html", render_html(report, run_dir))
    return json_path, md_path, html_path
