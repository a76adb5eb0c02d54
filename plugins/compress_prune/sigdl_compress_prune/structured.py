"""Structured pruning with physical removal ("thinning") of neurons, filters and channels.

Unstructured pruning leaves a model of the same shape full of zeros, which is no smaller
and no faster without sparse kernels. Removing whole output channels of a convolution (or
neurons of a fully connected layer) instead yields a smaller *dense* model: Li, Kadav,
Durdanovic, Samet & Graf, "Pruning Filters for Efficient ConvNets" (ICLR 2017) rank a
layer's filters by the L1 norm of their weights and drop the smallest; He, Zhang & Sun,
"Channel Pruning for Accelerating Very Deep Neural Networks" (ICCV 2017) and Distiller's
"thinning" remove the matching input channels of the layers downstream so that the model
stays consistent.

The framework describes which slices of which arrays belong to one channel as
:class:`~sigdl_core.interfaces.ChannelGroup` objects (``Framework.channel_groups``):
*producers* make the channels (a conv's weight and bias along axis 0), *followers* go with
them (batch-norm parameters and statistics, a depthwise conv's filters) and *consumers*
read them (the next layer's weight along its input axis, with ``span`` > 1 where a flatten
turned each channel into H×W features; a concatenation gives each input group its own
``offset``). This module, free of any deep-learning library:

1. scores every channel by the L1 or L2 norm of its producer weights (biases count only
   in a group with no weight of rank ≥ 2; groups tied by an addition sum their producers);
2. chooses the channels to keep — per group (``ratio`` of each group removed) or globally
   (one ranking of all groups' channels, each group's scores divided by its mean so that
   layers of different fan-in compare) — never fewer than one channel in a group, and all
   channels of a group marked ``prunable=False`` (the model's output);
3. computes every keep-index set first and then slices each array once, along each of its
   axes, using the groups' *original* offsets — so an array that several groups touch (a
   consumer after a concatenation) is cut consistently.

The result holds new, physically smaller arrays; ``Framework.set_weights`` accepts the
changed shapes. Masks of an earlier unstructured stage (``state["masks"]``) are cut the
same way and stay in force through the projection.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
from sigdl_core.errors import InvalidValueError, UnknownNameError
from sigdl_core.interfaces import (
    COMPRESSIBLE_KINDS,
    ChannelGroup,
    ChannelSlice,
    CompressionResult,
    LayerEncoding,
)

from .layer_selection import check_fraction, name_matches
from .magnitude import DENSE_VALUE_BITS, MaskProjection, previous_masks

NORMS = ("l1", "l2")


# --------------------------------------------------------------------------- groups as data


def channel_group_to_dict(group: ChannelGroup) -> dict[str, Any]:
    """A JSON-ready form of ``group`` (read back by :func:`channel_groups_from_data`)."""
    return asdict(group)


def channel_groups_from_data(value: Any) -> list[ChannelGroup]:
    """Channel groups from a list of :class:`ChannelGroup` or of their ``asdict`` forms."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidValueError(
            "'channel_groups' is not a list of channel groups",
            "pass framework.channel_groups(model) (or their dict forms)",
        )
    groups: list[ChannelGroup] = []
    for index, item in enumerate(value):
        if isinstance(item, ChannelGroup):
            groups.append(item)
            continue
        if not isinstance(item, Mapping):
            raise InvalidValueError(f"channel group #{index} is a {type(item).__name__}",
                                    "give ChannelGroup objects or their dict forms")
        try:
            def slices(key: str) -> tuple[ChannelSlice, ...]:
                return tuple(
                    s if isinstance(s, ChannelSlice) else ChannelSlice(
                        name=str(s["name"]), axis=int(s["axis"]),
                        offset=int(s.get("offset", 0)), span=int(s.get("span", 1)))
                    for s in item.get(key, ())
                )

            groups.append(ChannelGroup(
                size=int(item["size"]), producers=slices("producers"),
                followers=slices("followers"), consumers=slices("consumers"),
                prunable=bool(item.get("prunable", True)),
            ))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidValueError(f"channel group #{index} is malformed ({exc!r})",
                                    "each needs size, producers[name, axis, offset, span]") from None
    return groups


def group_label(group: ChannelGroup) -> str:
    """A readable name for ``group``: the module of its first producer (``features.0``)."""
    if not group.producers:
        return "?"
    name = group.producers[0].name
    return name.rsplit(".", 1)[0] if "." in name else name


def _all_slices(group: ChannelGroup) -> Iterable[ChannelSlice]:
    yield from group.producers
    yield from group.followers
    yield from group.consumers


def validate_channel_groups(weights: Mapping[str, np.ndarray], groups: Sequence[ChannelGroup]) -> None:
    """Checks that every slice names a weight, fits inside it, and that no two overlap."""
    regions: dict[tuple[str, int], list[tuple[int, int, int]]] = {}
    for index, group in enumerate(groups):
        label = f"channel group #{index} ({group_label(group)})"
        if not isinstance(group.size, int) or group.size < 1:
            raise InvalidValueError(f"{label} has size {group.size!r}", "a group holds >= 1 channel")
        if not group.producers:
            raise InvalidValueError(f"{label} has no producer", "every group needs the layer making it")
        for piece in _all_slices(group):
            if piece.name not in weights:
                raise UnknownNameError("weight", piece.name, weights,
                                       f"{label} names it; pass the groups of this very model")
            array = weights[piece.name]
            axis = piece.axis if piece.axis >= 0 else piece.axis + array.ndim
            if not 0 <= axis < array.ndim:
                raise InvalidValueError(f"{label}: weight '{piece.name}' has no axis {piece.axis}",
                                        "the groups do not match these weights")
            end = piece.offset + group.size * piece.span
            if piece.offset < 0 or piece.span < 1 or end > array.shape[axis]:
                raise InvalidValueError(
                    f"{label}: channels {piece.offset}..{end} (span {piece.span}) of "
                    f"'{piece.name}' axis {axis} lie outside its {array.shape[axis]} entries",
                    "the groups do not match these weights; list them again for this model",
                )
            for other_index, start, stop in regions.get((piece.name, axis), []):
                if start < end and piece.offset < stop:
                    raise InvalidValueError(
                        f"channel groups #{other_index} and #{index} both claim entries "
                        f"{max(start, piece.offset)}..{min(stop, end)} of '{piece.name}' axis {axis}",
                        "merge the groups (tied channels) or fix the framework's graph walk",
                    )
            regions.setdefault((piece.name, axis), []).append((index, piece.offset, end))


# --------------------------------------------------------------------------- ranking


def _channel_block(array: np.ndarray, piece: ChannelSlice, size: int) -> np.ndarray:
    """The entries of each channel of ``piece`` as rows of a ``size × m`` array."""
    moved = np.moveaxis(np.asarray(array), piece.axis, 0)
    region = moved[piece.offset:piece.offset + size * piece.span]
    return region.reshape(size, -1)


def channel_scores(
    weights: Mapping[str, np.ndarray], group: ChannelGroup, norm: str = "l1"
) -> np.ndarray:
    """Each channel's L1 or L2 norm over the group's producer weights (float64, ``size``)."""
    if norm not in NORMS:
        raise UnknownNameError("norm", str(norm), NORMS)
    ranked = [p for p in group.producers if np.asarray(weights[p.name]).ndim >= 2]
    ranked = ranked or list(group.producers)
    total = np.zeros(group.size, dtype=np.float64)
    for piece in ranked:
        block = _channel_block(weights[piece.name], piece, group.size).astype(np.float64)
        total += np.abs(block).sum(axis=1) if norm == "l1" else np.square(block).sum(axis=1)
    return total if norm == "l1" else np.sqrt(total)


def _group_ratios(
    groups: Sequence[ChannelGroup], ratio: float | Mapping[str, float]
) -> list[float]:
    prunable = [g for g in groups if g.prunable]
    if not isinstance(ratio, Mapping):
        value = check_fraction(ratio, "ratio")
        return [value if g.prunable else 0.0 for g in groups]
    table = {str(k): check_fraction(v, f"ratio[{k}]") for k, v in ratio.items()}

    def selects(key: str, group: ChannelGroup) -> bool:
        return any(name_matches(key, p.name) for p in group.producers)

    labels = [group_label(g) for g in prunable]
    for key in table:
        if not any(selects(key, g) for g in prunable):
            fixed = [group_label(g) for g in groups if not g.prunable and selects(key, g)]
            if fixed:
                raise InvalidValueError(
                    f"'{key}' in parameter 'ratio' selects only channels that cannot be "
                    f"pruned ({', '.join(fixed)}: the model's output)",
                    "drop the entry",
                )
            raise UnknownNameError("layer", key, labels,
                                   None if labels else "the model has no prunable channel group")
    result = []
    for group in groups:
        value = 0.0
        if group.prunable:
            exact = [k for k in table if any(k == p.name for p in group.producers)]
            keys = exact or [k for k in table if selects(k, group)]
            value = table[keys[0]] if keys else 0.0
        result.append(value)
    return result


def choose_channels(
    weights: Mapping[str, np.ndarray],
    groups: Sequence[ChannelGroup],
    ratio: float | Mapping[str, float],
    *,
    mode: str = "layer",
    norm: str = "l1",
    min_channels: int = 1,
) -> list[np.ndarray]:
    """The sorted indices of the channels to keep, one int64 array per group.

    :param ratio: the fraction of channels to remove — one for every group, or (``mode
        "layer"``) name/pattern → fraction, matched against the groups' producer weights
        (``features.0`` or ``features.0.weight``); groups no key selects are kept whole.
    :param mode: ``"layer"`` removes ``round(ratio × size)`` of each group's weakest channels;
        ``"global"`` removes ``round(ratio × channels)`` of all prunable groups' channels
        together, ranked by score divided by the group's mean score.
    :param min_channels: the fewest channels a group keeps (at least 1).
    """
    if mode not in ("layer", "global"):
        raise UnknownNameError("structured pruning mode", str(mode), ("layer", "global"))
    if isinstance(min_channels, bool) or not isinstance(min_channels, int) or min_channels < 1:
        raise InvalidValueError(f"'min_channels'={min_channels!r} must be a whole number >= 1",
                                "a layer cannot lose all its channels")
    validate_channel_groups(weights, groups)
    scores = [channel_scores(weights, g, norm) for g in groups]
    if mode == "layer":
        ratios = _group_ratios(groups, ratio)
        keep = []
        for group, score, r in zip(groups, scores, ratios):
            n_keep = group.size - int(round(r * group.size))
            n_keep = max(n_keep, min(min_channels, group.size))
            order = np.argsort(-score, kind="stable")
            keep.append(np.sort(order[:n_keep]).astype(np.int64))
        return keep
    if isinstance(ratio, Mapping):
        raise InvalidValueError("global structured pruning takes one ratio",
                                "give a single fraction, or use mode 'layer' for per-layer ratios")
    r = check_fraction(ratio, "global_ratio")
    candidates = []
    for gi, (group, score) in enumerate(zip(groups, scores)):
        if not group.prunable:
            continue
        mean = float(score.mean())
        normal = score / mean if mean > 0 else np.ones_like(score)
        candidates.extend((float(normal[c]), gi, c) for c in range(group.size))
    target = int(round(r * len(candidates)))
    remaining = [g.size for g in groups]
    removed: list[set[int]] = [set() for _ in groups]
    taken = 0
    for _, gi, c in sorted(candidates):
        if taken >= target:
            break
        if remaining[gi] <= min(min_channels, groups[gi].size):
            continue
        removed[gi].add(c)
        remaining[gi] -= 1
        taken += 1
    return [np.array([c for c in range(g.size) if c not in removed[gi]], dtype=np.int64)
            for gi, g in enumerate(groups)]


# --------------------------------------------------------------------------- thinning


def axis_keep_masks(
    shapes: Mapping[str, tuple[int, ...]],
    groups: Sequence[ChannelGroup],
    keep: Sequence[np.ndarray],
) -> dict[str, dict[int, np.ndarray]]:
    """For each array and axis that some group cuts, a boolean keep-mask over that axis,
    computed from the groups' original offsets (entries outside every group are kept)."""
    if len(keep) != len(groups):
        raise InvalidValueError(f"{len(keep)} keep-lists for {len(groups)} channel groups",
                                "give one list of kept channels per group")
    masks: dict[str, dict[int, np.ndarray]] = {}
    for group, kept in zip(groups, keep):
        kept = np.asarray(kept, dtype=np.int64)
        if kept.size == 0 or kept.min() < 0 or kept.max() >= group.size:
            raise InvalidValueError(
                f"channel group {group_label(group)} keeps channels {kept.tolist()[:8]} of "
                f"{group.size}", "keep at least one channel, each below the group's size")
        if not group.prunable and kept.size != group.size:
            raise InvalidValueError(f"channel group {group_label(group)} cannot be pruned",
                                    "keep all its channels")
        block = np.zeros(group.size, dtype=bool)
        block[kept] = True
        for piece in _all_slices(group):
            ndim = len(shapes[piece.name])
            axis = piece.axis if piece.axis >= 0 else piece.axis + ndim
            per_axis = masks.setdefault(piece.name, {})
            if axis not in per_axis:
                per_axis[axis] = np.ones(shapes[piece.name][axis], dtype=bool)
            stop = piece.offset + group.size * piece.span
            per_axis[axis][piece.offset:stop] = np.repeat(block, piece.span)
    return masks


def thin_arrays(
    arrays: Mapping[str, np.ndarray], axis_masks: Mapping[str, Mapping[int, np.ndarray]]
) -> dict[str, np.ndarray]:
    """New arrays with the masked-out entries removed along every cut axis."""
    out: dict[str, np.ndarray] = {}
    for name, array in arrays.items():
        cut = np.asarray(array)
        for axis, mask in sorted(axis_masks.get(name, {}).items()):
            cut = np.compress(mask, cut, axis=axis)
        out[name] = np.array(cut, copy=True)
    return out


def thin_weights(
    weights: Mapping[str, np.ndarray],
    groups: Sequence[ChannelGroup],
    keep: Sequence[np.ndarray],
) -> dict[str, np.ndarray]:
    """Every weight, with the channels not in ``keep`` physically removed (new arrays)."""
    validate_channel_groups(weights, groups)
    shapes = {name: tuple(np.shape(a)) for name, a in weights.items()}
    return thin_arrays(weights, axis_keep_masks(shapes, groups, keep))


def prune_channels(
    weights: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    groups: Sequence[ChannelGroup],
    ratio: float | Mapping[str, float],
    *,
    mode: str = "layer",
    norm: str = "l1",
    min_channels: int = 1,
    previous: CompressionResult | None = None,
) -> CompressionResult:
    """Ranks, chooses and removes channels; see the module docstring.

    The result's ``state["thinning"]`` records, per group, its label, original size and
    the channels kept, and the original shape of every array that was cut; masks of a
    ``previous`` unstructured stage are cut alike and kept in force by the projection.
    """
    groups = channel_groups_from_data(groups)
    keep = choose_channels(weights, groups, ratio, mode=mode, norm=norm,
                           min_channels=min_channels)
    shapes = {name: tuple(np.shape(a)) for name, a in weights.items()}
    axis_masks = axis_keep_masks(shapes, groups, keep)
    new = thin_arrays(weights, axis_masks)
    state = dict(previous.state) if previous is not None else {}
    masks = previous_masks(previous)
    projection = None
    if masks:
        for name, mask in masks.items():
            if name in shapes and mask.shape != shapes[name]:
                raise InvalidValueError(
                    f"the previous stage's mask of '{name}' has shape {mask.shape}, the weight "
                    f"{shapes[name]}", "chain structured pruning on that stage's weights")
        masks = thin_arrays({n: m for n, m in masks.items() if n in shapes}, axis_masks)
        state["masks"] = masks
        projection = MaskProjection(masks)
    layers: dict[str, LayerEncoding] = {}
    for name, array in new.items():
        if kinds.get(name, "other") not in COMPRESSIBLE_KINDS and name not in axis_masks:
            continue
        kept = int(np.count_nonzero(masks[name])) if name in masks else int(array.size)
        layers[name] = LayerEncoding(
            name=name, shape=tuple(int(d) for d in array.shape), kept=kept,
            weight_bits=kept * DENSE_VALUE_BITS, index_bits=0,
            details={"method": "thinning", "original_shape": list(shapes[name])},
        )
    state["thinning"] = {
        "groups": [
            {"label": group_label(g), "size": g.size, "kept": k.tolist(), "prunable": g.prunable}
            for g, k in zip(groups, keep)
        ],
        "original_shapes": {n: list(shapes[n]) for n in axis_masks},
        "norm": norm,
        "mode": mode,
    }
    return CompressionResult(weights=new, projection=projection, layers=layers, state=state)
