"""The target's budget, and what a candidate model did against it.

A budget bounds the accuracy drop (absolute points of top-1, or relative to the baseline),
each target's speed (minimum fps at batch 1, maximum p95 latency), the artifact's size on
disk, and power and energy per inference. :meth:`Budget.check` returns every limit a
candidate misses and by how much, so a report can say exactly why a run failed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from .errors import InvalidValueError


@dataclass(frozen=True)
class Shortfall:
    """One missed limit: ``value`` against ``bound``; ``by`` is how far, in the limit's unit."""

    limit: str
    value: float | None  # None: the target could not measure it
    bound: float
    by: float | None
    unit: str
    target: str | None = None

    def text(self) -> str:
        where = f" on {self.target}" if self.target else ""
        if self.value is None or self.by is None:
            return f"{self.limit}{where}: not measured, but the budget bounds it at {self.bound:.4g} {self.unit}"
        return (f"{self.limit}{where}: {self.value:.4g} {self.unit} against {self.bound:.4g} {self.unit} "
                f"(missed by {self.by:.4g} {self.unit})")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "text": self.text()}


@dataclass(frozen=True)
class Budget:
    """Limits a compressed model must meet; ``None`` means no limit."""

    max_accuracy_drop: float | None = 1.0  # points of top-1 accuracy (1.0 = one point)
    max_relative_drop: float | None = None  # fraction of the baseline's top-1 (0.02 = 2 %)
    min_fps: float | None = None  # at batch 1, on every target
    max_latency_ms: float | None = None  # p95, on every target
    max_artifact_bytes: int | None = None
    max_power_w: float | None = None
    max_energy_mj: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or not math.isfinite(v) or v < 0):
                raise InvalidValueError(f"budget '{f.name}' is {v!r}", "give a number >= 0, or null for no limit")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def accuracy_floor(self, baseline: float) -> float:
        """The lowest top-1 (fraction) a candidate may have."""
        floor = 0.0
        if self.max_accuracy_drop is not None:
            floor = max(floor, baseline - self.max_accuracy_drop / 100.0)
        if self.max_relative_drop is not None:
            floor = max(floor, baseline * (1.0 - self.max_relative_drop))
        return floor

    def check(self, baseline_top1: float | None, top1: float | None, artifact_bytes: int | None,
              targets: Mapping[str, Mapping[str, Any]]) -> list[Shortfall]:
        """Every limit missed by a candidate with these measurements.

        ``targets`` maps a target's name to its emulation report (as a dict).
        """
        out: list[Shortfall] = []
        if baseline_top1 is not None and top1 is not None:
            floor = self.accuracy_floor(baseline_top1)
            if top1 < floor - 1e-12:
                out.append(Shortfall("accuracy", 100 * top1, 100 * floor, 100 * (floor - top1), "% top-1"))
        if self.max_artifact_bytes is not None and artifact_bytes is not None and artifact_bytes > self.max_artifact_bytes:
            out.append(Shortfall("artifact size", artifact_bytes, self.max_artifact_bytes,
                                 artifact_bytes - self.max_artifact_bytes, "bytes"))
        floor = self.accuracy_floor(baseline_top1) if baseline_top1 is not None else None
        for name, rep in targets.items():
            target_top1 = (rep.get("accuracy") or {}).get("top1")
            if floor is not None and target_top1 is not None and target_top1 < floor - 1e-12:
                out.append(Shortfall("accuracy", 100 * target_top1, 100 * floor, 100 * (floor - target_top1),
                                     "% top-1", name))
            if not rep.get("fits", True):
                out.append(Shortfall("fits on the target", 0, 1, 1, "(0: does not fit or run)", name))
            checks = [
                ("fps", rep.get("fps_batch1"), self.min_fps, "fps", -1),
                ("latency p95", rep.get("latency_ms_p95"), self.max_latency_ms, "ms", 1),
                ("power", rep.get("power_w"), self.max_power_w, "W", 1),
                ("energy per inference", rep.get("energy_mj"), self.max_energy_mj, "mJ", 1),
            ]
            for limit, value, bound, unit, sign in checks:
                if bound is None:
                    continue
                if value is None:
                    out.append(Shortfall(limit, None, bound, None, unit, name))
                elif sign * (value - bound) > 0:
                    out.append(Shortfall(limit, value, bound, abs(value - bound), unit, name))
        return out

    def has_target_limits(self) -> bool:
        return any(v is not None for v in (self.min_fps, self.max_latency_ms, self.max_power_w, self.max_energy_mj))
