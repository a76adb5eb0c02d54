"""SigDL hook implementations of the quantization and coding plugin.

Registers four compressors (parameters documented in each spec's ``params``):

* ``quant`` — k-means weight sharing per layer (Deep Compression, section 3): linear
  initialisation, 8 bits for conv and 5 for fc by default, pruned weights left out, and a
  projection that keeps shared weights tied while each centroid moves by its cluster's step;
* ``int8`` — linear int8 quantization, per tensor or per channel, symmetric or asymmetric,
  with ONNX's QuantizeLinear arithmetic; weights are handed back dequantized;
* ``fp16`` — weights rounded to IEEE half precision;
* ``huffman`` / ``encode`` — relative indexing of sparse positions plus canonical Huffman
  coding (the paper's section 4), or the smallest of fixed width, Huffman and rANS per
  stream.

Roles for the loop's search: ``quant`` is the ``quantize`` compressor (it takes ``layers``
as weight name → bits), ``huffman`` and ``encode`` are ``encode``; ``int8`` and ``fp16``
have no knob (``other``).

Nothing heavy is imported here (not even NumPy): each factory imports its module on first use.
"""

from __future__ import annotations

from sigdl_core import hookimpl
from sigdl_core.interfaces import Compressor, CompressorSpec

from .parameters import ENCODE_PARAMS, FP16_PARAMS, INT8_PARAMS, QUANT_PARAMS

def _quant() -> Compressor:
    from .weight_sharing import WeightSharingCompressor

    return WeightSharingCompressor()


def _int8() -> Compressor:
    from .linear import Int8Compressor

    return Int8Compressor()


def _fp16() -> Compressor:
    from .linear import Fp16Compressor

    return Fp16Compressor()


def _huffman() -> Compressor:
    from .coding import EntropyCoder

    return EntropyCoder("huffman", "huffman")


def _encode() -> Compressor:
    from .coding import EntropyCoder

    return EntropyCoder("encode", "auto")


@hookimpl
def sigdl_compressors() -> list[CompressorSpec]:
    """The ``quant``, ``int8``, ``fp16``, ``huffman`` and ``encode`` compressors."""
    return [
        CompressorSpec("quant", "k-means weight sharing per layer (Deep Compression): linear init, "
                       "8-bit conv / 5-bit fc, shared weights stay tied through retraining",
                       factory=_quant, params=dict(QUANT_PARAMS), role="quantize"),
        CompressorSpec("int8", "linear int8 quantization of weights (ONNX QuantizeLinear), per tensor "
                       "or per channel, symmetric or asymmetric", factory=_int8, params=dict(INT8_PARAMS)),
        CompressorSpec("fp16", "weights rounded to IEEE float16", factory=_fp16, params=dict(FP16_PARAMS)),
        CompressorSpec("huffman", "relative-index sparse positions and canonical Huffman coding of "
                       "weights and indices (Deep Compression's P+Q+H)", factory=_huffman,
                       params=dict(ENCODE_PARAMS), role="encode"),
        CompressorSpec("encode", "like huffman, but each stream takes the smallest of fixed width, "
                       "Huffman and rANS, tables included", factory=_encode, params=dict(ENCODE_PARAMS),
                       role="encode"),
    ]
