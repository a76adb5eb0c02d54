"""Iterative pruning: prune, retrain, prune further — on a schedule.

Han et al. (NeurIPS 2015, section 3.3) found that pruning in several prune–retrain cycles
removes far more weights at the same accuracy than one cut. Zhu & Gupta, "To prune, or not
to prune: exploring the efficacy of pruning for model compression" (ICLR workshop 2018,
arXiv:1710.01878) made the cycle a schedule, *automated gradual pruning* (AGP): starting
at step ``t0`` and every ``Δt`` steps for ``n`` steps, the sparsity is raised to

    s_t = s_f + (s_i - s_f) · (1 - (t - t0) / (n Δt))³,   t ∈ {t0, t0 + Δt, …, t0 + nΔt}

so that it climbs fast while the network has many redundant weights and slowly near the
final sparsity ``s_f``. :func:`agp_sparsity` evaluates it, :func:`agp_schedule` lists its
values at the pruning steps, and :func:`prune_iteratively` runs any schedule: prune to the
step's target (never reviving a weight pruned before), then let a caller-supplied
``retrain(weights, projection)`` train with the masks held by the projection. Retraining
is the framework's business (SigDL's loop passes one that calls ``Framework.train``), which
keeps this module free of any deep-learning library.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sigdl_core.errors import InvalidValueError
from sigdl_core.interfaces import COMPRESSIBLE_KINDS, CompressionResult, Projection

from .layer_selection import check_fraction
from .magnitude import apply_masks, prune_globally, prune_to_sparsity

#: ``retrain(weights, projection) -> weights``: trains a copy of the model holding
#: ``weights``, calling ``projection`` on the weights after every optimizer step, and returns
#: the trained weights (all of them, or those it changed).
RetrainCallback = Callable[[dict[str, np.ndarray], Projection], Mapping[str, np.ndarray]]

#: ``evaluate(weights) -> accuracy`` (any score where larger is better).
EvaluateCallback = Callable[[Mapping[str, np.ndarray]], float]


def _check_steps(num_steps: Any, interval: Any) -> tuple[int, int]:
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise InvalidValueError(f"AGP 'num_steps'={num_steps!r} must be a whole number >= 1",
                                "give how many pruning steps the schedule takes, e.g. 10")
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise InvalidValueError(f"AGP 'interval'={interval!r} must be a whole number >= 1",
                                "give the training steps (or epochs) between pruning steps")
    return num_steps, interval


def agp_sparsity(
    step: float,
    final_sparsity: float,
    *,
    initial_sparsity: float = 0.0,
    start_step: float = 0,
    num_steps: int = 10,
    interval: int = 1,
) -> float:
    """Zhu & Gupta's sparsity target at training step ``step``.

    Pruning happens at ``start_step + k·interval`` for ``k = 0 … num_steps``; between two
    pruning steps the target stays at the last one's value. Before ``start_step`` nothing is
    pruned (0.0); from ``start_step + num_steps·interval`` on, it is ``final_sparsity``.
    """
    s_f = check_fraction(final_sparsity, "final_sparsity")
    s_i = check_fraction(initial_sparsity, "initial_sparsity")
    if s_i > s_f:
        raise InvalidValueError(
            f"AGP initial sparsity {s_i} is above the final sparsity {s_f}",
            "the schedule only raises sparsity; give initial_sparsity <= final sparsity",
        )
    n, dt = _check_steps(num_steps, interval)
    if not math.isfinite(float(step)):
        raise InvalidValueError(f"AGP step {step!r} is not a finite number", "give a step >= 0")
    if step < start_step:
        return 0.0
    k = min(math.floor((step - start_step) / dt), n)
    return s_f + (s_i - s_f) * (1.0 - k / n) ** 3


def agp_schedule(
    final_sparsity: float | Mapping[str, float],
    num_steps: int,
    *,
    initial_sparsity: float = 0.0,
) -> list[float] | list[dict[str, float]]:
    """The ``num_steps + 1`` AGP targets at ``t0, t0 + Δt, …, t0 + nΔt`` (first ``s_i``,
    last ``s_f``). A mapping of per-layer final sparsities gives one mapping per step.
    """
    if isinstance(final_sparsity, Mapping):
        columns = {
            key: agp_schedule(value, num_steps, initial_sparsity=min(initial_sparsity, value))
            for key, value in final_sparsity.items()
        }
        return [{key: float(col[k]) for key, col in columns.items()} for k in range(num_steps + 1)]
    return [
        agp_sparsity(k, final_sparsity, initial_sparsity=initial_sparsity, num_steps=num_steps)
        for k in range(num_steps + 1)
    ]


@dataclass
class PruningStep:
    """One prune–retrain cycle: its target, the sparsity reached per layer, and scores."""

    step: int
    target: float | dict[str, float]
    sparsity: dict[str, float]
    overall_sparsity: float
    accuracy_pruned: float | None = None
    accuracy_retrained: float | None = None
    revived: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "target": self.target,
            "sparsity": dict(self.sparsity),
            "overall_sparsity": self.overall_sparsity,
            "accuracy_pruned": self.accuracy_pruned,
            "accuracy_retrained": self.accuracy_retrained,
            "revived": self.revived,
        }


@dataclass
class IterativePruningResult:
    """The final compression result and the record of every prune–retrain cycle."""

    result: CompressionResult
    steps: list[PruningStep] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [s.to_dict() for s in self.steps]}


def prune_iteratively(
    weights: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    schedule: Sequence[float | Mapping[str, float]],
    retrain: RetrainCallback | None,
    *,
    mode: str = "layer",
    layers: Sequence[str] | None = None,
    allowed_kinds: Iterable[str] = COMPRESSIBLE_KINDS,
    evaluate: EvaluateCallback | None = None,
    previous: CompressionResult | None = None,
) -> IterativePruningResult:
    """Alternates pruning to each target of ``schedule`` with ``retrain``.

    :param schedule: sparsity targets in order (e.g. :func:`agp_schedule`); each one is a
        fraction for every layer, or (``mode="layer"``) a name/pattern → fraction mapping.
    :param retrain: ``retrain(weights, projection) -> weights``; ``None`` prunes without
        retraining (one-shot at each step, useful to compare).
    :param mode: ``"layer"`` (each layer to its own target) or ``"global"`` (one threshold
        across layers, ``schedule`` of plain fractions).
    :param evaluate: scores the weights after each prune and each retrain, for the record.
    :param previous: a prior stage's result; its masks are respected throughout.

    After each retrain the masks are applied once more, so that a callback which skipped
    the projection still cannot revive a weight; how many it would have revived is recorded
    (``revived``), which should be zero.
    """
    if mode not in ("layer", "global"):
        raise InvalidValueError(f"pruning mode '{mode}' is unknown", "give 'layer' or 'global'")
    if retrain is not None and not callable(retrain):
        raise InvalidValueError("'retrain' is not callable",
                                "give a function retrain(weights, projection) -> weights")
    if len(schedule) == 0:
        raise InvalidValueError("the pruning schedule is empty", "give at least one sparsity")
    current: dict[str, np.ndarray] = {n: np.array(a, copy=True) for n, a in weights.items()}
    result = previous
    steps: list[PruningStep] = []
    for index, target in enumerate(schedule):
        if mode == "global":
            if isinstance(target, Mapping):
                raise InvalidValueError("a global schedule takes one sparsity per step",
                                        "use mode='layer' for per-layer targets")
            result = prune_globally(current, kinds, target, layers=layers,
                                    allowed_kinds=allowed_kinds, previous=result)
        else:
            result = prune_to_sparsity(current, kinds, target, layers=layers,
                                       allowed_kinds=allowed_kinds, previous=result)
        current = result.weights
        masks = result.state["masks"]
        record = PruningStep(
            step=index,
            target=dict(target) if isinstance(target, Mapping) else float(target),
            sparsity={n: 1.0 - np.count_nonzero(m) / m.size for n, m in masks.items()},
            overall_sparsity=_overall(masks),
        )
        if evaluate is not None:
            record.accuracy_pruned = float(evaluate(current))
        if retrain is not None:
            trained = retrain({n: np.array(a, copy=True) for n, a in current.items()},
                              result.projection)
            merged = dict(current)
            for name, array in trained.items():
                if name not in merged:
                    raise InvalidValueError(
                        f"the retrain callback returned an unknown weight '{name}'",
                        "return the weights it was given, trained",
                    )
                array = np.asarray(array)
                if array.shape != current[name].shape:
                    raise InvalidValueError(
                        f"the retrain callback changed the shape of '{name}' from "
                        f"{current[name].shape} to {array.shape}",
                        "retraining must keep every weight's shape",
                    )
                merged[name] = np.array(array, dtype=current[name].dtype, copy=True)
            record.revived = apply_masks(merged, masks)
            current = merged
            result.weights = current
            if evaluate is not None:
                record.accuracy_retrained = float(evaluate(current))
        steps.append(record)
    assert result is not None
    return IterativePruningResult(result=result, steps=steps)


def _overall(masks: Mapping[str, np.ndarray]) -> float:
    total = sum(int(m.size) for m in masks.values())
    kept = sum(int(np.count_nonzero(m)) for m in masks.values())
    return 1.0 - kept / total if total else 0.0
