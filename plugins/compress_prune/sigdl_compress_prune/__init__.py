"""SigDL pruning: unstructured magnitude pruning, gradual schedules, sensitivity analysis,
and structured pruning with physical removal of channels ("thinning").

Framework-neutral: everything works on named NumPy weight arrays and the layer kinds of
:mod:`sigdl_core.interfaces`. The public functions load lazily, so that importing the
plugin's hook module stays cheap::

    from sigdl_compress_prune import prune_to_sparsity, agp_schedule, prune_iteratively
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "MaskProjection": "magnitude",
    "apply_masks": "magnitude",
    "prune_by_magnitude": "magnitude",
    "prune_globally": "magnitude",
    "prune_to_sparsity": "magnitude",
    "sparsity_of": "magnitude",
    "IterativePruningResult": "schedule",
    "PruningStep": "schedule",
    "agp_schedule": "schedule",
    "agp_sparsity": "schedule",
    "prune_iteratively": "schedule",
    "SensitivityAnalysis": "sensitivity_analysis",
    "SensitivityCurve": "sensitivity_analysis",
    "choose_sparsities": "sensitivity_analysis",
    "sensitivity": "sensitivity_analysis",
    "channel_group_to_dict": "structured",
    "channel_groups_from_data": "structured",
    "channel_scores": "structured",
    "choose_channels": "structured",
    "group_label": "structured",
    "prune_channels": "structured",
    "thin_weights": "structured",
    "validate_channel_groups": "structured",
    "ChannelPruner": "compressors",
    "MagnitudePruner": "compressors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sigdl_compress_prune' has no attribute '{name}'")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
