"""The compression search: the most compressed model that stays within the budget.

Trying every combination of per-layer settings is hopeless (8 bit widths and 10 sparsities
for 16 layers is 80^16 models), so the search walks short, ordered phases, each candidate
compressed, retrained, tested, encoded and re-tested on every target. It does what an
expert does by hand with Deep Compression (Han et al. 2016) and gradual pruning (Zhu &
Gupta 2017):

1. **Allocation**: how pruning is shared among layers (``search.allocation``).
   ``magnitude`` (the default): one magnitude threshold across the layers of the baseline,
   so a layer with many inputs (small, redundant weights) is pruned most, as Han et al.
   found by hand; a level is the overall sparsity. ``sensitivity``: each prunable layer
   alone is pruned to each sparsity of ``search.sensitivity`` without retraining; a layer's
   *cap* ``c`` is the highest sparsity costing at most half the allowed drop, and level
   ``t`` prunes it to ``1 - (1 - c)^t``.
2. **Strength**, pruned gradually: the search climbs a ladder of levels as one *pruning
   path*: the first rung prunes half the weights (``START_SPARSITY``, or ``t =
   START_STRENGTH``), each next one keeps ``KEEP_PER_STEP`` of the weights the last one
   kept, and each rung prunes further from the previous rung's retrained weights (pruned
   weights never revive) and retrains, as iterative pruning does. A candidate is the path
   up to a rung, then the rest of the chain. The climb stops after two failing rungs in a
   row (one unlucky rung on a small validation split does not end it) or at the last level.
3. **Layers**: sensitivity without retraining cannot see that a large layer retrains back
   better than a small one, and the bytes are in the large layers. From the best rung, the
   layers holding at least ``MIN_SHARE`` of the kept weights, largest first, are each pushed
   further alone (``KEEP_PER_STEP`` of its weights a step, at most ``LAYER_STEPS`` steps,
   extending the path) until a step fails. (Magnitude allocation shares by size already;
   this phase corrects what either allocation gets wrong.)
4. **Bits**: on that path, for the layers holding at least ``MIN_SHARE`` of the kept weights,
   largest first, a binary search for the fewest bits per weight (down to ``min_bits``)
   that keep the accuracy. The others keep Deep Compression's 8 (conv) or 5 (fc) bits.

In phases 2 and 3 quantization runs after each rung without a retraining of its own: at 8
and 5 bits weight sharing costs little, and its fine-tuning would double every rung's
retraining; phase 4, which decides on quantization, retrains it for every candidate
(:meth:`Workbench.unretrained`). On LeNet-5 this took the default run from 132-137 s to
75-81 s of CPU with the same or higher ratios (bench/loop.py).

Every chain the search builds gets the coding an expert gives it when its compressors take the parameter and
the recipe leaves it out (:data:`ROLE_DEFAULTS`): the encoder picks its index width per
layer (``index_bits: auto``) and stores biases and other untouched weights in fp16.

Every accuracy decision keeps a **noise margin** above the budget's floor
(:meth:`Workbench.noise_margin`): the search picks the most compressed candidate the
validation split lets through, which is where that split's luck is best, so a candidate
passes only when its drop *plus one standard error of that drop* is within the allowed
drop. The standard error is **paired**: candidate and baseline are scored on the same
validation samples (per-sample hits, :attr:`~sigdl_core.interfaces.Accuracy.correct`), so
only the ``b`` samples the baseline alone gets right and the ``c`` the candidate alone gets
right carry noise, and SE = ``sqrt((b + c) - (c - b)^2 / n) / n`` (McNemar's statistic,
:func:`~sigdl_core.interfaces.paired_difference`). A candidate that agrees with the
baseline on all but a few digits gets a small margin; one that differs on many a large one,
whatever its net drop. (400 digits, 97 % baseline: one model's SE is 0.85 points; a
candidate with 6 discordant digits has a paired SE of 0.61, with 2 of 0.35.) Without
per-sample hits (a framework that does not give them, a record from an older run) the margin
is the one-model SE ``sqrt(p (1 - p) / n)``. :func:`choose` prefers candidates within the
margin; the budget itself (``met``) is the recipe's.

**Retraining distils from the baseline** (:meth:`Workbench.teacher`, recipe
``compress.retrain.distill``): every retraining mixes the baseline's softened outputs with
the labels (Hinton et al. 2015), where the framework can (``Framework.distills``). On a
small dataset the baseline fits its training labels to 100 %, so the labels alone give a
pruned model almost no gradient; the teacher's outputs still do. Its students also differ
from the baseline on fewer validation samples, which shrinks the paired margin.

**Decisions use the validation split only** (:data:`DECISION_SPLIT`): the search reads the
framework's accuracy on it, and the emulators re-test candidates on a copy of the dataset
whose test split *is* the validation split (:func:`validation_view`), so a target's
accuracy is a validation figure too. The real test split is evaluated by the loop, for the
report, after the search; a search that asks for it raises :class:`TestSplitReadError`.

Phases 2–4 decide on accuracy alone, since it is what compression strength trades
against; the final choice applies the whole budget (speed, size, power on every target):
the candidate with the highest ratio that meets it, or, when none does, the best one found
(keeping the accuracy first, then the highest ratio), with the limits it misses and by how
much. A candidate is a pure function of its settings (chain, parameters, pruning path,
retraining, seed), so its record is looked up in the :class:`~sigdl_core.runstore.RunStore`
before it is computed (a resumed run replays the same path and recomputes only what is
missing), and the retrained weights at each point of a pruning path are kept in memory, so
that candidates sharing a path prefix (later rungs, the bits phase) do not retrain it again.

With workers (``--jobs N``, ``--cluster``) the search **pipelines** its candidates
(:meth:`Workbench.passes`): each candidate's tail (the rest of its chain after the pruning
path, its validation test, coding and ONNX export) runs on a worker while this process
computes the pruning-path step of the candidate the phase will most likely ask for next,
found by replaying the phase's code with a guessed answer. Every answer a phase acts on is
the real candidate's, read in serial order, so the candidates and the choice do not depend
on the number of jobs; a graph is timed on the targets only while the workers are idle.
The pruning path itself is a chain, which bounds what jobs can gain (docs/acceleration.md).

The search speaks to compressors by their role (:data:`~sigdl_core.interfaces.COMPRESSOR_ROLES`)
through :data:`ROLE_KNOBS`: a ``prune`` compressor takes ``sparsity`` as layer → fraction, a
``quantize`` one ``layers`` as layer → bits, a ``structure`` one (``circulant``, ``freq-prune``)
``strength``: before the bits phase, the structure phase keeps the strongest of
:data:`STRUCTURE_STRENGTHS` whose candidate keeps the accuracy.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .budget import Budget
from .errors import BadInputError, SigdlError
from .interfaces import COMPRESSIBLE_KINDS, Accuracy, ArrayDataset, Framework, Model, Teacher, paired_difference
from .plugins import LoadedPlugins
from .recipe import Recipe
from .runstore import RunStore, settings_key
from .targets import BoundTarget, emulate_target

#: Bits the search starts from, per layer kind (Deep Compression's: 8 conv, 5 fc).
START_BITS = {"conv": 8, "depthwise": 8, "fc": 5}
#: Largest strength the ladder climbs to: density d^t with t = 4 turns a 30 % density into 0.8 %.
MAX_STRENGTH = 4.0
#: The first rung of the strength ladder (half the sensitivity caps' log-density).
START_STRENGTH = 0.5
#: The first rung of the magnitude ladder (overall sparsity), and its last.
START_SPARSITY = 0.5
MAX_OVERALL_SPARSITY = 0.99
#: The most any layer is pruned.
MAX_LAYER_SPARSITY = 0.999
#: Each rung of the ladder, and each step of the layers phase, keeps this share of the weights
#: the last one kept: gradual steps that a short retraining recovers from.
KEEP_PER_STEP = 0.7
#: The share of the allowed accuracy drop the pruning phases leave to the bits phase: pruning
#: that spends all of it leaves quantization no room, and the most compressed models come from both.
BITS_RESERVE = 0.0
#: Most steps the layers phase pushes one layer beyond the common strength.
LAYER_STEPS = 3
#: Layers holding at least this share of the kept weights get their own sparsity and bits search.
#: A smaller layer gains the artifact little (a step on one moved the ratio 2-4 % in bench/loop.py)
#: while every decision on a small validation split risks its own unlucky draw.
MIN_SHARE = 0.2
#: The phases that decide how far to prune: there, quantization after the pruning path runs
#: without its own retraining (:meth:`Workbench.unretrained`).
PRUNING_PHASES = ("strength", "layers")
#: The split every decision of the search is taken on; the test split only reports.
DECISION_SPLIT = "validation"
#: Parameters the search gives a compressor of a role when the compressor documents them and
#: the recipe leaves them out: what the hand-set Deep Compression commands use.
ROLE_DEFAULTS: dict[str, dict[str, Any]] = {
    "encode": {"index_bits": "auto", "others": "f16"},
}
#: How many points of pruning paths the search keeps in memory (their weights and masks).
PATHS_KEPT = 8
#: Parameters of a ``prune`` compressor that the search's pruning path replaces.
PRUNE_SETTINGS = ("quality", "global_sparsity", "sparsity", "agp_steps", "agp_step", "initial_sparsity")


class TestSplitReadError(SigdlError):
    """The search asked for the test split: decisions must use the validation split.

    A bug in a search strategy, never the user's input: exit code 3.
    """

    exit_code = 3


def validation_view(data: ArrayDataset) -> ArrayDataset:
    """The dataset as the search's emulations see it: its test split is the validation split.

    Emulators measure accuracy on a dataset's test split; the search hands them this view so
    that every accuracy it decides on is a validation figure. Without a validation split
    (or for timing-only data) the view has no labelled test samples to decide on.
    """
    from dataclasses import replace

    if data.x_val is None or data.y_val is None:
        return replace(data, name=f"{data.name} (timing only: no validation split)", timing_only=True)
    return replace(data, name=f"{data.name} (validation)", x_test=data.x_val, y_test=data.y_val)


class SearchStopped(Exception):
    """The candidate or time limit was reached; the search keeps what it has."""


@dataclass
class Workbench:
    """What every candidate needs: the framework, the model, the data and the baseline.

    ``data`` is the whole dataset (train, validation, test); ``baseline_top1`` is the
    baseline's validation top-1, the reference of every accuracy decision. The workbench
    evaluates only through :meth:`evaluate`, which refuses the test split of ``data``.
    """

    plugins: LoadedPlugins
    framework: Framework
    model: Model
    data: ArrayDataset
    recipe: Recipe
    store: RunStore
    baseline_weights: dict[str, Any]
    kinds: dict[str, str]
    baseline_top1: float | None
    targets: list[BoundTarget]
    budget: Budget
    observer: Any
    new_data: ArrayDataset | None = None
    train_data: ArrayDataset | None = None
    started: float = field(default_factory=time.perf_counter)
    tried: int = 0
    _groups: Any = None
    _paths: dict[str, Any] = field(default_factory=dict)  # path prefix key -> (weights, result)
    #: The run's concurrent.futures executor for independent work (sigdl_core.parallel), or None.
    executor: Any = None
    _baseline_correct: Any = None  # the baseline's per-sample validation hits (False: not given)
    _timings: dict[str, Any] = field(default_factory=dict)  # the harness's timings by graph (timing_reuse)
    _teacher: Teacher | None = None  # the baseline's logits on the training split (distillation)
    #: How many candidates :meth:`passes` launches ahead of the one asked for (0: serial).
    lookahead: int = 0
    _submitter: Any = None  # sigdl_core.parallel.Submitter of the pipeline, or None (serial)
    _inflight: dict[str, Any] = field(default_factory=dict)  # key -> a launched candidate (see _launch)
    _phase: Any = None  # the phase being run, its arguments and answers (see phase)
    _context: Any = None  # the TailContext sent to workers
    _context_files: Any = None  # a temporary folder of pickled contexts for a local pool's workers
    _last_answer: bool = True  # the last answer passes gave (the guess a new phase starts from)
    _timed_graphs: set[str] = field(default_factory=set)  # graph signatures re-tested on the targets
    #: Where the search's time went, in seconds: the pruning paths' steps (this process),
    #: the candidates' tails (wherever they ran), waiting for workers and the targets'
    #: re-tests; and how many candidates were launched ahead of the phase's question, and
    #: how many of those no phase asked for (counts).
    spent: dict[str, Any] = field(default_factory=lambda: {
        "pruning_path_s": 0.0, "tails_s": 0.0, "waiting_for_workers_s": 0.0, "retesting_s": 0.0,
        "launched_ahead": 0, "launched_ahead_unused": 0})

    def __post_init__(self) -> None:
        self.decision_data = validation_view(self.data)
        from .accelerate import DataParallel

        # candidates pipelined on the executor's workers (see passes); not when retraining is
        # itself data-parallel: a worker retrains serially, which is not what DDP computes
        if self.executor is not None and not DataParallel.from_recipe(self.recipe.accelerate).distributed:
            from .parallel import Submitter, executor_width

            self._submitter = Submitter(self.executor)
            self.lookahead = max(1, executor_width(self.executor) - 1)

    # ------------------------------------------------------------------ pieces

    def evaluate(self, data: ArrayDataset, split: str) -> Accuracy:
        """The model's accuracy on one split; the test split of the run's data is refused."""
        import numpy as np

        x, _y = data.arrays(split)
        if len(x) and np.may_share_memory(x, self.data.x_test):
            raise TestSplitReadError(
                f"the search asked for accuracy on the test split of '{self.data.name}'",
                f"decide on the '{DECISION_SPLIT}' split; the loop evaluates the test split for the report")
        return self.framework.evaluate(self.model, data, split)

    def accuracy_of(self, weights: Mapping[str, Any]) -> Accuracy | None:
        """The weights' accuracy on the split decisions are taken on (None: nothing to decide on)."""
        if self.data.timing_only or self.data.y_val is None:
            return None
        self.framework.set_weights(self.model, weights)
        return self.evaluate(self.data, DECISION_SPLIT)

    def retrain(self, weights: dict[str, Any], projection: Any,
                overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Retrains with the recipe's settings; ``overrides`` (a stage's
        ``CompressionResult.retrain``) replace some of them, unless retraining is off."""
        self.framework.set_weights(self.model, weights)
        settings = self.recipe.retrain_settings()
        if overrides and settings.epochs > 0:
            settings = dataclasses.replace(settings, **dict(overrides))
        # post-training mode: a framework that cannot train this model compresses without retraining
        if settings.epochs > 0 and not self.data.timing_only and self.framework.training_unavailable(self.model) is None:
            from .accelerate import DataParallel, train

            teacher = self.teacher()
            self.framework.set_weights(self.model, weights)
            train(self.framework, self.model, self.train_data or self.data, settings,
                  DataParallel.from_recipe(self.recipe.accelerate), projection=projection,
                  progress=self.observer.progress, teacher=teacher)
        return self.framework.get_weights(self.model)

    def teacher(self) -> Teacher | None:
        """The baseline as the teacher of every retraining (knowledge distillation,
        :class:`~sigdl_core.interfaces.Teacher`): its logits on the training split, computed
        once; None when the recipe's ``compress.retrain.distill`` is 0 or the framework does
        not distil (:attr:`~sigdl_core.interfaces.Framework.distills`)."""
        settings = self.recipe.distillation()
        if settings is None or not self.framework.distills:
            return None
        if self._teacher is None:
            self.framework.set_weights(self.model, self.baseline_weights)
            logits = self.framework.logits(self.model, self.train_data or self.data, "train")
            self._teacher = Teacher(logits=logits, weight=settings[0], temperature=settings[1])
        return self._teacher

    def emulate(self, onnx_path: Path) -> dict[str, dict[str, Any]]:
        """Re-tests the candidate on every target. Pruning and weight sharing leave the
        ONNX graph as it is, so the execution harness times each graph once per run
        (:func:`~sigdl_core.emulation.timing_reuse.timing_reuse`) and later candidates of
        that graph reuse the timing (their reports say so); their accuracy is executed."""
        from .emulation.timing_reuse import mark_reused, reused_since, timing_reuse

        registry = self.plugins.registry
        out = {}
        with timing_reuse(self._timings) as cache:
            for target in self.targets:
                before = len(reused_since(cache, 0))
                report = emulate_target(registry, target, onnx_path, self.decision_data)
                mark_reused(report, reused_since(cache, before))
                out[target.name] = target_record(report)
        return out

    def baseline_correct(self) -> Any:
        """The baseline's per-sample top-1 hits on the validation split (None: the framework
        gives none, or there is nothing to decide on); evaluated once."""
        if self._baseline_correct is None:
            acc = self.accuracy_of(self.baseline_weights)
            self._baseline_correct = acc.correct if acc is not None and acc.correct is not None else False
        return None if self._baseline_correct is False else self._baseline_correct

    def paired(self, accuracy: Accuracy | None) -> dict[str, int] | None:
        """The candidate's discordant validation samples against the baseline:
        ``{"baseline_only": b, "candidate_only": c, "samples": n}`` (None without per-sample hits)."""
        base = self.baseline_correct() if accuracy is not None and accuracy.correct is not None else None
        if base is None or len(base) != len(accuracy.correct):
            return None
        _diff, _se, b, c = paired_difference(accuracy.correct, base)
        return {"baseline_only": b, "candidate_only": c, "samples": int(len(base))}

    def noise_margin(self, record: Mapping[str, Any] | None = None) -> float:
        """How far above the budget's floor the search keeps a decision on ``record``: one
        standard error of its drop from the baseline.

        With the record's discordant counts (``record["paired"]``, see :meth:`paired`) it is
        the paired SE ``sqrt((b + c) - (c - b)^2 / n) / n`` (:func:`paired_difference`):
        samples both models get right or wrong carry no noise of the difference. Without
        them, the one-model SE of the baseline's validation top-1, ``sqrt(p (1 - p) / n)``.

        The search takes the most compressed candidate its validation split lets through,
        so it lands where that split's luck is best; that luck is worth about one standard
        error of the drop. A larger validation split makes the margin smaller, and so does
        retraining by distillation (:meth:`teacher`): a student that answers as its teacher
        differs from the baseline on fewer samples. (Before distillation, LeNet-300-100's
        candidates differed from the baseline on 4-13 of 400 digits and the margin had to be
        capped at half the allowed drop; with it, the uncapped margin chose more, and more
        safely: bench/loop.py.)
        """
        import math

        if self.baseline_top1 is None or self.data.y_val is None or not len(self.data.y_val):
            return 0.0
        pair = (record or {}).get("paired")
        if pair and pair.get("samples"):
            b, c, n = int(pair["baseline_only"]), int(pair["candidate_only"]), int(pair["samples"])
            return math.sqrt(max(0.0, (b + c) - (c - b) ** 2 / n)) / n
        p, n = self.baseline_top1, len(self.data.y_val)
        return math.sqrt(p * (1.0 - p) / n)

    def accuracy_ok(self, record: Mapping[str, Any], reserve: float = 0.0, margin: bool = True) -> bool:
        """Whether the record's validation top-1 is above the budget's floor, raised by the
        record's :meth:`noise_margin` (unless ``margin`` is False: the budget's own floor) and by
        ``reserve`` × the allowed drop (the share a later phase keeps for itself)."""
        if self.baseline_top1 is None or record.get("validation_accuracy") is None:
            return True
        floor = self.budget.accuracy_floor(self.baseline_top1)
        floor += reserve * (self.baseline_top1 - floor) + (self.noise_margin(record) if margin else 0.0)
        return record["validation_accuracy"] >= floor - 1e-12

    def check_limits(self) -> None:
        limits = self.recipe.limits
        if self.tried >= limits["max_candidates"]:
            raise SearchStopped(f"the limit of {limits['max_candidates']} candidates was reached")
        if limits["max_seconds"] is not None and time.perf_counter() - self.started > limits["max_seconds"]:
            raise SearchStopped(f"the limit of {limits['max_seconds']} s was reached")

    # ------------------------------------------------------------------ one candidate

    def _identity(self, chain: Sequence[tuple[str, Mapping[str, Any]]], phase: str,
                  path: Sequence[Mapping[str, float]] | None) -> tuple[str, list, list | None, list[str]]:
        """The candidate's key (a pure function of its settings), settings, path and the
        stages it runs without retraining."""
        settings = [[name, _plain(params)] for name, params in chain]
        plain_path = [_plain(p) for p in path] if path else None
        identity = {"chain": settings, "retrain": self.recipe.compress["retrain"],
                    "targets": [t.name for t in self.targets], "seed": self.recipe.seed}
        if plain_path:
            identity["path"] = plain_path
        unretrained = self.unretrained(chain[1:], phase) if plain_path else []
        if unretrained:
            identity["unretrained"] = unretrained
        return settings_key(identity), settings, plain_path, unretrained

    def candidate(self, chain: Sequence[tuple[str, Mapping[str, Any]]], phase: str, note: str = "",
                  path: Sequence[Mapping[str, float]] | None = None) -> dict[str, Any]:
        """Compresses, retrains, tests, encodes and re-tests one setting; memoized by the store.

        With ``path``, the chain's first compressor (a ``prune`` one) is run as a pruning
        path: to each per-layer sparsity of ``path`` in turn, retrained after every step
        (its parameters in ``chain`` are the path's last point); the rest of the chain follows.

        The work is cut in three: the pruning path here (:meth:`_begin`, sequential: each
        step retrains from the last), the rest of the chain with its test and encoding
        (:func:`candidate_tail`, on a worker when the search pipelines, see :meth:`passes`),
        and the record with its re-test on the targets here (:meth:`_finish`). Serial or not,
        the same functions compute the same figures from the same inputs.
        """
        key, settings, _path, _unretrained = self._identity(chain, phase, path)
        cached = self.store.lookup(key)
        if cached is not None:
            cached = self.rechecked(cached)
            self.tried += 1
            self.observer.candidate_finished(cached, cached=True)
            return cached
        self.check_limits()
        self.tried += 1
        index = self.store.next_index()
        self.observer.stage_started("compress", {"candidate": index, "phase": phase})
        self.plugins.hook.sigdl_stage_started(stage="compress", run_dir=self.store.run_dir,
                                              info={"candidate": index, "phase": phase, "chain": settings})
        flight = self._inflight.pop(key, None)
        if flight is None:
            flight = self._launch(chain, phase, note, path)
        return self._finish(flight)

    def _begin(self, chain: Sequence[tuple[str, Mapping[str, Any]]], phase: str, note: str,
               path: Sequence[Mapping[str, float]] | None) -> dict[str, Any]:
        """The candidate's pruning path (in this process), and what its tail needs."""
        key, settings, plain_path, unretrained = self._identity(chain, phase, path)
        start = time.perf_counter()
        runtime = self.with_runtime_params(chain)
        self.baseline_correct()  # evaluated before a candidate's weights go into the model
        if plain_path:
            pruned = self.pruned_along(runtime[0][0], runtime[0][1], plain_path)
            job = CandidateJob(weights=pruned.weights, chain=list(runtime[1:]), previous=pruned,
                               unretrained=unretrained)
        else:
            job = CandidateJob(weights=self.baseline_weights, chain=list(runtime), previous=None, unretrained=[])
        seconds = time.perf_counter() - start
        self.spent["pruning_path_s"] += seconds
        return {"key": key, "settings": settings, "path": plain_path, "phase": phase, "note": note, "job": job,
                "seconds": seconds}

    def _launch(self, chain: Sequence[tuple[str, Mapping[str, Any]]], phase: str, note: str,
                path: Sequence[Mapping[str, float]] | None) -> dict[str, Any]:
        """:meth:`_begin`, then the tail submitted to the pipeline's workers when it can go
        there (its parameters are data, not callables); else it runs in :meth:`_finish`."""
        flight = self._begin(chain, phase, note, path)
        if self._submitter is not None and flight["job"].shippable():
            context = self._context_for_workers(self.tail_context(flight["job"]))
            flight["ticket"] = self._submitter.submit(_tail_in_worker, context, flight["job"])
        return flight

    def _context_for_workers(self, context: TailContext) -> TailContext | str:
        """The context as a task carries it: for a local pool, the path of a file holding it
        (written once; the baseline's checkpoint and the training split would otherwise be
        pickled into every task), for a cluster whose workers may be on other machines, the
        context itself."""
        from concurrent.futures import ProcessPoolExecutor

        if not isinstance(self._submitter.executor, ProcessPoolExecutor):
            return context
        import pickle

        if self._context_files is None:
            self._context_files = tempfile.TemporaryDirectory(prefix="sigdl-contexts-")
        path = Path(self._context_files.name) / f"{context.token}-{'train' if context.train is not None else 'eval'}.pkl"
        if not path.is_file():
            part = path.with_suffix(".part")
            part.write_bytes(pickle.dumps(context, protocol=pickle.HIGHEST_PROTOCOL))
            part.replace(path)
        return str(path)

    def _finish(self, flight: dict[str, Any]) -> dict[str, Any]:
        """The candidate's tail (waited for, or computed here), its artifact written, its
        re-test on the targets and its record stored."""
        from .artifact import write_artifact
        from .compression import summary

        start = time.perf_counter()
        ticket = flight.get("ticket")
        if ticket is not None:
            out = self._submitter.result(ticket)
            self.executor = self._submitter.executor  # a pool rebuilt after a lost worker
            self.spent["waiting_for_workers_s"] += time.perf_counter() - start
        else:
            out = candidate_tail(self.plugins.registry, self.framework, self.model, self.kinds, flight["job"],
                                 self._decision_split(), self._new_data_split(), self._emulation_floor(),
                                 self.retrain)
        self.spent["tails_s"] += out["seconds"]
        accuracy = out["accuracy"]
        index = self.store.next_index()
        artifact = self.store.artifact_path(index)
        write_artifact(artifact, out["layers"], {"model": self.model.architecture, "framework": self.framework.name,
                                                 "input_shape": list(self.model.input_shape),
                                                 "num_classes": self.model.num_classes, "candidate": index})
        figures = summary(out["layers"], artifact, self.baseline_weights)
        record: dict[str, Any] = {
            "index": index, "key": flight["key"], "phase": flight["phase"], "note": flight["note"],
            "settings": flight["settings"], "path": flight["path"],
            "validation_accuracy": accuracy.top1 if accuracy else None,
            "validation_top5": accuracy.top5 if accuracy else None,
            "paired": self.paired(accuracy),
            "new_data_accuracy": out["new_data_accuracy"],
            "artifact": str(artifact.relative_to(self.store.run_dir)),
            "artifact_bytes": figures["artifact_bytes"], "original_bytes": figures["original_bytes"],
            "ratio": figures["ratio"],
            "layers": {n: _layer_figures(v) for n, v in figures["layers"].items()
                       if self.kinds.get(n) in COMPRESSIBLE_KINDS},
        }
        if out["onnx"] is not None:
            with tempfile.TemporaryDirectory(prefix="sigdl-cand-") as tmp:
                onnx_path = Path(tmp) / f"candidate-{index:03d}.onnx"
                onnx_path.write_bytes(out["onnx"])
                retest = time.perf_counter()
                alone = self._alone_for_timing(onnx_path)
                record["targets"] = self.emulate(onnx_path)
                self.spent["retesting_s"] += time.perf_counter() - retest
                if alone is not None:
                    record["timed_alone"] = alone
            record["emulated"] = True
        else:
            record["targets"] = {}
            record["emulated"] = False
        record["seconds"] = round(flight["seconds"] + out["seconds"] + time.perf_counter() - start, 3)
        record = self.rechecked(record)
        self.store.add(record)
        self.plugins.hook.sigdl_stage_finished(stage="compress", run_dir=self.store.run_dir,
                                               result=_brief(record))
        self.observer.stage_finished("compress", {"seconds": record["seconds"]})
        self.observer.candidate_finished(record, cached=False)
        return record

    def _alone_for_timing(self, onnx_path: Path) -> bool | None:
        """Before the targets re-test a graph not timed yet in this run: waits until no
        other candidate computes on the workers, so that an emulator that executes and times
        on this machine's cores (the Atom's) times alone; later models of the graph reuse
        that timing (:func:`~sigdl_core.emulation.timing_reuse.timing_reuse`) and only
        execute for their accuracy. Returns whether it timed alone (None: the graph was timed
        before)."""
        from .emulation.timing_reuse import graph_signature

        signature = graph_signature(onnx_path)
        if signature in self._timed_graphs:
            return None
        self._timed_graphs.add(signature)
        if self._submitter is not None:
            self._submitter.wait_all()
            return self._submitter.busy() == 0
        return True

    # ------------------------------------------------------------------ what a tail needs

    def _decision_split(self) -> ArrayDataset | None:
        from .parallel import only_split

        if self.data.timing_only or self.data.y_val is None:
            return None
        return only_split(self.data, DECISION_SPLIT)

    def _new_data_split(self) -> ArrayDataset | None:
        from .parallel import only_split

        return only_split(self.new_data, "test") if self.new_data is not None else None

    def _emulation_floor(self) -> float | None:
        """The accuracy below which a candidate is not re-tested on the targets (the
        budget's floor, without the noise margin)."""
        return self.budget.accuracy_floor(self.baseline_top1) if self.baseline_top1 is not None else None

    def tail_context(self, job: CandidateJob) -> TailContext:
        """What a worker needs to compute a candidate's tail; the training data and the
        teacher's logits go only with tails that retrain (the bits phase's)."""
        if self._context is None:
            from .parallel import checkpoint_bytes

            suffix = (self.plugins.registry.get("framework", self.framework.name).suffixes or (".model",))[0]
            self.framework.set_weights(self.model, self.baseline_weights)
            self._context = TailContext(
                token=f"{id(self)}-{time.time_ns()}", framework=self.framework.name, suffix=suffix,
                checkpoint=checkpoint_bytes(self.framework, self.model, suffix), kinds=dict(self.kinds),
                decision=self._decision_split(), new_data=self._new_data_split(), floor=self._emulation_floor(),
                retrain=self.recipe.retrain_settings(), train=None, teacher=None)
        if not job.retrains(self.plugins.registry):
            return self._context
        if self._context.train is None and not self.data.timing_only:
            from .parallel import only_split

            self._context = dataclasses.replace(self._context, train=only_split(self.train_data or self.data, "train"),
                                                teacher=self.teacher())
        return self._context

    # ------------------------------------------------------------------ decisions, pipelined

    def passes(self, chain: Sequence[tuple[str, Mapping[str, Any]]], phase: str, note: str = "",
               path: Sequence[Mapping[str, float]] | None = None, reserve: float = 0.0) -> bool:
        """Whether the candidate keeps the accuracy (:meth:`accuracy_ok` with ``reserve``):
        the one question every phase of the search asks.

        With workers (``--jobs N``, a cluster) the search **pipelines**: while a candidate's
        tail (the rest of its chain, its test, its encoding) runs on a worker, this process
        already computes the pruning path of the candidate the phase will most likely ask
        for next, and submits its tail too. Which one that is comes from replaying the
        phase's own code (:meth:`phase`) with the answers it got so far and a guess for the
        rest (the last answer again: ladders keep passing, bisections keep failing); a wrong
        guess costs only work, since every answer the phase acts on is the real candidate's,
        read in the serial order. So the candidates tried and chosen are the serial run's
        with any number of jobs. (A phase's first guess is the previous phase's last answer:
        the layers phase ends on a failing step, and the bits phase's first trials fail too.)
        """
        if self._phase is not None and self._submitter is not None:
            key = self._identity(chain, phase, path)[0]
            if self.store.lookup(key) is None and key not in self._inflight:
                self._inflight[key] = self._launch(chain, phase, note, path)
            self._speculate(key)
        record = self.candidate(chain, phase, note, path)
        passed = self.accuracy_ok(record, reserve=reserve)
        if self._phase is not None:
            self._phase["answers"].append((record["key"], passed))
        self._last_answer = passed
        return passed

    def phase(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Runs one phase of the search, ``fn(bench, *args)``, so that :meth:`passes` can
        look ahead in it (a phase is a deterministic function of its answers)."""
        if self._submitter is None:
            return fn(self, *args)
        outer = self._phase
        self._phase = {"fn": fn, "args": copy.deepcopy(args), "answers": []}
        try:
            return fn(self, *args)
        finally:
            self._phase = outer

    def _speculate(self, key: str) -> None:
        """Launches the candidates the current phase will ask for after ``key``, if each
        answer is the guess (up to :attr:`lookahead` of them)."""
        state = self._phase
        answers = [passed for _k, passed in state["answers"]]
        guess = answers[-1] if answers else self._last_answer
        dry = _Rehearsal(self, [k for k, _p in state["answers"]] + [key], answers, guess, self.lookahead)
        try:
            state["fn"](dry, *copy.deepcopy(state["args"]))
        except (_Enough, SearchStopped):
            pass
        except _Diverged:
            return
        for chain, phase, note, path in dry.ahead:
            later = self._identity(chain, phase, path)[0]
            if self.store.lookup(later) is None and later not in self._inflight:
                try:
                    self._inflight[later] = self._launch(chain, phase, note, path)
                    self.spent["launched_ahead"] += 1
                except Exception:  # a guess the serial run may never make: if it does, it raises there
                    return

    def close(self) -> None:
        """Drops the pipeline's speculative work that no phase asked for."""
        self.spent["launched_ahead_unused"] += len(self._inflight)
        if self._submitter is not None:
            if self._submitter.rebuilt:
                self.executor = None  # the rebuilt pool ends here; what follows runs serially
            self._submitter.close()
        self._inflight.clear()
        if self._context_files is not None:
            self._context_files.cleanup()
            self._context_files = None

    def unretrained(self, later: Sequence[tuple[str, Mapping[str, Any]]], phase: str) -> list[str]:
        """The stages after a pruning path that run without retraining in ``phase``: in the
        pruning phases (:data:`PRUNING_PHASES`), those of the ``quantize`` role. At the
        starting bits (:data:`START_BITS`) weight sharing costs little accuracy, and its
        fine-tuning would double a rung's retraining; the bits phase, which decides on
        quantization, retrains it for every candidate. Each candidate's record is what was
        measured of it, so a pruning-phase candidate that is chosen was tested as it stands."""
        if phase not in PRUNING_PHASES:
            return []
        registry = self.plugins.registry
        return [name for name, _ in later if registry.get("compressor", name).role == "quantize"]

    def with_runtime_params(self, chain: Sequence[tuple[str, Mapping[str, Any]]]) -> list[tuple[str, Mapping[str, Any]]]:
        """The chain with what only the loop can give: the model's channel groups to
        compressors that take them, and its retraining to a gradual (AGP) pruner.

        Added after the candidate's key is computed: they are not settings.
        """
        out = []
        for name, params in chain:
            documented = self.plugins.registry.get("compressor", name).params
            if "channel_groups" in documented and "channel_groups" not in params:
                if self._groups is None:
                    self.framework.set_weights(self.model, self.baseline_weights)
                    self._groups = self.framework.channel_groups(self.model)
                params = {**params, "channel_groups": self._groups}
            if "retrain" in documented and "agp_steps" in params and not {"agp_step", "retrain"} & set(params):
                params = {**params, "retrain": self.retrain}
            out.append((name, params))
        return out

    def pruned_along(self, name: str, params: Mapping[str, Any], path: Sequence[Mapping[str, float]]) -> Any:
        """The ``prune`` compressor ``name`` run along ``path``, retrained after every step.

        Each step prunes the previous step's retrained weights to the step's per-layer
        sparsity (masks only grow) and retrains inside the masks. The result at every
        prefix of a path is kept in memory, so a longer path, or another chain on the same
        path, continues from where the last one stopped; the result is what a fresh run of
        the whole path gives, since each step depends only on the one before and the seed.
        """
        compressor = self.plugins.registry.compressor(name)
        base = {k: v for k, v in params.items() if k not in (*PRUNE_SETTINGS, "retrain", "evaluate")}
        shown = {k: v for k, v in base.items() if not callable(v)}

        def key(n: int) -> str:
            return settings_key({"prune": name, "params": _plain(shown), "path": list(path[:n]),
                                 "retrain": self.recipe.compress["retrain"], "seed": self.recipe.seed})

        done, result = 0, None
        for n in range(len(path), 0, -1):
            if key(n) in self._paths:
                done, result = n, self._paths[key(n)]
                break
        weights = result.weights if result is not None else self.baseline_weights
        for n in range(done, len(path)):
            step = compressor.compress(weights, self.kinds, {**base, "sparsity": dict(path[n])}, previous=result)
            step.weights = {k: v for k, v in self.retrain(dict(step.weights), step.projection).items()}
            step.state["stages"] = [{"name": name, "params": {**shown, "path": list(path[:n + 1])},
                                     "changed_weights": True, "retrained": True}]
            result, weights = step, step.weights
            self._paths[key(n + 1)] = result
            while len(self._paths) > PATHS_KEPT:
                self._paths.pop(next(iter(self._paths)))
        return copy.deepcopy(result)

    def rechecked(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record with its shortfalls against this run's budget (re)computed."""
        shortfalls = self.budget.check(self.baseline_top1, record.get("validation_accuracy"),
                                       record.get("artifact_bytes"), record.get("targets") or {})
        record["shortfalls"] = [s.to_dict() for s in shortfalls]
        record["met"] = not shortfalls  # a candidate is emulated whenever it keeps the accuracy
        record["within_margin"] = self.accuracy_ok(record)
        record["noise_margin"] = round(100 * self.noise_margin(record), 4)
        return record


@dataclass
class CandidateJob:
    """A candidate's tail: the rest of its chain after the pruning path, from ``weights``
    (and ``previous``, the path's result), with ``unretrained`` stages not retrained."""

    weights: dict[str, Any]
    chain: list[tuple[str, Mapping[str, Any]]]
    previous: Any
    unretrained: list[str]

    def shippable(self) -> bool:
        """Whether the tail can go to another process: its parameters are data (a gradual
        pruner's retraining callback is not)."""
        def data(value: Any) -> bool:
            if isinstance(value, Mapping):
                return all(data(v) for v in value.values())
            if isinstance(value, (list, tuple)):
                return all(data(v) for v in value)
            return not callable(value)

        return all(data(params) for _name, params in self.chain)

    def retrains(self, registry: Any) -> bool:
        """Whether some stage of the tail may retrain (then a worker needs the training data)."""
        return any(name not in self.unretrained for name, _p in self.chain
                   if registry.get("compressor", name).role not in ("encode",))


@dataclass
class TailContext:
    """What every candidate's tail needs besides its own job, as a worker receives it: the
    baseline as the framework's own checkpoint (read back by its safe loader), the
    validation split (only), the retraining's settings, and the training split and teacher
    for tails that retrain."""

    token: str
    framework: str
    suffix: str
    checkpoint: bytes
    kinds: dict[str, str]
    decision: ArrayDataset | None
    new_data: ArrayDataset | None
    floor: float | None
    retrain: Any
    train: ArrayDataset | None
    teacher: Teacher | None


def candidate_tail(registry: Any, framework: Framework, model: Model, kinds: Mapping[str, str], job: CandidateJob,
                   decision: ArrayDataset | None, new_data: ArrayDataset | None, floor: float | None,
                   retrain: Callable[..., Any] | None) -> dict[str, Any]:
    """The rest of a candidate's chain, its validation accuracy, its artifact's layers and,
    when it keeps the budget's floor, its ONNX model (bytes): the same function in the
    search's process and on a worker."""
    from .compression import build_artifact_layers, chain_compressors

    start = time.perf_counter()
    if job.chain:
        result = chain_compressors(registry, job.weights, kinds, job.chain, retrain=retrain,
                                   previous=job.previous, unretrained=job.unretrained)
    else:
        result = job.previous
    accuracy = new_acc = None
    if decision is not None:
        framework.set_weights(model, result.weights)
        accuracy = framework.evaluate(model, decision, DECISION_SPLIT)
    if new_data is not None:
        framework.set_weights(model, result.weights)
        new_acc = framework.evaluate(model, new_data, "test").top1
    stages = result.state.get("stages") or []
    encoded = result.state.get("encoded_layers")
    if encoded is not None and stages and job.chain and stages[-1]["name"] == job.chain[-1][0] \
            and registry.get("compressor", job.chain[-1][0]).role == "encode" and not stages[-1]["retrained"]:
        layers = list(encoded)  # the coding stage, last, encoded exactly these weights
    else:
        layers = build_artifact_layers(result, result.weights, kinds)
    onnx = None
    if floor is None or accuracy is None or accuracy.top1 >= floor - 1e-12:
        framework.set_weights(model, result.weights)
        with tempfile.TemporaryDirectory(prefix="sigdl-tail-") as tmp:
            onnx = Path(framework.export_onnx(model, Path(tmp) / "candidate.onnx")).read_bytes()
    return {"accuracy": accuracy, "new_data_accuracy": new_acc, "layers": layers, "onnx": onnx,
            "seconds": time.perf_counter() - start}


#: In a worker: the framework and model of the last context seen (token -> (framework, model)).
_WORKER_MODELS: dict[str, Any] = {}
#: In a local pool's worker: the contexts read from the search's files (path -> TailContext).
_WORKER_CONTEXTS: dict[str, TailContext] = {}


def _tail_in_worker(context: TailContext | str, job: CandidateJob) -> dict[str, Any]:
    """In a worker: :func:`candidate_tail` on the context's model (built once per context),
    retraining serially on the context's training split. ``context`` may be the path of the
    file the search wrote it to (:meth:`Workbench._context_for_workers`), read once."""
    from .accelerate import train
    from .plugins import load_plugins

    if isinstance(context, str):
        if context not in _WORKER_CONTEXTS:
            import pickle

            if len(_WORKER_CONTEXTS) > 2:
                _WORKER_CONTEXTS.clear()
            _WORKER_CONTEXTS[context] = pickle.loads(Path(context).read_bytes())  # written by the search itself
        context = _WORKER_CONTEXTS[context]
    registry = load_plugins().registry
    if context.token not in _WORKER_MODELS:
        framework = registry.framework(context.framework)
        with tempfile.TemporaryDirectory(prefix="sigdl-tail-") as tmp:
            path = Path(tmp) / f"baseline{context.suffix}"
            path.write_bytes(context.checkpoint)
            model = framework.load(path)
        _WORKER_MODELS.clear()
        _WORKER_MODELS[context.token] = (framework, model)
    framework, model = _WORKER_MODELS[context.token]

    def retrain(weights: dict[str, Any], projection: Any, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        framework.set_weights(model, weights)
        settings = context.retrain
        if overrides and settings.epochs > 0:
            settings = dataclasses.replace(settings, **dict(overrides))
        if settings.epochs > 0 and context.train is not None and framework.training_unavailable(model) is None:
            train(framework, model, context.train, settings, None, projection=projection, teacher=context.teacher)
        return framework.get_weights(model)

    return candidate_tail(registry, framework, model, context.kinds, job, context.decision, context.new_data,
                          context.floor, retrain)


class _Enough(Exception):
    """A rehearsal found as many candidates ahead as it looks for."""


class _Diverged(Exception):
    """A rehearsal's phase asked something the real run did not: no guess is made."""


class _Rehearsal:
    """The :class:`Workbench` as a phase sees it in a rehearsal (:meth:`Workbench._speculate`):
    the answers the real run got, in order, then ``guess`` for every further question, whose
    candidates are collected (``ahead``) until ``limit`` of them; nothing is computed."""

    def __init__(self, bench: Workbench, keys: Sequence[str], answers: Sequence[bool], guess: bool,
                 limit: int) -> None:
        self._bench, self._keys, self._answers = bench, list(keys), list(answers)
        self._guess, self._limit, self._asked = guess, limit, 0
        self.ahead: list[tuple[Any, str, str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bench, name)

    def passes(self, chain: Sequence[tuple[str, Mapping[str, Any]]], phase: str, note: str = "",
               path: Sequence[Mapping[str, float]] | None = None, reserve: float = 0.0) -> bool:
        j = self._asked
        self._asked += 1
        if j < len(self._keys):
            if self._bench._identity(chain, phase, path)[0] != self._keys[j]:
                raise _Diverged
            return self._answers[j] if j < len(self._answers) else self._guess
        self.ahead.append((copy.deepcopy(list(chain)), phase, note, copy.deepcopy(path)))
        if len(self.ahead) >= self._limit:
            raise _Enough
        return self._guess

    def candidate(self, *args: Any, **kwargs: Any) -> Any:
        raise _Diverged  # a phase that reads records directly is not rehearsed



def target_record(report: Any) -> dict[str, Any]:
    """An emulation report as a run records it (``fps`` is the batch-1 figure)."""
    record = report.to_dict()
    record["fps"] = record.get("fps_batch1")
    return record


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def _layer_figures(layer: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("kept", "total", "weight_bits", "index_bits", "entropy_bits", "bits_per_weight", "encoding")
    return {k: layer.get(k) for k in keys if k in layer}


def _brief(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: record.get(k) for k in ("index", "phase", "validation_accuracy", "ratio", "artifact_bytes", "met")}


# --------------------------------------------------------------------------- the strategy


def _set_sparsity(params: dict[str, Any], sparsity: Mapping[str, float]) -> None:
    for k in PRUNE_SETTINGS:
        params.pop(k, None)
    params["sparsity"] = {n: round(float(v), 6) for n, v in sparsity.items()}


def _set_bits(params: dict[str, Any], bits: Mapping[str, int]) -> None:
    params.pop("bits", None)
    params["layers"] = dict(bits)


#: How the search turns its knobs, per compressor role: ``(role, knob) -> setter(params, value)``.
#: A role the search has no knob for runs with the recipe's parameters.
ROLE_KNOBS: dict[tuple[str, str], Callable[[dict[str, Any], Any], None]] = {
    ("prune", "sparsity"): _set_sparsity,
    ("quantize", "bits"): _set_bits,
    ("structure", "strength"): lambda params, value: params.__setitem__("strength", float(value)),
}
#: Strengths the structure phase tries on a ``structure`` compressor (block-circulant blocks,
#: kept DCT coefficients), strongest first; the first whose candidate keeps the accuracy stays.
STRUCTURE_STRENGTHS = (1.0, 0.75, 0.5, 0.25)


@dataclass
class SearchPlan:
    """The chain with the search's knobs located in it."""

    chain: list[str]
    params: dict[str, dict[str, Any]]
    roles: dict[str, str]

    @classmethod
    def of(cls, plugins: LoadedPlugins, recipe: Recipe) -> SearchPlan:
        registry = plugins.registry
        chain = list(recipe.compress["chain"])
        roles = {name: registry.get("compressor", name).role for name in chain}
        params = {}
        for name in chain:
            documented = registry.get("compressor", name).params
            given = dict(recipe.compress["params"].get(name, {}))
            defaults = {k: v for k, v in ROLE_DEFAULTS.get(roles[name], {}).items() if k in documented}
            if recipe.search["strategy"] == "fixed":  # the chain's parameters as given, nothing added
                defaults = {}
            params[name] = {**defaults, **given}
        return cls(chain, params, roles)

    def first(self, role: str) -> str | None:
        return next((n for n in self.chain if self.roles[n] == role), None)

    @property
    def prune(self) -> str | None:
        return self.first("prune")

    @property
    def quantize(self) -> str | None:
        return self.first("quantize")

    def build(self, sparsity: Mapping[str, float] | None, bits: Mapping[str, int] | None) -> list[tuple[str, dict]]:
        """The chain with the first ``prune`` compressor's sparsity and the first
        ``quantize`` one's bits set (None: as the recipe gives them)."""
        knobs = {"sparsity": (self.prune, sparsity), "bits": (self.quantize, bits)}
        chain = []
        for name in self.chain:
            params = dict(self.params[name])
            for knob, (owner, value) in knobs.items():
                if name == owner and value is not None:
                    ROLE_KNOBS[(self.roles[name], knob)](params, value)
            chain.append((name, params))
        return chain

    def pruning_first(self) -> bool:
        """Whether the chain starts with its ``prune`` compressor (then it can run as a path)."""
        return bool(self.chain) and self.chain[0] == self.prune


def prunable_layers(weights: Mapping[str, Any], kinds: Mapping[str, str]) -> list[str]:
    return [n for n, w in weights.items() if kinds.get(n) in COMPRESSIBLE_KINDS and getattr(w, "ndim", 0) >= 2]


def sensitivity_analysis(bench: Workbench, plan: SearchPlan) -> dict[str, list[list[float]]]:
    """Per layer: [[sparsity, top-1], …], that layer alone pruned, without retraining."""
    cached = bench.store.load("sensitivity.json")
    grid = [float(s) for s in bench.recipe.search["sensitivity"]]
    if cached is not None and cached.get("grid") == grid and cached.get("split") == DECISION_SPLIT:
        return cached["curves"]
    compressor = bench.plugins.registry.compressor(plan.prune)
    layers = prunable_layers(bench.baseline_weights, bench.kinds)
    curves: dict[str, list[list[float]]] = {}
    total = len(layers) * len(grid)
    done = 0
    if bench.executor is not None and bench.accuracy_of(bench.baseline_weights) is not None:
        # independent points: all submitted at once, read back in grid order (as serial)
        from .parallel import checkpoint_bytes, map_ordered, only_split, pruned_accuracy

        suffix = (bench.plugins.registry.get("framework", bench.framework.name).suffixes or (".model",))[0]
        bench.framework.set_weights(bench.model, bench.baseline_weights)
        ckpt = checkpoint_bytes(bench.framework, bench.model, suffix)
        view = only_split(bench.data, DECISION_SPLIT)
        base = {k: v for k, v in plan.params[plan.prune].items() if k not in PRUNE_SETTINGS}
        points = [(name, s) for name in layers for s in grid]
        calls = [(bench.framework.name, ckpt, suffix, plan.prune, dict(bench.baseline_weights), dict(bench.kinds),
                  {**base, "sparsity": {name: s}}, view, DECISION_SPLIT) for name, s in points]
        finished = [0]

        def arrived(_i: int, _top1: float) -> None:
            finished[0] += 1
            bench.observer.progress("sensitivity", finished[0], total)

        tops = map_ordered(bench.executor, pruned_accuracy, calls, on_result=arrived)
        for (name, s), top1 in zip(points, tops):
            curves.setdefault(name, []).append([s, top1])
        layers = []  # done
    for name in layers:
        curve = []
        for s in grid:
            params = {k: v for k, v in plan.params[plan.prune].items() if k not in PRUNE_SETTINGS}
            params["sparsity"] = {name: s}
            result = compressor.compress(bench.baseline_weights, bench.kinds, params)
            acc = bench.accuracy_of(result.weights)
            curve.append([s, acc.top1 if acc else 0.0])
            done += 1
            bench.observer.progress("sensitivity", done, total)
        curves[name] = curve
    bench.framework.set_weights(bench.model, bench.baseline_weights)
    bench.store.save("sensitivity.json", {"grid": grid, "split": DECISION_SPLIT, "baseline": bench.baseline_top1,
                                          "curves": curves})
    return curves


def sensitivity_caps(curves: Mapping[str, Sequence[Sequence[float]]], baseline: float | None,
                     allowed_drop: float, grid: Sequence[float]) -> dict[str, float]:
    """Each layer's highest sparsity costing at most half the allowed drop (at least grid[0]/2)."""
    caps = {}
    for name, curve in curves.items():
        ok = [s for s, acc in curve if baseline is None or acc >= baseline - allowed_drop / 2]
        caps[name] = max([*ok, min(grid) / 2])
    return caps


def sparsities_at(caps: Mapping[str, float], strength: float | Mapping[str, float]) -> dict[str, float]:
    """Per-layer sparsity ``1 - (1 - cap)^strength``, at most 99.9 %.

    ``strength`` is one number for every layer, or layer → number.
    """
    def t(name: str) -> float:
        return float(strength[name]) if isinstance(strength, Mapping) else float(strength)

    return {n: min(0.999, 1.0 - (1.0 - c) ** t(n)) for n, c in caps.items()}


def kept_weights(bench: Workbench, sparsity: Mapping[str, float]) -> dict[str, float]:
    """Weights each prunable layer keeps at these sparsities."""
    return {n: bench.baseline_weights[n].size * (1.0 - s) for n, s in sparsity.items()}


def heavy_layers(bench: Workbench, sparsity: Mapping[str, float] | None, layers: Sequence[str]) -> list[str]:
    """The layers holding at least :data:`MIN_SHARE` of the kept weights, largest first."""
    kept = kept_weights(bench, sparsity) if sparsity else {n: float(bench.baseline_weights[n].size) for n in layers}
    total = sum(kept.values()) or 1.0
    return [n for n in sorted(kept, key=lambda n: -kept[n]) if kept[n] / total >= MIN_SHARE]


def run_search(bench: Workbench, on_phase: Callable[[str], None] | None = None) -> tuple[list[dict], str | None]:
    """Runs the search; returns every candidate tried and why it stopped early (or None)."""
    plan = SearchPlan.of(bench.plugins, bench.recipe)
    if not plan.chain:
        return [], None
    stopped = None
    try:
        structure = plan.first("structure")
        if bench.recipe.search["strategy"] == "fixed" or (plan.prune is None and plan.quantize is None
                                                          and structure is None):
            bench.candidate(plan.build(None, None), "fixed", "the chain's parameters as given")
            return bench.store.candidates(), None
        layers = prunable_layers(bench.baseline_weights, bench.kinds)
        if not layers:
            raise BadInputError("the model has no conv or fully connected weights to compress",
                                "check the model, or use a chain without prune/quant")
        bits = {n: START_BITS[bench.kinds[n]] for n in layers} if plan.quantize else None
        path: list[dict[str, float]] | None = None
        if plan.prune:
            if on_phase:
                on_phase("sensitivity")
            allowed = (bench.baseline_top1 - bench.budget.accuracy_floor(bench.baseline_top1)) \
                if bench.baseline_top1 is not None else 0.0
            grid = bench.recipe.search["sensitivity"]
            timing = bench.data.timing_only or bench.baseline_top1 is None
            if plan.pruning_first() and bench.recipe.search.get("allocation", "magnitude") == "magnitude":
                allocation = magnitude_allocation(bench, layers)
                levels = ladder(START_SPARSITY, lambda g: None if g >= MAX_OVERALL_SPARSITY
                                else min(MAX_OVERALL_SPARSITY, 1.0 - KEEP_PER_STEP * (1.0 - g)))
            else:
                curves = sensitivity_analysis(bench, plan) if not timing else {n: [] for n in layers}
                caps = sensitivity_caps(curves, bench.baseline_top1, allowed, grid)
                allocation = sensitivity_allocation(caps)
                levels = ladder(START_STRENGTH, lambda t: next_strength(bench, caps, t))
            if on_phase:
                on_phase("strength")
            if plan.pruning_first():
                path = bench.phase(_climb_strength, plan, allocation, levels, bits)
                if on_phase:
                    on_phase("layers")
                path = bench.phase(_push_layers, plan, bits, path)
            else:
                best_t = bench.phase(_bisect_strength, plan, caps, bits)
                path = [sparsities_at(caps, best_t if best_t is not None else 0.25)]
        if structure is not None and "strength" not in plan.params[structure]:
            if on_phase:
                on_phase("structure")
            bench.phase(_strongest_structure, plan, structure, path, bits)
        if plan.quantize:
            if on_phase:
                on_phase("bits")
            bench.phase(_fewest_bits, plan, path, bits, layers)
    except SearchStopped as why:
        stopped = str(why)
    finally:
        bench.close()
    return bench.store.candidates(), stopped


def _strongest_structure(bench: Workbench, plan: SearchPlan, name: str, path: list[dict[str, float]] | None,
                         bits: Mapping[str, int] | None) -> None:
    """The structure phase: the strongest of :data:`STRUCTURE_STRENGTHS` at which the chain's
    ``structure`` compressor keeps the accuracy (leaving :data:`BITS_RESERVE` to the bits
    phase) stays in the plan; if none does, the gentlest."""
    for strength in STRUCTURE_STRENGTHS:
        ROLE_KNOBS[("structure", "strength")](plan.params[name], strength)
        use_path = path if path and plan.pruning_first() else None
        if bench.passes(plan.build(path[-1] if path else None, bits), "structure", f"{name} strength {strength:g}",
                        path=use_path, reserve=BITS_RESERVE):
            return


def _path_candidate(bench: Workbench, plan: SearchPlan, path: list[dict[str, float]],
                    bits: Mapping[str, int] | None, phase: str, note: str) -> bool:
    """Evaluates the chain with its pruning run along ``path``; True when it keeps the accuracy
    (in the pruning phases, with :data:`BITS_RESERVE` of the allowed drop left over)."""
    use_path = path if plan.pruning_first() else None
    return bench.passes(plan.build(path[-1], bits), phase, note, path=use_path,
                        reserve=0.0 if phase == "bits" else BITS_RESERVE)


def total_kept(bench: Workbench, caps: Mapping[str, float], strengths: Mapping[str, float]) -> float:
    """Weights the prunable layers keep at these per-layer strengths."""
    return sum(kept_weights(bench, sparsities_at(caps, strengths)).values())


def next_strength(bench: Workbench, caps: Mapping[str, float], t: float) -> float | None:
    """The common strength above ``t`` at which the layers keep :data:`KEEP_PER_STEP` of the
    weights they keep at ``t`` (found by bisection); None when ``MAX_STRENGTH`` keeps more."""
    target = KEEP_PER_STEP * total_kept(bench, caps, {n: t for n in caps})
    if t >= MAX_STRENGTH - 1e-9:
        return None
    if total_kept(bench, caps, {n: MAX_STRENGTH for n in caps}) > target:
        return MAX_STRENGTH
    lo, hi = t, MAX_STRENGTH
    for _ in range(40):
        mid = (lo + hi) / 2
        if total_kept(bench, caps, {n: mid for n in caps}) > target:
            lo = mid
        else:
            hi = mid
    return hi


def magnitude_allocation(bench: Workbench, layers: Sequence[str]) -> Callable[[float], dict[str, float]]:
    """``overall sparsity -> per-layer sparsity`` of one magnitude threshold across ``layers``
    of the baseline (Han et al.'s observation: a layer with many inputs has small weights and
    many redundant ones). Each layer keeps at least ``1 - MAX_LAYER_SPARSITY``."""
    import numpy as np

    mags = {n: np.sort(np.abs(np.asarray(bench.baseline_weights[n], dtype=np.float32)).ravel()) for n in layers}
    every = np.sort(np.concatenate(list(mags.values())))

    def at(overall: float) -> dict[str, float]:
        threshold = every[min(len(every) - 1, int(overall * len(every)))]
        return {n: min(MAX_LAYER_SPARSITY, float(np.searchsorted(m, threshold, "left")) / m.size)
                for n, m in mags.items()}

    return at


def sensitivity_allocation(caps: Mapping[str, float]) -> Callable[[float], dict[str, float]]:
    """``strength -> per-layer sparsity`` ``1 - (1 - cap)^strength`` (see :func:`sparsities_at`)."""
    return lambda t: sparsities_at(caps, t)


def _climb_strength(bench: Workbench, plan: SearchPlan, allocation: Callable[[float], dict[str, float]],
                    levels: Sequence[float], bits: Mapping[str, int] | None) -> list[dict[str, float]]:
    """Climbs a ladder of pruning levels as one pruning path; returns the best passing path.

    ``allocation(level)`` is the per-layer sparsity at a level; each level is a rung, and the
    path prunes to each rung from the previous rung's retrained weights. The climb stops
    after two failing rungs in a row. When even the first rung fails, levels below it are
    tried in one step (the lowest one is returned when all fail).
    """
    path: list[dict[str, float]] = []
    best: list[dict[str, float]] | None = None
    failed = 0
    for level in levels[1:]:
        path = [*path, allocation(level)]
        if _path_candidate(bench, plan, path, bits, "strength", f"level {level:.4g}"):
            best, failed = list(path), 0
        else:
            failed += 1
            if failed >= 2:
                break
    if best is None:  # even the first rung fails once retrained: prune less, in one step
        for level in (levels[0], levels[0] / 2):
            path = [allocation(level)]
            if _path_candidate(bench, plan, path, bits, "strength", f"level {level:.4g}"):
                return path
        return [allocation(levels[0] / 4)]
    return best


def _push_layers(bench: Workbench, plan: SearchPlan, bits: Mapping[str, int] | None,
                 path: list[dict[str, float]]) -> list[dict[str, float]]:
    """Extends the path by pruning the heaviest layers further, one at a time, while it passes.

    Each step keeps :data:`KEEP_PER_STEP` of the layer's weights; at most :data:`LAYER_STEPS`
    steps a layer: a small validation split cannot see a slow decline, and one layer pushed
    far alone is worse than all of them pushed a little.
    """
    for name in heavy_layers(bench, path[-1], list(path[-1])):
        for _ in range(LAYER_STEPS):
            current = path[-1]
            trial = {**current, name: min(MAX_LAYER_SPARSITY, 1.0 - KEEP_PER_STEP * (1.0 - current[name]))}
            if trial[name] <= current[name]:
                break
            longer = [*path, trial]
            if not _path_candidate(bench, plan, longer, bits, "layers",
                                   f"{name}: {100 * trial[name]:.1f} % pruned"):
                break
            path = longer
    return path


def ladder(first: float, step: Callable[[float], float | None]) -> list[float]:
    """``first``, ``step(first)``, … until ``step`` returns None (a lower level, then the rungs)."""
    levels = [first / 2, first]
    while (nxt := step(levels[-1])) is not None:
        levels.append(nxt)
    return levels


def _bisect_strength(bench: Workbench, plan: SearchPlan, caps: Mapping[str, float],
                     bits: Mapping[str, int] | None) -> float | None:
    """One-shot strengths (no path), for chains where pruning is not the first stage."""
    def ok(t: float) -> bool:
        return bench.passes(plan.build(sparsities_at(caps, t), bits), "strength", f"t={t:.4g}")

    lo, hi = None, None  # lo passes, hi fails
    t = 1.0
    if ok(t):
        lo = t
        while lo < MAX_STRENGTH:
            t = min(MAX_STRENGTH, lo * 2)
            if ok(t):
                lo = t
            else:
                hi = t
                break
    else:
        hi = t
        t = 0.5
        while t >= 0.125:
            if ok(t):
                lo = t
                break
            hi, t = t, t / 2
    if lo is None or hi is None:
        return lo
    for _ in range(bench.recipe.search["bisection_steps"]):
        mid = (lo + hi) / 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _fewest_bits(bench: Workbench, plan: SearchPlan, path: list[dict[str, float]] | None,
                 bits: dict[str, int], layers: Sequence[str]) -> None:
    """Per heavy layer, largest first, the fewest bits that keep the accuracy (binary search)."""
    min_bits = bench.recipe.search["min_bits"]
    sparsity = path[-1] if path else None
    for name in heavy_layers(bench, sparsity, layers):
        lo, hi = min_bits, bits[name]  # find the fewest bits in [lo, hi] that pass; hi passes
        while lo < hi:
            mid = (lo + hi) // 2
            trial = {**bits, name: mid}
            if path:
                passed = _path_candidate(bench, plan, path, trial, "bits", f"{name}: {mid} bits")
            else:
                passed = bench.passes(plan.build(None, trial), "bits", f"{name}: {mid} bits")
            if passed:
                hi = mid
            else:
                lo = mid + 1
        bits[name] = hi


def choose(candidates: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The highest-ratio candidate that meets the budget (and keeps the search's noise
    margin above the accuracy floor, when one does); else the best found.

    Every figure it compares was measured on the validation split.

    "Best" keeps the accuracy first (fewest shortfalls beyond accuracy), then the highest
    ratio; with no candidate keeping the accuracy, the most accurate one.
    """
    if not candidates:
        return None
    met = [c for c in candidates if c.get("met")]
    met = [c for c in met if c.get("within_margin", True)] or met  # decisions keep the noise margin
    if met:
        return dict(max(met, key=lambda c: (c.get("ratio") or 0, c.get("validation_accuracy") or 0)))
    keeps = [c for c in candidates if not any(s["limit"] == "accuracy" for s in c.get("shortfalls", []))]
    if keeps:
        return dict(min(keeps, key=lambda c: (len(c.get("shortfalls", [])), -(c.get("ratio") or 0))))
    return dict(max(candidates, key=lambda c: (c.get("validation_accuracy") or 0, c.get("ratio") or 0)))
