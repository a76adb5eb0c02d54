"""The run folder as a checkpoint store, so that a killed run resumes without losing work.

Every finished piece of work is written atomically under the run folder as soon as it is
done: the resolved recipe (``recipe.json``), the baseline (``baseline.json`` and the
trained model), the sensitivity analysis (``sensitivity.json``) and each candidate
(``candidates/NNN.json`` and its ``candidates/NNN.sigdl``). A candidate is keyed by a hash
of its settings; the search is deterministic given the results it has seen, so on
``--resume`` it replays, finds each finished candidate by its key, and computes only what
is missing. A SIGKILL can lose at most the candidate in flight, never a finished one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .errors import BadInputError
from .files import atomic_write_json


def settings_key(settings: Any) -> str:
    """A short, stable hash of JSON-ready settings."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class RunStore:
    """Reads and writes the checkpoints of one run folder."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.candidates_dir = self.run_dir / "candidates"
        self._by_key: dict[str, dict[str, Any]] = {}
        if self.candidates_dir.is_dir():
            for path in sorted(self.candidates_dir.glob("*.json")):
                try:
                    record = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue  # a file from an older, killed writer; atomic writes make this rare
                if isinstance(record, dict) and "key" in record:
                    self._by_key[record["key"]] = record

    # ---------------------------------------------------------------- whole-run pieces

    def reset(self) -> None:
        """Forgets an earlier run's checkpoints in this folder, so that a fresh run into it
        neither reuses nor chooses among candidates it did not make."""
        import shutil

        shutil.rmtree(self.candidates_dir, ignore_errors=True)
        for name in ("baseline.json", "sensitivity.json", "recipe.json"):
            (self.run_dir / name).unlink(missing_ok=True)
        self._by_key.clear()

    def save(self, name: str, obj: Any) -> Path:
        return atomic_write_json(self.run_dir / name, obj)

    def load(self, name: str) -> Any | None:
        path = self.run_dir / name
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except ValueError:
            return None

    # ---------------------------------------------------------------- candidates

    def lookup(self, key: str) -> dict[str, Any] | None:
        return self._by_key.get(key)

    def next_index(self) -> int:
        return 1 + max((int(r["index"]) for r in self._by_key.values()), default=0)

    def artifact_path(self, index: int) -> Path:
        return self.candidates_dir / f"{index:03d}.sigdl"

    def add(self, record: dict[str, Any]) -> None:
        self.candidates_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.candidates_dir / f"{record['index']:03d}.json", record)
        self._by_key[record["key"]] = record

    def candidates(self) -> list[dict[str, Any]]:
        return sorted(self._by_key.values(), key=lambda r: r["index"])


def open_for_resume(run_dir: Path) -> tuple[RunStore, dict[str, Any]]:
    """The store of a run to resume and the recipe it was started with."""
    store = RunStore(run_dir)
    recipe = store.load("recipe.json")
    if recipe is None:
        raise BadInputError(f"'{run_dir}' holds no run to resume (no recipe.json)",
                            "give the folder of a run that 'sigdl run' started")
    return store, recipe
