"""The loop: load or build → train → test → export, stage by stage, into a run folder.

Every stage is announced to the plugins (``sigdl_stage_started``/``sigdl_stage_finished``)
and to an :class:`Observer` (the CLI's progress display), timed, and recorded in the run's
report. The core never imports a framework: it asks the registry for one by name and speaks
to it through :class:`~sigdl_core.interfaces.Framework`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import platform
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from . import __version__
from .errors import BadInputError
from .files import read_regular_file
from .interfaces import ArrayDataset, Framework, Model
from .plugins import LoadedPlugins
from .recipe import Recipe
from .report import write_run_report
from .targets import BoundTarget, emulate_target, export_target_model, resolve_targets


class Observer(Protocol):
    """What the loop tells whoever is watching (the CLI shows it; tests may record it)."""

    def stage_started(self, stage: str, info: Mapping[str, Any]) -> None: ...

    def stage_finished(self, stage: str, result: Mapping[str, Any]) -> None: ...

    def progress(self, description: str, completed: int, total: int) -> None: ...

    def candidate_finished(self, record: Mapping[str, Any], cached: bool) -> None: ...


class SilentObserver:
    """An observer that shows nothing (``-q`` and ``--json``)."""

    def stage_started(self, stage: str, info: Mapping[str, Any]) -> None:
        pass

    def stage_finished(self, stage: str, result: Mapping[str, Any]) -> None:
        pass

    def progress(self, description: str, completed: int, total: int) -> None:
        pass

    def candidate_finished(self, record: Mapping[str, Any], cached: bool) -> None:
        pass


def default_run_dir(model: str, root: Path = Path("sigdl-runs")) -> Path:
    """``sigdl-runs/<UTC time>-<model>``: a new folder for every run."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(model).stem)
    path = root / f"{stamp}-{safe}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{safe}-{n}"
    return path


@dataclass
class Session:
    """One run: the plugins, the recipe, the folder, and the observer."""

    plugins: LoadedPlugins
    recipe: Recipe
    run_dir: Path
    observer: Observer
    #: True when the user asked for retraining explicitly (``--retrain-epochs N``): a framework
    #: that cannot train the model is then an error instead of post-training compression.
    require_retraining: bool = False

    def __post_init__(self) -> None:
        self.stages: dict[str, dict[str, Any]] = {}
        self.recipe = self._with_compressor_defaults(self._with_model_defaults(self.recipe))

    def _with_model_defaults(self, recipe: Recipe) -> Recipe:
        """The recipe with the zoo model's own training defaults where it set none."""
        if recipe.model_path() is not None:
            return recipe
        try:
            spec = self.plugins.registry.get("model", recipe.model, framework=recipe.framework or None)
        except BadInputError:
            return recipe  # check() says what is wrong
        return recipe.for_model(spec.train_defaults) if spec.train_defaults else recipe

    @contextlib.contextmanager
    def stage(self, name: str, info: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Announces, times and records one stage; the body fills the yielded result."""
        info = dict(info or {})
        self.plugins.hook.sigdl_stage_started(stage=name, run_dir=self.run_dir, info=info)
        self.observer.stage_started(name, info)
        result: dict[str, Any] = {}
        start = time.perf_counter()
        yield result
        result["seconds"] = round(time.perf_counter() - start, 3)
        self.stages[name] = result
        self.observer.stage_finished(name, result)
        self.plugins.hook.sigdl_stage_finished(stage=name, run_dir=self.run_dir, result=result)

    # ------------------------------------------------------------------ building blocks

    def check(self) -> None:
        """Checks every name and file the recipe gives before any work starts."""
        registry = self.plugins.registry
        path = self.recipe.model_path()
        if path is not None:
            read_regular_file(path, "model file")
        framework = self.framework_name()
        if path is None:
            registry.get("model", self.recipe.model, framework=framework)
        registry.dataset_spec(self.recipe.dataset)
        self.check_compressors()
        fw = registry.framework(framework)
        fw.check_settings(self.recipe.train)
        if self.recipe.compress["chain"]:
            fw.check_settings(self.recipe.retrain_settings())
        if self.decides() and not self.recipe.validation:
            raise BadInputError("this run decides on accuracy (a search or a budget), but 'validation' is 0",
                                "set validation: 0.1 (or --validation 0.1): decisions use a validation split, "
                                "never the test split")
        self.targets()

    def check_compressors(self) -> None:
        """Every compressor of the chain exists and takes the parameters given, before any work.

        A parameter its spec does not document is refused; a chain run as given
        (``search.strategy: fixed``) also has its parameters checked by the compressor
        (:meth:`~sigdl_core.interfaces.Compressor.check_params`).
        """
        from .errors import UnknownNameError

        registry = self.plugins.registry
        fixed = self.recipe.search["strategy"] == "fixed"
        for name in self.recipe.compress["chain"]:
            spec = registry.get("compressor", name)
            given = self.recipe.compress["params"].get(name) or {}
            unknown = [k for k in given if k not in spec.params]
            if spec.params and unknown:
                raise UnknownNameError(f"'{name}' parameter", str(unknown[0]), spec.params,
                                       "known: " + ", ".join(spec.params) + " (sigdl compressors)")
            if fixed:
                registry.compressor(name).check_params(given)

    def _with_compressor_defaults(self, recipe: Recipe) -> Recipe:
        """A chain run as given: compressors given no parameters take their spec's defaults."""
        if recipe.search["strategy"] != "fixed" or not recipe.compress["chain"]:
            return recipe
        params = dict(recipe.compress["params"])
        for name in recipe.compress["chain"]:
            if params.get(name):
                continue
            try:
                defaults = self.plugins.registry.get("compressor", name).defaults
            except BadInputError:
                continue  # check() says what is wrong
            if defaults:
                params[name] = dict(defaults)
        if params == dict(recipe.compress["params"]):
            return recipe
        return replace(recipe, compress={**recipe.compress, "params": params})

    def targets(self) -> list[BoundTarget]:
        """The recipe's targets bound to their specs, with their emulator options validated."""
        return resolve_targets(self.plugins.registry, self.recipe.targets)

    def decides(self) -> bool:
        """Whether the run takes a decision on accuracy: a search, or a budget to meet."""
        recipe = self.recipe
        if not recipe.compress["chain"]:
            return False
        return recipe.search["strategy"] != "fixed" or any(v is not None for v in recipe.budget.values())

    def framework_name(self) -> str:
        """The recipe's framework, else the model file's, else the zoo model's."""
        registry = self.plugins.registry
        if self.recipe.framework:
            registry.get("framework", self.recipe.framework)
            return self.recipe.framework
        path = self.recipe.model_path()
        if path is not None:
            return registry.framework_for_file(path)
        return registry.get("model", self.recipe.model).framework

    def load_data(self) -> ArrayDataset:
        """The recipe's dataset, its validation split carved from the training data.

        The split is stratified and depends only on the labels and the seed
        (:meth:`ArrayDataset.with_validation`); timing-only data get none.
        """
        data = self.plugins.registry.load_dataset(self.recipe.dataset, self.recipe.seed)
        if data.timing_only or not self.recipe.validation:
            return data
        return data.with_validation(self.recipe.validation, self.recipe.seed)

    def obtain_model(self, framework: Framework, data: ArrayDataset) -> tuple[Model, bool]:
        """The recipe's model, loaded from its file or freshly built; True when built."""
        path = self.recipe.model_path()
        if path is not None:
            model = framework.load(path)
            if tuple(model.input_shape) != data.input_shape and not data.timing_only:
                raise BadInputError(
                    f"model '{path}' takes inputs of shape {tuple(model.input_shape)} but dataset "
                    f"'{data.name}' has {data.input_shape}",
                    "pick a dataset the model was trained on",
                )
            return model, False
        spec = self.plugins.registry.get("model", self.recipe.model, framework=framework.name)
        model = framework.build(spec.name, data.input_shape, data.num_classes, seed=self.recipe.seed)
        return model, True


def _concat(a: ArrayDataset, b: ArrayDataset) -> ArrayDataset:
    import numpy as np

    if a.input_shape != b.input_shape:
        raise BadInputError(f"new data has samples of shape {b.input_shape}, the model takes {a.input_shape}",
                            "give images of the model's input size and channels")
    from dataclasses import replace

    return replace(a, name=f"{a.name}+{b.name}", x_train=np.concatenate([a.x_train, b.x_train]),
                   y_train=np.concatenate([a.y_train, b.y_train]))


def run_loop(session: Session, resume: bool = False, new_data: Path | None = None) -> dict[str, Any]:
    """The whole loop; returns the report as written to ``report.json``.

    The run's executor (``--jobs``, ``--cluster``; :func:`~sigdl_core.parallel.open_executor`)
    opens once the framework is known and its workers load it while the baseline trains, so
    that the search's first candidates do not wait for them.

    Baseline → re-test on the targets → (search: compress, retrain, test, encode, re-test) →
    choose → ``model.sigdl``, ``model.onnx``, target models, ``report.json|md|html`` and plots.
    Every finished piece is checkpointed in the run folder, so ``resume=True`` continues a
    killed run without redoing or losing finished work.
    """
    with contextlib.ExitStack() as scope:
        return _run_loop(session, resume, new_data, scope)


def _run_loop(session: Session, resume: bool, new_data: Path | None, scope: contextlib.ExitStack) -> dict[str, Any]:
    from .budget import Budget
    from .runstore import RunStore

    recipe, registry, run_dir = session.recipe, session.plugins.registry, session.run_dir
    session.check()
    targets = session.targets()
    budget = Budget(**recipe.budget)
    run_dir.mkdir(parents=True, exist_ok=True)
    store = RunStore(run_dir)
    if not resume:
        store.reset()
        store.save("recipe.json", recipe.to_mapping())
    started = _dt.datetime.now(_dt.timezone.utc)
    t0 = time.perf_counter()

    with session.stage("load", {"model": recipe.model, "dataset": recipe.dataset}) as result:
        fw_name = session.framework_name()
        framework = registry.framework(fw_name)
        data = session.load_data()
        suffix = (registry.get("framework", fw_name).suffixes or (".model",))[0]
        checkpoint = run_dir / f"baseline{suffix}"
        cached = store.load("baseline.json") if resume else None
        if cached is not None and checkpoint.is_file():
            model, built = framework.load(checkpoint), False
        else:
            cached = None
            model, built = session.obtain_model(framework, data)
        result.update(framework=fw_name, dataset=data.summary(), resumed=cached is not None)

    executor, warming = None, []
    if recipe.compress["chain"]:
        from .parallel import executor_width, open_executor, warm_up

        executor = scope.enter_context(open_executor(recipe.accelerate.get("jobs", 1), recipe.accelerate.get("cluster")))
        if executor is not None:  # the workers import the framework while the baseline trains
            warming = [executor.submit(warm_up, fw_name) for _ in range(executor_width(executor))]

    post_training = None  # why the chain runs without retraining: the recipe's choice, or the framework's
    if recipe.compress["chain"] and recipe.retrain_settings().epochs > 0:
        post_training = framework.training_unavailable(model)
        if post_training is not None and session.require_retraining:
            raise BadInputError(post_training, "compress post-training with --retrain-epochs 0")
    elif recipe.compress["chain"]:
        post_training = "retraining epochs are 0"

    extra = None
    if new_data is not None:
        extra = _take_new_data(session, new_data, data)
    train_data = _concat(data, extra) if extra is not None else data

    if cached is None:
        cached = _baseline(session, framework, model, built, data, train_data, extra, targets, warming)
        framework.save(model, checkpoint)
        store.save("baseline.json", cached)
    baseline = cached

    candidates: list[dict[str, Any]] = []
    stopped = None
    chosen = None
    search_seconds = None
    bench = None
    if recipe.compress["chain"]:
        from .search import Workbench, choose, run_search

        bench = Workbench(
            plugins=session.plugins, framework=framework, model=model, data=data, recipe=recipe, store=store,
            baseline_weights=framework.get_weights(model), kinds=framework.layer_kinds(model),
            baseline_top1=baseline.get("validation_accuracy"), targets=targets, budget=budget, observer=session.observer,
            new_data=extra, train_data=train_data, executor=executor,
        )
        with session.stage("search", {"chain": ",".join(recipe.compress["chain"]),
                                      "strategy": recipe.search["strategy"]}) as result:
            search_started = time.perf_counter()
            candidates, stopped = run_search(bench)
            search_seconds = time.perf_counter() - search_started
            chosen = choose(candidates)
            result.update(candidates=len(candidates), stopped=stopped)
        if chosen is not None:
            with session.stage("export", {"candidate": chosen["index"]}) as result:
                result.update(_write_chosen(session, framework, model, bench, chosen, targets))
        shortfalls = chosen["shortfalls"] if chosen else []
        met = bool(chosen and chosen["met"])
    else:
        with session.stage("export", {"folder": str(run_dir)}) as result:
            onnx_path = framework.export_onnx(model, run_dir / "model.onnx")
            result.update(onnx=onnx_path.name)
        shortfalls = [s.to_dict() for s in budget.check(None, None, None, baseline["targets"])]
        met = not shortfalls

    report: dict[str, Any] = {
        "sigdl_version": __version__,
        "kind": "loop" if recipe.compress["chain"] else "baseline",
        "started": started.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - t0, 3),
        "host": {"python": platform.python_version(), "machine": platform.machine(),
                 "system": platform.system()},
        "recipe": recipe.to_dict(),
        "model": {"architecture": model.architecture, "framework": fw_name,
                  "input_shape": list(model.input_shape), "num_classes": model.num_classes},
        "dataset": data.summary(),
        "new_data": extra.summary() if extra is not None else None,
        "baseline": baseline,
        "budget": budget.to_dict(),
        "budget_floor": (budget.accuracy_floor(baseline["validation_accuracy"])
                         if baseline.get("validation_accuracy") is not None else None),
        "decided_on": {"split": "validation", "samples": len(data.y_val) if data.y_val is not None else 0,
                       "reported": "test", "test_samples": 0 if data.timing_only else len(data.y_test)},
        "chosen": chosen,
        "met": met,
        "shortfalls": shortfalls,
        "stopped": stopped,
        "retraining": f"post-training: no retraining ({post_training})" if post_training else None,
        "distillation": _distillation(recipe, framework, post_training, data),
        "candidates": candidates,
        "acceleration": _acceleration(recipe, candidates, search_seconds, bench),
        "stages": session.stages,
        "files": _files(run_dir, chosen, checkpoint),
    }
    with session.stage("report", {"folder": str(run_dir)}) as result:
        from .plots import write_plots

        report["plots"] = {k: f"plots/{v}" for k, v in write_plots(report, run_dir / "plots").items()}
        write_run_report(run_dir, report)
        result.update(files=sorted(report["files"]))
    session.plugins.hook.sigdl_run_finished(run_dir=run_dir, report=report)
    return report


def _distillation(recipe: Recipe, framework: Framework, post_training: str | None,
                  data: ArrayDataset) -> dict[str, Any] | None:
    """How retraining distilled from the baseline (search.Workbench.teacher), or None when it
    did not (no chain, no retraining, timing-only data, distill 0, a framework that does not)."""
    settings = recipe.distillation()
    if not recipe.compress["chain"] or post_training or data.timing_only or settings is None or not framework.distills:
        return None
    return {"teacher": "baseline", "weight": settings[0], "temperature": settings[1]}


def _acceleration(recipe: Recipe, candidates: list[dict[str, Any]], search_seconds: float | None,
                  bench: Any = None) -> dict[str, Any]:
    """What ran in parallel, the search's pace and where its time went (``search_time``,
    :attr:`~sigdl_core.search.Workbench.spent`); the baseline's training record, with its
    workers, measured all-reduce/step ratio and where its time went, is in its stage."""
    acc = recipe.accelerate
    fresh = [c for c in candidates if c.get("seconds") is not None]
    parts = []
    if acc.get("jobs", 1) > 1 or acc.get("cluster"):
        parts = ["sensitivity grid", "test-split re-testing (sharded)"]
        if bench is not None and bench.lookahead:
            parts.insert(0, f"candidates' tails, {bench.lookahead} launched ahead")
    spent = None
    if bench is not None:
        spent = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in bench.spent.items()}
    return {"train_workers": acc.get("train_workers", 1), "threads_per_worker": acc.get("threads_per_worker") or 1,
            "nnodes": acc.get("nnodes", 1), "jobs": acc.get("jobs", 1), "cluster": acc.get("cluster"),
            "parallel_parts": parts,
            "search_seconds": round(search_seconds, 3) if search_seconds is not None else None,
            "candidates_per_minute": (round(60 * len(fresh) / search_seconds, 2)
                                      if search_seconds and fresh else None),
            "search_time": spent}


def _baseline(session: Session, framework: Framework, model: Model, built: bool, data: ArrayDataset,
              train_data: ArrayDataset, new: ArrayDataset | None, targets: list[Any],
              warming: Sequence[Any] = ()) -> dict[str, Any]:
    """Trains a freshly built model, tests it, and re-tests it on the targets (once the
    executor's ``warming`` futures are done: an emulator that times on this machine's cores
    times alone)."""
    recipe = session.recipe
    history = None
    if built and recipe.train.epochs > 0:
        with session.stage("train", recipe.train.to_dict()) as result:
            from .accelerate import DataParallel, train

            history = train(framework, model, train_data, recipe.train, DataParallel.from_recipe(recipe.accelerate),
                            progress=session.observer.progress)
            result.update(history.to_dict())
    accuracy = validation = None
    if not data.timing_only:
        if data.y_val is not None:
            with session.stage("validate", {"split": "validation", "samples": len(data.y_val)}) as result:
                validation = framework.evaluate(model, data, "validation")
                result.update(validation.to_dict())
        with session.stage("test", {"split": "test", "samples": len(data.y_test)}) as result:
            accuracy = framework.evaluate(model, data, "test")
            result.update(accuracy.to_dict())
    baseline_targets = {}
    if targets:
        from .search import validation_view

        if warming:
            from concurrent.futures import wait

            wait(warming)
        with session.stage("emulate", {"targets": ",".join(t.name for t in targets), "model": "baseline"}):
            baseline_targets = _emulate(session, framework, model, validation_view(data), targets)
    return {
        "validation_accuracy": validation.top1 if validation else None,
        "validation_top5": validation.top5 if validation else None,
        "accuracy": accuracy.top1 if accuracy else None, "top5": accuracy.top5 if accuracy else None,
        "new_data_accuracy": framework.evaluate(model, new, "test").top1 if new is not None else None,
        "parameters": framework.parameter_count(model),
        "weights_bytes": 4 * sum(int(w.size) for w in framework.get_weights(model).values()),
        "train": history.to_dict() if history else None,
        "targets": baseline_targets,
    }


def _take_new_data(session: Session, folder: Path, data: ArrayDataset) -> ArrayDataset:
    """Copies field data into the run folder (and nowhere else) and loads it from there.

    The images are resized to the model's input and brought into the base dataset's
    normalisation, so that they mean to the model what its training data meant.
    """
    import shutil

    import numpy as np

    if not folder.is_dir():
        raise BadInputError(f"new data folder '{folder}' does not exist or is not a folder",
                            "give a folder with one subfolder of images per class")
    if len(data.input_shape) != 3:
        raise BadInputError(f"new data are images, but the model takes inputs of shape {data.input_shape}",
                            "use --new-data with an image model")
    copy = session.run_dir / "new_data"
    if not copy.exists():
        shutil.copytree(folder, copy)
    height, width = data.input_shape[1:]
    new = session.plugins.registry.load_dataset(f"image-folder:{copy}@{height}x{width}", session.recipe.seed)
    if new.input_shape[0] != data.input_shape[0]:
        raise BadInputError(f"new data images have {new.input_shape[0]} channels, the model takes {data.input_shape[0]}",
                            "give greyscale images for a greyscale model, colour for colour")
    if new.num_classes > data.num_classes:
        raise BadInputError(f"new data have {new.num_classes} classes, the model knows {data.num_classes}",
                            "name the class folders 0, 1, … as the model's classes")
    if new.normalization is not None and data.normalization is not None:
        (m_new, s_new), (m_base, s_base) = new.normalization, data.normalization
        shape = (1, -1, 1, 1)

        def remap(x: np.ndarray) -> np.ndarray:
            raw = x * np.reshape(s_new, shape) + np.reshape(m_new, shape)
            return ((raw - np.reshape(m_base, shape)) / np.reshape(s_base, shape)).astype(np.float32)

        new.x_train, new.x_test = remap(new.x_train), remap(new.x_test)
    return new


def _emulate(session: Session, framework: Framework, model: Model, data: ArrayDataset,
             targets: list[Any]) -> dict[str, dict[str, Any]]:
    import tempfile

    from .search import target_record

    registry = session.plugins.registry
    out = {}
    with tempfile.TemporaryDirectory(prefix="sigdl-base-") as tmp:
        onnx_path = framework.export_onnx(model, Path(tmp) / "model.onnx")
        for target in targets:
            out[target.name] = target_record(emulate_target(registry, target, onnx_path, data))
    return out


def _write_chosen(session: Session, framework: Framework, model: Model, bench: Any,
                  chosen: dict[str, Any], targets: list[Any]) -> dict[str, Any]:
    """``model.sigdl`` (the chosen candidate's), ``model.onnx`` decoded from it, target models."""
    import shutil

    from .artifact import load_weights
    from .files import atomic_path

    run_dir = session.run_dir
    with atomic_path(run_dir / "model.sigdl") as tmp:
        shutil.copyfile(run_dir / chosen["artifact"], tmp)
    weights, _meta = load_weights(run_dir / "model.sigdl")
    framework.set_weights(model, weights)
    if not bench.data.timing_only:  # the test split, for the report: the choice is made
        if bench.executor is not None:  # sharded on the run's workers; the counts summed: serial's figure
            from .parallel import sharded_accuracy

            suffix = (session.plugins.registry.get("framework", framework.name).suffixes or (".model",))[0]
            test = sharded_accuracy(framework, model, bench.data, "test", bench.executor,
                                    shards=max(2, int(session.recipe.accelerate.get("jobs", 1))), suffix=suffix)
        else:
            test = framework.evaluate(model, bench.data, "test")
        chosen["accuracy"], chosen["top5"] = test.top1, test.top5
    onnx_path = framework.export_onnx(model, run_dir / "model.onnx")
    written = []
    for target in targets:
        folder = run_dir / "targets" / target.name
        folder.mkdir(parents=True, exist_ok=True)
        path = export_target_model(session.plugins.registry, target, onnx_path, bench.data, folder)
        if path is not None:
            written.append(str(Path(path).relative_to(run_dir)))
        else:
            folder.rmdir()
    exported = {"sigdl": "model.sigdl", "onnx": onnx_path.name, "target_models": written}
    exported.update(_frequency_form(session, framework, model, onnx_path, chosen))
    return exported


#: The frequency form of the chosen model, beside ``model.onnx`` (see
#: :meth:`~sigdl_core.interfaces.Compressor.export_frequency_form`).
FREQUENCY_ONNX = "model.freq.onnx"


def _frequency_form(session: Session, framework: Framework, model: Model, onnx_path: Path,
                    chosen: dict[str, Any]) -> dict[str, Any]:
    """Writes ``model.freq.onnx`` when a compressor of the chain has a frequency form, and
    then records the framework's per-layer execution plan (timed here) in ``chosen``."""
    out = session.run_dir / FREQUENCY_ONNX
    out.unlink(missing_ok=True)  # never a stale form from an earlier run in this folder
    layers: list[dict[str, Any]] = []
    source = onnx_path
    for name in dict.fromkeys(session.recipe.compress["chain"]):
        try:
            records = session.plugins.registry.compressor(name).export_frequency_form(source, out)
        except BadInputError as exc:
            chosen["frequency_form"] = {"file": None, "note": f"{name}: {exc.one_line()}"}
            out.unlink(missing_ok=True)
            return {}
        if records is not None:
            layers.extend(records)
            source = out
    if source is onnx_path:
        return {}
    chosen["frequency_form"] = {"file": FREQUENCY_ONNX, "dense_equivalent": onnx_path.name, "layers": layers}
    plan = framework.execution_plan(model)
    if plan is not None:
        chosen["execution_plan"] = plan
    return {"frequency_onnx": FREQUENCY_ONNX}


def _files(run_dir: Path, chosen: dict[str, Any] | None, checkpoint: Path) -> dict[str, Any]:
    files: dict[str, Any] = {"baseline": checkpoint.name, "onnx": "model.onnx", "report_json": "report.json",
                             "report_md": "report.md", "report_html": "report.html"}
    if chosen is not None:
        files["sigdl"] = "model.sigdl"
        files["target_models"] = sorted(str(p.relative_to(run_dir)) for p in (run_dir / "targets").glob("*/*"))
        if (run_dir / FREQUENCY_ONNX).is_file():
            files["frequency_onnx"] = FREQUENCY_ONNX
    return files
