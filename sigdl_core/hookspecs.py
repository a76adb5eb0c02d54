"""The hook specifications: the whole contract between SigDL's core and its plugins.

A plugin is a module of functions marked with :data:`sigdl_core.hookimpl`, named after
the hooks below, and declared as an entry point in the group ``sigdl.plugins``::

    [project.entry-points."sigdl.plugins"]
    target_atom = "sigdl_target_atom.plugin"

Registration hooks (``sigdl_frameworks`` … ``sigdl_emulators``) return lists of frozen
specs from :mod:`sigdl_core.interfaces`; the core gathers them into one registry per kind,
sorted by name, and rejects a name claimed twice with an error naming both plugins.
Lifecycle hooks (``sigdl_stage_started`` …) are told what the loop is doing and return
nothing. A hook module must import nothing heavy (torch, tensorflow, onnxruntime) at module
level: put that work in the specs' factories.

Specs grow only by adding arguments; pluggy lets an implementation take fewer.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pluggy

from .interfaces import (
    CompressorSpec,
    DatasetSpec,
    EmulatorSpec,
    FrameworkSpec,
    ModelSpec,
    TargetSpec,
)

PROJECT = "sigdl"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def sigdl_frameworks() -> list[FrameworkSpec]:
    """Register deep-learning frameworks.

    :return: one :class:`~sigdl_core.interfaces.FrameworkSpec` per framework; its
        ``factory`` is called the first time the framework is used, so heavy imports
        belong there.

    The core keys frameworks by name; ``sigdl frameworks`` lists them, and models, files
    and recipes name them.

    Example::

        @hookimpl
        def sigdl_frameworks():
            return [FrameworkSpec("torch", "PyTorch models", factory=_torch, suffixes=(".pt",))]
    """


@hookspec
def sigdl_models() -> list[ModelSpec]:
    """Register model architectures that a framework can build.

    :return: one :class:`~sigdl_core.interfaces.ModelSpec` per architecture, naming the
        framework that builds it and its canonical parameter count.

    The core lists them in ``sigdl models`` and resolves ``--model NAME`` through them,
    then asks the named framework to ``build`` it; the spec's ``train_defaults`` fill the
    training settings a recipe and the flags leave out.

    Example::

        @hookimpl
        def sigdl_models():
            return [ModelSpec("lenet5", "torch", "LeNet-5 (Caffe)", (1, 28, 28), 10, 431_080)]
    """


@hookspec
def sigdl_datasets() -> list[DatasetSpec]:
    """Register datasets.

    :return: one :class:`~sigdl_core.interfaces.DatasetSpec` per dataset; its ``loader``
        takes the text after ``name:`` (or ``None``) and a seed, and returns an
        :class:`~sigdl_core.interfaces.ArrayDataset`.

    The core resolves ``--dataset name[:argument]`` through them.

    Example::

        @hookimpl
        def sigdl_datasets():
            return [DatasetSpec("digits", "scikit-learn's 8x8 digits", loader=_load_digits)]
    """


@hookspec
def sigdl_compressors() -> list[CompressorSpec]:
    """Register compressors (pruning, quantization, entropy coding, frequency-domain …).

    :return: one :class:`~sigdl_core.interfaces.CompressorSpec` per compressor; its
        ``factory`` builds a :class:`~sigdl_core.interfaces.Compressor`.

    The core chains compressors in the order a user names them, each one seeing the
    previous one's :class:`~sigdl_core.interfaces.CompressionResult`. Before any work it
    refuses parameters the spec's ``params`` do not name, and fills a chain run as given
    with the spec's ``defaults`` where the user gave a compressor none.

    Example::

        @hookimpl
        def sigdl_compressors():
            return [CompressorSpec("prune", "magnitude pruning", factory=_prune)]
    """


@hookspec
def sigdl_targets() -> list[TargetSpec]:
    """Register embedded targets: one board's datasheet each.

    :return: one :class:`~sigdl_core.interfaces.TargetSpec` per board or board variant,
        naming the emulator that re-tests on it.

    The core lists them in ``sigdl targets`` and resolves ``--target NAME`` through them.

    Example::

        @hookimpl
        def sigdl_targets():
            return [TargetSpec("atom-x5-e3930", "Intel Atom x5-E3930", "atom", cores=2, ...)]
    """


@hookspec
def sigdl_emulators() -> list[EmulatorSpec]:
    """Register emulators that re-test an ONNX model on a target.

    :return: one :class:`~sigdl_core.interfaces.EmulatorSpec` per emulator; its
        ``factory`` builds an :class:`~sigdl_core.interfaces.Emulator`.

    The core finds a target's emulator by the name in its spec's ``emulator`` field. The
    spec's ``options`` declare every option ``emulate`` takes
    (:class:`~sigdl_core.interfaces.EmulatorOption`); the core validates a user's values
    (``--target NAME:key=value``, recipe ``{name: NAME, key: value}``) against them before
    any work and passes them, defaults filled in (:mod:`sigdl_core.targets`).

    Example::

        @hookimpl
        def sigdl_emulators():
            return [EmulatorSpec("atom", "executes under the Atom's limits", factory=_atom,
                                 options=(EmulatorOption("clock", str, "base", "which clock", ("base", "burst")),))]
    """


@hookspec
def sigdl_stage_started(stage: str, run_dir: Path, info: Mapping[str, Any]) -> None:
    """Called when the loop starts a stage.

    :param stage: the stage's name: ``load``, ``train``, ``test``, ``compress``,
        ``retrain``, ``export``, ``emulate`` or ``report``.
    :param run_dir: the run folder the loop writes into.
    :param info: what the stage is about to do (model, dataset, settings), JSON-ready.

    The core ignores the return value; an exception raised here stops the run.

    Example::

        @hookimpl
        def sigdl_stage_started(stage, run_dir, info):
            print(f"{stage} started in {run_dir}")
    """


@hookspec
def sigdl_stage_finished(stage: str, run_dir: Path, result: Mapping[str, Any]) -> None:
    """Called when the loop finishes a stage.

    :param stage: the stage's name, as given to :func:`sigdl_stage_started`.
    :param run_dir: the run folder.
    :param result: what the stage found (accuracy, sizes, seconds taken), JSON-ready.

    The core ignores the return value; an exception raised here stops the run.

    Example::

        @hookimpl
        def sigdl_stage_finished(stage, run_dir, result):
            metrics.gauge(f"sigdl.{stage}.seconds", result.get("seconds", 0))
    """


@hookspec
def sigdl_run_finished(run_dir: Path, report: Mapping[str, Any]) -> None:
    """Called once a run has written its report.

    :param run_dir: the run folder holding ``report.json`` and the artifacts.
    :param report: the run's report, as written to ``report.json``.

    The core ignores the return value. A plugin might upload the report, or post it to
    a pull request.

    Example::

        @hookimpl
        def sigdl_run_finished(run_dir, report):
            shutil.copy(run_dir / "report.md", os.environ["GITHUB_STEP_SUMMARY"])
    """


#: Registration hooks by the kind of spec they return, in listing order.
REGISTRATION_HOOKS: dict[str, str] = {
    "framework": "sigdl_frameworks",
    "model": "sigdl_models",
    "dataset": "sigdl_datasets",
    "compressor": "sigdl_compressors",
    "target": "sigdl_targets",
    "emulator": "sigdl_emulators",
}

LIFECYCLE_HOOKS: tuple[str, ...] = ("sigdl_stage_started", "sigdl_stage_finished", "sigdl_run_finished")
