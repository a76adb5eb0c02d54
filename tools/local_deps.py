"""Prints the in-tree plugins a plugin depends on, as pip arguments (``-e plugins/<name> …``).

``make isolation`` installs each plugin alone with only the core, but a plugin may depend on
another in-tree plugin (``sigdl-framework-caffe`` needs ``sigdl-framework-onnx``, which needs
``sigdl-datasets``), and those are not on PyPI. Dependencies are followed transitively;
extras are not.

    python tools/local_deps.py plugins/framework_caffe/pyproject.toml
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def local_dependencies(pyproject: Path) -> list[str]:
    """The in-tree plugin folders ``pyproject`` names in its dependencies (not sigdl-core)."""
    with pyproject.open("rb") as f:
        declared = tomllib.load(f)["project"].get("dependencies", [])
    names = [m.group(1).replace("-", "_") for m in (re.match(r"sigdl-([a-z0-9-]+)", d) for d in declared) if m]
    return [n for n in names if n != "core"]


def main(pyproject: str) -> None:
    todo, found = local_dependencies(Path(pyproject)), []
    while todo:
        name = todo.pop(0)
        if name not in found:
            found.append(name)
            todo.extend(local_dependencies(ROOT / "plugins" / name / "pyproject.toml"))
    print(" ".join(f"-e plugins/{name}" for name in found))


if __name__ == "__main__":
    main(sys.argv[1])
