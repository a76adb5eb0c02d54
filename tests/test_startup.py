"""Start-up stays light: listing plugins imports no torch, tensorflow or onnxruntime.

This runs with every installed plugin loaded, so it also checks that no plugin's hook
module imports a heavy library at module level.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "tensorflow", "onnxruntime")


@pytest.mark.parametrize("args", [["--help"], ["plugins"], ["targets"], ["models"], ["compressors"]])
def test_listing_imports_nothing_heavy(args) -> None:
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "sigdl_core.cli", *args],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}
    assert not imported & set(HEAVY), f"'sigdl {' '.join(args)}' imported {sorted(imported & set(HEAVY))}"


def test_help_does_not_import_pydantic() -> None:
    """pydantic is imported only where a recipe or emulator options are read."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "sigdl_core.cli", "--help"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}
    assert "pydantic" not in imported
