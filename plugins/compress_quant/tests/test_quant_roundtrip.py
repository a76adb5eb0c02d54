"""Property-based: whatever the weights, masks, bit widths and coders, the artifact is exact."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sigdl_core.artifact import artifact_bytes, decode_weights, parse_artifact
from sigdl_core.compression import build_artifact_layers
from sigdl_core.interfaces import CompressionResult
from sigdl_compress_quant.coding import encode_weights
from sigdl_compress_quant.linear import quantize_fp16, quantize_int8
from sigdl_compress_quant.weight_sharing import share_weights


@st.composite
def models(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_layers = draw(st.integers(1, 3))
    weights, kinds, masks = {}, {}, {}
    for i in range(n_layers):
        kind = draw(st.sampled_from(["fc", "conv"]))
        shape = (draw(st.integers(1, 20)), draw(st.integers(1, 40))) if kind == "fc" else \
            (draw(st.integers(1, 6)), draw(st.integers(1, 4)), 3, 3)
        scale = draw(st.sampled_from([1e-3, 0.1, 10.0]))
        w = (rng.standard_normal(shape) * scale).astype(np.float32)
        if draw(st.booleans()):  # a few exact duplicates and extreme values
            w.ravel()[:: max(1, w.size // 5)] = w.ravel()[0]
        name = f"l{i}.weight"
        weights[name], kinds[name] = w, kind
        weights[f"l{i}.bias"], kinds[f"l{i}.bias"] = rng.standard_normal(shape[0]).astype(np.float32), "bias"
        density = draw(st.sampled_from([None, 0.0, 0.02, 0.3, 0.9]))
        if density is not None:
            masks[name] = rng.random(shape) < density
            w[~masks[name]] = 0
    return weights, kinds, masks


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(models(), st.integers(1, 9), st.sampled_from(["quant", "int8", "fp16"]),
       st.sampled_from(["auto", "huffman", "rans", "fixed"]), st.sampled_from([1, 3, 5, 8, "auto"]),
       st.booleans())
def test_compressed_weights_survive_the_artifact_bit_exactly(model, bits, method, coder, gap_bits, symmetric):
    weights, kinds, masks = model
    previous = CompressionResult(weights=weights, state={"masks": masks}) if masks else None
    if method == "quant":
        result = share_weights(weights, kinds, {"bits": bits}, previous)
    elif method == "int8":
        result = quantize_int8(weights, kinds, {"symmetric": symmetric, "per_channel": bits % 2 == 0}, previous)
    else:
        result = quantize_fp16(weights, kinds, {}, previous)
    coded = encode_weights(result.weights, kinds, {"coder": coder, "index_bits": gap_bits}, result)
    layers = build_artifact_layers(coded, None, kinds)
    back = decode_weights(parse_artifact(artifact_bytes(layers, {"seed": 1}))[0])
    assert list(back) == list(weights)
    for name, array in result.weights.items():
        np.testing.assert_array_equal(back[name].view(np.uint32), array.view(np.uint32))
        if name in masks:
            assert not back[name][~masks[name]].any()
    if method == "quant":
        for name in result.state["codebooks"]:
            kept = back[name][result.state["masks"].get(name, np.ones(back[name].shape, bool))]
            assert len(np.unique(kept)) <= 2 ** bits
