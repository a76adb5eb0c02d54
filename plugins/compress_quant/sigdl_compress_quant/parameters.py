"""The parameters of each compressor of this plugin, name → one line of help.

Kept in a module of their own, free of NumPy, so that the hook module can register the
compressors' specs (``sigdl compressors`` lists these lines) without importing any of the
working code; the compressors check their parameters against the same dictionaries.
"""

from __future__ import annotations

QUANT_PARAMS: dict[str, str] = {
    "bits": "bits per weight for every selected layer (1..16); overrides bits_conv/bits_fc",
    "bits_conv": "bits per weight of conv and depthwise layers (default 8, as Deep Compression)",
    "bits_fc": "bits per weight of fully connected layers (default 5, as Deep Compression)",
    "layers": "per-layer bits: mapping of weight name, module name or glob to bits",
    "skip": "weight names or globs to leave unshared",
    "kinds": "layer kinds to share (default conv, depthwise, fc)",
    "iterations": "most k-means (Lloyd) iterations per layer (default 100)",
    "centroid_update": "fine-tuning: 'sum' moves a centroid by the sum of its weights' steps "
    "(the paper's gradient, default) or 'mean' by their average",
}
INT8_PARAMS: dict[str, str] = {
    "per_channel": "one scale per output channel (axis 0) instead of one per tensor (default true)",
    "symmetric": "int8 with zero point 0 (default true); false: uint8 with a zero point",
    "skip": "weight names or globs to leave in float32",
    "kinds": "layer kinds to quantize (default conv, depthwise, fc)",
}
FP16_PARAMS: dict[str, str] = {
    "skip": "weight names or globs to leave in float32",
    "kinds": "layer kinds to convert (default conv, depthwise, fc; add bias, norm for all)",
}
ENCODE_PARAMS: dict[str, str] = {
    "coder": "per-stream coder: auto (smallest of fixed/Huffman/rANS, default of 'encode'), "
    "huffman (default of 'huffman'), rans or fixed",
    "index_bits": "gap width of every sparse layer: 1..16, or 'auto' (the width with the "
    "fewest coded bits)",
    "index_bits_conv": "gap width of sparse conv/depthwise layers (default 8, as Deep Compression)",
    "index_bits_fc": "gap width of sparse fully connected layers (default 5, as Deep Compression)",
    "layers": "per-layer gap width: mapping of weight name, module name or glob to 1..16 or 'auto'",
    "others": "f32 (default) or f16: how weights no compressor touched (biases, batch norm) are stored",
}
