"""The two compressors this plugin registers: ``prune`` and ``prune-structured``.

``prune`` (:class:`MagnitudePruner`) is unstructured magnitude pruning — Han et al.'s
quality × std threshold, an exact sparsity per layer, or one global sparsity — optionally
as a step of Zhu & Gupta's gradual (AGP) schedule, or the whole schedule with retraining
when the caller passes a ``retrain`` callback (see :mod:`.schedule`).

``prune-structured`` (:class:`ChannelPruner`) removes whole channels and returns smaller
dense arrays (see :mod:`.structured`); it needs the model's channel groups, which the
caller gets from ``Framework.channel_groups(model)`` and passes as
``params["channel_groups"]``.

Parameters are checked strictly: an unknown key, a value out of range, or a layer name or
pattern that selects nothing raises a :class:`~sigdl_core.errors.BadInputError` that says
what is wrong and how to mend it.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

from sigdl_core.errors import InvalidValueError, UnknownNameError
from sigdl_core.interfaces import CompressionResult, Compressor

from .layer_selection import check_fraction, check_kinds, check_nonnegative

PRUNE_PARAMS: dict[str, str] = {
    "quality": "Han et al.'s rule: remove |w| <= quality x std(w) per layer "
    "(a number, or layer name/glob -> number)",
    "sparsity": "fraction of each layer's weights to remove, met exactly "
    "(a fraction in [0, 1), or layer name/glob -> fraction)",
    "global_sparsity": "fraction of all chosen layers' weights to remove with one threshold",
    "layers": "layer names/globs to prune (default: every conv, depthwise and fc weight)",
    "kinds": "layer kinds that may be pruned (default: conv, depthwise, fc)",
    "agp_steps": "gradual pruning (Zhu & Gupta 2017): number of pruning steps n of the "
    "AGP schedule that ends at 'sparsity'/'global_sparsity'",
    "agp_step": "which AGP step k (0..n) to prune to now; without it and with 'retrain', "
    "the whole schedule runs",
    "initial_sparsity": "AGP initial sparsity s_i (default 0)",
    "retrain": "callable retrain(weights, projection) -> weights run after every AGP step "
    "(supplied by the loop, not a recipe)",
    "evaluate": "callable evaluate(weights) -> accuracy recorded at every AGP step (optional)",
}

STRUCTURED_PARAMS: dict[str, str] = {
    "channel_groups": "the model's channel groups: Framework.channel_groups(model), or their "
    "dict forms (required; supplied by the loop)",
    "ratio": "fraction of channels to remove in each group (a fraction, or layer name/glob "
    "-> fraction)",
    "global_ratio": "fraction of all prunable channels to remove, ranked across layers",
    "norm": "channel ranking: l1 (Li et al. 2017, default) or l2",
    "min_channels": "fewest channels a layer keeps (default 1)",
}


def _check_keys(params: Mapping[str, Any], known: Mapping[str, str], compressor: str) -> None:
    if not isinstance(params, Mapping):
        raise InvalidValueError(f"parameters of '{compressor}' are not a mapping",
                                "give name: value pairs")
    for key in params:
        if key not in known:
            raise UnknownNameError(f"'{compressor}' parameter", str(key), known)


def _check_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise InvalidValueError(f"parameter '{name}'={value!r} must be a whole number >= {low}",
                                f"give e.g. {max(low, 10) if name == 'agp_steps' else low}")
    return int(value)


class MagnitudePruner(Compressor):
    """Unstructured magnitude pruning; see the module docstring and :data:`PRUNE_PARAMS`."""

    name = "prune"

    def check_params(self, params: Mapping[str, Any]) -> None:
        """The checks of :meth:`compress` that need no weights (the loop runs them before any work)."""
        method, _, _, agp_keys = self._method(params)
        if agp_keys:
            self._schedule(params, method, agp_keys)

    def _method(self, params: Mapping[str, Any]) -> tuple[str, Any, Any, list[str]]:
        """The pruning rule, the allowed kinds, the layers and the AGP keys given, checked."""
        _check_keys(params, PRUNE_PARAMS, self.name)
        methods = [k for k in ("quality", "sparsity", "global_sparsity") if k in params]
        if len(methods) != 1:
            raise InvalidValueError(
                "'prune' needs exactly one of quality, sparsity, global_sparsity"
                + (f" (got {', '.join(methods)})" if methods else ""),
                "e.g. sparsity=0.9 (90 % of each layer), or quality=1.0 (Han et al.)",
            )
        method = methods[0]
        value = params[method]
        for key, v in (value.items() if isinstance(value, Mapping) else [(None, value)]):
            name = method if key is None else f"{method}[{key}]"
            (check_nonnegative if method == "quality" else check_fraction)(v, name)
        allowed = check_kinds(params.get("kinds"))
        layers = params.get("layers")
        if layers is not None and not isinstance(layers, (str, list, tuple)):
            raise InvalidValueError(f"parameter 'layers'={layers!r} is not a list of names",
                                    "give layer names or globs, e.g. ['fc*', 'conv2.weight']")
        agp_keys = [k for k in ("agp_steps", "agp_step", "initial_sparsity", "retrain",
                                "evaluate") if k in params]
        return method, allowed, layers, agp_keys

    def _schedule(self, params: Mapping[str, Any], method: str, agp_keys: list[str]) -> tuple[int, float, Any]:
        """The AGP schedule's steps, initial and final sparsities, checked."""
        if method == "quality":
            raise InvalidValueError(
                f"gradual pruning ({', '.join(agp_keys)}) works on a target sparsity, not quality",
                "give sparsity or global_sparsity with agp_steps",
            )
        if "agp_steps" not in params:
            raise InvalidValueError(f"{', '.join(agp_keys)} need 'agp_steps'",
                                    "give agp_steps, the number of pruning steps, e.g. 10")
        steps = _check_int(params["agp_steps"], "agp_steps", 1)
        initial = check_fraction(params.get("initial_sparsity", 0.0), "initial_sparsity")
        final = params[method]
        if isinstance(final, Mapping):
            finals = {k: check_fraction(v, f"sparsity[{k}]") for k, v in final.items()}
        else:
            finals = check_fraction(final, method)
        low = min(finals.values()) if isinstance(finals, dict) else finals
        if initial > low:
            raise InvalidValueError(f"initial_sparsity {initial} is above the final sparsity {low}",
                                    "the schedule only raises sparsity")
        if "agp_step" in params:
            step = _check_int(params["agp_step"], "agp_step", 0)
            if step > steps:
                raise InvalidValueError(f"agp_step {step} is past the last step {steps}",
                                        f"give a step from 0 to {steps}")
        return steps, initial, finals

    def compress(self, weights, kinds, params, previous=None) -> CompressionResult:
        from .magnitude import prune_by_magnitude, prune_globally, prune_to_sparsity
        from .schedule import agp_schedule, agp_sparsity, prune_iteratively

        method, allowed, layers, agp_keys = self._method(params)
        if not agp_keys:
            if method == "quality":
                return prune_by_magnitude(weights, kinds, params["quality"], layers=layers,
                                          allowed_kinds=allowed, previous=previous)
            if method == "sparsity":
                return prune_to_sparsity(weights, kinds, params["sparsity"], layers=layers,
                                         allowed_kinds=allowed, previous=previous)
            return prune_globally(weights, kinds, params["global_sparsity"], layers=layers,
                                  allowed_kinds=allowed, previous=previous)

        steps, initial, finals = self._schedule(params, method, agp_keys)
        mode = "global" if method == "global_sparsity" else "layer"
        for key in ("retrain", "evaluate"):
            if key in params and not callable(params[key]):
                raise InvalidValueError(f"parameter '{key}' is not callable",
                                        "the loop supplies it; recipes cannot")
        if "agp_step" in params:
            step = int(params["agp_step"])
            if "retrain" in params or "evaluate" in params:
                raise InvalidValueError(
                    "give either agp_step (one step) or retrain/evaluate (the whole schedule)",
                    "the loop retrains and evaluates between single steps itself")
            if isinstance(finals, dict):
                target: Any = {k: agp_sparsity(step, v, initial_sparsity=min(initial, v),
                                               num_steps=steps) for k, v in finals.items()}
            else:
                target = agp_sparsity(step, finals, initial_sparsity=initial, num_steps=steps)
            if mode == "global":
                return prune_globally(weights, kinds, target, layers=layers,
                                      allowed_kinds=allowed, previous=previous)
            return prune_to_sparsity(weights, kinds, target, layers=layers,
                                     allowed_kinds=allowed, previous=previous)
        if "retrain" not in params:
            raise InvalidValueError(
                "agp_steps without agp_step needs a 'retrain' callback to run the schedule",
                "give agp_step to prune to one step's target, or let the loop pass retrain",
            )
        schedule = agp_schedule(finals, steps, initial_sparsity=initial)
        run = prune_iteratively(weights, kinds, schedule, params["retrain"], mode=mode,
                                layers=layers, allowed_kinds=allowed,
                                evaluate=params.get("evaluate"), previous=previous)
        run.result.state["agp"] = run.to_dict()
        return run.result


class ChannelPruner(Compressor):
    """Structured pruning with thinning; see :data:`STRUCTURED_PARAMS`."""

    name = "prune-structured"

    def check_params(self, params: Mapping[str, Any]) -> None:
        """The checks of :meth:`compress` that need no weights (the loop runs them before any work)."""
        self._settings(params)

    def _settings(self, params: Mapping[str, Any]) -> tuple[str, Any, str, int]:
        """``(mode, ratio, norm, min_channels)`` from ``params``, checked; ``channel_groups``
        is left to :meth:`compress` (the loop supplies it)."""
        _check_keys(params, STRUCTURED_PARAMS, self.name)
        given = [k for k in ("ratio", "global_ratio") if k in params]
        if len(given) != 1:
            raise InvalidValueError("'prune-structured' needs exactly one of ratio, global_ratio",
                                    "e.g. ratio=0.5 removes half the channels of each layer")
        mode = "global" if given[0] == "global_ratio" else "layer"
        ratio = params[given[0]]
        if mode == "global" and isinstance(ratio, Mapping):
            raise InvalidValueError("'global_ratio' takes one fraction",
                                    "use 'ratio' for per-layer fractions")
        for key, value in (ratio.items() if isinstance(ratio, Mapping) else [(None, ratio)]):
            check_fraction(value, given[0] if key is None else f"{given[0]}[{key}]")
        norm = params.get("norm", "l1")
        if norm not in ("l1", "l2"):
            raise UnknownNameError("norm", str(norm), ("l1", "l2"))
        min_channels = _check_int(params.get("min_channels", 1), "min_channels", 1)
        return mode, ratio, norm, min_channels

    def compress(self, weights, kinds, params, previous=None) -> CompressionResult:
        from .structured import channel_groups_from_data, prune_channels

        mode, ratio, norm, min_channels = self._settings(params)
        if "channel_groups" not in params:
            raise InvalidValueError(
                "'prune-structured' needs the model's channel groups",
                "the loop passes framework.channel_groups(model) as 'channel_groups'; "
                "a framework without them supports only unstructured 'prune'",
            )
        groups = channel_groups_from_data(params["channel_groups"])
        return prune_channels(weights, kinds, groups, ratio, mode=mode, norm=norm,
                              min_channels=min_channels, previous=previous)
