"""Sensitivity analysis: how much accuracy each layer loses as it alone is pruned.

Han et al. (NeurIPS 2015, figure 5) prune one layer at a time, without retraining, and plot
accuracy against the fraction pruned: conv layers — the first above all — are far more
sensitive than the fully connected ones, and the curves tell how far each layer can go.
Li et al., "Pruning Filters for Efficient ConvNets" (ICLR 2017) and Distiller's
``sensitivity_analysis`` do the same to choose per-layer pruning rates.

:func:`sensitivity` evaluates the model once dense and once per (layer, sparsity) with only
that layer pruned to that sparsity by magnitude; the result, :class:`SensitivityAnalysis`,
is plain data (``to_dict``/``from_dict``) for the loop's report and plots.
:func:`choose_sparsities` reads per-layer sparsities off the curves: for each layer the
largest sparsity tested such that it and every lower one cost at most ``max_drop`` of
accuracy. Layers are measured one at a time, so the drops add up when they are all pruned
together; retraining recovers much of it (Han et al.), and a smaller ``max_drop`` is the
cautious choice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sigdl_core.errors import InvalidValueError
from sigdl_core.interfaces import COMPRESSIBLE_KINDS, ProgressCallback

from .layer_selection import candidate_layers, check_fraction
from .magnitude import _scores, smallest_k_mask

#: The sparsities tested by default.
DEFAULT_SPARSITIES: tuple[float, ...] = (0.25, 0.5, 0.7, 0.8, 0.9, 0.95)


@dataclass
class SensitivityCurve:
    """Accuracy of the model with only layer ``name`` pruned, at each tested sparsity.

    ``points`` are ``(sparsity, accuracy)`` pairs in increasing sparsity, starting with
    ``(0.0, baseline)``.
    """

    name: str
    kind: str
    size: int
    points: list[tuple[float, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "size": self.size,
                "points": [[s, a] for s, a in self.points]}


@dataclass
class SensitivityAnalysis:
    """The dense model's accuracy and one :class:`SensitivityCurve` per layer."""

    baseline: float
    sparsities: tuple[float, ...]
    curves: dict[str, SensitivityCurve] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "sparsities": list(self.sparsities),
            "layers": {name: curve.to_dict() for name, curve in self.curves.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SensitivityAnalysis:
        try:
            curves = {
                name: SensitivityCurve(
                    name=name, kind=str(c["kind"]), size=int(c["size"]),
                    points=[(float(s), float(a)) for s, a in c["points"]],
                )
                for name, c in data["layers"].items()
            }
            return cls(baseline=float(data["baseline"]),
                       sparsities=tuple(float(s) for s in data["sparsities"]), curves=curves)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidValueError(f"not a sensitivity analysis: {exc}",
                                    "give what SensitivityAnalysis.to_dict() wrote") from None

    def choose_sparsities(self, max_drop: float) -> dict[str, float]:
        """See :func:`choose_sparsities`."""
        return choose_sparsities(self, max_drop)


def sensitivity(
    weights: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    evaluate: Callable[[Mapping[str, np.ndarray]], float],
    sparsities: Sequence[float] = DEFAULT_SPARSITIES,
    *,
    layers: Sequence[str] | None = None,
    allowed_kinds: Iterable[str] = COMPRESSIBLE_KINDS,
    progress: ProgressCallback | None = None,
) -> SensitivityAnalysis:
    """Prunes each chosen layer alone to each of ``sparsities`` and scores the model.

    :param evaluate: ``evaluate(weights) -> accuracy`` on held-out data (larger is better).
        It gets every weight, with one layer pruned; it must not keep or modify the arrays.
    :param sparsities: fractions in [0, 1) to test (0 is the baseline, always included).
    :param layers: patterns restricting which layers are analysed.
    :param progress: ``progress(description, completed, total)`` after each evaluation.
    """
    if not callable(evaluate):
        raise InvalidValueError("'evaluate' is not callable",
                                "give a function evaluate(weights) -> accuracy")
    tested = sorted({check_fraction(s, "sparsities") for s in sparsities} - {0.0})
    if not tested:
        raise InvalidValueError("no sparsity to test", "give fractions such as 0.5, 0.8, 0.9")
    names = candidate_layers(weights, kinds, allowed_kinds, layers)
    if not names:
        raise InvalidValueError("no layer to analyse", "check the 'layers' and 'kinds' given")
    frozen = {name: np.asarray(array) for name, array in weights.items()}
    baseline = float(evaluate(frozen))
    total = len(names) * len(tested)
    done = 0
    analysis = SensitivityAnalysis(baseline=baseline, sparsities=tuple(tested))
    for name in names:
        original = frozen[name]
        scores = _scores(original, None)
        curve = SensitivityCurve(name=name, kind=str(kinds.get(name, "other")),
                                 size=int(original.size), points=[(0.0, baseline)])
        for s in tested:
            keep, _ = smallest_k_mask(scores, int(round(s * original.size)))
            pruned = np.where(keep.reshape(original.shape), original, 0).astype(original.dtype)
            trial = dict(frozen)
            trial[name] = pruned
            curve.points.append((s, float(evaluate(trial))))
            done += 1
            if progress is not None:
                progress(f"sensitivity {name} @ {s:.0%}", done, total)
        analysis.curves[name] = curve
    return analysis


def choose_sparsities(analysis: SensitivityAnalysis, max_drop: float) -> dict[str, float]:
    """Per layer, the largest tested sparsity whose accuracy — and that of every lower
    sparsity tested — is at least ``baseline - max_drop`` (0.0 where none is).

    :param max_drop: the accuracy each layer may cost on its own, in the units ``evaluate``
        returned (0.01 = one point of a 0..1 accuracy).
    """
    if isinstance(max_drop, bool) or not isinstance(max_drop, (int, float)) or not (
        0.0 <= float(max_drop) < float("inf")
    ):
        raise InvalidValueError(f"'max_drop'={max_drop!r} must be a finite number >= 0",
                                "give the accuracy one layer may cost, e.g. 0.01")
    floor = analysis.baseline - float(max_drop)
    chosen: dict[str, float] = {}
    for name, curve in analysis.curves.items():
        best = 0.0
        for s, accuracy in sorted(curve.points):
            if accuracy < floor:
                break
            best = s
        chosen[name] = best
    return chosen
