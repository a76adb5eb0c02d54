"""Which weights a compressor of this plugin touches, and strict checks of its parameters.

A per-layer setting is keyed by a layer kind (``fc``, ``conv``), an exact weight name
(``fc1.weight``), a module name (``fc1``) or a shell-style glob (``features.*``); a name wins
over a kind. A key that selects no layer is an error, and so is an unknown parameter.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from sigdl_core.errors import InvalidValueError, UnknownNameError
from sigdl_core.layer_names import LAYER_KINDS as KNOWN_KINDS
from sigdl_core.layer_names import check_params  # noqa: F401 - part of this module's interface
from sigdl_core.layer_names import matches as selects
from sigdl_core.layer_names import name_list


def selected_layers(weights: Mapping[str, Any], kinds: Mapping[str, str], kinds_param: Any,
                    default_kinds: Sequence[str], skip: Any) -> list[str]:
    """Weight names of the allowed kinds, in model order, minus those ``skip`` selects."""
    allowed = name_list(kinds_param, "kinds") if kinds_param is not None else list(default_kinds)
    for kind in allowed:
        if kind not in KNOWN_KINDS:
            raise UnknownNameError("layer kind", kind, KNOWN_KINDS)
    names = [n for n in weights if kinds.get(n, "other") in allowed]
    for pattern in name_list(skip, "skip"):
        hits = [n for n in names if selects(pattern, n)]
        if not hits:
            raise UnknownNameError("layer (in 'skip')", pattern, names)
        names = [n for n in names if n not in hits]
    return names


def per_layer(value: Any, names: Sequence[str], kinds: Mapping[str, str], param: str,
              default: Mapping[str, Any]) -> dict[str, Any]:
    """Each of ``names`` → its setting from ``value`` (one setting, or kind/name → setting)."""
    if value is None:
        value = dict(default)
    if not isinstance(value, Mapping):
        return {n: value for n in names}
    out: dict[str, Any] = {}
    for key, setting in value.items():
        key = str(key)
        if key in KNOWN_KINDS:
            continue
        hits = [n for n in names if selects(key, n)]
        if not hits:
            raise UnknownNameError(f"layer (in '{param}')", key, list(names) + list(KNOWN_KINDS))
        for n in hits:
            out.setdefault(n, setting)
    for n in names:
        if n not in out and kinds.get(n) in value:
            out[n] = value[kinds[n]]
    return out


def whole_number(value: Any, param: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not lo <= int(value) <= hi:
        raise InvalidValueError(f"parameter '{param}'={value!r} must be a whole number in {lo}..{hi}")
    return int(value)


def check_setting(value: Any, param: str, check: Any) -> None:
    """Checks ``value`` — one setting, or a mapping of kind/name to settings — with ``check``
    (which raises naming ``param``), before any weight is looked at."""
    if isinstance(value, Mapping):
        for key, setting in value.items():
            if not isinstance(key, str):
                raise InvalidValueError(f"parameter '{param}' has a key {key!r} that is not a layer name or kind")
            check(setting, param)
    elif value is not None:
        check(value, param)


def check_names(value: Any, param: str) -> None:
    name_list(value, param)


def fraction(value: Any, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 < float(value) <= 1.0:
        raise InvalidValueError(f"parameter '{param}'={value!r} must be a fraction in (0, 1]",
                                "e.g. 0.3 keeps the largest 30 % of the coefficients")
    return float(value)
