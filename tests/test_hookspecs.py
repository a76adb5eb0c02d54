"""Meta-tests of the contract: every hook is documented and exercised by a test."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from sigdl_core import hookspecs

HOOKS = [*hookspecs.REGISTRATION_HOOKS.values(), *hookspecs.LIFECYCLE_HOOKS]
REPO = Path(__file__).resolve().parents[1]


def test_every_function_in_hookspecs_is_a_listed_hook() -> None:
    specs = {n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("sigdl_")}
    assert specs == set(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_is_fully_documented_and_typed(name: str) -> None:
    func = getattr(hookspecs, name)
    doc = inspect.getdoc(func) or ""
    summary = doc.splitlines()[0] if doc else ""
    assert summary.endswith("."), f"{name}: one summary line ending in a full stop"
    assert "Example::" in doc and "@hookimpl" in doc, f"{name}: an example implementation"
    params = list(inspect.signature(func).parameters)
    for p in params:
        assert f":param {p}:" in doc, f"{name}: ':param {p}:' missing"
    if not params:
        assert ":return:" in doc, f"{name}: ':return:' missing"
    assert "The core" in doc, f"{name}: say what the core does with the result"
    assert "return" in inspect.signature(func).__str__() or func.__annotations__.get("return") is not None


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_is_exercised_by_a_test(name: str) -> None:
    test_files = [*REPO.glob("tests/**/*.py"), *REPO.glob("plugins/*/tests/**/*.py")]
    assert any(name in p.read_text(encoding="utf-8") for p in test_files if p.name != Path(__file__).name), \
        f"no test implements or calls {name}"
