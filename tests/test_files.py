"""Atomic writes: a failed write never damages what was there."""

from __future__ import annotations

import pytest

from sigdl_core.files import atomic_path, atomic_write_json, atomic_write_text


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path) -> None:
    target = tmp_path / "report.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_json_refuses_nan_rather_than_writing_invalid_json(tmp_path) -> None:
    target = tmp_path / "r.json"
    atomic_write_json(target, {"ok": 1})
    with pytest.raises(ValueError):
        atomic_write_json(target, {"accuracy": float("nan")})
    assert target.read_text().strip() == '{\n  "ok": 1\n}'


def test_written_files_honour_the_umask(tmp_path) -> None:
    import os

    old = os.umask(0o022)
    try:
        target = atomic_write_text(tmp_path / "report.md", "x")
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o644
