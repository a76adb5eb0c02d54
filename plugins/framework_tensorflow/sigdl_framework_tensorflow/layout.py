"""Keras weights as SigDL's named arrays, in the layout the compressors expect.

SigDL's compressors take each weight's output channels on axis 0 and its input channels on
axis 1 (a fully connected weight is out×in, a convolution out×in×kH×kW, a depthwise one
C×1×kH×kW, as torch stores them), and a batch norm's four vectors by torch's names. Keras
stores a Dense kernel in×out, a Conv2D kernel kH×kW×in×out and a DepthwiseConv2D kernel
kH×kW×C×multiplier. :func:`weight_entries` lists a Keras model's variables with the names,
kinds and conversions that make the two agree:

=====================  ==================  =========================================
Keras variable         SigDL name          array
=====================  ==================  =========================================
``Dense.kernel``       ``<layer>.weight``  ``kernel.T`` (out×in)
``Conv2D.kernel``      ``<layer>.weight``  ``kernel`` transposed to out×in×kH×kW
``DepthwiseConv2D``    ``<layer>.weight``  (C·multiplier)×1×kH×kW (channel c·m + j)
``*.bias``             ``<layer>.bias``    as it is
``BatchNormalization`` ``<layer>.weight``  gamma; ``.bias`` beta; ``.running_mean``
                                           moving_mean; ``.running_var`` moving_variance
anything else          ``<layer>.<name>``  as it is (kind ``other``)
=====================  ==================  =========================================

This module imports neither TensorFlow nor Keras: it reads layers by their class name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sigdl_core.interfaces import LayerKind

__all__ = ["WeightEntry", "weight_entries"]

_BN_NAMES = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}


@dataclass(frozen=True)
class WeightEntry:
    """One Keras variable as SigDL sees it."""

    name: str
    layer: Any
    variable: Any
    kind: LayerKind
    to_sigdl: Callable[[np.ndarray], np.ndarray]
    from_sigdl: Callable[[np.ndarray], np.ndarray]

    @property
    def attribute(self) -> str:
        return self.name.rpartition(".")[2]


def _same(a: np.ndarray) -> np.ndarray:
    return a


def _dense_to(a: np.ndarray) -> np.ndarray:
    return a.T


def _conv_to(a: np.ndarray) -> np.ndarray:
    return a.transpose(3, 2, 0, 1)


def _conv_from(a: np.ndarray) -> np.ndarray:
    return a.transpose(2, 3, 1, 0)


def _depthwise(multiplier: int) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    def to(a: np.ndarray) -> np.ndarray:
        kh, kw, c, m = a.shape
        return a.reshape(kh, kw, c * m).transpose(2, 0, 1)[:, None, :, :]

    def back(a: np.ndarray) -> np.ndarray:
        cm, _, kh, kw = a.shape
        return a[:, 0].transpose(1, 2, 0).reshape(kh, kw, cm // multiplier, multiplier)

    return to, back


def leaf_layers(keras_model: Any) -> list[Any]:
    """The model's layers that hold weights themselves, in model order (nested models opened)."""
    found = []
    for layer in keras_model._flatten_layers(include_self=False, recursive=True):
        if not list(layer._flatten_layers(include_self=False, recursive=False)):
            found.append(layer)
    return found


def _entry(layer: Any, variable: Any) -> WeightEntry:
    kind_name = type(layer).__name__
    short = variable.name.rpartition("/")[2]
    name = f"{layer.name}.{short}"
    if short == "bias" and kind_name in ("Dense", "Conv2D", "DepthwiseConv2D"):
        return WeightEntry(name, layer, variable, "bias", _same, _same)
    if kind_name == "Dense" and short == "kernel":
        return WeightEntry(f"{layer.name}.weight", layer, variable, "fc", _dense_to, _dense_to)
    if kind_name == "Conv2D" and short == "kernel":
        kind: LayerKind = "depthwise" if int(getattr(layer, "groups", 1)) > 1 else "conv"
        return WeightEntry(f"{layer.name}.weight", layer, variable, kind, _conv_to, _conv_from)
    if kind_name == "DepthwiseConv2D" and short == "kernel":
        to, back = _depthwise(int(layer.depth_multiplier))
        return WeightEntry(f"{layer.name}.weight", layer, variable, "depthwise", to, back)
    if kind_name == "BatchNormalization" and short in _BN_NAMES:
        return WeightEntry(f"{layer.name}.{_BN_NAMES[short]}", layer, variable, "norm", _same, _same)
    kind = "norm" if "Normalization" in kind_name else "other"
    return WeightEntry(name, layer, variable, kind, _same, _same)


def weight_entries(keras_model: Any) -> list[WeightEntry]:
    """Every float variable of ``keras_model`` (trainable and not) as a :class:`WeightEntry`.

    Names are unique: where two nested layers share a name, the variable's full path is used.
    """
    entries: list[WeightEntry] = []
    seen_vars: set[int] = set()
    names: set[str] = set()
    for layer in leaf_layers(keras_model):
        for variable in layer.weights:
            if id(variable) in seen_vars or not str(variable.dtype).startswith(("float", "bfloat")):
                continue
            seen_vars.add(id(variable))
            entry = _entry(layer, variable)
            if entry.name in names:
                entry = WeightEntry(variable.path.replace("/", "."), layer, variable, entry.kind,
                                    entry.to_sigdl, entry.from_sigdl)
            names.add(entry.name)
            entries.append(entry)
    return entries
