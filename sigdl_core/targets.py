"""Which targets a run re-tests on, with which emulator options: parsed, validated, bound.

A user names a target in one of these forms; all of them become a :class:`TargetRef`:

* on the command line (``--target``), :meth:`TargetRef.parse`::

      jetson-tx2                              the target with its emulator's defaults
      jetson-tx2:precision=fp32,use_gpu=false emulator options, key=value separated by commas
      atom-x5-e3930:batch_sizes=[1,2,4]       a list value goes in brackets
      rpi4-a72@pi@192.168.1.7:2222:threads=2  a real board: NAME@USER@HOST[:PORT][:options]

* in a recipe (``targets:``), :meth:`TargetRef.from_recipe`: a plain name, the command-line
  form above, or a mapping ``{name: jetson-tx2, precision: fp32}``; a real board adds
  ``remote: {host, user, port, key_file, python, power_command}`` (:class:`RemoteBoard`).

A :class:`TargetRef` is syntax only: its ``options`` are what the user wrote (text from the
command line). :func:`resolve_targets` checks each against the plugins before any work
starts: the target exists, its emulator exists, and every option is one the emulator
declares (:class:`~sigdl_core.interfaces.EmulatorOption`) with an allowed value. It returns
:class:`BoundTarget` objects holding the target's spec and the validated options with every
default filled in; :func:`emulate_target` re-tests a model on one of them. Emulators call
:func:`validate_options` on entry too, so that a direct API call is checked the same way.

Values given as text (``precision=fp32`` on the command line) are converted to the option's
type: ``int``, ``float``, ``bool`` (``true``/``false``, ``yes``/``no``, ``on``/``off``,
``1``/``0``), ``str``, or a list of one of these (``[1,2,4]``); ``none`` or ``null`` leaves
an option whose default is None unset. The checks use pydantic (a model built from the
declarations); pydantic is imported only when options are validated.

This module imports nothing heavy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args, get_origin

from .errors import BadInputError, InvalidValueError

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from .interfaces import ArrayDataset, EmulationReport, EmulatorOption, EmulatorSpec, TargetSpec
    from .plugins import Registry

#: The keys of a recipe's target mapping that are not emulator options.
RESERVED_KEYS = ("name", "remote")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class RemoteBoard:
    """A real board reached over SSH (the ``@USER@HOST[:PORT]`` part, or recipe ``remote:``).

    ``user`` None means the local user name; ``key_file`` None means SSH's own key search;
    ``python`` is the board's Python interpreter; ``power_command`` a shell command on the
    board that prints its power draw in watts, if it has one.
    """

    host: str
    user: str | None = None
    port: int = 22
    key_file: str | None = None
    python: str = "python3"
    power_command: str | None = None

    def __post_init__(self) -> None:
        if not self.host or any(c in self.host for c in " @/:"):
            raise InvalidValueError(f"remote host '{self.host}' is not a host name or address",
                                    "write NAME@USER@HOST[:PORT], e.g. rpi4-a72@pi@192.168.1.7")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise InvalidValueError(f"remote port {self.port!r} is not a port number",
                                    "give a whole number from 1 to 65535 (SSH's is 22)")

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "user": self.user, "port": self.port, "key_file": self.key_file,
                "python": self.python, "power_command": self.power_command}


@dataclass(frozen=True)
class TargetRef:
    """A target as the user named it: ``name``, raw emulator ``options``, optional ``remote``.

    Syntax only; nothing here knows which targets or options exist (see
    :func:`resolve_targets`). ``str(ref)`` gives the command-line form back.
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    remote: RemoteBoard | None = None

    @classmethod
    def parse(cls, text: str) -> TargetRef:
        """Parses ``NAME[@USER@HOST[:PORT]][:key=value,key=value]`` (see the module docstring)."""
        text = text.strip()
        head, colon, rest = text.partition(":")
        remote = None
        name = head
        if "@" in head:
            name, _, address = head.partition("@")
            user, at, host = address.rpartition("@")
            port = 22
            first, sep, after = rest.partition(":")
            if colon and first.isdigit():
                port, rest, colon = int(first), after, sep
            remote = RemoteBoard(host=host, user=(user or None) if at else None, port=port)
        if not _NAME.fullmatch(name):
            raise InvalidValueError(f"target '{text}' does not start with a target name",
                                    "write NAME or NAME:key=value,... (sigdl targets lists the names)")
        options: dict[str, Any] = {}
        if colon:
            if not rest.strip():
                raise InvalidValueError(f"target '{text}' ends in ':' without options",
                                        "write NAME:key=value,key=value, e.g. jetson-tx2:precision=fp32")
            for item in _split_options(rest, text):
                key, eq, value = item.partition("=")
                key = key.strip()
                if not eq or not _KEY.fullmatch(key):
                    raise InvalidValueError(f"target option '{item}' in '{text}' is not key=value",
                                            "write NAME:key=value,key=value, e.g. jetson-tx2:precision=fp32")
                if key in options:
                    raise InvalidValueError(f"target option '{key}' is given twice in '{text}'")
                options[key] = value.strip()
        return cls(name=name, options=options, remote=remote)

    @classmethod
    def from_recipe(cls, item: Any, where: str = "targets") -> TargetRef:
        """A recipe's entry: a name, the command-line form, or ``{name, remote, **options}``."""
        if isinstance(item, TargetRef):
            return item
        if isinstance(item, str):
            return cls.parse(item)
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise InvalidValueError(f"recipe key '{where}' entry {item!r} is not a target",
                                    "give a name, or a mapping with a name: {name: jetson-tx2, precision: fp32}")
        options = {str(k): v for k, v in item.items() if k not in RESERVED_KEYS}
        remote = item.get("remote")
        if remote is not None and not isinstance(remote, RemoteBoard):
            if not isinstance(remote, Mapping):
                raise InvalidValueError(f"recipe key '{where}.remote' must be a mapping",
                                        "e.g. remote: {host: 192.168.1.7, user: pi}")
            unknown = set(remote) - set(RemoteBoard.__dataclass_fields__)
            if unknown:
                raise InvalidValueError(f"unknown recipe key '{where}.remote.{sorted(unknown)[0]}'",
                                        "allowed: " + ", ".join(RemoteBoard.__dataclass_fields__))
            remote = RemoteBoard(**remote)
        ref = cls.parse(item["name"])
        if ref.options or ref.remote:  # name: "jetson-tx2:precision=fp32" — merge, mapping wins
            options = {**ref.options, **options}
            remote = remote or ref.remote
        return cls(name=ref.name, options=options, remote=remote)

    def to_recipe(self) -> str | dict[str, Any]:
        """The recipe form: a plain name, or ``{name, **options, remote}``."""
        if not self.options and self.remote is None:
            return self.name
        out: dict[str, Any] = {"name": self.name, **self.options}
        if self.remote is not None:
            out["remote"] = self.remote.to_dict()
        return out

    def __str__(self) -> str:
        text = self.name
        if self.remote is not None:
            user = f"{self.remote.user}@" if self.remote.user else ""
            text += f"@{user}{self.remote.host}"
            if self.remote.port != 22:
                text += f":{self.remote.port}"
        if self.options:
            text += ":" + ",".join(f"{k}={_text(v)}" for k, v in self.options.items())
        return text


def _split_options(text: str, whole: str) -> list[str]:
    """Splits ``a=1,b=[1,2]`` at the commas outside brackets."""
    items, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
            if depth < 0:
                break
        elif c == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise InvalidValueError(f"target '{whole}' has unbalanced brackets", "write a list as key=[1,2,4]")
    items.append(text[start:])
    return [item for item in items if item.strip()]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return str(value)


# --------------------------------------------------------------------------- options


def type_name(option: EmulatorOption) -> str:
    """The option's type as text: ``int``, ``float``, ``bool``, ``str``, ``list[int]`` …"""
    if get_origin(option.type) is list:
        (item,) = get_args(option.type) or (str,)
        return f"list[{item.__name__}]"
    return option.type.__name__


def describe_option(option: EmulatorOption, target: TargetSpec | None = None) -> str:
    """What values the option allows, in words (for error messages and listings)."""
    if option.choices is not None:
        text = "one of " + ", ".join(_text(c) for c in option.choices)
    else:
        is_list = get_origin(option.type) is list
        item = (get_args(option.type) or (str,))[0] if is_list else option.type
        text = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}.get(item, item.__name__)
        bounds = []
        if option.minimum is not None:
            bounds.append(f">= {option.minimum:g}")
        if option.exclusive_minimum is not None:
            bounds.append(f"> {option.exclusive_minimum:g}")
        maximum = _maximum(option, target)
        if maximum is not None:
            bounds.append(f"<= {maximum:g}" if not isinstance(maximum, str) else f"<= the target's {maximum}")
        if bounds:
            text += " " + " and ".join(bounds)
        if is_list:
            text = "a list of " + text.replace("a whole number", "whole numbers").replace("a number", "numbers")
    if option.default is None:
        text += ", or null"
    return text


def _maximum(option: EmulatorOption, target: TargetSpec | None) -> float | str | None:
    """The option's upper bound; a text bound names a field of the target (``cores``)."""
    if isinstance(option.maximum, str):
        return getattr(target, option.maximum) if target is not None else option.maximum
    return option.maximum


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _from_text(value: str, kind: type) -> Any:
    """Converts one text value to ``kind``; returns it unchanged when it does not convert."""
    text = value.strip()
    if kind is bool:
        low = text.lower()
        return True if low in _TRUE else False if low in _FALSE else value
    if kind is int and re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    if kind is float:
        try:
            return float(text)
        except ValueError:
            return value
    return value


def _coerce(option: EmulatorOption, value: Any) -> Any:
    """A value given as text (the command line) converted to the option's type."""
    if isinstance(value, str) and option.default is None and value.strip().lower() in ("none", "null"):
        return None
    if get_origin(option.type) is list:
        item = (get_args(option.type) or (str,))[0]
        if isinstance(value, str):
            inner = value.strip()
            inner = inner[1:-1] if inner.startswith("[") and inner.endswith("]") else inner
            value = [v for v in re.split(r"[,\s]+", inner) if v]
        if isinstance(value, tuple):
            value = list(value)
        if isinstance(value, list) and item is not str:
            value = [_from_text(v, item) if isinstance(v, str) else v for v in value]
        return value
    if isinstance(value, str) and option.type is not str:
        return _from_text(value, option.type)
    return value


def _options_model(declared: Sequence[EmulatorOption], target: TargetSpec | None) -> Any:
    """A pydantic model (strict, no extra keys) of the declared options."""
    from typing import Annotated, Literal, Optional

    from pydantic import ConfigDict, Field, create_model

    fields: dict[str, Any] = {}
    for option in declared:
        is_list = get_origin(option.type) is list
        item = (get_args(option.type) or (str,))[0] if is_list else option.type
        maximum = _maximum(option, target)
        bounds = {"ge": option.minimum, "gt": option.exclusive_minimum,
                  "le": maximum if not isinstance(maximum, str) else None}
        bounds = {k: v for k, v in bounds.items() if v is not None}
        one: Any = Literal[tuple(option.choices)] if option.choices is not None else item
        if bounds:
            one = Annotated[one, Field(**bounds)]
        kind: Any = Annotated[list[one], Field(min_length=1)] if is_list else one
        if option.default is None:
            kind = Optional[kind]
        default = option.default
        spec = (Field(default_factory=lambda d=default: list(d), description=option.help) if is_list and default is not None
                else Field(default, description=option.help))
        fields[option.name] = (kind, spec)
    return create_model("EmulatorOptions", __config__=ConfigDict(extra="forbid", strict=True), **fields)


def validate_options(declared: Sequence[EmulatorOption], given: Mapping[str, Any] | None,
                     target: TargetSpec | None = None, owner: str = "") -> dict[str, Any]:
    """The options an emulator runs with: ``given`` checked against ``declared``, defaults filled.

    Text values are converted to each option's type (see the module docstring); lists come
    back as lists. An unknown option, or a value of the wrong type or outside the allowed
    ones, raises :class:`~sigdl_core.errors.InvalidValueError` with one line naming the
    allowed options or values. ``target`` resolves bounds that name one of its fields;
    ``owner`` says whose options these are in messages (``target 'jetson-tx2'``).
    """
    from pydantic import ValidationError

    by_name = {o.name: o for o in declared}
    owner = owner or (f"target '{target.name}'" if target is not None else "the emulator")
    values: dict[str, Any] = {}
    for key, value in (given or {}).items():
        if key not in by_name:
            import difflib

            close = difflib.get_close_matches(str(key), list(by_name), n=1)
            hint = (f"did you mean '{close[0]}'? " if close else "") + (
                "allowed: " + ", ".join(by_name) if by_name else "this emulator takes no options")
            raise InvalidValueError(f"unknown option '{key}' for {owner}", hint)
        values[key] = _coerce(by_name[key], value)
    try:
        checked = _options_model(declared, target)(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0])
        option = by_name[name]
        raise InvalidValueError(f"option {name}={_text(values.get(name))} for {owner} is not allowed",
                                f"{name} must be {describe_option(option, target)} ({option.help})") from None
    return checked.model_dump()


def option_dict(option: EmulatorOption) -> dict[str, Any]:
    """One option as plain data, for ``sigdl emulators --json``."""
    return {"name": option.name, "type": type_name(option),
            "default": list(option.default) if isinstance(option.default, tuple) else option.default,
            "choices": list(option.choices) if option.choices is not None else None,
            "minimum": option.minimum, "exclusive_minimum": option.exclusive_minimum,
            "maximum": option.maximum, "help": option.help}


# --------------------------------------------------------------------------- binding


@dataclass(frozen=True)
class BoundTarget:
    """A target ready to re-test on: its spec, its emulator's spec and validated options.

    ``ref`` is what the user wrote; ``options`` has every declared option, defaults filled.
    """

    ref: TargetRef
    spec: TargetSpec
    emulator: EmulatorSpec
    options: Mapping[str, Any]
    #: For a real board: the target's own emulator binding, whose model form (int8 QDQ …,
    #: :meth:`~sigdl_core.interfaces.Emulator.export_target_model`) the board runs.
    twin: BoundTarget | None = None

    @property
    def name(self) -> str:
        """The key of its report: the target's name, ``NAME@HOST`` for a real board."""
        return self.spec.name if self.ref.remote is None else f"{self.spec.name}@{self.ref.remote.host}"

    @property
    def remote(self) -> RemoteBoard | None:
        return self.ref.remote


#: The emulator a real board (``NAME@USER@HOST``) is bound to; a plugin registers it
#: (sigdl-target-remote does). Its options include the :class:`RemoteBoard` fields.
REMOTE_EMULATOR = "remote"


def _bind_board(registry: Registry, ref: TargetRef, spec: TargetSpec,
                emulator: EmulatorSpec) -> list[BoundTarget]:
    """A real board: the target's own emulator (its twin, for the side-by-side error) and
    the board itself through :data:`REMOTE_EMULATOR`. Each option goes to whichever of the
    two declares it (both, if both do); one neither declares is an error."""
    if REMOTE_EMULATOR not in registry.names("emulator"):
        raise BadInputError(f"target '{ref}' is a real board, and re-testing over SSH is not installed",
                            "pip install sigdl-target-remote, or drop the @USER@HOST part to use the emulator")
    board = registry.get("emulator", REMOTE_EMULATOR)
    own = {o.name for o in emulator.options}
    theirs = {o.name for o in board.options}
    for key in ref.options:
        if key not in own | theirs:
            validate_options(tuple(emulator.options) + tuple(o for o in board.options if o.name not in own),
                             {key: ref.options[key]}, spec, f"target '{ref.name}' on a real board")
    twin_ref = TargetRef(name=ref.name, options={k: v for k, v in ref.options.items() if k in own})
    twin = BoundTarget(ref=twin_ref, spec=spec, emulator=emulator,
                       options=validate_options(emulator.options, twin_ref.options, spec, f"target '{spec.name}'"))
    remote = ref.remote
    assert remote is not None
    given = {k: v for k, v in remote.to_dict().items() if v is not None and k in theirs}
    given.update({k: v for k, v in ref.options.items() if k in theirs})
    options = validate_options(board.options, given, spec, f"board '{ref}'")
    return [twin, BoundTarget(ref=ref, spec=spec, emulator=board, options=options, twin=twin)]


def resolve_targets(registry: Registry, refs: Sequence[TargetRef | str]) -> list[BoundTarget]:
    """Binds each reference to its registered target and emulator, validating its options.

    Raises :class:`~sigdl_core.errors.BadInputError` (one line) for an unknown target or
    emulator, a bad option, or one target named twice (reports are keyed by target name).
    """
    out: list[BoundTarget] = []
    seen: set[str] = set()
    twins: set[str] = set()  # emulated twins a real board added, which a plain entry may replace
    for ref in refs:
        if not isinstance(ref, TargetRef):
            ref = TargetRef.parse(ref)
        spec = registry.get("target", ref.name)
        emulator = registry.get("emulator", spec.emulator)
        key = spec.name if ref.remote is None else f"{spec.name}@{ref.remote.host}"
        if key in seen and key not in twins:
            raise BadInputError(f"target '{key}' is named twice",
                                "re-test on a target once per run; compare option settings with one 'sigdl test' per setting")
        if ref.remote is not None:
            twin, board = _bind_board(registry, ref, spec, emulator)
            seen.add(key)
            if spec.name not in seen:  # the emulator beside the board, unless named already
                seen.add(spec.name)
                twins.add(spec.name)
                out.append(twin)
            out.append(board)
            continue
        options = validate_options(emulator.options, ref.options, spec, f"target '{spec.name}'")
        bound = BoundTarget(ref=ref, spec=spec, emulator=emulator, options=options)
        if key in twins:  # the user's own entry (and options) for a board's emulated twin
            twins.discard(key)
            out = [bound if (t.name == key and t.remote is None) else t for t in out]
            continue
        seen.add(key)
        out.append(bound)
    return out


def export_target_model(registry: Registry, target: BoundTarget, onnx_path: Path,
                        data: ArrayDataset | None, folder: Path) -> Path | None:
    """The model in the form ``target`` runs, written into ``folder`` (or None: it runs the ONNX
    model as it is), with the target's options where the emulator's method takes them."""
    import inspect

    method = registry.emulator(target.emulator.name).export_target_model
    if "options" in inspect.signature(method).parameters:
        return method(onnx_path, target.spec, data, folder, options=dict(target.options))
    return method(onnx_path, target.spec, data, folder)


#: ONNX ``metadata_props`` key under which a derived model (the frequency form a compressor
#: writes beside ``model.onnx``) names its dense equivalent: a file name in the same folder.
DENSE_EQUIVALENT_KEY = "sigdl.dense_equivalent"


def dense_equivalent(onnx_path: Path) -> Path | None:
    """The dense model that the ONNX model at ``onnx_path`` names as its equivalent, or None.

    Only a plain file name beside ``onnx_path`` is followed (never a path elsewhere), and
    only when that file exists; an unreadable model names none.
    """
    import onnx

    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception:  # not ONNX: the emulator has already said so
        return None
    for prop in model.metadata_props:
        if prop.key != DENSE_EQUIVALENT_KEY:
            continue
        name = prop.value
        if not name or Path(name).name != name or name in (".", ".."):
            return None
        path = Path(onnx_path).parent / name
        if path.is_file() and path.resolve() != Path(onnx_path).resolve():
            return path
    return None


def emulate_target(registry: Registry, target: BoundTarget, onnx_path: Path,
                   data: ArrayDataset | None) -> EmulationReport:
    """Re-tests the ONNX model at ``onnx_path`` on one bound target, with its options.

    A real board runs the model in the form its target's own emulator would (the int8 QDQ
    model for ``precision=int8``), so that board and emulator are compared on one model.

    When the target refuses operators of the model (the emulator lists them in
    ``extra["unsupported"]``, e.g. ``DFT`` on the MA2450's NCSDK v1) and the model names a
    dense equivalent beside it (:data:`DENSE_EQUIVALENT_KEY`, written with the frequency
    form), the dense model is re-tested instead: the report is the dense model's, with a
    warning and ``extra["fallback"]`` saying that it fell back and why.
    """
    report = _emulate_once(registry, target, onnx_path, data)
    unsupported = report.extra.get("unsupported")
    if report.fits or not unsupported:
        return report
    dense = dense_equivalent(Path(onnx_path))
    if dense is None:
        return report
    ops = sorted({str(u.get("op_type")) for u in unsupported if isinstance(u, Mapping) and u.get("op_type")})
    fallback = _emulate_once(registry, target, dense, data)
    fallback.warnings.insert(0, f"fell back to the dense model {dense.name}: {target.name} does not run "
                                f"{Path(onnx_path).name} ({', '.join(ops) or 'unsupported operators'})")
    fallback.extra["fallback"] = {"requested": Path(onnx_path).name, "ran": dense.name, "operators": ops,
                                  "unsupported": list(unsupported)}
    from .interfaces import Method, Provenance

    fallback.provenance["model_run"] = Provenance(
        Method.ANALYTICAL, f"the dense equivalent {dense.name}: the target's operator check refused "
                           f"{', '.join(ops) or 'operators'} in {Path(onnx_path).name}")
    return fallback


def _emulate_once(registry: Registry, target: BoundTarget, onnx_path: Path,
                  data: ArrayDataset | None) -> EmulationReport:
    """One emulation of ``onnx_path`` on ``target`` (see :func:`emulate_target`)."""
    if target.twin is None:
        return registry.emulator(target.emulator.name).emulate(onnx_path, target.spec, data, dict(target.options))
    import inspect
    import tempfile

    own = registry.emulator(target.twin.emulator.name)
    with tempfile.TemporaryDirectory(prefix="sigdl-board-model-") as tmp:
        export = own.export_target_model
        if "options" in inspect.signature(export).parameters:
            exported = export(onnx_path, target.spec, data, Path(tmp), options=dict(target.twin.options))
        else:
            exported = export(onnx_path, target.spec, data, Path(tmp))
        report = registry.emulator(target.emulator.name).emulate(
            Path(exported or onnx_path), target.spec, data, dict(target.options))
    report.extra["model_run"] = "the target's own form, " + Path(exported).name if exported else "the model as given"
    return report
