"""The documentation site builds in strict mode, its reference pages written from the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_site_builds_strictly_with_generated_references(tmp_path) -> None:
    pytest.importorskip("mkdocstrings")
    site = tmp_path / "site"
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                         cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "WARNING" not in out.stderr, out.stderr[-3000:]
    cli = (site / "reference" / "cli" / "index.html").read_text()
    assert "sigdl new" in cli and "--update" in cli  # every command, from the typer app
    recipe = (site / "reference" / "recipe" / "index.html").read_text()
    assert "max_accuracy_drop" in recipe  # from the recipe's JSON Schema
    hooks = (site / "reference" / "hooks" / "index.html").read_text()
    assert "sigdl_targets" in hooks and "Register embedded targets" in hooks  # from hookspecs.py
    emulators = (site / "explanation" / "emulators" / "index.html").read_text()
    assert "movidius" in emulators  # one section per installed emulator
