"""The ``sigdl`` command: the blocks of the flow as verbs, and ``run`` chaining them.

Exit codes, for CI: 0 the budget was met (or the command did its job), 1 the budget was
missed, 2 bad input — answered with one line on standard error, never a traceback.
``--json`` prints machine-readable output on standard output and nothing else there.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from . import __version__
from .errors import BadInputError, SigdlError
from .files import read_regular_file, to_json
from .plugins import LoadedPlugins, load_plugins

# --------------------------------------------------------------------------- errors → exit 2


class SigdlGroup(TyperGroup):
    """Answers bad input with one line and exit code 2, for every command."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except SigdlError as exc:
            _fail(exc.one_line(), exc.exit_code)
        except TyperException as exc:  # typer's usage errors: bad option, missing argument …
            ctx = getattr(exc, "ctx", None)
            if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
                sys.stdout.write(ctx.get_help() + "\n")
                sys.exit(0)
            where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            _fail(" ".join(exc.format_message().split()) + where, 2)
        except typer.Abort:
            _fail("interrupted", 130)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


def _fail(line: str, code: int) -> None:
    sys.stderr.write(f"sigdl: error: {line}\n")
    sys.stderr.flush()
    sys.exit(code)


app = typer.Typer(
    cls=SigdlGroup,
    name="sigdl",
    help="SigDL: train, compress, retrain and re-test deep-learning models on emulated "
    "embedded targets, until the target's budget is met.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# --------------------------------------------------------------------------- plugins

_override: list[tuple[bool, Sequence[tuple[str, object]]]] = []
#: File endings of recipes; `sigdl run FILE` takes FILE as the model when a framework reads its ending.
RECIPE_SUFFIXES = (".yaml", ".yml", ".toml", ".json")


@contextlib.contextmanager
def use_plugins(extra: Sequence[tuple[str, object]], entry_points: bool = False) -> Iterator[None]:
    """Makes the CLI load ``extra`` plugins (and entry points only if asked); for tests."""
    _override.append((entry_points, extra))
    try:
        yield
    finally:
        _override.pop()


def get_plugins(tolerate_conflicts: bool = False) -> LoadedPlugins:
    """The plugins for this command: installed ones, or those :func:`use_plugins` gave."""
    if _override:
        entry_points, extra = _override[-1]
        return load_plugins(entry_points=entry_points, extra=extra, tolerate_conflicts=tolerate_conflicts)
    return load_plugins(tolerate_conflicts=tolerate_conflicts)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sigdl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """SigDL: train, compress, retrain and re-test models on emulated embedded targets."""


JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print no progress, only the result.")]


def _emit_json(obj: Any) -> None:
    sys.stdout.write(to_json(obj) + "\n")
    sys.stdout.flush()


def _print(renderable: Any) -> None:
    from .display import stdout

    stdout.print(renderable, soft_wrap=isinstance(renderable, str))


# --------------------------------------------------------------------------- listings


@app.command("plugins")
def plugins_cmd(json_out: JsonOpt = False) -> None:
    """List installed plugins: distribution, version, hooks and state."""
    loaded = get_plugins(tolerate_conflicts=True)
    records = [r.to_dict() for r in loaded.records]
    conflicts = [c.one_line() for c in loaded.registry.conflicts]
    if json_out:
        _emit_json({"plugins": records, "conflicts": conflicts})
        return
    from .display import table

    if not records:
        _print("No SigDL plugins are installed. Install one, e.g. pip install sigdl-framework-torch.")
        return
    rows = [[r["name"], r["distribution"], r["version"],
             "ok" if r["state"] == "ok" else f"failed: {r['error']}", ", ".join(r["hooks"])]
            for r in records]
    _print(table("SigDL plugins", ["plugin", "distribution", "version", "state", "hooks"], rows))
    for line in conflicts:
        _print(f"conflict: {line}")


def _listing(kind: str, headers: list[str], row: Any, json_out: bool, title: str) -> None:
    loaded = get_plugins()
    specs = loaded.registry.specs(kind)
    if json_out:
        _emit_json([_spec_dict(s) for s in specs])
        return
    from .display import table

    if not specs:
        _print(f"No {title.lower()} are registered; install a plugin that provides them (sigdl plugins).")
        return
    _print(table(title, headers, [row(s) for s in specs]))


def _spec_dict(spec: Any) -> dict[str, Any]:
    if hasattr(spec, "to_dict"):
        return spec.to_dict()
    out = {}
    for name in spec.__dataclass_fields__:
        value = getattr(spec, name)
        if callable(value):
            continue
        out[name] = list(value) if isinstance(value, tuple) else dict(value) if hasattr(value, "items") else value
    return out


@app.command("frameworks")
def frameworks_cmd(json_out: JsonOpt = False) -> None:
    """List frameworks."""
    _listing("framework", ["name", "reads", "description", "plugin"],
             lambda s: [s.name, " ".join(s.suffixes), s.description, s.source], json_out, "Frameworks")


@app.command("models")
def models_cmd(json_out: JsonOpt = False) -> None:
    """List model architectures."""
    _listing("model", ["name", "framework", "input", "classes", "parameters", "trains with", "description"],
             lambda s: [s.name, s.framework, "×".join(map(str, s.input_shape)), s.num_classes,
                        f"{s.parameters:,}", ", ".join(f"{k} {v}" for k, v in s.train_defaults.items()) or "—",
                        s.description], json_out, "Models")


@app.command("datasets")
def datasets_cmd(json_out: JsonOpt = False) -> None:
    """List datasets."""
    _listing("dataset", ["name", "description", "plugin"],
             lambda s: [f"{s.name}:{s.argument}" if s.argument else s.name, s.description, s.source],
             json_out, "Datasets")


@app.command("compressors")
def compressors_cmd(json_out: JsonOpt = False) -> None:
    """List compressors, their parameters and the defaults 'sigdl compress' uses without -p."""
    _listing("compressor", ["name", "description", "parameters", "defaults", "plugin"],
             lambda s: [s.name, s.description, ", ".join(s.params),
                        ", ".join(f"{k}={v}" for k, v in s.defaults.items()) or "its own (see parameters)",
                        s.source], json_out, "Compressors")


@app.command("targets")
def targets_cmd(json_out: JsonOpt = False) -> None:
    """List embedded targets with their datasheet figures."""
    def row(s: Any) -> list[Any]:
        peaks = ", ".join(f"{k} {v / 1e9:g} G" for k, v in s.peak_ops.items())
        return [s.name, s.title, s.cores, f"{s.clock_hz / 1e9:g} GHz", f"{s.memory_bytes / 2**30:g} GiB",
                f"{s.memory_bandwidth / 1e9:g} GB/s", peaks, f"{s.tdp_w:g} W", s.emulator]

    _listing("target", ["name", "board", "cores", "clock", "memory", "bandwidth", "peak ops/s",
                        "power", "emulator"], row, json_out, "Targets")


@app.command("emulators")
def emulators_cmd(json_out: JsonOpt = False) -> None:
    """List emulators and their options (set them with --target NAME:key=value,...)."""
    from rich.markup import escape

    from .targets import describe_option

    def options(s: Any) -> str:
        return escape("\n".join(f"{o.name}={_option_default(o.default)}: {describe_option(o)} — {o.help}"
                                for o in s.options)) or "—"

    def evidence(s: Any) -> str:
        """How the emulator did on published measurements: a summary, then each row."""
        from .interfaces import calibration_summary

        lines = [calibration_summary(s.calibration)]
        lines += [f"{r.set[:5]} {r.target} {r.model} {r.quantity}: {r.predicted:.4g} vs {r.published:g} "
                  f"({r.error:+.1%})" for r in s.calibration]
        return escape("\n".join(lines))

    _listing("emulator", ["name", "description", "options", "evidence (published rows)", "plugin"],
             lambda s: [s.name, s.description, options(s), evidence(s), s.source], json_out, "Emulators")


def _option_default(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)


# --------------------------------------------------------------------------- train, test, run

ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="A model name (sigdl models) or a model file.")]
DatasetOpt = Annotated[Optional[str], typer.Option("--dataset", "-d", help="A dataset: name or name:argument (sigdl datasets).")]
FrameworkOpt = Annotated[Optional[str], typer.Option("--framework", help="The framework (default: the model's own).")]
EpochsOpt = Annotated[Optional[int], typer.Option("--epochs", help="Training epochs.")]
LrOpt = Annotated[Optional[float], typer.Option("--lr", help="Initial learning rate.")]
BatchOpt = Annotated[Optional[int], typer.Option("--batch-size", help="Samples per optimizer step.")]
OptimizerOpt = Annotated[Optional[str], typer.Option("--optimizer", help="An optimizer by name: sgd, adam, adamw, rmsprop … (the framework's own).")]
ScheduleOpt = Annotated[Optional[str], typer.Option("--schedule", help="constant, step, cosine, or a scheduler by name (e.g. ExponentialLR).")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Seed of every random choice.")]
WorkersOpt = Annotated[Optional[int], typer.Option("--workers", help="Data-parallel training workers per node (DDP under torch's elastic agent; see docs/acceleration.md).")]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads-per-worker", help="Compute threads of each training worker (default 1).")]
NnodesOpt = Annotated[Optional[int], typer.Option("--nnodes", help="Machines training together (torchrun's --nnodes); each runs the same command.")]
NodeRankOpt = Annotated[Optional[int], typer.Option("--node-rank", help="This machine's rank among --nnodes (torchrun's --node-rank; default: assigned).")]
RdzvOpt = Annotated[Optional[str], typer.Option("--rdzv-endpoint", help="HOST:PORT where the nodes meet (torchrun's --rdzv-endpoint).")]
RdzvIdOpt = Annotated[Optional[str], typer.Option("--rdzv-id", help="The job's name at the rendezvous (torchrun's --rdzv-id).")]


def _data_parallel(recipe: Any, **flags: Any) -> Any:
    """The recipe's ``accelerate`` training settings with the command line's flags on top."""
    from .accelerate import DataParallel

    return DataParallel.from_recipe(recipe.accelerate, **flags)


def _recipe(path: Path | None, **overrides: Any) -> Any:
    from .recipe import Recipe

    recipe = Recipe.from_file(path) if path is not None else Recipe()
    return recipe.with_overrides(**overrides)


def _observer(quiet: bool, json_out: bool) -> Any:
    from .loop import SilentObserver

    if quiet or json_out:
        return contextlib.nullcontext(SilentObserver())
    from .display import ProgressObserver

    return ProgressObserver()


def _summary_table(report: dict[str, Any]) -> Any:
    """The chosen model against the baseline and the budget."""
    from .display import table
    from .report import _budget_lines, human_bytes, percent

    b, c = report["baseline"], report.get("chosen")
    floor = report.get("budget_floor")
    rows = [["top-1 validation (decides)", percent(b.get("validation_accuracy")),
             percent(c.get("validation_accuracy")) if c else "—", f"≥ {percent(floor)}" if floor is not None else "—"],
            ["top-1 test (reports)", percent(b.get("accuracy")), percent(c.get("accuracy")) if c else "—", ""],
            ["size", human_bytes(b["weights_bytes"]), human_bytes(c["artifact_bytes"]) if c else "—",
             human_bytes(report["budget"].get("max_artifact_bytes")) if report["budget"].get("max_artifact_bytes") else "—"],
            ["ratio", "1×", f"{c['ratio']:.1f}×" if c and c.get("ratio") else "—", ""]]
    if c and c.get("validation_accuracy") is not None and b.get("validation_accuracy") is not None:
        drops = [100 * (b["validation_accuracy"] - c["validation_accuracy"])]
        if c.get("accuracy") is not None and b.get("accuracy") is not None:
            drops.append(100 * (b["accuracy"] - c["accuracy"]))
        bound = report["budget"].get("max_accuracy_drop")
        rows.append(["top-1 drop (points)", "", f"{drops[0]:.2f} validation"
                     + (f" / {drops[1]:.2f} test" if len(drops) > 1 else ""),
                     f"≤ {bound:g} (validation)" if bound is not None else ""])
    budget = report["budget"]
    for name in sorted(set(b.get("targets") or {}) | set((c or {}).get("targets") or {})):
        bt, ct = (b.get("targets") or {}).get(name, {}), ((c or {}).get("targets") or {}).get(name, {})
        for key, label, bound in (("fps_batch1", "fps", budget.get("min_fps")),
                                  ("latency_ms_p95", "p95 ms", budget.get("max_latency_ms")),
                                  ("power_w", "power W", budget.get("max_power_w"))):
            fmt = (lambda v: "—" if v is None else f"{v:.3g}")
            rows.append([f"{name} {label}", fmt(bt.get(key)), fmt(ct.get(key)),
                         "" if bound is None else (f"≥ {bound:g}" if key == "fps_batch1" else f"≤ {bound:g}")])
    verdict = "MET" if report["met"] else "NOT MET"
    title = f"Budget {verdict} — {report['model']['architecture']} on {report['dataset']['name']}"
    t = table(title, ["", "baseline", "chosen", "budget"], rows)
    t.caption = "; ".join(_budget_lines(budget)) + f" — run folder {report.get('run_dir', '')}"
    return t


@app.command("run")
def run_cmd(
    recipe: Annotated[Optional[Path], typer.Argument(help="A recipe file (YAML or TOML); none: the built-in default.")] = None,
    model: ModelOpt = None,
    dataset: DatasetOpt = None,
    framework: FrameworkOpt = None,
    target: Annotated[Optional[list[str]], typer.Option("--target", "-t", help="Re-test on this target (repeatable), NAME or NAME:key=value,... (sigdl emulators lists the options); replaces the recipe's.")] = None,
    chain: Annotated[Optional[str], typer.Option("--with", help="Compressors in order, e.g. prune,quant; replaces the recipe's.")] = None,
    epochs: EpochsOpt = None,
    lr: LrOpt = None,
    batch_size: BatchOpt = None,
    optimizer: OptimizerOpt = None,
    schedule: ScheduleOpt = None,
    seed: SeedOpt = None,
    max_drop: Annotated[Optional[float], typer.Option("--max-drop", help="Budget: most top-1 points to lose.")] = None,
    validation: Annotated[Optional[float], typer.Option("--validation", help="Fraction of the training data held out as the validation split every decision uses (default 0.1).")] = None,
    min_fps: Annotated[Optional[float], typer.Option("--min-fps", help="Budget: fewest fps at batch 1 on every target.")] = None,
    workers: WorkersOpt = None,
    threads_per_worker: ThreadsOpt = None,
    jobs: Annotated[Optional[int], typer.Option("--jobs", help="The search's candidates (pipelined: the same ones as serially), its sensitivity grid and sharded re-testing on this many local processes.")] = None,
    cluster: Annotated[Optional[str], typer.Option("--cluster", help="A Dask scheduler, tcp://host:8786, that takes that work instead of the local pool.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="The run folder (default: sigdl-runs/<time>-<model>).")] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue the run in this folder where it stopped.")] = None,
    new_data: Annotated[Optional[Path], typer.Option("--new-data", help="A folder of labelled field samples (one subfolder per class) to add to retraining.")] = None,
    example: Annotated[bool, typer.Option("--example", help="Print a commented example recipe and exit.")] = False,
    schema: Annotated[bool, typer.Option("--schema", help="Print the recipe's JSON Schema (for editors) and exit.")] = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run the loop until the target's budget is met: exit 0 met, 1 missed, 2 bad input."""
    if example:
        from .recipe import EXAMPLE

        sys.stdout.write(EXAMPLE)
        return
    if schema:
        from .recipe import json_schema

        _emit_json(json_schema(get_plugins().registry))  # with the installed targets' options
        return
    from .loop import Session, SilentObserver, default_run_dir, run_loop
    from .recipe import Recipe

    if resume is not None:
        if recipe is not None or out is not None:
            raise BadInputError("--resume continues a run with its own recipe and folder",
                                "drop the recipe argument and --out")
        from .runstore import open_for_resume

        _store, mapping = open_for_resume(resume)
        r = Recipe.from_mapping(mapping, source=str(resume / "recipe.json"))
        run_dir = resume
        if new_data is None and (resume / "new_data").is_dir():  # the run's own copy of its field data
            new_data = resume / "new_data"
    else:
        if (recipe is not None and model is None and recipe.suffix.lower() not in RECIPE_SUFFIXES
                and any(recipe.name.lower().endswith(s) for spec in get_plugins().registry.specs("framework")
                        for s in spec.suffixes)):
            model, recipe = str(recipe), None  # `sigdl run model.onnx`: the default recipe on that model file
        r = Recipe.from_file(recipe) if recipe is not None else Recipe.default()
        overrides: dict[str, Any] = dict(model=model, dataset=dataset, framework=framework, epochs=epochs, lr=lr,
                                         batch_size=batch_size, optimizer=optimizer, schedule=schedule, seed=seed)
        r = r.with_overrides(**overrides)
        mapping = r.to_mapping()
        if target:
            mapping["targets"] = list(target)
        if chain is not None:
            mapping["compress"]["chain"] = [c.strip() for c in chain.split(",") if c.strip()]
            mapping["compress"]["params"] = {k: v for k, v in mapping["compress"]["params"].items()
                                             if k in mapping["compress"]["chain"]}
        if max_drop is not None:
            mapping["budget"]["max_accuracy_drop"] = max_drop
        if validation is not None:
            mapping["validation"] = validation
        if min_fps is not None:
            mapping["budget"]["min_fps"] = min_fps
        for key, value in (("train_workers", workers), ("threads_per_worker", threads_per_worker), ("jobs", jobs),
                           ("cluster", cluster)):
            if value is not None:
                mapping.setdefault("accelerate", {})[key] = value
        r = Recipe.from_mapping(mapping, source=r.source)
        run_dir = out if out is not None else default_run_dir(r.model)
    if new_data is not None and not new_data.is_dir():
        raise BadInputError(f"new data folder '{new_data}' does not exist or is not a folder",
                            "give a folder with one subfolder of images per class")
    plugins = get_plugins()
    Session(plugins, r, run_dir, SilentObserver()).check()
    with _observer(quiet, json_out) as observer:
        report = run_loop(Session(plugins, r, run_dir, observer), resume=resume is not None, new_data=new_data)
    report["run_dir"] = str(run_dir)
    if json_out:
        _emit_json(report)
    else:
        _print(_summary_table(report))
        if report.get("retraining"):
            _print(report["retraining"])
        for line in report.get("shortfalls") or []:
            _print(f"missed: {line['text']}")
    if not report["met"]:
        raise typer.Exit(1)


@app.command("report")
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by 'sigdl run'.")],
    json_out: JsonOpt = False,
) -> None:
    """Render a run's report again (report.md, report.html, plots) from its report.json."""
    import json as _json

    from .plots import write_plots
    from .report import write_run_report

    path = read_regular_file(run_dir / "report.json", "report")
    try:
        report = _json.loads(path.read_text())
    except ValueError as exc:
        raise BadInputError(f"'{path}' is not valid JSON: {exc}", "run 'sigdl run' again to rewrite it") from None
    report["plots"] = {k: f"plots/{v}" for k, v in write_plots(report, run_dir / "plots").items()}
    write_run_report(run_dir, report)
    if json_out:
        _emit_json(report)
    else:
        _print(f"wrote {run_dir / 'report.md'} and {run_dir / 'report.html'}")


def _parse_params(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``compressor.key=value`` flags; values are YAML (0.9, [a, b], {fc1.weight: 0.9})."""
    import yaml

    params: dict[str, dict[str, Any]] = {}
    for item in items:
        name, eq, value = item.partition("=")
        comp, dot, key = name.partition(".")
        if not eq or not dot or not comp or not key:
            raise BadInputError(f"--param '{item}' is not compressor.key=value", "e.g. --param prune.sparsity=0.9")
        try:
            params.setdefault(comp, {})[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise BadInputError(f"--param '{item}': '{value}' is not a valid value", "e.g. 0.9, 5 or {fc1.weight: 0.9}") from None
    return params


@app.command("compress")
def compress_cmd(
    model: Annotated[str, typer.Argument(help="A model file, or a model name to train first (sigdl models).")],
    chain: Annotated[str, typer.Option("--with", help="Compressors in order, e.g. prune,quant.")],
    param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="compressor.key=value, e.g. prune.sparsity=0.9 (repeatable).")] = None,
    recipe: Annotated[Optional[Path], typer.Option("--recipe", help="Take parameters (compress.params) and settings from a recipe.")] = None,
    dataset: DatasetOpt = None,
    retrain_epochs: Annotated[Optional[int], typer.Option("--retrain-epochs", help="Retraining epochs after each stage (0: none).")] = None,
    epochs: EpochsOpt = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for model.sigdl, model.onnx and summary.json.")] = Path("sigdl-compressed"),
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Compress a model with a chain of compressors; write model.sigdl, model.onnx and a summary."""
    from .files import atomic_write_json
    from .loop import Session, SilentObserver, run_loop
    from .recipe import Recipe

    base = Recipe.from_file(recipe) if recipe is not None else Recipe()
    mapping = base.to_mapping()
    mapping["model"] = model
    if dataset is not None:
        mapping["dataset"] = dataset
    if epochs is not None:
        mapping["train"]["epochs"] = epochs
    names = [c.strip() for c in chain.split(",") if c.strip()]
    params = {k: v for k, v in mapping["compress"]["params"].items() if k in names}
    for comp, values in _parse_params(param or []).items():
        params.setdefault(comp, {}).update(values)
    mapping["compress"].update(chain=names, params=params)
    if retrain_epochs is not None:
        mapping["compress"]["retrain"]["epochs"] = retrain_epochs
    mapping["search"]["strategy"] = "fixed"
    mapping["targets"] = []
    mapping["budget"] = {"max_accuracy_drop": None}
    if recipe is None:  # nothing is decided here, so all the training data trains
        mapping["validation"] = 0.0
    r = Recipe.from_mapping(mapping, source=str(recipe) if recipe else "sigdl compress")
    plugins = get_plugins()
    Session(plugins, r, out, SilentObserver()).check()
    with _observer(quiet, json_out) as observer:
        report = run_loop(Session(plugins, r, out, observer,
                                  require_retraining=bool(retrain_epochs and retrain_epochs > 0)))
    chosen = report["chosen"]
    summary = {"model": model, "chain": chosen["settings"], "baseline_accuracy": report["baseline"]["accuracy"],
               "accuracy": chosen.get("accuracy"), "original_bytes": chosen["original_bytes"],
               "artifact_bytes": chosen["artifact_bytes"], "ratio": chosen["ratio"], "layers": chosen["layers"],
               "retraining": report.get("retraining"),
               "files": {"sigdl": str(out / "model.sigdl"), "onnx": str(out / "model.onnx")}}
    if "frequency_onnx" in report["files"]:  # a frequency-domain compressor's DFT form, beside model.onnx
        summary["files"]["frequency_onnx"] = str(out / report["files"]["frequency_onnx"])
        summary["frequency_form"] = chosen.get("frequency_form")
        summary["execution_plan"] = chosen.get("execution_plan")
    atomic_write_json(out / "summary.json", summary)
    if json_out:
        _emit_json(summary)
        return
    from .display import table
    from .report import human_bytes, percent

    _print(table("Compressed", ["", "top-1", "size", "ratio"], [
        ["baseline", percent(summary["baseline_accuracy"]), human_bytes(summary["original_bytes"]), "1×"],
        ["compressed", percent(summary["accuracy"]), human_bytes(summary["artifact_bytes"]), f"{summary['ratio']:.1f}×"]]))
    _print(table(None, ["layer", "kept", "of", "weight bits", "index bits"],
                 [[n, f"{l['kept']:,}", f"{l['total']:,}", f"{l['weight_bits']:,}", f"{l['index_bits']:,}"]
                  for n, l in summary["layers"].items()]))
    if summary["retraining"]:
        _print(summary["retraining"])
    freq = f", {summary['files']['frequency_onnx']}" if "frequency_onnx" in summary["files"] else ""
    _print(f"wrote {out / 'model.sigdl'}, {out / 'model.onnx'}{freq}, {out / 'summary.json'}")


@app.command("decode")
def decode_cmd(
    artifact: Annotated[Path, typer.Argument(help="A .sigdl artifact.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="The framework model to write (default: beside the artifact).")] = None,
    onnx_out: Annotated[Optional[Path], typer.Option("--onnx", help="Also write the decoded model as ONNX.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Decode a .sigdl artifact, bit-exactly, back into a framework model."""
    from .artifact import load_weights

    read_regular_file(artifact, "artifact")
    weights, meta = load_weights(artifact)
    for key in ("framework", "model", "input_shape", "num_classes"):
        if key not in meta:
            raise BadInputError(f"artifact '{artifact}' does not say its {key}",
                                "decode it with the SigDL version that wrote it, or write it with 'sigdl compress'")
    registry = get_plugins().registry
    fw = registry.framework(meta["framework"])
    m = fw.build(meta["model"], tuple(meta["input_shape"]), int(meta["num_classes"]))
    fw.set_weights(m, weights)
    suffix = (registry.get("framework", fw.name).suffixes or (".model",))[0]
    target = out if out is not None else artifact.with_suffix(suffix)
    fw.save(m, target)
    written = {"model": str(target)}
    if onnx_out is not None:
        written["onnx"] = str(fw.export_onnx(m, onnx_out))
    if json_out:
        _emit_json({"artifact": str(artifact), "weights": len(weights), **written})
    else:
        _print(f"decoded {len(weights)} weights of {meta['model']} → " + ", ".join(written.values()))


@app.command("train")
def train_cmd(
    model: ModelOpt = None,
    dataset: DatasetOpt = None,
    framework: FrameworkOpt = None,
    epochs: EpochsOpt = None,
    lr: LrOpt = None,
    batch_size: BatchOpt = None,
    optimizer: OptimizerOpt = None,
    schedule: ScheduleOpt = None,
    seed: SeedOpt = None,
    recipe: Annotated[Optional[Path], typer.Option("--recipe", help="Take settings from a recipe file.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Where to write the trained model (default: <model>.pt).")] = None,
    workers: WorkersOpt = None,
    threads_per_worker: ThreadsOpt = None,
    nnodes: NnodesOpt = None,
    node_rank: NodeRankOpt = None,
    rdzv_endpoint: RdzvOpt = None,
    rdzv_id: RdzvIdOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train a model and save it (data-parallel with --workers N)."""
    from .accelerate import train as train_model
    from .loop import Session, SilentObserver

    r = _recipe(recipe, model=model, dataset=dataset, framework=framework, epochs=epochs, lr=lr,
                batch_size=batch_size, optimizer=optimizer, schedule=schedule, seed=seed)
    parallel = _data_parallel(r, workers=workers, threads=threads_per_worker, nnodes=nnodes, node_rank=node_rank,
                              rdzv_endpoint=rdzv_endpoint, rdzv_id=rdzv_id)
    plugins = get_plugins()
    Session(plugins, r, Path("."), SilentObserver()).check()
    with _observer(quiet, json_out) as observer:
        session = Session(plugins, r, Path("."), observer)
        with session.stage("load", {"model": r.model, "dataset": r.dataset}):
            fw = plugins.registry.framework(session.framework_name())
            data = session.load_data()
            m, _ = session.obtain_model(fw, data)
        target = out if out is not None else Path(f"{Path(r.model).stem}{(plugins.registry.get('framework', fw.name).suffixes or ('.model',))[0]}")
        settings = session.recipe.train  # the model's own defaults where no flag or recipe key set one
        with session.stage("train", settings.to_dict()):
            history = train_model(fw, m, data, settings, parallel, progress=observer.progress)
        with session.stage("test", {"split": "test"}):
            acc = None if data.timing_only else fw.evaluate(m, data, "test")
        fw.save(m, target)
    result = {"model": m.architecture, "dataset": data.name, "file": str(target),
              "accuracy": acc.to_dict() if acc else None, "settings": settings.to_dict(), "train": history.to_dict()}
    if json_out:
        _emit_json(result)
        return
    from .display import table
    from .report import percent

    _print(table("Trained", ["model", "dataset", "top-1", "top-5", "seconds", "saved to"],
                 [[m.architecture, data.name, percent(acc.top1 if acc else None),
                   percent(acc.top5 if acc else None), f"{history.seconds:.1f}", str(target)]]))


@app.command("test")
def test_cmd(
    model_file: Annotated[Path, typer.Argument(help="A model file: a framework checkpoint or an ONNX model.")],
    dataset: DatasetOpt = None,
    target: Annotated[Optional[list[str]], typer.Option("--target", "-t", help="Re-test on this target's emulator (repeatable); NAME or NAME:key=value,... with the emulator's options (sigdl emulators).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="The architecture, for a bare state_dict file.")] = None,
    seed: SeedOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Test a model: its accuracy, or with --target its emulated latency, fps, memory, power.

    Exits 1 when the model does not fit or cannot run on one of the targets.
    """
    from .targets import emulate_target, resolve_targets

    plugins = get_plugins()
    registry = plugins.registry
    read_regular_file(model_file, "model file")
    bound = resolve_targets(registry, target or [])  # names and options checked before any work
    data = registry.load_dataset(dataset, seed or 0) if dataset else None
    is_onnx = model_file.suffix.lower() == ".onnx"
    if not target:
        if is_onnx and not any(".onnx" in spec.suffixes for spec in registry.specs("framework")):
            raise BadInputError("testing an ONNX file needs a target", "add --target NAME (sigdl targets)")
        if data is None:
            raise BadInputError("testing a model's accuracy needs data", "add --dataset NAME (sigdl datasets)")
        fw = registry.framework(registry.framework_for_file(model_file))
        m = fw.load(model_file, architecture=model)
        acc = fw.evaluate(m, data, "test")
        result = {"model": str(model_file), "dataset": data.name, "accuracy": acc.to_dict()}
        if json_out:
            _emit_json(result)
            return
        from .display import table
        from .report import percent

        _print(table("Test", ["model", "dataset", "samples", "top-1", "top-5"],
                     [[str(model_file), data.name, acc.samples, percent(acc.top1), percent(acc.top5)]]))
        return

    with tempfile.TemporaryDirectory(prefix="sigdl-test-") as tmp:
        onnx_path = model_file
        if not is_onnx:
            fw = registry.framework(registry.framework_for_file(model_file))
            m = fw.load(model_file, architecture=model)
            onnx_path = fw.export_onnx(m, Path(tmp) / "model.onnx")
        reports = []
        board_failure: SigdlError | None = None
        with _observer(quiet, json_out) as observer:
            for one in bound:
                observer.stage_started("emulate", {"target": str(one.ref)})
                start = time.perf_counter()
                try:
                    rep = emulate_target(registry, one, onnx_path, data)
                except SigdlError as exc:
                    if one.remote is None or isinstance(exc, BadInputError) or board_failure is not None:
                        raise
                    board_failure = exc  # a board that failed mid-run: keep the other targets' results
                    _print(f"[red]error[/] {one.name}: {exc.one_line()}")
                    continue
                observer.stage_finished("emulate", {"seconds": time.perf_counter() - start})
                reports.append(rep)
    if json_out:
        _emit_json({"model": str(model_file), "dataset": data.name if data else None,
                    "targets": {r.target: r.to_dict() for r in reports},
                    **({"errors": {"board": board_failure.one_line()}} if board_failure else {})})
    else:
        if reports:
            _print(comparison_table(reports))
        for r in reports:
            for w in r.warnings:
                _print(f"[yellow]warning[/] {r.target}: {w}")
    if board_failure is not None:
        raise board_failure
    if not all(r.fits for r in reports):  # the model cannot run on a target: a CI gate fails
        raise typer.Exit(1)


def _on_board(report: Any) -> bool:
    """Whether a report's numbers were measured on a real board."""
    p = report.provenance.get("latency_ms_p50")
    return p is not None and p.method.name == "MEASURED"


def comparison_table(reports: Sequence[Any]) -> Any:
    """Targets side by side: one column per target, one row per measure, with its method."""
    from .display import table
    from .report import human_bytes, percent

    def fmt(v: Any, unit: str = "") -> str:
        if v is None:
            return "—"
        return f"{v:.3g}{unit}" if isinstance(v, float) else f"{v}{unit}"

    def method(r: Any, key: str) -> str:
        p = r.provenance.get(key)
        return f" ({p.method.value})" if p else ""

    rows = [
        ["top-1"] + [(percent(r.accuracy.top1) if r.accuracy else "—") + method(r, "accuracy") for r in reports],
        ["latency p50"] + [fmt(r.latency_ms_p50, " ms") + method(r, "latency_ms_p50") for r in reports],
        ["latency p95"] + [fmt(r.latency_ms_p95, " ms") + method(r, "latency_ms_p95") for r in reports],
        ["fps (batch 1)"] + [fmt(r.fps_batch1) + method(r, "fps_batch1") for r in reports],
        ["fps (best batch)"] + [f"{fmt(r.fps_best)} @ {r.best_batch or '—'}" + method(r, "fps_best") for r in reports],
        ["peak memory"] + [f"{human_bytes(r.peak_memory_bytes)} / {human_bytes(r.memory_limit_bytes)}"
                           + method(r, "peak_memory_bytes") for r in reports],
        ["power"] + [("not measured" if r.power_w is None and _on_board(r) else fmt(r.power_w, " W"))
                     + method(r, "power_w") for r in reports],
        ["energy / inference"] + [fmt(r.energy_mj, " mJ") + method(r, "energy_mj") for r in reports],
        ["fits"] + ["yes" if r.fits else "NO" for r in reports],
    ]
    # a real board (NAME@HOST, measured) beside its emulator (NAME): the emulator's error
    by_name = {r.target: r for r in reports}
    twins = {r.target: by_name.get(r.target.split("@", 1)[0]) for r in reports if "@" in r.target}
    if any(twins.values()):
        def error(r: Any, key: str) -> str:
            twin = twins.get(r.target)
            mine, theirs = getattr(r, key), getattr(twin, key, None) if twin else None
            if not mine or theirs is None:
                return ""
            return f"{(theirs / mine - 1) * 100:+.1f} %"

        def points(r: Any) -> str:
            twin = twins.get(r.target)
            if twin is None or r.accuracy is None or twin.accuracy is None:
                return ""
            return f"{(twin.accuracy.top1 - r.accuracy.top1) * 100:+.2f} points"

        rows.append(["emulator error, latency p50 (vs board)"] + [error(r, "latency_ms_p50") for r in reports])
        rows.append(["emulator error, top-1 (vs board)"] + [points(r) for r in reports])
    return table("Re-test on targets", ["", *[r.target for r in reports]], rows)


# --------------------------------------------------------------------------- new (plugin templates)


@app.command("new")
def new_cmd(
    kind: Annotated[Optional[str], typer.Argument(help="target, compressor or framework.")] = None,
    name: Annotated[Optional[str], typer.Argument(help="The plugin's name, e.g. acme-board.")] = None,
    directory: Annotated[Path, typer.Option("--dir", help="Where to create the plugin's folder.")] = Path("."),
    update: Annotated[Optional[Path], typer.Option("--update", help="Bring this plugin folder (made by sigdl new, committed to git) up to the current template.")] = None,
    template: Annotated[Optional[Path], typer.Option("--template", help="A copier template folder to use instead of the built-in one.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a working plugin (target, compressor or framework) from a template; --update a made one."""
    from .plugin_templates import KINDS, names_for, new_plugin, update_plugin

    if update is not None:
        if kind is not None or name is not None:
            raise BadInputError("--update takes the plugin's folder, not a kind and name",
                                "use sigdl new --update DIR")
        tag = update_plugin(update, template)
        if json_out:
            _emit_json({"updated": str(update), "template_version": tag})
        else:
            _print(f"updated {update} to template version {tag}; review with git diff, resolve any <<<<<<< marks")
        return
    if kind not in KINDS or name is None:
        raise BadInputError(f"sigdl new needs a kind ({', '.join(KINDS)}) and a name",
                            "e.g. sigdl new target acme-board")
    folder = new_plugin(kind, name, directory, template)
    names = names_for(kind, name)
    if json_out:
        _emit_json({"kind": kind, "folder": str(folder), **names})
        return
    typer.echo(f"created {folder} ({names['distribution']}, package {names['package']}); next:\n"
               f"  pip install -e '{folder}[test]'\n  sigdl {kind}s\n  pytest {folder}")


def main(argv: Sequence[str] | None = None) -> None:
    """The ``sigdl`` console script."""
    app(args=list(argv) if argv is not None else None, prog_name="sigdl")


if __name__ == "__main__":  # pragma: no cover
    main()
