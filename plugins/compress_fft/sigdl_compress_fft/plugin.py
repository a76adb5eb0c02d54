"""SigDL hook implementations of the frequency-domain compression plugin.

Registers two compressors:

* ``circulant`` — block-circulant FC and conv layers (Cheng et al., ICCV 2015; CirCNN, Ding
  et al., MICRO 2017): each ``b x b`` block is replaced by its nearest circulant matrix and
  stays circulant through retraining; the ``.sigdl`` file stores the defining vectors;
* ``freq-prune`` — frequency-domain pruning of ``k x k`` kernels (Liu et al., NeurIPS 2018):
  the smallest 2-D DCT coefficients are pruned and stay zero through retraining; the file
  stores the sparse coefficients.

Both have the search role ``structure``: their strength is the block size or kept fraction.
Nothing heavy is imported here (not even NumPy).
"""

from __future__ import annotations

from sigdl_core import hookimpl
from sigdl_core.interfaces import Compressor, CompressorSpec

from .parameters import CIRCULANT_PARAMS, FREQ_PRUNE_PARAMS


def _circulant() -> Compressor:
    from .circulant import CirculantCompressor

    return CirculantCompressor()


def _freq_prune() -> Compressor:
    from .frequency_pruning import FrequencyPruner

    return FrequencyPruner()


@hookimpl
def sigdl_compressors() -> list[CompressorSpec]:
    """The ``circulant`` and ``freq-prune`` compressors."""
    return [
        CompressorSpec("circulant", "block-circulant FC and conv layers (CirCNN): nearest circulant blocks, "
                       "kept through retraining; stores one b-vector per b x b block",
                       factory=_circulant, params=dict(CIRCULANT_PARAMS), role="structure"),
        CompressorSpec("freq-prune", "frequency-domain pruning of k x k kernels (Liu et al. 2018): smallest "
                       "2-D DCT coefficients removed and kept at zero; stores the sparse coefficients",
                       factory=_freq_prune, params=dict(FREQ_PRUNE_PARAMS), role="structure"),
    ]
