"""SigDL hook implementations of the pruning plugin.

Registers two compressors (see :mod:`sigdl_compress_prune.compressors`):

* ``prune`` — unstructured magnitude pruning (Han et al. 2015; per-layer quality × std,
  exact per-layer or global sparsity, gradual AGP schedule of Zhu & Gupta 2017);
* ``prune-structured`` — removal of whole channels, filters and neurons by L1/L2 norm
  (Li et al. 2017), returning physically smaller arrays ("thinning").

Nothing heavy is imported here: NumPy and the pruning code load when a factory runs.
"""

from __future__ import annotations

from sigdl_core import hookimpl
from sigdl_core.interfaces import Compressor, CompressorSpec

from .compressors import PRUNE_PARAMS, STRUCTURED_PARAMS


def _magnitude_pruner() -> Compressor:
    from .compressors import MagnitudePruner

    return MagnitudePruner()


def _channel_pruner() -> Compressor:
    from .compressors import ChannelPruner

    return ChannelPruner()


@hookimpl
def sigdl_compressors() -> list[CompressorSpec]:
    """The ``prune`` and ``prune-structured`` compressors."""
    return [
        CompressorSpec(
            name="prune",
            description="magnitude pruning: quality x std threshold (Han et al. 2015), exact "
            "per-layer or global sparsity, gradual AGP schedule (Zhu & Gupta 2017); "
            "masks hold through retraining",
            factory=_magnitude_pruner,
            params=dict(PRUNE_PARAMS),
            role="prune",
            defaults={"sparsity": 0.9},  # 90 % of every conv/fc weight when no parameter is given
        ),
        CompressorSpec(
            name="prune-structured",
            description="structured pruning: removes whole channels/filters/neurons by L1 or "
            "L2 norm (Li et al. 2017) and returns a smaller dense model (thinning)",
            factory=_channel_pruner,
            params=dict(STRUCTURED_PARAMS),
            role="other",
        ),
    ]
