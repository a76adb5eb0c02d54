"""Projections shared by the quantizers: keeping an earlier stage's pruned weights at zero.

A chain's retraining uses its last stage's projection (see :mod:`sigdl_core.compression`),
so every quantizer also re-applies the pruning masks it found in ``state["masks"]``, for the
layers it quantized and for those it left alone.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sigdl_core.errors import InvalidValueError


class MaskKeeper:
    """Sets ``weights[name][~mask] = 0`` in place for every mask it holds."""

    def __init__(self, masks: Mapping[str, np.ndarray]) -> None:
        self.pruned = {n: ~np.asarray(m, bool) for n, m in masks.items()}

    def __call__(self, weights: Mapping[str, np.ndarray]) -> None:
        for name, pruned in self.pruned.items():
            array = weights.get(name)
            if array is None:
                continue
            if array.shape != pruned.shape:
                raise InvalidValueError(
                    f"weight '{name}' has shape {tuple(array.shape)} but its pruning mask "
                    f"{tuple(pruned.shape)}", "compress the model again after changing its layers")
            np.putmask(array, pruned, 0)
