"""What the CLI shows a person: progress on standard error, result tables on standard output.

Machine-readable output (``--json``) never goes through here; quiet runs use
:class:`~sigdl_core.loop.SilentObserver` instead of :class:`ProgressObserver`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

# Piped into a CI log, rich would squeeze tables into 80 columns and fold every name.
_PIPED_WIDTH = None if sys.stdout.isatty() else 200
stdout = Console(highlight=False, soft_wrap=False, width=_PIPED_WIDTH)
stderr = Console(stderr=True, highlight=False)


class _LiveProgress(Progress):
    """Progress bars with the live table of candidates above them."""

    candidates: Table | None = None

    def get_renderables(self) -> Any:
        if self.candidates is not None:
            yield self.candidates
        yield self.make_tasks_table(self.tasks)


def candidates_table() -> Table:
    t = Table(title="Candidates", title_justify="left", header_style="bold")
    for h in ("#", "phase", "setting", "top-1 (validation)", "ratio", "size", "met", "missed"):
        t.add_column(h, overflow="fold")
    return t


def candidate_row(record: Mapping[str, Any], cached: bool) -> list[str]:
    acc = record.get("validation_accuracy")
    missed = "; ".join(s["limit"] + (f" ({s['target']})" if s.get("target") else "")
                       for s in record.get("shortfalls", []))
    return [str(record["index"]) + (" (resumed)" if cached else ""), str(record.get("phase", "")),
            str(record.get("note", "")), "—" if acc is None else f"{100 * acc:.2f} %",
            f"{record.get('ratio') or 0:.1f}×", f"{record.get('artifact_bytes', 0):,} B",
            "[green]yes[/]" if record.get("met") else "[red]no[/]", missed]


class ProgressObserver:
    """Shows each stage as it starts and ends, progress bars, and a live table of candidates."""

    def __init__(self, console: Console = stderr) -> None:
        self.console = console
        self.bar = _LiveProgress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console, transient=True,
        )
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> ProgressObserver:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()
        if self.bar.candidates is not None:
            self.console.print(self.bar.candidates)

    def candidate_finished(self, record: Mapping[str, Any], cached: bool) -> None:
        if self.bar.candidates is None:
            self.bar.candidates = candidates_table()
        self.bar.candidates.add_row(*candidate_row(record, cached))
        self.bar.refresh()

    def stage_started(self, stage: str, info: Mapping[str, Any]) -> None:
        if stage == "compress":  # one per candidate: the live table shows them
            return
        brief = ", ".join(f"{k}={v}" for k, v in info.items() if isinstance(v, (str, int, float)))
        self.console.print(f"[cyan]▶ {stage}[/]" + (f" [dim]{brief}[/]" if brief else ""))

    def stage_finished(self, stage: str, result: Mapping[str, Any]) -> None:
        for task in self._tasks.values():
            self.bar.remove_task(task)
        self._tasks.clear()
        if stage != "compress":
            self.console.print(f"[green]✓ {stage}[/] [dim]{result.get('seconds', 0):.1f} s[/]")

    def progress(self, description: str, completed: int, total: int) -> None:
        task = self._tasks.get(description)
        if task is None:
            task = self._tasks[description] = self.bar.add_task(description, total=total)
        self.bar.update(task, completed=completed, total=total)


def table(title: str | None, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    t = Table(title=title, title_justify="left", header_style="bold")
    for h in headers:
        t.add_column(h, overflow="fold")
    for row in rows:
        t.add_row(*("—" if v is None else str(v) for v in row))
    return t
