"""The ``.sigdl`` artifact: a compressed model's weights in one small, checked, versioned file.

A ``.sigdl`` file holds named weight arrays, each in the form its compressor left it (raw
float32, float16, int8 with scales and zero points, or a shared-weight codebook with
indices), dense or sparse (Deep Compression's relative indexing with filler entries), with
each integer stream coded by the coder that made it smallest (:mod:`sigdl_core.entropy`:
fixed width, canonical Huffman or rANS). :func:`write_artifact` writes one atomically and
returns its size on disk; :func:`read_artifact` parses and checks one; :func:`decode_weights`
turns its layers back into float32 arrays, bit-exactly equal to the compressed model's.

Byte layout, version 2 (all integers little-endian; ``varint`` is unsigned LEB128 of at most
9 bytes)::

    offset  size  field
    0       6     magic b"SIGDL\\x00"
    6       2     u16 format version (2; version 1 files, which have only layouts 0 and 1,
                  are read as well)
    8       4     u32 header length H
    12      H     header (below)
    12+H    P     payloads: every stream's bytes, in the order the header lists the streams
    12+H+P  4     u32 CRC-32 (zlib.crc32) of every byte before it

    header:
      varint  layer count
      varint  metadata length; that many bytes of UTF-8 JSON holding an object
      per layer, a record:
        varint  name length (1..1024); the name, UTF-8 (unique in the file)
        u8      kind: low nibble the values, high nibble the layout
                  values 1 float32 (its IEEE bits as a 32-bit symbol)
                         2 float16 (its IEEE bits as a 16-bit symbol)
                         3 int8 linear (symbol q - qmin)
                         4 shared-weight codebook (symbol: the cluster's index)
                  layout 0 dense: one value stream, one symbol per element (C order)
                         1 sparse: a value stream and a gap stream of one length (below)
                         2 circulant (version 2): one value stream holding the defining
                           vectors of the weight's b x b circulant blocks (below)
                         3 dct-sparse (version 2): a sparse layout (value and gap streams)
                           of the weight's 2-D DCT coefficients (below)
        u8      ndim (0..8); ndim x varint dims (each < 2**32)
        int8 only:
          u8      flags: bit 0 set = int8 (qmin -128, qmax 127), clear = uint8 (0, 255)
          u8      axis of the per-channel scales, 255 = per tensor
          varint  C (1 per tensor, else the axis' length)
          C x f32 scales (finite, > 0); C x u8 zero points as symbols (zero point - qmin)
        codebook only:
          varint  K (1..65536); K x f32 centroids (finite)
        sparse and dct-sparse only:
          u8      gap bits b (1..16)
        circulant only:
          varint  block size b (a power of two, 2..65536)
        then the layer's streams, the value stream first, then (sparse) the gap stream:
          u8      coder (0 fixed width, 1 Huffman, 2 rANS; formats in sigdl_core.entropy)
          varint  symbol count
          varint  payload length in bytes

Sparse layout (Deep Compression, section 4): entry ``i`` stores ``gap_i``, the number of
zero elements skipped since the previous entry (the first counts from element 0), and a
value. When more than ``2**b - 1`` zeros would be skipped, a *filler* entry is inserted, a
real entry of the value stream whose value is an exact zero: symbol 0 (+0.0) for float32 and
float16, the channel's zero point for int8, and the extra symbol ``K`` for a codebook (which
is why a sparse codebook's alphabet is ``K + 1``). Elements no entry names are zero.

Circulant layout (Cheng et al. 2015, CirCNN): a weight of shape ``(P, Q, *rest)`` (ndim >= 2)
is cut along its first two axes into ``b x b`` blocks after zero padding; the value stream
holds the defining vectors, of shape ``(ceil(P/b), ceil(Q/b), b, *rest)`` in C order, and
decodes to ``W[i*b + r, j*b + s, ...] = V[i, j, (r - s) mod b, ...]`` cropped to the shape
(:func:`sigdl_core.structured_weights.expand_circulant`). The padding's vector entries are
stored, so they count in the file's size. Int8 circulant values are per tensor (axis 255).

Dct-sparse layout (Liu et al. 2018, frequency-domain pruning): a weight whose last two dims
are equal (``k x k`` kernels) is stored as the sparse layout of its orthonormal 2-D DCT-II
coefficients (same shape); it decodes to those coefficients, then per kernel to
:func:`sigdl_core.structured_weights.idct2` of them (float64 in a fixed order, rounded to
float32: the same bits on every machine).

Whatever the stored form, a layer decodes to a float32 array of its shape (the "values"
nibble is the stored dtype). Value alphabets, checked on decoding: float32 ``2**32`` (fixed-width coding only), float16
``2**16``, int8 ``256``, codebook ``K`` (dense) or ``K + 1`` (sparse); gaps ``2**b``.
Decoding int8 follows ONNX ``DequantizeLinear``: ``(q - zero_point) * scale`` in float32.

The reader is strict and allocates nothing a file does not justify. In order it checks the
magic, the version and the CRC-32 (so damage anywhere is caught first); then parses the
header within its declared length; checks every name, kind, shape (at most
:data:`MAX_ELEMENTS_PER_LAYER` elements), count and coder; requires the streams' lengths to
add up to exactly the bytes between header and checksum; and refuses a file whose layers
and streams declare more than :data:`ELEMENTS_PER_FILE_BYTE` elements per byte of the file
(a layer claiming 10**12 weights in a kilobyte is rejected before anything is allocated;
real compressed models hold about 10 weights per byte). The writer applies the same rules,
so SigDL never writes a file it would refuse to read. Any failure raises
:class:`~sigdl_core.errors.ModelFileError` with what is wrong.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .entropy import (
    CODER_IDS,
    CODER_NAMES,
    EncodedStream,
    decode_stream,
    decode_varint,
    encode_stream,
    encode_varint,
    gaps_from_positions,
    positions_from_gaps,
)
from .errors import InvalidValueError, ModelFileError
from .files import atomic_write_bytes, read_regular_file
from .structured_weights import MAX_BLOCK, circulant_vector_shape, expand_circulant, idct2

MAGIC = b"SIGDL\x00"
FORMAT_VERSION = 2
#: Versions the reader accepts; version 1 lacks the circulant and dct-sparse layouts.
READABLE_VERSIONS = (1, 2)
PREAMBLE = struct.Struct("<6sHI")
CHECKSUM = struct.Struct("<I")
#: Limits the reader enforces (and the writer respects).
MAX_NAME_BYTES = 1024
MAX_NDIM = 8
MAX_DIM = (1 << 32) - 1
MAX_ELEMENTS_PER_LAYER = 1 << 36
MAX_CODEBOOK = 1 << 16
MAX_METADATA_BYTES = 1 << 24
#: A file may declare at most this many elements (layer elements plus stream symbols) per
#: byte of its size; about 400 times what Deep Compression reaches.
ELEMENTS_PER_FILE_BYTE = 4096

VALUE_KINDS: dict[str, int] = {"f32": 1, "f16": 2, "int8": 3, "codebook": 4}
LAYOUTS: dict[str, int] = {"dense": 0, "sparse": 1, "circulant": 2, "dct-sparse": 3}
#: Layouts whose streams are a sparse value stream plus a gap stream.
SPARSE_LAYOUTS = ("sparse", "dct-sparse")
_VALUE_NAMES = {v: k for k, v in VALUE_KINDS.items()}
_LAYOUT_NAMES = {v: k for k, v in LAYOUTS.items()}


def _bad(what: str, path: str | None = None) -> ModelFileError:
    where = f"artifact '{path}'" if path else "artifact"
    return ModelFileError(f"{where} is not a valid .sigdl file: {what}",
                          "the file is truncated, corrupt or hostile; write it again with sigdl compress")


@dataclass
class ArtifactLayer:
    """One named weight array as stored: its values' form, layout, parameters and streams.

    Build one with :func:`encode_float_layer`, :func:`encode_int8_layer` or
    :func:`encode_codebook_layer`; :meth:`decode` returns the float32 array.
    ``kept`` (the number of non-zero entries the encoder was given) is known only for
    layers built in this process; it is not stored.
    """

    name: str
    shape: tuple[int, ...]
    values: str
    layout: str
    value_stream: EncodedStream
    gap_stream: EncodedStream | None = None
    gap_bits: int = 0
    codebook: np.ndarray | None = None
    scale: np.ndarray | None = None
    zero_point: np.ndarray | None = None
    axis: int | None = None
    signed: bool = True
    kept: int | None = None
    block: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """The number of elements."""
        return math.prod(self.shape)

    @property
    def stored_shape(self) -> tuple[int, ...]:
        """The shape of what the streams hold: the defining vectors of a circulant layer,
        the DCT coefficients of a dct-sparse one (the layer's shape), else the weights."""
        if self.layout == "circulant":
            return circulant_vector_shape(self.shape, self.block)
        return self.shape

    @property
    def streams(self) -> list[EncodedStream]:
        return [self.value_stream] + ([self.gap_stream] if self.gap_stream is not None else [])

    @property
    def value_alphabet(self) -> int:
        if self.values == "f32":
            return 1 << 32
        if self.values == "f16":
            return 1 << 16
        if self.values == "int8":
            return 256
        assert self.codebook is not None
        return len(self.codebook) + (1 if self.layout in SPARSE_LAYOUTS else 0)

    def parameter_bytes(self) -> int:
        """Bytes of the record's parameters (codebook, scales and zero points)."""
        n = 0
        if self.codebook is not None:
            n += 4 * len(self.codebook)
        if self.scale is not None:
            n += 5 * len(self.scale)
        return n

    def decode(self) -> np.ndarray:
        """The layer's weights as a float32 array of :attr:`shape`, bit-exact."""
        return _decode_layer(self)

    def report(self) -> dict[str, Any]:
        """Per-layer figures: entries, bits per stream as coded, and their entropy bound."""
        v, g = self.value_stream, self.gap_stream
        out: dict[str, Any] = {
            "shape": list(self.shape),
            "total": self.size,
            "kept": self.kept,
            "values": self.values,
            "layout": self.layout,
            "entries": v.count,
            "value_coder": v.coder,
            "weight_bits": v.bits + 8 * self.parameter_bytes(),
            "value_stream_bits": v.bits,
            "value_entropy_bits": round(v.entropy_bits, 1),
            "value_fixed_bits": v.fixed_bits,
            "parameter_bits": 8 * self.parameter_bytes(),
            "index_bits": g.bits if g is not None else 0,
        }
        if g is not None:
            out.update({"gap_bits": self.gap_bits, "gap_coder": g.coder,
                        "index_entropy_bits": round(g.entropy_bits, 1), "index_fixed_bits": g.fixed_bits})
        if self.codebook is not None:
            out["codebook_size"] = len(self.codebook)
        if self.layout == "circulant":
            out["block"] = self.block
            out["stored_values"] = math.prod(self.stored_shape)
        out["entropy_bits"] = round(v.entropy_bits + (g.entropy_bits if g is not None else 0.0), 1)
        coded = v.bits + (g.bits if g is not None else 0)
        out["coded_bits"] = coded
        kept = self.kept if self.kept else None
        out["bits_per_weight"] = round((coded + 8 * self.parameter_bytes()) / kept, 3) if kept else None
        out.update(self.details)
        return out


# --------------------------------------------------------------------------- encoding layers


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise InvalidValueError(f"layer name {name!r} must be non-empty text")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise InvalidValueError(f"layer name '{name[:40]}…' is longer than {MAX_NAME_BYTES} bytes")


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(d) for d in shape)
    if len(shape) > MAX_NDIM or any(d < 0 or d > MAX_DIM for d in shape):
        raise InvalidValueError(f"shape {shape} cannot be stored (at most {MAX_NDIM} dims < 2**32)")
    if math.prod(shape) > MAX_ELEMENTS_PER_LAYER:
        raise InvalidValueError(f"shape {shape} has more than {MAX_ELEMENTS_PER_LAYER} elements")
    return shape


def _sparse_positions(mask: np.ndarray | None, size: int) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask, bool).ravel()
    if mask.size != size:
        raise InvalidValueError(f"mask has {mask.size} elements, the layer {size}")
    return np.flatnonzero(mask)


def _check_gap_bits(gap_bits: int) -> int:
    if isinstance(gap_bits, bool) or not isinstance(gap_bits, (int, np.integer)) or not 1 <= gap_bits <= 16:
        raise InvalidValueError(f"gap bits {gap_bits!r} must be a whole number in 1..16",
                                "Deep Compression uses 8 for conv layers and 5 for fully connected ones")
    return int(gap_bits)


def encode_float_layer(
    name: str,
    array: np.ndarray,
    half: bool = False,
    mask: np.ndarray | None = None,
    gap_bits: int = 8,
    coder: str = "auto",
) -> ArtifactLayer:
    """Stores ``array`` as float32 (or float16 when ``half``), dense or, given ``mask``, sparse.

    With a mask, elements outside it must be zero (they are not stored). Float32 values are
    stored at a fixed 32 bits; float16 bit patterns may be entropy-coded.
    """
    _check_name(name)
    arr = np.asarray(array, np.float32)
    shape = _check_shape(arr.shape)
    flat = arr.ravel()
    if half:
        f16 = flat.astype(np.float16)
        if not np.array_equal(f16.astype(np.float32), flat, equal_nan=True):
            raise InvalidValueError(f"layer '{name}' holds values float16 cannot represent exactly",
                                    "quantize it with the fp16 compressor first")
        symbols = f16.view(np.uint16).astype(np.int64)
        values, alphabet = "f16", 1 << 16
    else:
        symbols = flat.view(np.uint32).astype(np.int64)
        values, alphabet = "f32", 1 << 32
    positions = _sparse_positions(mask, flat.size)
    if positions is None:
        stream = encode_stream(symbols, alphabet, coder if half else "fixed")
        kept = int(np.count_nonzero(flat))
        return ArtifactLayer(name, shape, values, "dense", stream, kept=kept)
    outside = np.ones(flat.size, bool)
    outside[positions] = False
    if np.any(flat[outside] != 0):
        raise InvalidValueError(f"layer '{name}' has non-zero weights outside its mask")
    gap_bits = _check_gap_bits(gap_bits)
    gaps, vals = gaps_from_positions(positions, symbols[positions], gap_bits, 0)
    v = encode_stream(vals, alphabet, coder if half else "fixed")
    g = encode_stream(gaps, 1 << gap_bits, coder)
    return ArtifactLayer(name, shape, values, "sparse", v, g, gap_bits, kept=int(positions.size))


def int8_range(signed: bool) -> tuple[int, int]:
    """``(qmin, qmax)`` of int8 (signed) or uint8."""
    return (-128, 127) if signed else (0, 255)


def _channel_shape(shape: Sequence[int], axis: int | None) -> tuple[int, ...]:
    if axis is None:
        return (1,) * len(shape)
    return tuple(d if i == axis else 1 for i, d in enumerate(shape))


def quantize_linear(
    x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int | None = None, signed: bool = True
) -> np.ndarray:
    """ONNX ``QuantizeLinear``: ``saturate(round(x / scale) + zero_point)``, ties to even.

    ``scale`` and ``zero_point`` hold one value (``axis`` None) or one per index of ``axis``.
    The division is done in float32, as the ONNX reference implementation does.
    """
    x = np.asarray(x, np.float32)
    qmin, qmax = int8_range(signed)
    cs = _channel_shape(x.shape, axis)
    s = np.asarray(scale, np.float32).reshape(cs)
    z = np.asarray(zero_point, np.int64).reshape(cs)
    q = np.rint(x / s).astype(np.int64) + z
    return np.clip(q, qmin, qmax).astype(np.int8 if signed else np.uint8)


def dequantize_linear(
    q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int | None = None
) -> np.ndarray:
    """ONNX ``DequantizeLinear``: ``(q - zero_point) * scale`` in float32."""
    q = np.asarray(q)
    cs = _channel_shape(q.shape, axis)
    s = np.asarray(scale, np.float32).reshape(cs)
    z = np.asarray(zero_point, np.int64).reshape(cs)
    return (q.astype(np.int64) - z).astype(np.float32) * s


def channel_of(positions: np.ndarray, shape: Sequence[int], axis: int | None) -> np.ndarray:
    """The index along ``axis`` of each flat (C-order) position; all 0 when ``axis`` is None."""
    positions = np.asarray(positions, np.int64)
    if axis is None:
        return np.zeros(positions.size, np.int64)
    inner = math.prod(shape[axis + 1:])
    return (positions // inner) % shape[axis]


def encode_int8_layer(
    name: str,
    q: np.ndarray,
    scale: np.ndarray,
    zero_point: np.ndarray,
    axis: int | None = None,
    signed: bool = True,
    mask: np.ndarray | None = None,
    gap_bits: int = 8,
    coder: str = "auto",
) -> ArtifactLayer:
    """Stores integer ``q`` (int8 or uint8 values) with per-tensor or per-``axis`` scales.

    The layer decodes to ``(q - zero_point) * scale`` (float32), as ONNX DequantizeLinear.
    With ``mask``, elements outside it must equal their channel's zero point.
    """
    _check_name(name)
    q = np.asarray(q)
    shape = _check_shape(q.shape)
    qmin, qmax = int8_range(signed)
    qi = q.astype(np.int64).ravel()
    if qi.size and (qi.min() < qmin or qi.max() > qmax):
        raise InvalidValueError(f"layer '{name}': quantized values outside {qmin}..{qmax}")
    scale = np.atleast_1d(np.asarray(scale, np.float32)).ravel()
    zp = np.atleast_1d(np.asarray(zero_point)).astype(np.int64).ravel()
    channels = 1 if axis is None else shape[axis] if 0 <= axis < len(shape) else -1
    if channels < 0:
        raise InvalidValueError(f"layer '{name}': axis {axis} is outside its {len(shape)} dims")
    if scale.size != channels or zp.size != channels:
        raise InvalidValueError(f"layer '{name}': {scale.size} scales and {zp.size} zero points for "
                                f"{channels} channels")
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise InvalidValueError(f"layer '{name}': scales must be finite and > 0")
    if zp.size and (zp.min() < qmin or zp.max() > qmax):
        raise InvalidValueError(f"layer '{name}': zero points outside {qmin}..{qmax}")
    symbols = qi - qmin
    positions = _sparse_positions(mask, qi.size)
    common = dict(scale=scale, zero_point=zp.astype(np.int32), axis=axis, signed=signed)
    if positions is None:
        ch = channel_of(np.arange(qi.size), shape, axis)
        kept = int(np.count_nonzero(qi != zp[ch]))
        return ArtifactLayer(name, shape, "int8", "dense", encode_stream(symbols, 256, coder),
                             kept=kept, **common)
    outside = np.ones(qi.size, bool)
    outside[positions] = False
    out_pos = np.flatnonzero(outside)
    if np.any(qi[out_pos] != zp[channel_of(out_pos, shape, axis)]):
        raise InvalidValueError(f"layer '{name}' has non-zero weights outside its mask")
    gap_bits = _check_gap_bits(gap_bits)
    gaps, vals = gaps_from_positions(positions, symbols[positions], gap_bits, -1)
    fill = vals < 0
    if fill.any():
        all_pos = positions_from_gaps(gaps, qi.size)
        vals[fill] = zp[channel_of(all_pos[fill], shape, axis)] - qmin
    return ArtifactLayer(name, shape, "int8", "sparse", encode_stream(vals, 256, coder),
                         encode_stream(gaps, 1 << gap_bits, coder), gap_bits, kept=int(positions.size),
                         **common)


def encode_codebook_layer(
    name: str,
    codebook: np.ndarray,
    indices: np.ndarray,
    mask: np.ndarray | None = None,
    gap_bits: int = 8,
    coder: str = "auto",
) -> ArtifactLayer:
    """Stores a shared-weight layer: ``codebook[indices]``, or zero where ``mask`` is False.

    ``indices`` has the layer's shape; where ``mask`` is False its entries are ignored.
    """
    _check_name(name)
    indices = np.asarray(indices)
    shape = _check_shape(indices.shape)
    codebook = np.asarray(codebook, np.float32).ravel()
    k = codebook.size
    if not 1 <= k <= MAX_CODEBOOK:
        raise InvalidValueError(f"layer '{name}': a codebook of {k} entries (1..{MAX_CODEBOOK})")
    if not np.all(np.isfinite(codebook)):
        raise InvalidValueError(f"layer '{name}': codebook values must be finite")
    idx = indices.astype(np.int64).ravel()
    positions = _sparse_positions(mask, idx.size)
    sel = idx if positions is None else idx[positions]
    if sel.size and (sel.min() < 0 or sel.max() >= k):
        raise InvalidValueError(f"layer '{name}': indices outside the codebook's 0..{k - 1}")
    details = {"codebook_size": k}
    if positions is None:
        kept = int(np.count_nonzero(codebook[idx])) if idx.size else 0
        return ArtifactLayer(name, shape, "codebook", "dense", encode_stream(idx, k, coder),
                             codebook=codebook, kept=kept, details=details)
    gap_bits = _check_gap_bits(gap_bits)
    gaps, vals = gaps_from_positions(positions, sel, gap_bits, k)
    return ArtifactLayer(name, shape, "codebook", "sparse", encode_stream(vals, k + 1, coder),
                         encode_stream(gaps, 1 << gap_bits, coder), gap_bits, codebook=codebook,
                         kept=int(positions.size), details=details)


def as_circulant_layer(vectors_layer: ArtifactLayer, shape: Sequence[int], block: int) -> ArtifactLayer:
    """The circulant layer of ``shape`` whose defining vectors ``vectors_layer`` stores.

    ``vectors_layer`` is a dense layer (any values) of shape
    :func:`~sigdl_core.structured_weights.circulant_vector_shape` ``(shape, block)``, built
    with :func:`encode_float_layer`, :func:`encode_int8_layer` (per tensor) or
    :func:`encode_codebook_layer`; its streams are kept as they are.
    """
    shape = _check_shape(shape)
    name = vectors_layer.name
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or not _power_of_two_block(int(block)):
        raise InvalidValueError(f"layer '{name}': circulant block {block!r} must be a power of two in 2..{MAX_BLOCK}")
    if len(shape) < 2:
        raise InvalidValueError(f"layer '{name}': a circulant layer needs at least 2 dims, got {shape}")
    expected = circulant_vector_shape(shape, int(block))
    if vectors_layer.layout != "dense" or tuple(vectors_layer.shape) != expected:
        raise InvalidValueError(f"layer '{name}': circulant vectors must be a dense layer of shape {expected}, "
                                f"got a {vectors_layer.layout} one of {tuple(vectors_layer.shape)}")
    if vectors_layer.values == "int8" and vectors_layer.axis is not None:
        raise InvalidValueError(f"layer '{name}': circulant int8 values must be quantized per tensor")
    return ArtifactLayer(name, shape, vectors_layer.values, "circulant", vectors_layer.value_stream,
                         codebook=vectors_layer.codebook, scale=vectors_layer.scale,
                         zero_point=vectors_layer.zero_point, axis=None, signed=vectors_layer.signed,
                         kept=vectors_layer.kept, block=int(block), details=dict(vectors_layer.details))


def as_dct_sparse_layer(coefficients_layer: ArtifactLayer) -> ArtifactLayer:
    """The dct-sparse layer whose 2-D DCT coefficients ``coefficients_layer`` stores sparse."""
    layer = coefficients_layer
    if layer.layout != "sparse":
        raise InvalidValueError(f"layer '{layer.name}': DCT coefficients must be a sparse layer")
    if len(layer.shape) < 2 or layer.shape[-1] != layer.shape[-2]:
        raise InvalidValueError(f"layer '{layer.name}': a dct-sparse layer needs square trailing dims, "
                                f"got {layer.shape}")
    return ArtifactLayer(layer.name, layer.shape, layer.values, "dct-sparse", layer.value_stream,
                         layer.gap_stream, layer.gap_bits, codebook=layer.codebook, scale=layer.scale,
                         zero_point=layer.zero_point, axis=layer.axis, signed=layer.signed,
                         kept=layer.kept, details=dict(layer.details))


def _power_of_two_block(block: int) -> bool:
    return 2 <= block <= MAX_BLOCK and block & (block - 1) == 0


# --------------------------------------------------------------------------- decoding layers


def _decode_layer(layer: ArtifactLayer) -> np.ndarray:
    stored = _decode_stored(layer)
    if layer.layout == "circulant":
        return expand_circulant(stored, layer.shape, layer.block)
    if layer.layout == "dct-sparse":
        return idct2(stored)
    return stored


def _decode_stored(layer: ArtifactLayer) -> np.ndarray:
    """What the streams hold, as float32 of :attr:`ArtifactLayer.stored_shape`."""
    shape = layer.stored_shape
    size = math.prod(shape)
    v = layer.value_stream
    symbols = decode_stream(v.coder, v.payload, v.count, layer.value_alphabet)
    if layer.layout in ("dense", "circulant"):
        if v.count != size:
            raise _bad(f"layer '{layer.name}' has {v.count} values for {size} elements")
        positions = None
    else:
        g = layer.gap_stream
        assert g is not None
        if g.count != v.count:
            raise _bad(f"layer '{layer.name}' has {v.count} values but {g.count} gaps")
        gaps = decode_stream(g.coder, g.payload, g.count, 1 << layer.gap_bits)
        positions = positions_from_gaps(gaps, size)
    if layer.values == "f32":
        vals = symbols.astype(np.uint32).view(np.float32)
    elif layer.values == "f16":
        vals = symbols.astype(np.uint16).view(np.float16).astype(np.float32)
    elif layer.values == "int8":
        qmin, _ = int8_range(layer.signed)
        assert layer.scale is not None and layer.zero_point is not None
        ch = channel_of(np.arange(size) if positions is None else positions, shape, layer.axis)
        q = symbols + qmin
        vals = (q - layer.zero_point.astype(np.int64)[ch]).astype(np.float32) * layer.scale[ch]
    else:
        assert layer.codebook is not None
        table = layer.codebook.astype(np.float32)
        if layer.layout in SPARSE_LAYOUTS:
            table = np.append(table, np.float32(0.0))
        vals = table[symbols]
    if positions is None:
        return np.ascontiguousarray(vals, np.float32).reshape(shape)
    out = np.zeros(size, np.float32)
    out[positions] = vals
    return out.reshape(shape)


def decode_weights(layers: Sequence[ArtifactLayer]) -> dict[str, np.ndarray]:
    """Every layer's weights as named float32 arrays, in file order."""
    return {layer.name: layer.decode() for layer in layers}


# --------------------------------------------------------------------------- writing


def _stream_record(stream: EncodedStream) -> bytes:
    return bytes([CODER_IDS[stream.coder]]) + encode_varint(stream.count) + encode_varint(len(stream.payload))


def _layer_record(layer: ArtifactLayer) -> bytes:
    _check_name(layer.name)
    shape = _check_shape(layer.shape)
    if layer.values not in VALUE_KINDS or layer.layout not in LAYOUTS:
        raise InvalidValueError(f"layer '{layer.name}': unknown form {layer.values}/{layer.layout}")
    name = layer.name.encode("utf-8")
    out = bytearray(encode_varint(len(name)) + name)
    out.append(VALUE_KINDS[layer.values] | (LAYOUTS[layer.layout] << 4))
    out.append(len(shape))
    for d in shape:
        out += encode_varint(d)
    if layer.values == "int8":
        qmin, _ = int8_range(layer.signed)
        assert layer.scale is not None and layer.zero_point is not None
        out.append(1 if layer.signed else 0)
        out.append(255 if layer.axis is None else layer.axis)
        out += encode_varint(len(layer.scale))
        out += np.asarray(layer.scale, "<f4").tobytes()
        out += (np.asarray(layer.zero_point, np.int64) - qmin).astype(np.uint8).tobytes()
    if layer.values == "codebook":
        assert layer.codebook is not None
        out += encode_varint(len(layer.codebook))
        out += np.asarray(layer.codebook, "<f4").tobytes()
    if layer.layout in SPARSE_LAYOUTS:
        if layer.gap_stream is None:
            raise InvalidValueError(f"sparse layer '{layer.name}' has no gap stream")
        out.append(_check_gap_bits(layer.gap_bits))
    if layer.layout == "circulant":
        if not _power_of_two_block(layer.block) or len(shape) < 2 or layer.axis is not None:
            raise InvalidValueError(f"circulant layer '{layer.name}' has block {layer.block}, shape {shape}, "
                                    f"axis {layer.axis}")
        out += encode_varint(layer.block)
    for stream in layer.streams:
        out += _stream_record(stream)
    return bytes(out)


def artifact_bytes(layers: Sequence[ArtifactLayer], metadata: Mapping[str, Any] | None = None) -> bytes:
    """The whole ``.sigdl`` file for ``layers`` and ``metadata`` (a JSON-ready mapping)."""
    names = [layer.name for layer in layers]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InvalidValueError(f"layer name '{dup}' appears twice")
    try:
        meta = json.dumps(dict(metadata or {}), separators=(",", ":"), allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(f"artifact metadata is not JSON-ready: {exc}") from None
    if len(meta) > MAX_METADATA_BYTES:
        raise InvalidValueError(f"artifact metadata is larger than {MAX_METADATA_BYTES} bytes")
    header = bytearray(encode_varint(len(layers)) + encode_varint(len(meta)) + meta)
    for layer in layers:
        header += _layer_record(layer)
    payload = b"".join(s.payload for layer in layers for s in layer.streams)
    body = PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(header)) + bytes(header) + payload
    total = len(body) + CHECKSUM.size
    declared = sum(layer.size + sum(s.count for s in layer.streams) for layer in layers)
    if declared > ELEMENTS_PER_FILE_BYTE * total:
        raise InvalidValueError(
            f"the artifact would declare {declared} elements in {total} bytes, more than the "
            f"{ELEMENTS_PER_FILE_BYTE} per byte readers accept",
            "the model is almost entirely zeros; store fewer or smaller layers")
    return body + CHECKSUM.pack(zlib.crc32(body))


def write_artifact(
    path: os.PathLike[str] | str, layers: Sequence[ArtifactLayer], metadata: Mapping[str, Any] | None = None
) -> int:
    """Writes ``layers`` and ``metadata`` to ``path`` atomically; returns the file's size on disk."""
    atomic_write_bytes(path, artifact_bytes(layers, metadata))
    return os.path.getsize(path)


# --------------------------------------------------------------------------- reading


class _Cursor:
    def __init__(self, data: bytes, start: int, end: int, path: str | None) -> None:
        self.data, self.pos, self.end, self.path = data, start, end, path

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise _bad(f"the header ends inside {what}", self.path)
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def varint(self, what: str) -> int:
        try:
            value, pos = decode_varint(self.data[:self.end], self.pos, what)
        except ModelFileError:
            raise _bad(f"the header ends inside {what}", self.path) from None
        self.pos = pos
        return value


def parse_artifact(data: bytes, path: str | None = None) -> tuple[list[ArtifactLayer], dict[str, Any]]:
    """Parses and checks a whole ``.sigdl`` file held in memory; see the module docstring."""
    size = len(data)
    if size < PREAMBLE.size + CHECKSUM.size:
        raise _bad(f"{size} bytes is shorter than the smallest artifact", path)
    magic, version, header_len = PREAMBLE.unpack_from(data, 0)
    if magic != MAGIC:
        raise _bad("it does not start with the .sigdl magic bytes", path)
    if version not in READABLE_VERSIONS:
        raise ModelFileError(f"artifact '{path or ''}' has format version {version}; this SigDL reads "
                             f"versions {', '.join(map(str, READABLE_VERSIONS))}",
                             "upgrade SigDL, or write the artifact again")
    (stored_crc,) = CHECKSUM.unpack_from(data, size - CHECKSUM.size)
    if zlib.crc32(memoryview(data)[:size - CHECKSUM.size]) != stored_crc:
        raise _bad("its checksum does not match (the file is truncated or damaged)", path)
    header_end = PREAMBLE.size + header_len
    if header_end > size - CHECKSUM.size:
        raise _bad(f"its header claims {header_len} bytes, more than the file holds", path)
    cur = _Cursor(data, PREAMBLE.size, header_end, path)
    n_layers = cur.varint("the layer count")
    meta_len = cur.varint("the metadata length")
    if meta_len > MAX_METADATA_BYTES:
        raise _bad(f"metadata of {meta_len} bytes", path)
    try:
        metadata = json.loads(cur.take(meta_len, "the metadata").decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _bad("its metadata is not valid JSON", path) from None
    if not isinstance(metadata, dict):
        raise _bad("its metadata is not a JSON object", path)
    if n_layers > header_len:  # every record takes several bytes
        raise _bad(f"it claims {n_layers} layers in a header of {header_len} bytes", path)
    layers: list[ArtifactLayer] = []
    seen: set[str] = set()
    records: list[tuple[ArtifactLayer, list[tuple[int, int, int]]]] = []
    for _ in range(n_layers):
        layer, streams = _parse_layer(cur, path, version)
        if layer.name in seen:
            raise _bad(f"layer name '{layer.name}' appears twice", path)
        seen.add(layer.name)
        records.append((layer, streams))
    if cur.pos != header_end:
        raise _bad(f"its header has {header_end - cur.pos} bytes after the last layer", path)
    payload_len = size - CHECKSUM.size - header_end
    declared_bytes = sum(length for _, streams in records for _, _, length in streams)
    if declared_bytes != payload_len:
        raise _bad(f"its streams declare {declared_bytes} bytes but {payload_len} follow the header", path)
    declared = sum(layer.size + sum(c for _, c, _ in streams) for layer, streams in records)
    if declared > ELEMENTS_PER_FILE_BYTE * size:
        raise _bad(f"it declares {declared} elements in {size} bytes (at most "
                   f"{ELEMENTS_PER_FILE_BYTE} per byte); refusing to allocate", path)
    pos = header_end
    for layer, streams in records:
        built = []
        for coder, count, length in streams:
            built.append(EncodedStream(CODER_NAMES[coder], count, data[pos:pos + length]))
            pos += length
        layer.value_stream = built[0]
        layer.gap_stream = built[1] if len(built) > 1 else None
        layers.append(layer)
    return layers, metadata


def _parse_layer(cur: _Cursor, path: str | None, version: int = FORMAT_VERSION
                 ) -> tuple[ArtifactLayer, list[tuple[int, int, int]]]:
    name_len = cur.varint("a layer name's length")
    if not 1 <= name_len <= MAX_NAME_BYTES:
        raise _bad(f"a layer name of {name_len} bytes (1..{MAX_NAME_BYTES})", path)
    try:
        name = cur.take(name_len, "a layer name").decode("utf-8")
    except UnicodeDecodeError:
        raise _bad("a layer name is not UTF-8", path) from None
    kind = cur.u8(f"layer '{name}'s kind")
    values, layout = _VALUE_NAMES.get(kind & 0x0F), _LAYOUT_NAMES.get(kind >> 4)
    if values is None or layout is None or (version < 2 and layout not in ("dense", "sparse")):
        raise _bad(f"layer '{name}' has an unknown encoding kind 0x{kind:02x}", path)
    ndim = cur.u8(f"layer '{name}'s rank")
    if ndim > MAX_NDIM:
        raise _bad(f"layer '{name}' has {ndim} dims (at most {MAX_NDIM})", path)
    shape = tuple(cur.varint(f"layer '{name}'s shape") for _ in range(ndim))
    if any(d > MAX_DIM for d in shape) or math.prod(shape) > MAX_ELEMENTS_PER_LAYER:
        raise _bad(f"layer '{name}' has an absurd shape {shape}", path)
    layer = ArtifactLayer(name, shape, values, layout, EncodedStream("fixed", 0, b""))
    if values == "int8":
        flags = cur.u8(f"layer '{name}'s int8 flags")
        if flags > 1:
            raise _bad(f"layer '{name}' has unknown int8 flags {flags}", path)
        layer.signed = bool(flags & 1)
        axis = cur.u8(f"layer '{name}'s axis")
        layer.axis = None if axis == 255 else axis
        channels = 1 if layer.axis is None else shape[layer.axis] if layer.axis < ndim else -1
        if channels < 0:
            raise _bad(f"layer '{name}' has axis {axis} but {ndim} dims", path)
        c = cur.varint(f"layer '{name}'s scale count")
        if c != channels:
            raise _bad(f"layer '{name}' has {c} scales for {channels} channels", path)
        scale = np.frombuffer(cur.take(4 * c, f"layer '{name}'s scales"), "<f4").astype(np.float32)
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            raise _bad(f"layer '{name}' has a scale that is not finite and > 0", path)
        qmin, _ = int8_range(layer.signed)
        zp = np.frombuffer(cur.take(c, f"layer '{name}'s zero points"), np.uint8).astype(np.int64) + qmin
        layer.scale, layer.zero_point = scale, zp.astype(np.int32)
    if values == "codebook":
        k = cur.varint(f"layer '{name}'s codebook size")
        if not 1 <= k <= MAX_CODEBOOK:
            raise _bad(f"layer '{name}' has a codebook of {k} entries (1..{MAX_CODEBOOK})", path)
        cb = np.frombuffer(cur.take(4 * k, f"layer '{name}'s codebook"), "<f4").astype(np.float32)
        if not np.all(np.isfinite(cb)):
            raise _bad(f"layer '{name}' has a codebook value that is not finite", path)
        layer.codebook = cb
    if layout in SPARSE_LAYOUTS:
        layer.gap_bits = cur.u8(f"layer '{name}'s gap bits")
        if not 1 <= layer.gap_bits <= 16:
            raise _bad(f"layer '{name}' has {layer.gap_bits} gap bits (1..16)", path)
    if layout == "dct-sparse" and (ndim < 2 or shape[-1] != shape[-2]):
        raise _bad(f"dct-sparse layer '{name}' has shape {shape}, not square k x k kernels", path)
    if layout == "circulant":
        block = cur.varint(f"layer '{name}'s block size")
        if not _power_of_two_block(block):
            raise _bad(f"circulant layer '{name}' has block {block} (a power of two, 2..{MAX_BLOCK})", path)
        if ndim < 2:
            raise _bad(f"circulant layer '{name}' has {ndim} dims (at least 2)", path)
        if values == "int8" and layer.axis is not None:
            raise _bad(f"circulant layer '{name}' has per-channel int8 scales (per tensor only)", path)
        layer.block = block
    streams = []
    for which in (["value", "gap"] if layout in SPARSE_LAYOUTS else ["value"]):
        coder = cur.u8(f"layer '{name}'s {which} coder")
        if coder not in CODER_NAMES:
            raise _bad(f"layer '{name}'s {which} stream has an unknown coder {coder}", path)
        if values == "f32" and which == "value" and coder != CODER_IDS["fixed"]:
            raise _bad(f"layer '{name}' codes float32 values with {CODER_NAMES[coder]}", path)
        count = cur.varint(f"layer '{name}'s {which} count")
        length = cur.varint(f"layer '{name}'s {which} length")
        streams.append((coder, count, length))
    size = math.prod(layer.stored_shape)
    if layout in ("dense", "circulant") and streams[0][1] != size:
        raise _bad(f"layer '{name}' has {streams[0][1]} values for {size} elements", path)
    if layout in SPARSE_LAYOUTS and (streams[0][1] != streams[1][1] or streams[0][1] > size):
        raise _bad(f"layer '{name}' has {streams[0][1]} values and {streams[1][1]} gaps for "
                   f"{size} elements", path)
    return layer, streams


def read_artifact(path: os.PathLike[str] | str) -> tuple[list[ArtifactLayer], dict[str, Any]]:
    """Reads and checks ``path``; returns its layers (streams still coded) and metadata.

    Raises :class:`~sigdl_core.errors.ModelFileError` for a missing, truncated, corrupt or
    hostile file. Call :func:`decode_weights` on the layers for the arrays.
    """
    p = read_regular_file(path, "artifact")
    with open(p, "rb") as fh:
        data = fh.read()
    return parse_artifact(data, str(p))


def load_weights(path: os.PathLike[str] | str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """:func:`read_artifact` then :func:`decode_weights`, with stream errors naming the file."""
    layers, metadata = read_artifact(path)
    try:
        return decode_weights(layers), metadata
    except ModelFileError as exc:
        raise ModelFileError(f"artifact '{Path(path)}': {exc.message}", exc.hint) from None
