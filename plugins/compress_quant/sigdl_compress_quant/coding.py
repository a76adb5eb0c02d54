"""The coding stage of Deep Compression: sparse positions as gaps, entropy-coded streams.

Deep Compression (Han, Mao & Dally, ICLR 2016, section 4) stores the positions of a pruned
layer's kept weights as relative indices (gaps of 8 bits in conv layers and 5 bits in fully
connected ones, with a *filler* zero entry when a gap overflows) and Huffman-codes both the
gap stream and the stream of cluster indices, saving a further 20–30 % over fixed widths.

Two compressors do this here; neither changes a weight (so no retraining follows them):

* ``huffman`` — each stream coded with canonical Huffman, or at fixed width where that is
  smaller (a tiny stream whose table would cost more than it saves): the paper's "P+Q+H";
* ``encode`` — each stream coded with whichever of fixed width, Huffman and rANS is
  smallest *including its table*; rANS gets within a fraction of a percent of the entropy
  bound where Huffman loses up to a bit per symbol on skewed streams.

Both record their choices in ``state["encoding"]`` (read by
:func:`sigdl_core.compression.build_artifact_layers` when the artifact is written) and fill
each layer's :class:`~sigdl_core.interfaces.LayerEncoding` with the bits actually coded:
``weight_bits`` (value stream, codebook, scales), ``index_bits`` (gap stream), and in
``details`` the coders chosen, the Shannon bound of each stream and the bits per weight.
``state["encoded_layers"]`` keeps the :class:`~sigdl_core.artifact.ArtifactLayer` list built
for the weights the stage was given: a caller that retrains nothing afterwards may write it
as is instead of calling ``build_artifact_layers`` again. The coders themselves live in
:mod:`sigdl_core.entropy` (the core must decode artifacts without this plugin).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sigdl_core.compression import DEFAULT_GAP_BITS, FALLBACK_GAP_BITS, build_artifact_layers
from sigdl_core.errors import InvalidValueError
from sigdl_core.interfaces import CompressionResult, Compressor, LayerEncoding

from .parameters import ENCODE_PARAMS
from .layer_settings import check_bits, check_params, per_layer



def _gap_setting(value: Any, label: str) -> int | str:
    if value == "auto":
        return "auto"
    return check_bits(value, label)


def encoding_settings(
    weights: Mapping[str, np.ndarray], kinds: Mapping[str, str], params: Mapping[str, Any], default_coder: str
) -> dict[str, Any]:
    """Validated ``state["encoding"]`` for ``params``: coder, gap width per weight, others."""
    coder = params.get("coder", default_coder)
    choices = ("auto", "huffman", "rans", "fixed")
    if coder not in choices:
        raise InvalidValueError(f"parameter 'coder'={coder!r} is not a coder", f"use one of {', '.join(choices)}")
    others = params.get("others", "f32")
    if others not in ("f32", "f16"):
        raise InvalidValueError(f"parameter 'others'={others!r} must be f32 or f16")
    names = list(weights)
    every = params.get("index_bits")
    if every is not None:
        every = _gap_setting(every, "index_bits")
    conv = _gap_setting(params.get("index_bits_conv", DEFAULT_GAP_BITS["conv"]), "index_bits_conv")
    fc = _gap_setting(params.get("index_bits_fc", DEFAULT_GAP_BITS["fc"]), "index_bits_fc")
    overrides = per_layer(params.get("layers"), "layers", names, _gap_setting)
    gap_bits: dict[str, int | str] = {}
    for name in names:
        kind = kinds.get(name, "other")
        if name in overrides:
            gap_bits[name] = overrides[name]
        elif every is not None:
            gap_bits[name] = every
        elif kind == "fc":
            gap_bits[name] = fc
        elif kind in ("conv", "depthwise"):
            gap_bits[name] = conv
        else:
            gap_bits[name] = FALLBACK_GAP_BITS
    return {"coder": coder, "gap_bits": gap_bits, "others": others}


def encode_weights(
    weights: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    params: Mapping[str, Any],
    previous: CompressionResult | None = None,
    default_coder: str = "auto",
    compressor: str = "encode",
) -> CompressionResult:
    """Entropy-codes the weights as the artifact will store them; the weights pass unchanged."""
    check_params(params, ENCODE_PARAMS, compressor)
    settings = encoding_settings(weights, kinds, params, default_coder)
    state = dict(previous.state) if previous is not None else {}
    state["encoding"] = settings
    passthrough = dict(weights)
    probe = CompressionResult(weights=passthrough, state=state)
    coded = build_artifact_layers(probe, passthrough, kinds)
    layers = dict(previous.layers) if previous is not None else {}
    for art in coded:
        report = art.report()
        old = layers.get(art.name)
        details = dict(old.details) if old is not None else {}
        details.update({
            "values": art.values, "layout": art.layout, "value_coder": report["value_coder"],
            "gap_coder": report.get("gap_coder"), "gap_bits": report.get("gap_bits"),
            "entropy_bits": report["entropy_bits"], "coded_bits": report["coded_bits"],
            "bits_per_weight": report["bits_per_weight"],
        })
        layers[art.name] = LayerEncoding(name=art.name, shape=art.shape, kept=int(art.kept or 0),
                                         weight_bits=int(report["weight_bits"]),
                                         index_bits=int(report["index_bits"]), details=details)
    state["encoded_layers"] = coded
    projection = previous.projection if previous is not None else None
    return CompressionResult(weights=passthrough, projection=projection, layers=layers, state=state)


class EntropyCoder(Compressor):
    """The ``huffman`` and ``encode`` compressors (see the module docstring)."""

    def __init__(self, name: str, default_coder: str) -> None:
        self.name = name
        self.default_coder = default_coder

    def compress(self, weights, kinds, params, previous=None):  # type: ignore[override]
        return encode_weights(weights, kinds, params, previous, self.default_coder, self.name)
