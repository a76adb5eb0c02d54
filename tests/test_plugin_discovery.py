"""Plugin discovery through real installed entry points.

Tiny plugin distributions are written, installed with pip into a folder of their own, and
found by the ``sigdl`` command run as a subprocess with that folder on its path: the same
route a user's ``pip install sigdl-target-foo`` takes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PLUGINS = {
    # a good plugin: one target and its emulator
    "sigdl_tiny_board": '''
        from sigdl_core import hookimpl
        from sigdl_core.interfaces import TargetSpec
        import pathlib, os
        if os.environ.get("TINY_MARKER"):
            pathlib.Path(os.environ["TINY_MARKER"]).write_text("imported")

        @hookimpl
        def sigdl_targets():
            return [TargetSpec(name="tiny-board", title="Tiny board", emulator="none", cores=1,
                               clock_hz=1e8, memory_bytes=2**20, memory_bandwidth=1e8,
                               peak_ops={"fp32": 1e8}, tdp_w=0.1)]
    ''',
    # fails to import
    "sigdl_broken": '''
        raise ImportError("this plugin is broken on purpose")
    ''',
    # implements a hook that does not exist
    "sigdl_unknown_hook": '''
        from sigdl_core import hookimpl

        @hookimpl
        def sigdl_not_a_hook():
            return []
    ''',
    # claims the same target name as sigdl_tiny_board
    "sigdl_tiny_clash": '''
        from sigdl_core import hookimpl
        from sigdl_core.interfaces import TargetSpec

        @hookimpl
        def sigdl_targets():
            return [TargetSpec(name="tiny-board", title="Another tiny board", emulator="none",
                               cores=1, clock_hz=1e8, memory_bytes=2**20, memory_bandwidth=1e8,
                               peak_ops={"fp32": 1e8}, tdp_w=0.1)]
    ''',
}


def _write_distribution(root: Path, module: str) -> Path:
    project = root / module
    (project / module).mkdir(parents=True)
    (project / module / "__init__.py").write_text("")
    (project / module / "plugin.py").write_text(textwrap.dedent(PLUGINS[module]))
    entry = module.removeprefix("sigdl_")
    (project / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "{module.replace('_', '-')}"
        version = "1.2.3"
        [project.entry-points."sigdl.plugins"]
        {entry} = "{module}.plugin"
        [tool.setuptools]
        packages = ["{module}"]
    """))
    return project


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the four tiny plugin distributions installed into it by pip."""
    root = tmp_path_factory.mktemp("dists")
    target = tmp_path_factory.mktemp("site")
    projects = [str(_write_distribution(root, m)) for m in PLUGINS]
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), *projects],
        check=True, capture_output=True, text=True,
    )
    return target


def sigdl(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SIGDL_")}
    environ["PYTHONPATH"] = str(site)
    environ.update(env)
    return subprocess.run([sys.executable, "-m", "sigdl_core.cli", *args], capture_output=True,
                          text=True, env=environ, timeout=120)


def test_installed_plugin_is_found_with_its_distribution_and_hooks(site: Path) -> None:
    out = sigdl(site, "plugins", "--json", SIGDL_DISABLE_PLUGINS="tiny_clash")
    assert out.returncode == 0, out.stderr
    records = {p["name"]: p for p in json.loads(out.stdout)["plugins"]}
    tiny = records["tiny_board"]
    assert tiny["state"] == "ok"
    assert tiny["distribution"] == "sigdl-tiny-board"
    assert tiny["version"] == "1.2.3"
    assert tiny["hooks"] == ["sigdl_targets"]
    targets = sigdl(site, "targets", "--json", SIGDL_DISABLE_PLUGINS="tiny_clash")
    assert targets.returncode == 0, targets.stderr
    found = {t["name"]: t for t in json.loads(targets.stdout)}
    assert found["tiny-board"]["source"] == "tiny_board"


def test_broken_plugins_are_reported_and_do_not_take_the_cli_down(site: Path) -> None:
    out = sigdl(site, "plugins", "--json", SIGDL_DISABLE_PLUGINS="tiny_clash")
    records = {p["name"]: p for p in json.loads(out.stdout)["plugins"]}
    assert records["broken"]["state"] == "failed"
    assert "broken on purpose" in records["broken"]["error"]
    assert records["unknown_hook"]["state"] == "failed"
    assert "sigdl_not_a_hook" in records["unknown_hook"]["error"]
    # every other command keeps working
    listing = sigdl(site, "targets", SIGDL_DISABLE_PLUGINS="tiny_clash")
    assert listing.returncode == 0, listing.stderr
    assert "tiny-board" in listing.stdout


def test_strict_mode_makes_a_broken_plugin_fatal_with_one_line(site: Path) -> None:
    out = sigdl(site, "targets", SIGDL_DISABLE_PLUGINS="tiny_clash", SIGDL_STRICT_PLUGINS="1")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "broken" in lines[0] and "Traceback" not in out.stderr


def test_allow_list_loads_only_the_named_plugins(site: Path, tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    out = sigdl(site, "plugins", "--json", SIGDL_PLUGINS="broken", TINY_MARKER=str(marker))
    names = [p["name"] for p in json.loads(out.stdout)["plugins"]]
    assert names == ["broken"]
    assert not marker.exists(), "a plugin outside SIGDL_PLUGINS was imported"
    out = sigdl(site, "plugins", "--json", SIGDL_PLUGINS="tiny_board", TINY_MARKER=str(marker))
    assert marker.read_text() == "imported"
    assert [p["name"] for p in json.loads(out.stdout)["plugins"]] == ["tiny_board"]


def test_two_plugins_claiming_one_name_is_an_error_naming_both(site: Path) -> None:
    out = sigdl(site, "targets")
    assert out.returncode == 2
    line = out.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "tiny-board" in line and "tiny_board" in line and "tiny_clash" in line
    # `sigdl plugins` still answers, and shows the conflict
    listing = sigdl(site, "plugins", "--json")
    assert listing.returncode == 0
    assert any("tiny_clash" in c for c in json.loads(listing.stdout)["conflicts"])
