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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from . import __version__
from .errors import BadInputError
from .files import read_regular_file
from .interfaces import Accuracy, ArrayDataset, Framework, Model
from .plugins import LoadedPlugins
from .recipe import Recipe
from .report import write_run_report


class Observer(Protocol):
    """What the loop tells whoever is watching (the CLI shows it; tests may record it)."""

    def stage_started(self, stage: str, info: Mapping[str, Any]) -> None: ...

    def stage_finished(self, stage: str, result: Mapping[str, Any]) -> None: ...

    def progress(self, description: str, completed: int, total: int) -> None: ...


class SilentObserver:
    """An observer that shows nothing (``-q`` and ``--json``)."""

    def stage_started(self, stage: str, info: Mapping[str, Any]) -> None:
        pass

    def stage_finished(self, stage: str, result: Mapping[str, Any]) -> None:
        pass

    def progress(self, description: str, completed: int, total: int) -> None:
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

    def __post_init__(self) -> None:
        self.stages: dict[str, dict[str, Any]] = {}

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
        self.framework_name()
        registry.dataset_spec(self.recipe.dataset)

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
        return self.plugins.registry.load_dataset(self.recipe.dataset, self.recipe.seed)

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
        spec = self.plugins.registry.get("model", self.recipe.model)
        if spec.framework != framework.name:
            raise BadInputError(
                f"model '{spec.name}' belongs to framework '{spec.framework}', not '{framework.name}'",
                f"drop the framework setting or set it to '{spec.framework}'",
            )
        model = framework.build(spec.name, data.input_shape, data.num_classes, seed=self.recipe.seed)
        return model, True


def accuracy_dict(acc: Accuracy | None) -> dict[str, Any] | None:
    return acc.to_dict() if acc is not None else None


def run_baseline(session: Session) -> dict[str, Any]:
    """Builds (or loads), trains, tests and exports the recipe's model; writes the report.

    Returns the report as written to ``report.json``.
    """
    recipe, registry, run_dir = session.recipe, session.plugins.registry, session.run_dir
    session.check()
    run_dir.mkdir(parents=True, exist_ok=True)
    started = _dt.datetime.now(_dt.timezone.utc)
    t0 = time.perf_counter()

    with session.stage("load", {"model": recipe.model, "dataset": recipe.dataset}) as result:
        fw_name = session.framework_name()
        framework = registry.framework(fw_name)
        data = session.load_data()
        model, built = session.obtain_model(framework, data)
        result.update(framework=fw_name, dataset=data.summary(), built=built)

    history = None
    if built and recipe.train.epochs > 0:
        with session.stage("train", recipe.train.to_dict()) as result:
            history = framework.train(model, data, recipe.train, progress=session.observer.progress)
            result.update(history.to_dict())

    accuracy = None
    if not data.timing_only:
        with session.stage("test", {"split": "test", "samples": len(data.y_test)}) as result:
            accuracy = framework.evaluate(model, data, "test")
            result.update(accuracy.to_dict())

    with session.stage("export", {"folder": str(run_dir)}) as result:
        suffix = (registry.get("framework", fw_name).suffixes or (".model",))[0]
        checkpoint = framework.save(model, run_dir / f"model{suffix}")
        onnx_path = framework.export_onnx(model, run_dir / "model.onnx")
        result.update(checkpoint=checkpoint.name, onnx=onnx_path.name)

    parameters = framework.parameter_count(model)
    report: dict[str, Any] = {
        "sigdl_version": __version__,
        "kind": "baseline",
        "started": started.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - t0, 3),
        "host": {"python": platform.python_version(), "machine": platform.machine(),
                 "system": platform.system()},
        "recipe": recipe.to_dict(),
        "model": {"architecture": model.architecture, "framework": fw_name,
                  "input_shape": list(model.input_shape), "num_classes": model.num_classes},
        "dataset": data.summary(),
        "baseline": {
            "accuracy": accuracy.top1 if accuracy else None,
            "top5": accuracy.top5 if accuracy else None,
            "parameters": parameters,
            "weights_bytes": parameters * 4,  # fp32
            "train": history.to_dict() if history else None,
        },
        "stages": session.stages,
        "files": {"checkpoint": checkpoint.name, "onnx": onnx_path.name,
                  "report_json": "report.json", "report_md": "report.md"},
        "met": True,
    }
    write_run_report(run_dir, report)
    session.plugins.hook.sigdl_run_finished(run_dir=run_dir, report=report)
    return report
