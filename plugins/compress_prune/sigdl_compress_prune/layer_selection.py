"""Which named weights a pruning step touches, and with what per-layer setting.

Pruning parameters may be one number for every layer or a mapping from layer names to
numbers. A key of such a mapping is an exact weight name (``fc1.weight``), a module name
(``fc1`` stands for every weight directly inside it) or a shell-style glob
(``features.*``, ``classifier.[14].weight``; see :mod:`fnmatch`). An exact name wins over a
pattern; among patterns the first one that matches (in the order given) wins. A key that
matches no layer is an error, never silently ignored: a typo in a recipe must not leave a
layer dense.

By default only the kinds in :data:`sigdl_core.interfaces.COMPRESSIBLE_KINDS` (conv,
depthwise and fully connected weights) are pruned; biases and batch-norm parameters hold a
negligible share of a model's weights and pruning them buys nothing.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sigdl_core.errors import InvalidValueError, UnknownNameError
from sigdl_core.interfaces import COMPRESSIBLE_KINDS
from sigdl_core.layer_names import LAYER_KINDS as _KNOWN_KINDS
from sigdl_core.layer_names import matches as name_matches


def check_kinds(value: Any, param: str = "kinds") -> frozenset[str]:
    """The set of layer kinds named by ``value`` (a list or a comma-separated string)."""
    if value is None:
        return frozenset(COMPRESSIBLE_KINDS)
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, Iterable) or isinstance(items, Mapping):
        raise InvalidValueError(
            f"parameter '{param}'={value!r} is not a list of layer kinds",
            f"give some of: {', '.join(_KNOWN_KINDS)}",
        )
    kinds = []
    for item in items:
        item = str(item).strip()
        if item not in _KNOWN_KINDS:
            raise UnknownNameError("layer kind", item, _KNOWN_KINDS)
        kinds.append(item)
    if not kinds:
        raise InvalidValueError(f"parameter '{param}' names no layer kind",
                                f"give some of: {', '.join(_KNOWN_KINDS)}")
    return frozenset(kinds)


def candidate_layers(
    weights: Mapping[str, Any],
    kinds: Mapping[str, str],
    allowed_kinds: Iterable[str] = COMPRESSIBLE_KINDS,
    layers: Sequence[str] | None = None,
) -> list[str]:
    """The weight names, in model order, whose kind is allowed and that ``layers`` selects.

    ``layers`` (patterns) restricts the choice further; each pattern must select at least
    one allowed layer.
    """
    allowed = frozenset(allowed_kinds)
    names = [n for n in weights if kinds.get(n, "other") in allowed]
    if layers is None:
        return names
    if isinstance(layers, str):
        layers = [p.strip() for p in layers.split(",") if p.strip()]
    chosen: set[str] = set()
    for pattern in layers:
        hits = [n for n in names if name_matches(str(pattern), n)]
        if not hits:
            raise _no_match(str(pattern), "layers", weights, kinds, names, allowed)
        chosen.update(hits)
    return [n for n in names if n in chosen]


def check_fraction(value: Any, param: str, *, upper_open: bool = True) -> float:
    """``value`` as a float in [0, 1) (or [0, 1] where ``upper_open`` is False)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidValueError(
            f"parameter '{param}'={value!r} is not a number",
            "give a fraction such as 0.8 (80 % of the weights removed)",
        )
    value = float(value)
    too_high = value >= 1.0 if upper_open else value > 1.0
    if not math.isfinite(value) or value < 0.0 or too_high:
        bound = "1 (exclusive)" if upper_open else "1"
        raise InvalidValueError(
            f"parameter '{param}'={value!r} is out of range",
            f"give a fraction from 0 to {bound}, e.g. 0.9 removes 90 %",
        )
    return value


def check_nonnegative(value: Any, param: str) -> float:
    """``value`` as a finite float >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidValueError(f"parameter '{param}'={value!r} is not a number",
                                "give a number >= 0")
    value = float(value)
    if not math.isfinite(value) or value < 0.0:
        raise InvalidValueError(f"parameter '{param}'={value!r} is out of range",
                                "give a finite number >= 0")
    return value


def resolve_per_layer(
    value: Any,
    param: str,
    names: Sequence[str],
    weights: Mapping[str, Any],
    kinds: Mapping[str, str],
    allowed_kinds: Iterable[str] = COMPRESSIBLE_KINDS,
    *,
    check=check_fraction,
) -> dict[str, float]:
    """Per-layer values for ``names`` from one number or a name/pattern → number mapping.

    A layer that no key selects is left out of the result (it is not pruned). Every key
    must select at least one of ``names``: otherwise :class:`UnknownNameError` (or
    :class:`InvalidValueError` where the key names a weight of a kind not pruned).
    """
    if not isinstance(value, Mapping):
        number = check(value, param)
        return {n: number for n in names}
    table = {str(k): check(v, f"{param}[{k}]") for k, v in value.items()}
    for key in table:
        if not any(name_matches(key, n) for n in names):
            raise _no_match(key, param, weights, kinds, names, frozenset(allowed_kinds))
    result: dict[str, float] = {}
    for name in names:
        if name in table:
            result[name] = table[name]
            continue
        for key, number in table.items():
            if name_matches(key, name):
                result[name] = number
                break
    return result


def _no_match(
    pattern: str,
    param: str,
    weights: Mapping[str, Any],
    kinds: Mapping[str, str],
    names: Sequence[str],
    allowed: frozenset[str],
) -> Exception:
    other = [n for n in weights if name_matches(pattern, n)]
    if other:
        found = ", ".join(f"{n} ({kinds.get(n, 'other')})" for n in other[:4])
        return InvalidValueError(
            f"'{pattern}' in parameter '{param}' selects only weights of kinds not pruned: {found}",
            f"pruning touches the kinds {', '.join(sorted(allowed))}; "
            "add the kind with the 'kinds' parameter or drop the entry",
        )
    is_glob = any(ch in pattern for ch in "*?[")
    hint = None
    if is_glob or not names:
        shown = ", ".join(list(names)[:8]) + (" ..." if len(names) > 8 else "")
        hint = f"the pattern matches none of the prunable layers: {shown or 'none'}"
    return UnknownNameError("layer", pattern, names, hint)
