"""SigDL frequency-domain compression: block-circulant layers and DCT-domain pruning.

The compressors (``circulant``, ``freq-prune``) work on named NumPy weights, framework-neutral,
and chain with ``quant`` and ``encode``; the transforms they share with the core's ``.sigdl``
decoder are in :mod:`sigdl_core.structured_weights`.
"""
