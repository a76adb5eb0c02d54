"""The parameters of each compressor of this plugin, name → one line of help.

Free of NumPy, so that the hook module registers the specs without importing working code.
"""

from __future__ import annotations

CIRCULANT_PARAMS: dict[str, str] = {
    "block": "block size, a power of two: one for every layer, or a mapping of layer kind "
    "(fc, conv) or weight name/glob to a size (default {fc: 16, conv: 4}; 0 or 1 leaves a layer dense)",
    "kinds": "layer kinds to make block-circulant (default conv, fc)",
    "skip": "weight names or globs to leave dense",
    "min_blocks": "halve a layer's block until its smaller side holds min_blocks blocks; below 2 "
    "the layer stays dense (default 8: LeNet-300-100's fc2 gets 8, its 10-class output layer stays dense)",
    "retrain_epochs": "epochs of the retraining in circulant form right after this stage (default 16; "
    "0: the run's own retraining settings)",
    "retrain_lr": "initial learning rate of that retraining (default 0.05, annealed by a cosine schedule)",
    "strength": "the search's knob, in (0, 1]: each layer's block becomes 2**round(strength * log2(block)) "
    "(default 1: the block as given; 0.5 turns 16 into 4)",
}
FREQ_PRUNE_PARAMS: dict[str, str] = {
    "keep": "fraction of each kernel layer's 2-D DCT coefficients kept, by magnitude: one number "
    "or a mapping of weight name/glob to a fraction (default 0.3)",
    "global": "true: one magnitude threshold over all selected layers, keeping 'keep' of their "
    "coefficients in total (default false: per layer)",
    "kinds": "layer kinds to prune in the frequency domain (default conv; k x k kernels with k >= 2)",
    "skip": "weight names or globs to leave alone",
    "values": "how kept coefficients are stored: f16 (default; the projection keeps them on the "
    "float16 grid) or f32",
    "strength": "the search's knob, in (0, 1]: each layer keeps 1 - strength * (1 - keep) of its "
    "coefficients (default 1: keep as given)",
}
