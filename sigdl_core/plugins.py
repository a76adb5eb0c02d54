"""Plugin discovery (stevedore), dispatch (pluggy) and the registries built from them.

:func:`load_plugins` is the one way in. It

1. lists the entry points of the group ``sigdl.plugins`` and picks those to load, honouring
   ``SIGDL_PLUGINS`` (an allow-list: the others are never imported) and
   ``SIGDL_DISABLE_PLUGINS``;
2. loads them with stevedore's ``NamedExtensionManager``; a plugin that fails to import is
   recorded with its error instead of taking the CLI down;
3. registers each module on one ``pluggy.PluginManager("sigdl")`` and checks it against the
   hook specs (``check_pending``): a plugin implementing an unknown hook, or a hook with
   the wrong arguments, is unregistered and recorded as failed;
4. calls every registration hook one plugin at a time, so that each spec is attributed to
   its plugin, and gathers the specs into a :class:`Registry`; a name claimed by two
   plugins is a :class:`~sigdl_core.errors.DuplicateNameError` naming both.

``SIGDL_STRICT_PLUGINS=1`` turns any recorded failure into an error.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .errors import BadInputError, DuplicateNameError, PluginError, UnknownNameError
from .interfaces import (
    SPEC_TYPES,
    ArrayDataset,
    Compressor,
    Emulator,
    Framework,
)

ENTRY_POINT_GROUP = "sigdl.plugins"
ENV_ALLOW = "SIGDL_PLUGINS"
ENV_DISABLE = "SIGDL_DISABLE_PLUGINS"
ENV_STRICT = "SIGDL_STRICT_PLUGINS"


@dataclass
class PluginRecord:
    """One plugin as ``sigdl plugins`` shows it."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    state: str = "ok"  # ok | failed
    error: str | None = None
    hooks: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _split_names(value: str | None) -> list[str]:
    return [n.strip() for n in (value or "").split(",") if n.strip()]


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _installed_entry_points() -> dict[str, tuple[str | None, str | None]]:
    """Entry-point name → (distribution, version), read from the installed metadata.

    (stevedore's cached entry points do not carry their distribution.)
    """
    found: dict[str, tuple[str | None, str | None]] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        found.setdefault(ep.name, (dist.metadata["Name"], dist.version) if dist else (None, None))
    return found


def _key(kind: str, spec: Any) -> str | tuple[str, str]:
    """A spec's key in its table: the name, or (name, framework) for a model, so that two
    frameworks may each register a zoo model of one name."""
    return (spec.name, spec.framework) if kind == "model" else spec.name


class Registry:
    """The specs every plugin registered, one mapping per kind, keyed and sorted by name.

    Models are keyed by name and framework (see :meth:`get`); every other kind by name.
    """

    def __init__(self) -> None:
        self._specs: dict[str, dict[Any, Any]] = {kind: {} for kind in SPEC_TYPES}
        self._instances: dict[tuple[str, str], Any] = {}
        self.conflicts: list[DuplicateNameError] = []

    def add(self, kind: str, spec: Any) -> None:
        table = self._specs[kind]
        key = _key(kind, spec)
        if key in table:
            self.conflicts.append(
                DuplicateNameError(kind, spec.name, table[key].source, spec.source)
            )
            return
        table[key] = spec

    def names(self, kind: str) -> list[str]:
        return sorted({spec.name for spec in self._specs[kind].values()})

    def specs(self, kind: str) -> list[Any]:
        table = self._specs[kind]
        return [table[k] for k in sorted(table)]

    def get(self, kind: str, name: str, framework: str | None = None) -> Any:
        """The spec registered as ``name``.

        For a model, ``framework`` picks among the frameworks that register that name;
        without it, the one model of that name, else the one whose framework has the
        highest :attr:`~sigdl_core.interfaces.FrameworkSpec.preference`.
        """
        if kind != "model":
            try:
                return self._specs[kind][name]
            except KeyError:
                raise UnknownNameError(kind, name, self._specs[kind]) from None
        found = {fw: spec for (n, fw), spec in self._specs[kind].items() if n == name}
        if not found:
            raise UnknownNameError(kind, name, self.names(kind))
        if framework is not None:
            if framework not in found:
                raise BadInputError(
                    f"model '{name}' is not one of framework '{framework}'s models "
                    f"(it is registered by {', '.join(sorted(found))})",
                    f"set framework to {' or '.join(sorted(found))}, or pick a model of "
                    f"'{framework}' (sigdl models)",
                )
            return found[framework]
        if len(found) == 1:
            return next(iter(found.values()))
        frameworks = self._specs["framework"]
        rank = {fw: getattr(frameworks.get(fw), "preference", 0) for fw in found}
        best = max(rank.values())
        top = sorted(fw for fw, r in rank.items() if r == best)
        if len(top) > 1:
            raise BadInputError(
                f"model '{name}' is registered by frameworks {', '.join(top)}",
                f"say which with framework: {top[0]} (or --framework {top[0]})",
            )
        return found[top[0]]

    def _instance(self, kind: str, name: str) -> Any:
        key = (kind, name)
        if key not in self._instances:
            self._instances[key] = self.get(kind, name).factory()
        return self._instances[key]

    def framework(self, name: str) -> Framework:
        """The framework registered as ``name``, built on first use."""
        return self._instance("framework", name)

    def compressor(self, name: str) -> Compressor:
        """The compressor registered as ``name``, built on first use."""
        return self._instance("compressor", name)

    def emulator(self, name: str) -> Emulator:
        """The emulator registered as ``name``, built on first use."""
        return self._instance("emulator", name)

    def framework_for_file(self, path: os.PathLike[str] | str) -> str:
        """The name of the framework that reads files with ``path``'s ending."""
        suffix = os.fspath(path).lower()
        for spec in self.specs("framework"):
            if any(suffix.endswith(s) for s in spec.suffixes):
                return spec.name
        known = sorted({s for spec in self.specs("framework") for s in spec.suffixes})
        raise BadInputError(
            f"no installed framework reads '{os.fspath(path)}'",
            "model files must end in " + ", ".join(known) if known else
            "install a framework plugin (sigdl-framework-torch)",
        )

    def dataset_spec(self, text: str) -> tuple[Any, str | None]:
        """The spec and argument of ``name`` or ``name:argument``, both checked."""
        name, sep, argument = text.partition(":")
        spec = self.get("dataset", name)
        if spec.argument is None and sep:
            raise BadInputError(f"dataset '{name}' takes no argument", f"use --dataset {name}")
        if spec.argument is not None and not argument:
            raise BadInputError(
                f"dataset '{name}' needs {spec.argument}", f"use --dataset {name}:{spec.argument}"
            )
        return spec, (argument if sep else None)

    def load_dataset(self, text: str, seed: int = 0) -> ArrayDataset:
        """Loads ``name`` or ``name:argument`` (``mnist-idx:/data/mnist``)."""
        spec, argument = self.dataset_spec(text)
        return spec.loader(argument, seed)


class LoadedPlugins:
    """The plugin manager, what became of each plugin, and the registry they filled."""

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self.manager = manager
        self.records: list[PluginRecord] = []
        self.registry = Registry()

    @property
    def hook(self) -> Any:
        """Calls the lifecycle hooks: ``plugins.hook.sigdl_stage_started(...)``."""
        return self.manager.hook

    @property
    def failed(self) -> list[PluginRecord]:
        return [r for r in self.records if r.state != "ok"]

    def record(self, name: str) -> PluginRecord:
        for r in self.records:
            if r.name == name:
                return r
        raise UnknownNameError("plugin", name, [r.name for r in self.records])

    def _register(self, record: PluginRecord, plugin: object) -> None:
        """Registers one plugin object; records a failure instead of raising."""
        self.records.append(record)
        try:
            self.manager.register(plugin, name=record.name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            record.state, record.error = "failed", _describe(exc)
            return
        try:
            self.manager.check_pending()
        except pluggy.PluginValidationError as exc:
            self.manager.unregister(plugin)
            record.state, record.error = "failed", _describe(exc)
            return
        record.hooks = sorted(c.name for c in self.manager.get_hookcallers(plugin) or [])

    def _gather(self) -> None:
        """Calls each registration hook plugin by plugin and fills the registry."""
        ok = [r for r in self.records if r.state == "ok"]
        plugins = {r.name: self.manager.get_plugin(r.name) for r in ok}
        for record in ok:
            others = [p for n, p in plugins.items() if n != record.name]
            gathered: list[tuple[str, Any]] = []
            try:
                for kind, hook_name in hookspecs.REGISTRATION_HOOKS.items():
                    if hook_name not in record.hooks:
                        continue
                    caller = self.manager.subset_hook_caller(hook_name, remove_plugins=others)
                    for result in caller():
                        gathered.extend((kind, s) for s in _checked(hook_name, kind, result))
            except Exception as exc:  # a plugin's bug must not take the CLI down
                record.state, record.error = "failed", _describe(exc)
                self.manager.unregister(name=record.name)
                continue
            for kind, spec in gathered:
                self.registry.add(kind, dataclasses.replace(spec, source=record.name))


def _checked(hook_name: str, kind: str, result: Any) -> list[Any]:
    spec_type = SPEC_TYPES[kind]
    if not isinstance(result, (list, tuple)) or not all(isinstance(s, spec_type) for s in result):
        raise PluginError(
            f"{hook_name} returned {type(result).__name__}, expected a list of {spec_type.__name__}"
        )
    for spec in result:
        if not isinstance(spec.name, str) or not spec.name or ":" in spec.name:
            raise PluginError(f"{hook_name} returned a {spec_type.__name__} with a bad name {spec.name!r}")
    return list(result)


def new_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager holding SigDL's hook specs and nothing else."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    return manager


def installed_plugin_names() -> list[str]:
    """The names of every ``sigdl.plugins`` entry point installed, without importing any."""
    return sorted(_installed_entry_points())


def load_plugins(
    *,
    entry_points: bool = True,
    extra: Sequence[tuple[str, object]] = (),
    allow: Iterable[str] | None = None,
    disable: Iterable[str] | None = None,
    strict: bool | None = None,
    tolerate_conflicts: bool = False,
) -> LoadedPlugins:
    """Finds, loads, checks and registers plugins; see the module docstring.

    :param entry_points: load installed ``sigdl.plugins`` entry points.
    :param extra: ``(name, plugin)`` pairs to register as well (tests use this).
    :param allow: load only these entry points (default: ``SIGDL_PLUGINS``, else all).
    :param disable: never load these (default: ``SIGDL_DISABLE_PLUGINS``).
    :param strict: raise on any failed plugin (default: ``SIGDL_STRICT_PLUGINS=1``).
    :param tolerate_conflicts: keep going when two plugins claim one name (``sigdl
        plugins`` does, to show the conflict); otherwise raise the first conflict.
    """
    allow = list(allow) if allow is not None else _split_names(os.environ.get(ENV_ALLOW)) or None
    disabled = set(disable if disable is not None else _split_names(os.environ.get(ENV_DISABLE)))
    if strict is None:
        strict = os.environ.get(ENV_STRICT, "").strip().lower() in {"1", "true", "yes", "on"}

    loaded = LoadedPlugins(new_plugin_manager())
    if entry_points:
        _load_entry_points(loaded, allow, disabled)
    for name, plugin in extra:
        module = getattr(plugin, "__name__", type(plugin).__name__)
        loaded._register(PluginRecord(name=name, module=module), plugin)
    loaded._gather()

    if strict and loaded.failed:
        bad = loaded.failed[0]
        raise PluginError(
            f"plugin '{bad.name}' failed to load: {bad.error}",
            f"fix or uninstall it, or unset {ENV_STRICT}",
        )
    if loaded.registry.conflicts and not tolerate_conflicts:
        raise loaded.registry.conflicts[0]
    return loaded


def _load_entry_points(loaded: LoadedPlugins, allow: list[str] | None, disabled: set[str]) -> None:
    from stevedore import NamedExtensionManager  # imported here: only needed to load

    installed = _installed_entry_points()
    names = [n for n in (allow if allow is not None else sorted(installed)) if n not in disabled]
    failures: dict[str, PluginRecord] = {}

    def on_failure(_manager: Any, entry_point: Any, exc: BaseException) -> None:
        dist, version = installed.get(entry_point.name, (None, None))
        failures[entry_point.name] = PluginRecord(
            name=entry_point.name, module=entry_point.value, distribution=dist,
            version=version, state="failed", error=_describe(exc),
        )

    def on_missing(missing: Iterable[str]) -> None:
        # stevedore also calls this for the plugins that failed to load: keep their error
        for name in (n for n in missing if n not in failures):
            failures[name] = PluginRecord(
                name=name, module="?", state="failed",
                error=f"not installed (named in {ENV_ALLOW})",
            )

    manager = NamedExtensionManager(
        ENTRY_POINT_GROUP,
        names=names,
        name_order=True,
        on_load_failure_callback=on_failure,
        on_missing_entrypoints_callback=on_missing,
    )
    for ext in manager.extensions:
        dist, version = installed.get(ext.name, (None, None))
        record = PluginRecord(name=ext.name, module=ext.entry_point.value, distribution=dist, version=version)
        loaded._register(record, ext.plugin)
    loaded.records.extend(failures.values())
    loaded.records.sort(key=lambda r: r.name)
