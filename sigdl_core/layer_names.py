"""Naming weights in a compressor's parameters: layer kinds, names, modules and globs.

Every compressor plugin takes the same forms (``layers: [fc1.weight, features.*]``,
``kinds: fc,conv``, ``skip: fc3``) and refuses a parameter it does not take the same way;
these helpers are that shared vocabulary, so that the plugins do not each keep a copy.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, get_args

from .errors import InvalidValueError, UnknownNameError
from .interfaces import LayerKind

#: Every :data:`~sigdl_core.interfaces.LayerKind`, in its declared order.
LAYER_KINDS: tuple[str, ...] = get_args(LayerKind)


def check_params(params: Mapping[str, Any], known: Iterable[str], compressor: str) -> None:
    """Raises :class:`UnknownNameError` for a parameter ``compressor`` does not take."""
    known = list(known)
    for key in params:
        if key not in known:
            raise UnknownNameError(f"parameter of compressor '{compressor}'", str(key), known)


def matches(pattern: str, name: str) -> bool:
    """Whether ``pattern`` (an exact name, its module's name, or a glob of either) selects
    weight ``name``: ``fc1.weight``, ``fc1`` and ``fc*`` all select ``fc1.weight``."""
    module = name.rsplit(".", 1)[0] if "." in name else None
    return any(p is not None and (pattern == p or fnmatch.fnmatchcase(p, pattern)) for p in (name, module))


def name_list(value: Any, param: str) -> list[str]:
    """``value`` as a list of names: None (none), a comma-separated string, or a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return list(value)
    raise InvalidValueError(f"parameter '{param}'={value!r} is not a list of names",
                            "give layer names or globs, e.g. ['fc3.weight', 'features.*']")
