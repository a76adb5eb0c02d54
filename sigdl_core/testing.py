"""A pytest plugin for SigDL plugin authors (as ``tox.pytest`` is for tox's).

Installed with sigdl-core (entry point ``pytest11``), it gives every test suite:

``sigdl_plugin_manager``
    a ``pluggy.PluginManager`` holding SigDL's hook specs and no plugin.
``sigdl_plugins``
    a factory: ``sigdl_plugins(my_plugin_module, entry_points=False)`` registers the given
    plugin objects for one test, through the same checks as installed plugins, and returns
    :class:`~sigdl_core.plugins.LoadedPlugins` (its ``registry`` holds their specs).
``sigdl_cli``
    runs the ``sigdl`` command in-process: ``sigdl_cli(["targets", "--json"],
    plugins=[my_plugin_module])`` returns a result with ``exit_code``, ``stdout`` and
    ``stderr``. Without ``plugins`` it uses the installed ones; with them, only those, unless
    ``entry_points=True`` adds the installed ones too.

Example, in a target plugin's tests::

    from sigdl_example import plugin

    def test_registers_my_board(sigdl_plugins):
        assert "my-board" in sigdl_plugins(plugin).registry.names("target")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from .plugins import LoadedPlugins, load_plugins, new_plugin_manager


def _named(plugins: Sequence[object]) -> list[tuple[str, object]]:
    named = []
    for p in plugins:
        if isinstance(p, tuple):
            named.append(p)
        else:
            name = getattr(p, "__name__", type(p).__name__).rsplit(".", 1)[-1]
            if name == "plugin":  # sigdl_target_atom.plugin → target_atom
                name = getattr(p, "__name__", "plugin").rsplit(".", 2)[-2].removeprefix("sigdl_")
            named.append((name, p))
    return named


@pytest.fixture
def sigdl_plugin_manager() -> Any:
    """A plugin manager with SigDL's hook specs and no plugin registered."""
    return new_plugin_manager()


@pytest.fixture
def sigdl_plugins() -> Callable[..., LoadedPlugins]:
    """Registers plugin objects (modules, or ``(name, object)`` pairs) for one test."""

    def load(*plugins: object, entry_points: bool = False, tolerate_conflicts: bool = False) -> LoadedPlugins:
        return load_plugins(entry_points=entry_points, extra=_named(plugins),
                            disable=(), strict=False, tolerate_conflicts=tolerate_conflicts)

    return load


@pytest.fixture
def sigdl_cli() -> Callable[..., Any]:
    """Runs ``sigdl`` in-process with the given arguments (and plugins, if given)."""
    from typer.testing import CliRunner

    from .cli import app, use_plugins

    runner = CliRunner()

    def invoke(args: Sequence[str], plugins: Sequence[object] | None = None, entry_points: bool = False,
               **kwargs: Any) -> Any:
        if plugins is None:
            return runner.invoke(app, list(args), prog_name="sigdl", **kwargs)
        with use_plugins(_named(plugins), entry_points=entry_points):
            return runner.invoke(app, list(args), prog_name="sigdl", **kwargs)

    return invoke
