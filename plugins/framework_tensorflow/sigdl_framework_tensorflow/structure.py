"""The channel groups of a Keras model whose layers form one chain (LeNets, AlexNet, VGG-16, MobileNet).

Structured pruning removes channels that a producing layer makes and every layer after it
reads (:class:`~sigdl_core.interfaces.ChannelGroup`). This follows a Keras model layer by
layer, each layer fed by the one before: a ``Dense`` or ``Conv2D`` (one group) produces
channels; ``BatchNormalization`` and a ``DepthwiseConv2D`` of multiplier 1 carry them on as
followers; the next ``Dense``/``Conv2D`` consumes them along its input axis (axis 1 in SigDL's
layout, :mod:`sigdl_framework_tensorflow.layout`). A ``Flatten`` turns each channel into
H×W features: after a ``Permute`` to channels-first (the zoo's LeNets and AlexNet) channel
``c`` is the ``H·W`` consecutive features from ``c·H·W``, as in torch; straight from N×H×W×C
(keras.applications' VGG-16) channel ``c`` is every ``C``-th feature, one consumer slice per
pixel. Activations, pooling, padding, dropout, global pooling and reshapes of 1×1 maps pass
channels through. The last producer makes the model's outputs and is not prunable.

A model with branches (SqueezeNet's Fire modules concatenate two convolutions, ResNets add)
raises :class:`~sigdl_core.errors.UnsupportedModelError`: this tracer does not follow a
concatenation's channel offsets. Unstructured pruning works on every model.
"""

from __future__ import annotations

import math
from typing import Any

from sigdl_core.errors import UnsupportedModelError
from sigdl_core.interfaces import ChannelGroup, ChannelSlice

__all__ = ["channel_groups"]

_PASS_THROUGH = {
    "InputLayer", "ReLU", "Activation", "LeakyReLU", "ELU", "Softmax", "MaxPooling2D", "AveragePooling2D",
    "ZeroPadding2D", "Dropout", "SpatialDropout2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
}


def _unsupported(architecture: str, why: str) -> UnsupportedModelError:
    return UnsupportedModelError(
        f"cannot list the channel groups of '{architecture}' in TensorFlow: {why}",
        "use unstructured (magnitude) pruning for this model",
    )


def _parents(layer: Any) -> list[Any]:
    nodes = getattr(layer, "_inbound_nodes", [])
    if len(nodes) != 1:
        return []
    return [n.operation for n in nodes[0].parent_nodes]


def channel_groups(keras_model: Any, architecture: str) -> list[ChannelGroup]:
    """The channel groups of a chain-shaped Keras model, in model order (see the module doc)."""
    chain = list(keras_model.layers)
    groups: list[ChannelGroup] = []
    producers: tuple[ChannelSlice, ...] = ()
    followers: list[ChannelSlice] = []
    size = 0
    channel_axis = -1  # where the channels are in the current tensor (N×H×W×C: last)
    consumer_slices: list[tuple[int, int]] | None = None  # (offset, span) per slice after a Flatten

    def close(consumers: tuple[ChannelSlice, ...], prunable: bool) -> None:
        if producers:
            groups.append(ChannelGroup(size=size, producers=producers, followers=tuple(followers),
                                       consumers=consumers, prunable=prunable))

    for index, layer in enumerate(chain):
        kind = type(layer).__name__
        if index and _parents(layer) != [chain[index - 1]]:
            raise _unsupported(architecture, f"layer '{layer.name}' ({kind}) is not fed by the layer before it")
        if kind == "InputLayer":
            continue
        has_bias = getattr(layer, "use_bias", False)
        if kind in ("Dense", "Conv2D") and int(getattr(layer, "groups", 1)) == 1:
            if kind == "Conv2D" and channel_axis != -1:
                raise _unsupported(architecture, f"'{layer.name}' convolves a channels-first map")
            slices = consumer_slices or [(0, 1)]
            close(tuple(ChannelSlice(f"{layer.name}.weight", 1, off, span) for off, span in slices), True)
            width = int(layer.units if kind == "Dense" else layer.filters)
            producers = (ChannelSlice(f"{layer.name}.weight", 0),)
            if has_bias:
                producers += (ChannelSlice(f"{layer.name}.bias", 0),)
            followers, size, consumer_slices, channel_axis = [], width, None, -1
        elif kind == "DepthwiseConv2D" and int(layer.depth_multiplier) == 1:
            followers.append(ChannelSlice(f"{layer.name}.weight", 0))
            if has_bias:
                followers.append(ChannelSlice(f"{layer.name}.bias", 0))
        elif kind == "BatchNormalization":
            followers.extend(ChannelSlice(f"{layer.name}.{a}", 0)
                             for a in ("weight", "bias", "running_mean", "running_var")
                             if (a != "weight" or layer.scale) and (a != "bias" or layer.center))
        elif kind == "Permute" and tuple(layer.dims) == (3, 1, 2) and channel_axis == -1:
            channel_axis = 1
        elif kind == "Flatten":
            shape = [int(d) for d in layer.input.shape[1:]]
            if len(shape) == 3:
                pixels = math.prod(shape) // size if size else 1
                if channel_axis == 1:
                    consumer_slices = [(0, pixels)]
                else:
                    consumer_slices = [(p * size, 1) for p in range(pixels)]
            channel_axis = -1
        elif kind == "Reshape" and math.prod(int(d) for d in layer.input.shape[1:]) == size:
            continue
        elif kind in _PASS_THROUGH:
            continue
        else:
            raise _unsupported(architecture, f"it does not follow channels through '{layer.name}' ({kind})")
    close((), False)
    if not groups:
        raise _unsupported(architecture, "it has no Dense or Conv2D layer")
    return groups
