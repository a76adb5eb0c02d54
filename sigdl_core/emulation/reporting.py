"""Filling an :class:`~sigdl_core.interfaces.EmulationReport` so that no number lacks its
provenance.

:class:`ReportBuilder` sets a field and its :class:`~sigdl_core.interfaces.Provenance` in
one call, and :meth:`ReportBuilder.finish` refuses a report where a number was set without
one (a programming error in an emulator, so it raises ``AssertionError``-like ``ValueError``)::

    rb = ReportBuilder(target.name, "atom")
    rb.set("latency_ms_p50", 12.3, Method.EXECUTED, "measured on 2 host cores, scaled ×3.1")
    rb.warn("power is an estimate from TDP and utilisation")
    report = rb.finish()
"""

from __future__ import annotations

import math
from typing import Any

from ..interfaces import Accuracy, EmulationReport, Method, Provenance

__all__ = ["NUMBER_FIELDS", "ReportBuilder", "missing_provenance"]

#: Every field of an EmulationReport that holds a number (or the accuracy), in report order.
NUMBER_FIELDS: tuple[str, ...] = (
    "accuracy", "latency_ms_p50", "latency_ms_p95", "fps_batch1", "fps_best", "best_batch",
    "peak_memory_bytes", "memory_limit_bytes", "power_w", "energy_mj", "fits",
)


def missing_provenance(report: EmulationReport) -> list[str]:
    """The fields of ``report`` that hold a value but have no provenance."""
    missing = []
    for name in NUMBER_FIELDS:
        value = getattr(report, name)
        if name == "fits":
            if name not in report.provenance:
                missing.append(name)
            continue
        if value is not None and name not in report.provenance:
            missing.append(name)
    return missing


class ReportBuilder:
    """Builds an :class:`EmulationReport` one field and its provenance at a time."""

    def __init__(self, target: str, emulator: str) -> None:
        self.report = EmulationReport(target=target, emulator=emulator)

    def set(self, name: str, value: Any, method: Method, detail: str) -> None:
        """Sets ``name`` to ``value`` with its method and a detail saying how far to trust it."""
        if name not in NUMBER_FIELDS:
            raise ValueError(f"'{name}' is not a number field of EmulationReport")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"'{name}' would be {value}; a report holds finite numbers only")
        if name == "accuracy" and value is not None and not isinstance(value, Accuracy):
            raise TypeError("accuracy must be an Accuracy")
        setattr(self.report, name, value)
        self.report.provenance[name] = Provenance(method, detail)

    def warn(self, text: str) -> None:
        """Adds a warning (once)."""
        if text not in self.report.warnings:
            self.report.warnings.append(text)

    def extra(self, key: str, value: Any) -> None:
        """Adds a JSON-ready extra figure (the cost summary, the cross-check …)."""
        self.report.extra[key] = value

    def finish(self) -> EmulationReport:
        """The report; raises ``ValueError`` if a number was set without provenance."""
        missing = missing_provenance(self.report)
        if missing:
            raise ValueError("emulation report numbers without provenance: " + ", ".join(missing))
        return self.report
