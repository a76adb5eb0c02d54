"""Writing files so that a crash or a bad input never leaves a damaged one behind.

Everything SigDL writes goes to a temporary file in the destination's folder first, is
flushed to disk, and then replaces the destination in one ``os.replace``: a reader sees
the old file or the new one, never half of either.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: os.PathLike[str] | str) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; on success it replaces ``path`` atomically.

    If the body raises, the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; a written file honours the umask
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: os.PathLike[str] | str, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically and returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: os.PathLike[str] | str, text: str) -> Path:
    """Writes UTF-8 ``text`` to ``path`` atomically and returns the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: os.PathLike[str] | str, obj: Any) -> Path:
    """Writes ``obj`` as indented JSON (NaN and infinities refused) atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def to_json(obj: Any) -> str:
    """``obj`` as indented JSON text, with the same conversions as :func:`atomic_write_json`."""
    return json.dumps(obj, indent=2, allow_nan=False, default=_jsonable)


def read_regular_file(path: os.PathLike[str] | str, what: str = "file") -> Path:
    """Checks that ``path`` names a readable regular file and returns it as a Path.

    Raises :class:`~sigdl_core.errors.ModelFileError` naming the problem otherwise.
    """
    from .errors import ModelFileError

    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"{what} '{p}' does not exist", "check the path")
    if not p.is_file():
        raise ModelFileError(f"{what} '{p}' is not a file", "give the path of a file")
    if not os.access(p, os.R_OK):
        raise ModelFileError(f"{what} '{p}' is not readable", "check its permissions")
    return p
