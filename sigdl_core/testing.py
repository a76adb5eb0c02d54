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

The conformance suite (:mod:`sigdl_core.conformance`) is here too: subclass a contract
class, in one line, and pytest runs every contract of the kind on the plugins named::

    from sigdl_core.testing import TargetContract, CompressorContract, FrameworkContract

    class TestAcmeBoard(TargetContract): targets = ["acme-board"]

Leave the names out (``targets = None``) to test every installed plugin of the kind; set
``plugins = [module]`` to test plugin objects that are not installed. Each contract test is
parametrised by the name (``test_numbers_have_methods[acme-board]``) and shares one
registry per class, so a framework is imported once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from .conformance import CONTRACT_FIXTURES, CompressorContract, FrameworkContract, TargetContract
from .plugins import LoadedPlugins, load_plugins, new_plugin_manager

__all__ = ["CompressorContract", "FrameworkContract", "TargetContract", "sigdl_cli",
           "sigdl_conformance_registry", "sigdl_plugin_manager", "sigdl_plugins"]


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


# --------------------------------------------------------------------------- the conformance suite


def _conformance_plugins(cls: Any) -> LoadedPlugins:
    plugins = getattr(cls, "plugins", None)
    if plugins is None:
        return load_plugins()
    return load_plugins(entry_points=False, extra=_named(plugins), disable=(), strict=False)


_COLLECTED_NAMES: dict[tuple[Any, str], list[str]] = {}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrises the contract classes' tests over the plugin names they test."""
    for fixture, (kind, attribute) in CONTRACT_FIXTURES.items():
        if fixture not in metafunc.fixturenames:
            continue
        names = getattr(metafunc.cls, attribute, None)
        if names is None:  # every installed plugin of the kind, looked up once per class
            key = (metafunc.cls, kind)
            if key not in _COLLECTED_NAMES:
                _COLLECTED_NAMES[key] = _conformance_plugins(metafunc.cls).registry.names(kind)
            names = _COLLECTED_NAMES[key]
        if names:
            metafunc.parametrize(fixture, list(names))
        else:
            metafunc.parametrize(fixture, [pytest.param(None, marks=pytest.mark.skip(
                reason=f"no {kind} plugin is installed"))])


@pytest.fixture(scope="class")
def sigdl_conformance_registry(request: pytest.FixtureRequest) -> Any:
    """The registry a contract class tests: its ``plugins``, or the installed ones (one per class)."""
    loaded = _conformance_plugins(request.cls)
    for record in loaded.failed:  # its specs are missing; sigdl plugins shows the error
        import warnings

        warnings.warn(f"SigDL plugin '{record.name}' failed to load: {record.error}", stacklevel=1)
    return loaded.registry
