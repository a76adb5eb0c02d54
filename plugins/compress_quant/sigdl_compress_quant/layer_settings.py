"""Which weights a quantizer touches, with what bit width, and strict checks of parameters.

A per-layer setting is keyed by an exact weight name (``fc1.weight``), a module name (``fc1``
selects the weights directly inside it) or a shell-style glob (``features.*``). An exact name
wins over a pattern; among patterns the first that matches wins. A key that selects no layer
is an error (a typo in a recipe must never silently leave a layer alone), and so is an
unknown parameter name.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from sigdl_core.errors import InvalidValueError, UnknownNameError
from sigdl_core.interfaces import COMPRESSIBLE_KINDS
from sigdl_core.layer_names import LAYER_KINDS as KNOWN_KINDS
from sigdl_core.layer_names import check_params  # noqa: F401 - part of this module's interface
from sigdl_core.layer_names import matches as name_matches
from sigdl_core.layer_names import name_list as _as_list


def check_kinds(value: Any, param: str = "kinds") -> frozenset[str]:
    """The layer kinds named by ``value`` (default: conv, depthwise and fc)."""
    if value is None:
        return frozenset(COMPRESSIBLE_KINDS)
    kinds = _as_list(value, param)
    for kind in kinds:
        if kind not in KNOWN_KINDS:
            raise UnknownNameError("layer kind", kind, KNOWN_KINDS)
    if not kinds:
        raise InvalidValueError(f"parameter '{param}' names no layer kind", f"give some of: {', '.join(KNOWN_KINDS)}")
    return frozenset(kinds)


def _unknown_pattern(pattern: str, param: str, candidates: Sequence[str]) -> UnknownNameError:
    return UnknownNameError(f"layer (in '{param}')", pattern, candidates)


def select_layers(
    weights: Mapping[str, Any],
    kinds: Mapping[str, str],
    allowed: frozenset[str],
    skip: Any = None,
) -> list[str]:
    """Weight names of an allowed kind, in model order, minus those ``skip`` selects."""
    names = [n for n in weights if kinds.get(n, "other") in allowed]
    for pattern in _as_list(skip, "skip"):
        hits = [n for n in names if name_matches(pattern, n)]
        if not hits:
            raise _unknown_pattern(pattern, "skip", names)
        names = [n for n in names if n not in hits]
    return names


def check_bits(value: Any, param: str, low: int = 1, high: int = 16) -> int:
    """``value`` as a whole number of bits in ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidValueError(f"parameter '{param}'={value!r} is not a whole number of bits",
                                f"give {low}..{high}; Deep Compression uses 8 for conv and 5 for fc")
    if not low <= value <= high:
        raise InvalidValueError(f"parameter '{param}'={value} is out of range",
                                f"give {low}..{high} bits; Deep Compression uses 8 for conv and 5 for fc")
    return int(value)


def per_layer(
    value: Any,
    param: str,
    names: Sequence[str],
    check: Any,
) -> dict[str, Any]:
    """Resolves a mapping of name/module/glob → setting to one setting per selected name.

    Every key must select at least one of ``names``; ``check(v, label)`` validates values.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidValueError(f"parameter '{param}'={value!r} is not a mapping of layer → value",
                                f"e.g. {param}: {{fc1.weight: 4}}")
    checked: dict[str, Any] = {}
    for key, v in value.items():
        key = str(key)
        if not any(name_matches(key, n) for n in names):
            raise _unknown_pattern(key, param, names)
        checked[key] = check(v, f"{param}.{key}")
    out: dict[str, Any] = {}
    for n in names:
        if n in checked:
            out[n] = checked[n]
            continue
        for key, v in checked.items():
            if name_matches(key, n):
                out[n] = v
                break
    return out


def bits_per_layer(
    names: Sequence[str],
    kinds: Mapping[str, str],
    bits: Any,
    bits_conv: Any,
    bits_fc: Any,
    layers: Any,
) -> dict[str, int]:
    """The bit width of every selected layer: per-layer override, else ``bits``, else by kind."""
    if bits is not None:
        bits = check_bits(bits, "bits")
    bits_conv = check_bits(bits_conv, "bits_conv")
    bits_fc = check_bits(bits_fc, "bits_fc")
    overrides = per_layer(layers, "layers", names, check_bits)
    out = {}
    for name in names:
        if name in overrides:
            out[name] = overrides[name]
        elif bits is not None:
            out[name] = bits
        else:
            out[name] = bits_fc if kinds.get(name) == "fc" else bits_conv
    return out


def check_quantizable(name: str, w: Any, mask: Any) -> None:
    """A weight can be quantized: finite, and shaped like its pruning mask (if any)."""
    import numpy as np

    if w.size and not np.all(np.isfinite(w)):
        raise InvalidValueError(f"weight '{name}' holds NaN or infinite values",
                                "the model diverged; retrain it before quantizing")
    if mask is not None and np.shape(mask) != w.shape:
        raise InvalidValueError(f"weight '{name}' has shape {w.shape} but its mask {np.shape(mask)}",
                                "chain quantization on the weights the pruning stage returned")
