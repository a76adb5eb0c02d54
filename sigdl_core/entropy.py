"""Lossless coding of integer symbol streams: fixed width, canonical Huffman and rANS.

Deep Compression (Han, Mao & Dally, "Deep Compression: Compressing Deep Neural Networks
with Pruning, Trained Quantization and Huffman Coding", ICLR 2016, section 4) stores a
pruned, weight-shared layer as two streams of small integers, the cluster index of every
kept weight and the relative position (gap) of every kept weight, and Huffman-codes both.
This module holds everything needed to turn such a stream into bytes and back, bit-exactly:

* :func:`encode_fixed` / :func:`decode_fixed`: every symbol in ``width`` bits, MSB first
  (the paper's "P+Q" figures);
* :func:`encode_huffman` / :func:`decode_huffman`: canonical Huffman coding (the "H" of
  P+Q+H), code lengths limited to :data:`MAX_HUFFMAN_LENGTH` bits;
* :func:`encode_rans` / :func:`decode_rans`: range asymmetric numeral systems (Duda,
  "Asymmetric numeral systems", arXiv:1311.2540; byte-wise renormalisation after
  F. Giesen's ``ryg_rans``) with a frequency table quantised to ``2**P``, which gets within a
  fraction of a percent of the order-0 entropy where Huffman loses up to a bit per symbol;
* :func:`encode_stream` picks, per stream, whichever of those is smallest *including its
  table*; :func:`decode_stream` undoes any of them;
* :func:`gaps_from_positions` / :func:`positions_from_gaps`: the paper's relative indexing of
  sparse positions with *filler* entries when a gap overflows its bit width;
* :func:`entropy_bits`: the Shannon bound ``n * H`` of a stream (order-0, empirical).

Both the encoders and the decoders live here, in the core, on purpose: the ``.sigdl``
artifact (:mod:`sigdl_core.artifact`) must be readable by the core alone (a target or the
``sigdl decode`` command has no compressor plugin installed), the core's own artifact writer
stores biases and untouched layers through the same coders, and keeping the two halves of
each coder in one module is what keeps them agreeing bit for bit. Compressor plugins import
from here.

Payload formats (what :func:`encode_stream` returns and :func:`decode_stream` reads; the
symbol count ``n`` is stored outside, by the container). ``varint`` is unsigned LEB128;
``gamma(v)`` is the Elias-gamma code of ``v >= 1`` (``bitlen(v) - 1`` zeros, then ``v``
in ``bitlen(v)`` bits). Bit strings are MSB-first and padded with zero bits to a byte.

``fixed`` (coder 0)
    ``u8 width`` (0..32), then ``n * width`` bits. Width 0: every symbol is 0, no bits.
``huffman`` (coder 1)
    a *table* (below) of code lengths (1..24) per symbol, padded to a byte; ``varint
    data_bits``; then ``ceil(data_bits / 8)`` bytes of canonical codes. Codes are assigned in
    order of (length, symbol); the lengths must satisfy Kraft's equality. A table with one
    used symbol (length 1) means that symbol repeated ``n`` times with ``data_bits = 0``.
``rans`` (coder 2)
    ``4 bits P - 1`` (the table's precision, ``M = 2**P`` with ``P`` in 1..16) then a
    *table* of frequencies ``f_s >= 1`` summing to ``M``, padded to a byte; ``varint lanes``
    (1..4096); per lane ``u32 LE final state`` and ``varint byte_count``; then the lanes' byte
    streams one after the other. Symbol ``i`` of the stream belongs to lane ``i % lanes``.
    State ``x`` lives in ``[2**23, 2**31)``; decoding a symbol is ``s = slot(x mod M)``,
    ``x = f_s * (x >> P) + (x mod M) - c_s``, then bytes are shifted in while ``x < 2**23``.
    Every lane must end at state ``2**23`` with its bytes used up: a built-in integrity check.
*table*
    ``2 bits mode``; mode 0/1 (dense): ``gamma(A)`` then for each symbol ``0..A-1`` a value
    (0 = unused); mode 2/3 (sparse): ``gamma(k + 1)`` then for each of the ``k`` used symbols
    ``gamma(symbol - previous symbol)`` (previous starts at -1) and its value. Modes 0 and 2
    write a value ``v`` as ``gamma(v + 1)``; modes 1 and 3 write ``gamma(zigzag(v - previous
    value) + 1)``. The writer takes the smallest of the four.

Every decoder is strict: a stream that is truncated, has trailing bits, decodes to a different
number of symbols, or holds a symbol outside the allowed alphabet raises
:class:`~sigdl_core.errors.ModelFileError`. Decoders allocate in proportion to the payload's
length and the declared count only; the container checks the count against the file's size
first.

Everything is vectorised with NumPy. Huffman decoding computes, for every bit position, where
a code word starting there would end, then follows that chain with pointer jumping (about
``sqrt(n)`` Python steps); rANS runs up to :data:`MAX_RANS_LANES` interleaved lanes in lockstep.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from .errors import InvalidValueError, ModelFileError

CODER_FIXED = 0
CODER_HUFFMAN = 1
CODER_RANS = 2
#: Coder ids as stored in the artifact, and their names.
CODER_NAMES: dict[int, str] = {CODER_FIXED: "fixed", CODER_HUFFMAN: "huffman", CODER_RANS: "rans"}
CODER_IDS: dict[str, int] = {v: k for k, v in CODER_NAMES.items()}

#: The largest alphabet the table coders accept (16-bit cluster indices plus a filler symbol,
#: or every float16 bit pattern).
MAX_ALPHABET = (1 << 16) + 1
#: The longest Huffman code word; longer ones are avoided by flattening the counts.
MAX_HUFFMAN_LENGTH = 24
#: The widest symbol the fixed-width coder stores.
MAX_FIXED_WIDTH = 32
#: rANS: lower end of the state interval, and the most interleaved lanes.
RANS_L = 1 << 23
MAX_RANS_LANES = 4096
#: Streams up to this many symbols get one rANS lane, run in plain Python; longer ones get
#: one lane per :data:`RANS_SYMBOLS_PER_LANE` symbols, run in lockstep with NumPy.
RANS_SCALAR_MAX = 1 << 19
RANS_SYMBOLS_PER_LANE = 8192
#: Most lockstep steps (symbols per lane) of a multi-lane rANS stream, so that decoding time
#: stays bounded; longer streams are not rANS-coded.
RANS_MAX_STEPS = 1 << 16
RANS_MAX_SYMBOLS = MAX_RANS_LANES * RANS_MAX_STEPS
#: Elements packed per chunk, to bound temporary memory on large layers.
_CHUNK = 1 << 18


def _corrupt(what: str) -> ModelFileError:
    return ModelFileError(what, "the file is corrupt or was not written by SigDL; write it again")


# --------------------------------------------------------------------------- small helpers


def encode_varint(value: int) -> bytes:
    """``value >= 0`` as unsigned LEB128."""
    if value < 0:
        raise ValueError("varint must be >= 0")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes | memoryview, pos: int, what: str = "number") -> tuple[int, int]:
    """Reads an unsigned LEB128 at ``pos``; returns ``(value, new_pos)``; at most 9 bytes."""
    value = 0
    for i in range(9):
        if pos + i >= len(data):
            raise _corrupt(f"truncated {what}: the data ends inside it")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    raise _corrupt(f"{what} is longer than 9 bytes")


def entropy_bits(symbols: np.ndarray) -> float:
    """The order-0 Shannon bound of a stream: ``n * H(p)`` bits, ``p`` its symbol frequencies."""
    symbols = np.asarray(symbols)
    if symbols.size == 0:
        return 0.0
    counts = np.bincount(symbols.ravel().astype(np.int64))
    return _entropy_of_counts(counts)


def _entropy_of_counts(counts: np.ndarray) -> float:
    c = counts[counts > 0].astype(np.float64)
    n = c.sum()
    if n == 0:
        return 0.0
    return float(-(c * np.log2(c / n)).sum())


def pack_bits(values: np.ndarray, widths: np.ndarray | int) -> tuple[bytes, int]:
    """Concatenates ``values[i]`` in ``widths[i]`` bits each, MSB first; returns (bytes, bits).

    Widths are at most 57. The last byte is padded with zero bits. Each value is placed in
    the 64-bit word where it starts (and the next one when it straddles); values in one
    word occupy disjoint bits, so a sum per word (``np.add.reduceat``) is their OR. Works in
    chunks, so memory stays bounded.
    """
    values = np.asarray(values).ravel()
    n = values.size
    scalar = np.isscalar(widths) or np.ndim(widths) == 0
    if scalar:
        width = int(widths)
        if n == 0 or width == 0:
            return b"", 0
        if width in (8, 16, 32):  # byte-aligned: a big-endian view is the bit string
            dtype = {8: ">u1", 16: ">u2", 32: ">u4"}[width]
            return values.astype(dtype).tobytes(), n * width
        total = n * width
    else:
        widths_all = np.asarray(widths).ravel().astype(np.int64)
        total = int(widths_all.sum())
    if total == 0:
        return b"", 0
    out = np.zeros((total + 63) // 64 + 1, np.uint64)
    offset = 0
    for start in range(0, n, 1 << 20):
        v = values[start:start + (1 << 20)].astype(np.uint64)
        w = np.full(v.size, width, np.int64) if scalar else widths_all[start:start + (1 << 20)]
        ends = np.cumsum(w) + offset
        begins = ends - w
        offset = int(ends[-1])
        word = begins >> 6
        shift = 64 - (begins & 63) - w  # < 0: the value straddles into the next word
        spill = shift < 0
        head = np.where(spill, v >> np.clip(-shift, 0, 63).astype(np.uint64),
                        v << np.clip(shift, 0, 63).astype(np.uint64))
        first = np.flatnonzero(np.diff(word, prepend=-1))
        out[word[first]] |= np.add.reduceat(head, first)
        if spill.any():
            out[word[spill] + 1] |= v[spill] << (64 + shift[spill]).astype(np.uint64)
    return out.astype(">u8").tobytes()[: (total + 7) // 8], total


def _byte_windows(data: bytes | memoryview) -> np.ndarray:
    """``v[b]``: the 64 bits of ``data`` from byte ``b`` on (big-endian, zero-padded)."""
    buf = np.frombuffer(bytes(data) + bytes(8), np.uint8)
    windows = np.lib.stride_tricks.sliding_window_view(buf, 8)[: len(buf) - 7]
    return windows.view(">u8")[:, 0].astype(np.uint64)


def _windows(v64: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The 64 bits from each bit position (MSB first; only the first 57 are guaranteed)."""
    return v64[positions >> 3] << (positions & 7).astype(np.uint64)


def _unpack_fixed(data: bytes | memoryview, n: int, width: int) -> np.ndarray:
    """``n`` values of ``width`` bits each from the start of ``data`` (MSB first)."""
    if width == 0 or n == 0:
        return np.zeros(n, np.int64)
    if width in (8, 16, 32):
        dtype = {8: ">u1", 16: ">u2", 32: ">u4"}[width]
        return np.frombuffer(data, dtype=dtype, count=n).astype(np.int64)
    v64 = _byte_windows(data)
    out = np.empty(n, np.int64)
    shift = np.uint64(64 - width)
    for start in range(0, n, 1 << 20):
        p = np.arange(start, min(n, start + (1 << 20)), dtype=np.int64) * width
        out[start:start + p.size] = (_windows(v64, p) >> shift).astype(np.int64)
    return out


class _BitWriter:
    """Collects (value, width) pairs, scalars or arrays, and packs them at the end."""

    def __init__(self) -> None:
        self.values: list[np.ndarray] = []
        self.widths: list[np.ndarray] = []
        self.bits = 0

    def write(self, value: int, width: int) -> None:
        if width:
            self.extend(np.array([value], np.uint64), np.array([width], np.int64))

    def gamma(self, value: int) -> None:
        """Elias gamma of ``value >= 1``: ``value`` in ``2 * bitlen(value) - 1`` bits."""
        self.write(value, 2 * value.bit_length() - 1)

    def extend(self, values: np.ndarray, widths: np.ndarray) -> None:
        self.values.append(np.asarray(values, np.uint64))
        self.widths.append(np.asarray(widths, np.int64))
        self.bits += int(np.sum(widths))

    def to_bytes(self) -> bytes:
        if not self.values:
            return b""
        return pack_bits(np.concatenate(self.values), np.concatenate(self.widths))[0]


class _BitReader:
    """Reads bits MSB-first from ``data`` starting at byte ``pos``; strict about the end."""

    def __init__(self, data: bytes | memoryview, pos: int = 0) -> None:
        self.data = bytes(data)
        self.bit = pos * 8
        self.end = len(self.data) * 8

    def read(self, width: int) -> int:
        if width == 0:
            return 0
        if self.bit + width > self.end:
            raise _corrupt("truncated coding table")
        b0 = self.bit >> 3
        b1 = (self.bit + width + 7) >> 3
        chunk = int.from_bytes(self.data[b0:b1], "big")
        shift = b1 * 8 - self.bit - width
        self.bit += width
        return (chunk >> shift) & ((1 << width) - 1)

    def byte_pos(self) -> int:
        """The byte after the current bit (tables are padded to a byte)."""
        return (self.bit + 7) >> 3


def _bitlen(values: np.ndarray) -> np.ndarray:
    """``bit_length`` of each non-negative int64 below 2**53."""
    return np.frexp(np.asarray(values, np.int64).astype(np.float64))[1].astype(np.int64)


def _gamma_widths(values: np.ndarray) -> np.ndarray:
    return 2 * _bitlen(values) - 1


def _zigzag(v: np.ndarray) -> np.ndarray:
    return np.where(v >= 0, 2 * v, -2 * v - 1)


def _unzigzag(z: np.ndarray) -> np.ndarray:
    return np.where(z % 2 == 0, z >> 1, -((z + 1) >> 1))


#: Gamma-coded table entries stay below this (so a code fits a 57-bit window when read).
_GAMMA_LIMIT = 1 << 27


def _table_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The smallest of the four table forms of ``values`` as (codes, widths) arrays."""
    vals = np.asarray(values, np.int64)
    used = np.flatnonzero(vals)
    forms = []
    for mode in range(4):
        if mode < 2:
            head = len(vals)
            body = vals + 1 if mode == 0 else _zigzag(np.diff(vals, prepend=0)) + 1
        else:
            head = used.size + 1
            sym_gaps = np.diff(used, prepend=-1)
            v = vals[used]
            v_codes = v + 1 if mode == 2 else _zigzag(np.diff(v, prepend=0)) + 1
            body = np.empty(2 * used.size, np.int64)
            body[0::2], body[1::2] = sym_gaps, v_codes
        codes = np.concatenate([[mode, head], body]).astype(np.int64)
        widths = np.concatenate([[2], _gamma_widths(codes[1:])])
        forms.append((int(widths.sum()), mode, codes, widths))
    best = min(forms, key=lambda f: (f[0], f[1]))
    if int(best[2][1:].max(initial=0)) >= _GAMMA_LIMIT:
        raise InvalidValueError("a coding table entry is too large")
    return best[2].astype(np.uint64), best[3]


def _write_table(w: _BitWriter, values: np.ndarray) -> None:
    """Appends the smallest of the four table forms of ``values`` (non-negative ints)."""
    w.extend(*_table_codes(values))


def _follow_chain(next_pos: np.ndarray, start: int, count: int) -> np.ndarray:
    """Positions ``start, next_pos[start], ...`` (``count`` of them), by pointer jumping.

    ``next_pos`` maps every position to the next (a sink maps to itself). Anchors every
    ``step = 2**k`` positions of the chain are found with a jump table ``next_pos**step``
    (``k`` squarings, each a gather over all of ``next_pos``) and a Python loop over the
    anchors; then all anchors advance together, ``step`` gathers of ``count / step``. ``k``
    balances the two costs: a Python step costs about 30 element gathers.
    """
    ratio = 30.0 * count / max(1, next_pos.size)
    k = int(min(16, max(0, round(math.log2(ratio)) if ratio > 1 else 0)))
    step = 1 << k
    jump = next_pos
    for _ in range(k):
        jump = jump[jump]
    n_anchor = -(-count // step)
    anchors = np.empty(n_anchor, np.int64)
    p = start
    for i in range(n_anchor):
        anchors[i] = p
        p = int(jump[p])
    table = np.empty((n_anchor, step), np.int64)
    cur = anchors
    for j in range(step):
        table[:, j] = cur
        cur = next_pos[cur].astype(np.int64)
    return table.ravel()[:count]


def _read_gammas(r: _BitReader, count: int) -> np.ndarray:
    """``count`` Elias-gamma numbers from the reader's position, vectorised; advances it."""
    if count == 0:
        return np.zeros(0, np.int64)
    v64 = _byte_windows(r.data)
    nbits = 8 * len(r.data)
    start = r.bit
    end = min(nbits, start + 55 * count)
    if start >= end:
        raise _corrupt("truncated coding table")
    span = end - start
    idx_dtype = np.int32 if span < (1 << 31) - 64 else np.int64
    next_pos = np.empty(span + 1, idx_dtype)
    p = np.arange(start, end, dtype=np.int64)
    top = _windows(v64, p) >> np.uint64(16)  # the first 48 bits
    zeros = 48 - _bitlen(top.astype(np.int64))
    length = 2 * zeros + 1
    ok = (zeros <= 26) & (p + length <= end)
    next_pos[:span] = np.where(ok, p + length - start, span)
    next_pos[span] = span
    starts = _follow_chain(next_pos, 0, count)
    if int(starts.max()) >= span:
        raise _corrupt("truncated or malformed coding table")
    lengths = length[starts]
    values = (_windows(v64, starts + start) >> (64 - lengths).astype(np.uint64)).astype(np.int64)
    r.bit = start + int(starts[-1]) + int(lengths[-1])
    return values


def _read_table(r: _BitReader, alphabet: int, max_value: int) -> np.ndarray:
    """Reads a table; returns its values as an int64 array of length <= ``alphabet``."""
    mode = r.read(2)
    head = int(_read_gammas(r, 1)[0])
    if mode < 2:
        size = head
        if size > alphabet:
            raise _corrupt(f"a coding table of {size} symbols exceeds the alphabet of {alphabet}")
        body = _read_gammas(r, size)
        vals = body - 1 if mode == 0 else np.cumsum(_unzigzag(body - 1))
        if vals.size and (vals.min() < 0 or vals.max() > max_value):
            raise _corrupt(f"a coding table holds a value outside 0..{max_value}")
        return vals.astype(np.int64)
    count = head - 1
    if count > alphabet:
        raise _corrupt(f"a coding table of {count} symbols exceeds the alphabet of {alphabet}")
    body = _read_gammas(r, 2 * count)
    syms = np.cumsum(body[0::2]) - 1
    codes = body[1::2]
    vals = codes - 1 if mode == 2 else np.cumsum(_unzigzag(codes - 1))
    if count and syms[-1] >= alphabet:
        raise _corrupt(f"a coding table names symbol {int(syms[-1])}, outside the alphabet of {alphabet}")
    if vals.size and (vals.min() < 1 or vals.max() > max_value):
        raise _corrupt(f"a coding table holds a value outside 1..{max_value}")
    out = np.zeros(int(syms[-1]) + 1 if count else 0, np.int64)
    out[syms] = vals
    return out


def _check_symbols(symbols: np.ndarray, alphabet: int | None) -> np.ndarray:
    symbols = np.asarray(symbols).ravel()
    if symbols.size and not np.issubdtype(symbols.dtype, np.integer):
        raise InvalidValueError("symbols must be integers")
    symbols = symbols.astype(np.int64, copy=False)
    if symbols.size:
        lo, hi = int(symbols.min()), int(symbols.max())
        if lo < 0:
            raise InvalidValueError(f"symbols must be >= 0, got {lo}")
        if alphabet is not None and hi >= alphabet:
            raise InvalidValueError(f"symbol {hi} is outside the alphabet of {alphabet}")
    return symbols


# --------------------------------------------------------------------------- fixed width


def encode_fixed(symbols: np.ndarray, width: int | None = None) -> bytes:
    """``u8 width`` then every symbol in ``width`` bits (default: the fewest that hold them)."""
    symbols = _check_symbols(symbols, None)
    need = int(symbols.max()).bit_length() if symbols.size else 0
    width = need if width is None else int(width)
    if not need <= width <= MAX_FIXED_WIDTH:
        raise InvalidValueError(f"fixed width {width} cannot hold symbols up to {need} bits wide")
    return bytes([width]) + pack_bits(symbols, width)[0]


def decode_fixed(payload: bytes | memoryview, count: int, alphabet: int) -> np.ndarray:
    """Inverse of :func:`encode_fixed`; strict about length and alphabet."""
    payload = memoryview(payload)
    if count == 0:
        if len(payload) not in (0, 1):
            raise _corrupt("an empty fixed-width stream carries data")
        return np.zeros(0, np.int64)
    if len(payload) < 1:
        raise _corrupt("truncated fixed-width stream")
    width = payload[0]
    if width > MAX_FIXED_WIDTH:
        raise _corrupt(f"fixed-width stream declares {width} bits per symbol (at most {MAX_FIXED_WIDTH})")
    need = (count * width + 7) // 8
    if len(payload) - 1 != need:
        raise _corrupt(f"fixed-width stream holds {len(payload) - 1} bytes, its {count} symbols of "
                       f"{width} bits need {need}")
    out = _unpack_fixed(payload[1:], count, width)
    _check_decoded(out, alphabet)
    rest = count * width % 8
    if rest and payload[-1] & ((1 << (8 - rest)) - 1):
        raise _corrupt("fixed-width stream has non-zero padding bits")
    return out


def _check_decoded(out: np.ndarray, alphabet: int) -> None:
    if out.size and int(out.max()) >= alphabet:
        raise _corrupt(f"a stream decodes to symbol {int(out.max())}, outside the alphabet of {alphabet}")


# --------------------------------------------------------------------------- Huffman


def huffman_code_lengths(counts: np.ndarray, max_length: int = MAX_HUFFMAN_LENGTH) -> np.ndarray:
    """Huffman code lengths for symbol ``counts`` (0 for unused symbols), at most ``max_length``.

    Built with a heap (Huffman 1952). When the tree is deeper than ``max_length`` the counts
    are halved (keeping every used symbol at least 1) and the tree rebuilt, which flattens it
    at a negligible cost. One used symbol gets length 1.
    """
    counts = np.asarray(counts, np.int64)
    used = np.flatnonzero(counts)
    lengths = np.zeros(counts.size, np.int64)
    if used.size == 0:
        return lengths
    if used.size == 1:
        lengths[used] = 1
        return lengths
    if used.size > (1 << max_length):
        raise InvalidValueError(f"{used.size} symbols cannot get codes of at most {max_length} bits")
    c = counts[used].copy()
    while True:
        depth = _huffman_depths(c)
        if depth.max() <= max_length:
            lengths[used] = depth
            return lengths
        c = np.maximum(c >> 1, 1)


def _huffman_depths(counts: np.ndarray) -> np.ndarray:
    m = counts.size
    heap = [(int(c), i) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    parent = [0] * (2 * m - 1)
    nxt = m
    while len(heap) > 1:
        c1, a = heapq.heappop(heap)
        c2, b = heapq.heappop(heap)
        parent[a] = nxt
        parent[b] = nxt
        heapq.heappush(heap, (c1 + c2, nxt))
        nxt += 1
    depth = [0] * (2 * m - 1)
    for node in range(2 * m - 3, -1, -1):  # parents have larger ids than their children
        depth[node] = depth[parent[node]] + 1
    return np.array(depth[:m], np.int64)


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical code words for code ``lengths``: assigned in order of (length, symbol)."""
    lengths = np.asarray(lengths, np.int64)
    codes = np.zeros(lengths.size, np.uint64)
    used = np.flatnonzero(lengths)
    if used.size == 0:
        return codes
    order = used[np.lexsort((used, lengths[used]))]
    code = 0
    prev = int(lengths[order[0]])
    for s in order:
        length = int(lengths[s])
        code <<= length - prev
        prev = length
        codes[s] = code
        code += 1
    return codes


def encode_huffman(symbols: np.ndarray, counts: np.ndarray | None = None) -> bytes:
    """Canonical Huffman coding of ``symbols`` (see the module docstring for the format)."""
    symbols = _check_symbols(symbols, MAX_ALPHABET)
    if counts is None:
        counts = np.bincount(symbols) if symbols.size else np.zeros(0, np.int64)
    lengths = huffman_code_lengths(counts)
    w = _BitWriter()
    _write_table(w, lengths)
    table = w.to_bytes()
    if symbols.size == 0 or np.count_nonzero(lengths) <= 1:
        return table + encode_varint(0)
    codes = canonical_codes(lengths)
    data, nbits = pack_bits(codes[symbols], lengths[symbols])
    return table + encode_varint(nbits) + data


def decode_huffman(payload: bytes | memoryview, count: int, alphabet: int) -> np.ndarray:
    """Inverse of :func:`encode_huffman`; strict about the table, the length and the count."""
    payload = bytes(payload)
    r = _BitReader(payload)
    lengths = _read_table(r, min(alphabet, MAX_ALPHABET), MAX_HUFFMAN_LENGTH)
    pos = r.byte_pos()
    nbits, pos = decode_varint(payload, pos, "Huffman bit count")
    data = payload[pos:]
    if len(data) != (nbits + 7) // 8:
        raise _corrupt(f"Huffman stream holds {len(data)} bytes, its header says {nbits} bits")
    used = np.flatnonzero(lengths)
    if count == 0:
        if nbits:
            raise _corrupt("an empty Huffman stream carries data")
        return np.zeros(0, np.int64)
    if used.size == 0:
        raise _corrupt("a Huffman stream has an empty code table")
    if used.size == 1:
        if nbits:
            raise _corrupt("a one-symbol Huffman stream carries data")
        out = np.full(count, used[0], np.int64)
        _check_decoded(out, alphabet)
        return out
    lens = lengths[used]
    kraft = sum(1 << (MAX_HUFFMAN_LENGTH - int(x)) for x in lens)
    if kraft != 1 << MAX_HUFFMAN_LENGTH:
        raise _corrupt("a Huffman code table is not a complete prefix code")
    if nbits < count or nbits > count * int(lens.max()):
        raise _corrupt(f"a Huffman stream of {nbits} bits cannot hold {count} symbols")
    if nbits % 8 and data[-1] & ((1 << (8 - nbits % 8)) - 1):
        raise _corrupt("a Huffman stream has non-zero padding bits")
    out = _huffman_chain_decode(data, nbits, count, lengths)
    _check_decoded(out, alphabet)
    return out


def _huffman_chain_decode(data: bytes, nbits: int, count: int, lengths: np.ndarray) -> np.ndarray:
    """Decodes ``count`` canonical Huffman symbols filling exactly ``nbits`` bits of ``data``.

    For every bit position the code word that would start there is found at once (a table
    indexed by the next ``max_len`` bits, or a ``searchsorted`` of the left-justified
    canonical codes, which increase); the positions where code words really start are then
    the chain 0 -> end of its word -> ..., followed by :func:`_follow_chain`.
    """
    used = np.flatnonzero(lengths)
    order = used[np.lexsort((used, lengths[used]))]
    codes = canonical_codes(lengths)
    max_len = int(lengths.max())
    sorted_len = lengths[order]
    left = codes[order] << (max_len - sorted_len).astype(np.uint64)  # left-justified, increasing
    v64 = _byte_windows(data)
    shift = np.uint64(64 - max_len)
    if max_len <= 20:  # the code is complete: every max_len-bit window starts exactly one word
        direct = np.repeat(np.arange(order.size, dtype=np.int32), 1 << (max_len - sorted_len))
    else:
        direct = None

    def lookup(windows: np.ndarray) -> np.ndarray:
        w = windows >> shift
        if direct is not None:
            return direct[w.astype(np.int64)]
        return np.searchsorted(left, w, side="right") - 1

    # next_pos[p]: where a code word starting at bit p ends; p == nbits is a sink.
    idx_dtype = np.int32 if nbits < (1 << 31) - 64 else np.int64
    length_of = sorted_len.astype(idx_dtype)
    next_pos = np.empty(nbits + 1, idx_dtype)
    offsets = np.arange(8, dtype=np.uint64)[None, :]
    block = 1 << 19  # bytes per block
    for b0 in range(0, (nbits + 7) // 8, block):
        b1 = min((nbits + 7) // 8, b0 + block)
        windows = (v64[b0:b1, None] << offsets).ravel()[: min(nbits, 8 * b1) - 8 * b0]
        p = np.arange(8 * b0, 8 * b0 + windows.size, dtype=idx_dtype)
        next_pos[8 * b0:8 * b0 + windows.size] = np.minimum(p + length_of[lookup(windows)], nbits)
    next_pos[nbits] = nbits
    starts = _follow_chain(next_pos, 0, count)
    if int(starts.max()) >= nbits:
        raise _corrupt(f"a Huffman stream of {nbits} bits ends before its {count} symbols")
    sym_idx = lookup(_windows(v64, starts))
    last_end = int(starts[-1]) + int(sorted_len[sym_idx[-1]])
    if last_end != nbits:
        raise _corrupt(f"a Huffman stream's {count} symbols end at bit {last_end}, not at its "
                       f"declared {nbits} bits")
    return order[sym_idx].astype(np.int64)


# --------------------------------------------------------------------------- rANS


def quantize_frequencies(counts: np.ndarray, scale_bits: int) -> np.ndarray:
    """Frequencies ``f_s >= 1`` for every used symbol, summing to ``2**scale_bits``.

    Starts from ``floor(count * M / n)`` (at least 1), then hands the remainder to the
    symbols that gain the most coded bits from one more unit (``count * log2((f + 1) / f)``),
    or takes an excess back, a unit at a time, from those that lose the fewest: the
    greedy step of minimising the cross-entropy ``-sum count * log2(f / M)``.
    """
    counts = np.asarray(counts, np.int64)
    used = np.flatnonzero(counts)
    m = 1 << scale_bits
    if used.size > m:
        raise InvalidValueError(f"{used.size} symbols do not fit a frequency table of {m}")
    f = np.zeros(counts.size, np.int64)
    if used.size == 0:
        return f
    n = int(counts.sum())
    c = counts[used].astype(np.float64)
    fu = np.maximum(counts[used] * m // n, 1)
    diff = m - int(fu.sum())
    if diff > 0:  # diff < number of used symbols: each gets at most one more unit
        gain = c * np.log2((fu + 1) / fu)
        fu[np.argsort(-gain, kind="stable")[:diff]] += 1
    while diff < 0:
        diff = m - int(fu.sum())
        if diff >= 0:
            break
        can = np.flatnonzero(fu > 1)
        loss = c[can] * np.log2(fu[can] / (fu[can] - 1))
        fu[can[np.argsort(loss, kind="stable")[:-diff]]] -= 1
    f[used] = fu
    return f


def _rans_cost_bits(counts: np.ndarray, freqs: np.ndarray, scale_bits: int) -> float:
    used = counts > 0
    return float(-(counts[used] * np.log2(freqs[used] / (1 << scale_bits))).sum())


def encode_rans(symbols: np.ndarray, lanes: int | None = None, scale_bits: int | None = None) -> bytes:
    """rANS coding of ``symbols`` in ``lanes`` interleaved lanes (see the module docstring).

    ``scale_bits`` (the table precision ``P``) defaults to the one that minimises the table's
    bits plus the coded bits; ``lanes`` to 1 up to :data:`RANS_SCALAR_MAX` symbols, else one
    lane per :data:`RANS_SYMBOLS_PER_LANE` symbols (at most :data:`MAX_RANS_LANES`).
    """
    symbols = _check_symbols(symbols, MAX_ALPHABET)
    n = symbols.size
    counts = np.bincount(symbols) if n else np.ones(1, np.int64)  # empty: a table of one symbol
    n_used = int(np.count_nonzero(counts))
    lo = max(1, (n_used - 1).bit_length())
    if scale_bits is None:
        best = None
        worse = 0
        for p in range(lo, 17):  # the cost is about unimodal in p: stop once it rises twice
            f = quantize_frequencies(counts, p)
            cost = int(_table_codes(f)[1].sum()) + _rans_cost_bits(counts, f, p)
            if best is None or cost < best[0]:
                best, worse = (cost, p), 0
            else:
                worse += 1
                if worse == 2:
                    break
        scale_bits = best[1] if best else lo
    if not lo <= scale_bits <= 16:
        raise InvalidValueError(f"rANS precision {scale_bits} bits must be in {lo}..16")
    freqs = quantize_frequencies(counts, scale_bits)
    w = _BitWriter()
    w.write(scale_bits - 1, 4)
    _write_table(w, freqs)
    out = [w.to_bytes()]
    if lanes is None:
        lanes = 1 if n <= RANS_SCALAR_MAX else min(MAX_RANS_LANES, -(-n // RANS_SYMBOLS_PER_LANE))
    if not 1 <= lanes <= MAX_RANS_LANES:
        raise InvalidValueError(f"rANS lanes {lanes} must be in 1..{MAX_RANS_LANES}")
    lanes = min(lanes, max(1, n))
    _check_rans_shape(n, lanes, InvalidValueError)
    out.append(encode_varint(lanes))
    if n == 0:
        out.append(RANS_L.to_bytes(4, "little") + encode_varint(0))
        return b"".join(out)
    cum_list = [0] + np.cumsum(freqs)[:-1].tolist()
    if lanes == 1:
        state, data = _rans_encode_scalar(symbols.tolist(), freqs.tolist(), cum_list, scale_bits)
        out.append(state.to_bytes(4, "little") + encode_varint(len(data)))
        out.append(data)
        return b"".join(out)
    cum = np.array(cum_list, np.uint64)
    f64 = freqs.astype(np.uint64)
    steps = -(-n // lanes)
    padded = np.full(steps * lanes, symbols[0], np.int64)  # a used symbol: never divides by 0
    padded[:n] = symbols
    grid = padded.reshape(steps, lanes)
    x = np.full(lanes, RANS_L, np.uint64)
    buf = np.zeros((lanes, 2 * steps + 4), np.uint8)
    fill = np.zeros(lanes, np.int64)
    lane_ids = np.arange(lanes)
    x_max_base = np.uint64((RANS_L >> scale_bits) << 8)
    pbits = np.uint64(scale_bits)
    last_active = n - (steps - 1) * lanes
    for t in range(steps - 1, -1, -1):
        s = grid[t]
        f = f64[s]
        x_max = x_max_base * f
        active = lane_ids < (last_active if t == steps - 1 else lanes)
        while True:
            emit = active & (x >= x_max)
            if not emit.any():
                break
            ids = lane_ids[emit]
            buf[ids, fill[ids]] = (x[ids] & np.uint64(0xFF)).astype(np.uint8)
            fill[ids] += 1
            x[ids] >>= np.uint64(8)
        new_x = ((x // f) << pbits) + (x % f) + cum[s]
        x = np.where(active, new_x, x)
    for lane in range(lanes):
        out.append(int(x[lane]).to_bytes(4, "little") + encode_varint(int(fill[lane])))
    for lane in range(lanes):
        out.append(buf[lane, :fill[lane]][::-1].tobytes())
    return b"".join(out)


def _check_rans_shape(count: int, lanes: int, error: type) -> None:
    steps = -(-count // lanes) if count else 0
    limit = RANS_SCALAR_MAX if lanes == 1 else RANS_MAX_STEPS
    if steps > limit:
        raise error(f"a rANS stream of {count} symbols in {lanes} lane(s) takes {steps} steps "
                    f"(at most {limit})")


def _rans_encode_scalar(symbols: list[int], freqs: list[int], cum: list[int], scale_bits: int) -> tuple[int, bytes]:
    """One rANS lane in plain Python integers (fast for up to a few hundred thousand symbols)."""
    x = RANS_L
    out = bytearray()
    x_max_base = (RANS_L >> scale_bits) << 8
    for s in reversed(symbols):
        f = freqs[s]
        x_max = x_max_base * f
        while x >= x_max:
            out.append(x & 0xFF)
            x >>= 8
        q, r = divmod(x, f)
        x = (q << scale_bits) + r + cum[s]
    out.reverse()
    return x, bytes(out)


def _rans_decode_scalar(data: bytes, start: int, end: int, state: int, count: int,
                        freqs: list[int], cum: list[int], slot: list[int], scale_bits: int) -> list[int]:
    mask = (1 << scale_bits) - 1
    x = state
    ptr = start
    out = [0] * count
    for i in range(count):
        low = x & mask
        s = slot[low]
        out[i] = s
        x = freqs[s] * (x >> scale_bits) + low - cum[s]
        while x < RANS_L:
            if ptr >= end:
                raise _corrupt("a rANS lane runs out of bytes before its symbols are decoded")
            x = (x << 8) | data[ptr]
            ptr += 1
    if ptr != end or x != RANS_L:
        raise _corrupt("a rANS stream does not end where its encoder began: wrong count or corrupt data")
    return out


def decode_rans(payload: bytes | memoryview, count: int, alphabet: int) -> np.ndarray:
    """Inverse of :func:`encode_rans`; strict: every lane must end at its initial state."""
    payload = bytes(payload)
    r = _BitReader(payload)
    scale_bits = r.read(4) + 1
    m = 1 << scale_bits
    freqs = _read_table(r, min(alphabet, MAX_ALPHABET), m)
    if int(freqs.sum()) != m:
        raise _corrupt(f"rANS frequencies sum to {int(freqs.sum())}, not {m}")
    pos = r.byte_pos()
    lanes, pos = decode_varint(payload, pos, "rANS lane count")
    if not 1 <= lanes <= MAX_RANS_LANES or lanes > max(1, count):
        raise _corrupt(f"rANS stream declares {lanes} lanes for {count} symbols")
    _check_rans_shape(count, lanes, lambda m: _corrupt(m))
    states = np.empty(lanes, np.uint64)
    sizes = np.empty(lanes, np.int64)
    for lane in range(lanes):
        if pos + 4 > len(payload):
            raise _corrupt("truncated rANS lane header")
        states[lane] = int.from_bytes(payload[pos:pos + 4], "little")
        sizes[lane], pos = decode_varint(payload, pos + 4, "rANS lane size")
    if int(sizes.sum()) != len(payload) - pos:
        raise _corrupt(f"rANS lanes declare {int(sizes.sum())} bytes, the stream holds {len(payload) - pos}")
    if count == 0:
        if sizes.any() or (states != RANS_L).any():
            raise _corrupt("an empty rANS stream carries data")
        return np.zeros(0, np.int64)
    if ((states < RANS_L) | (states >= np.uint64(RANS_L) << np.uint64(8))).any():
        raise _corrupt("a rANS lane starts outside the valid state interval")
    if lanes == 1:
        cum_list = [0] + np.cumsum(freqs)[:-1].tolist()
        slot_list = np.repeat(np.arange(freqs.size, dtype=np.int64), freqs).tolist()
        out1 = np.array(_rans_decode_scalar(payload, pos, len(payload), int(states[0]), count,
                                            freqs.tolist(), cum_list, slot_list, scale_bits), np.int64)
        _check_decoded(out1, alphabet)
        return out1
    buf = np.frombuffer(payload, np.uint8)
    starts = pos + np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    ends = starts + sizes
    ptr = starts.copy()
    cum = np.concatenate([[0], np.cumsum(freqs)[:-1]]).astype(np.uint64)
    slot = np.repeat(np.arange(freqs.size, dtype=np.int64), freqs)
    f64 = freqs.astype(np.uint64)
    steps = -(-count // lanes)
    out = np.empty(steps * lanes, np.int64)
    x = states
    mask = np.uint64(m - 1)
    pbits = np.uint64(scale_bits)
    lane_ids = np.arange(lanes)
    last_active = count - (steps - 1) * lanes
    low = np.uint64(RANS_L)
    for t in range(steps):
        active = lane_ids < (last_active if t == steps - 1 else lanes)
        s = slot[(x & mask).astype(np.int64)]
        out[t * lanes:(t + 1) * lanes] = s
        new_x = f64[s] * (x >> pbits) + (x & mask) - cum[s]
        x = np.where(active, new_x, x)
        while True:
            need = active & (x < low)
            if not need.any():
                break
            ids = lane_ids[need]
            if (ptr[ids] >= ends[ids]).any():
                raise _corrupt("a rANS lane runs out of bytes before its symbols are decoded")
            x[ids] = (x[ids] << np.uint64(8)) | buf[ptr[ids]].astype(np.uint64)
            ptr[ids] += 1
    if (ptr != ends).any() or (x != low).any():
        raise _corrupt("a rANS stream does not end where its encoder began: wrong count or corrupt data")
    out = out[:count]
    _check_decoded(out, alphabet)
    return out


# --------------------------------------------------------------------------- choosing a coder


@dataclass(frozen=True)
class EncodedStream:
    """One coded stream: its coder, symbol count and payload, with figures for reports.

    ``entropy_bits`` is the order-0 Shannon bound of the symbols; ``fixed_bits`` what the
    same symbols cost at a fixed width of ``bitlen(alphabet - 1)`` bits (no table).
    Neither is stored in the artifact (both are recomputable from the decoded symbols).
    """

    coder: str
    count: int
    payload: bytes
    entropy_bits: float = 0.0
    fixed_bits: int = 0

    @property
    def bits(self) -> int:
        """Bits this stream takes in the file, table and headers included."""
        return 8 * len(self.payload)


CODER_CHOICES = ("auto", "huffman", "rans", "fixed")


def encode_stream(symbols: np.ndarray, alphabet: int, coder: str = "auto") -> EncodedStream:
    """Codes ``symbols`` (each in ``0..alphabet-1``) with ``coder``.

    ``auto`` takes the smallest of fixed width, Huffman and rANS, tables included (ties go
    to the faster decoder: fixed, then Huffman); ``huffman`` the smaller of fixed width and
    Huffman (Deep Compression's choice); ``rans`` or ``fixed`` that coder alone (a stream
    longer than :data:`RANS_MAX_SYMBOLS` falls back to fixed width under ``rans``, and to the
    smaller of fixed width and Huffman under ``auto``).
    """
    if coder not in CODER_CHOICES:
        raise InvalidValueError(f"unknown coder '{coder}'", f"use one of {', '.join(CODER_CHOICES)}")
    if not 1 <= alphabet <= (1 << MAX_FIXED_WIDTH):
        raise InvalidValueError(f"alphabet of {alphabet} symbols is out of range")
    symbols = _check_symbols(symbols, alphabet)
    n = symbols.size
    width = (alphabet - 1).bit_length()
    table_ok = alphabet <= MAX_ALPHABET
    if not n:
        counts = np.zeros(1, np.int64)
    elif table_ok:
        counts = np.bincount(symbols)
    else:  # 32-bit symbols: count the distinct values only
        counts = np.unique(symbols, return_counts=True)[1]
    h = _entropy_of_counts(counts)
    candidates: list[tuple[int, int, str, bytes]] = []
    if coder in ("auto", "huffman", "fixed") or not table_ok:
        candidates.append((0, 0, "fixed", encode_fixed(symbols, width)))
    if table_ok and coder in ("auto", "huffman"):
        candidates.append((0, 1, "huffman", encode_huffman(symbols, counts)))
    if table_ok and coder in ("auto", "rans") and n <= RANS_MAX_SYMBOLS:
        # rANS cannot beat the bound; skip its (slower) encoder when Huffman is already
        # within the rANS overhead of the bound.
        if coder == "rans" or not candidates or 8 * len(candidates[-1][3]) > h + 64:
            candidates.append((0, 2, "rans", encode_rans(symbols)))
    if not candidates:  # rANS asked for a stream too long for it
        candidates.append((0, 0, "fixed", encode_fixed(symbols, width)))
    name, payload = min(((len(c[3]), c[1], c[2], c[3]) for c in candidates))[2:]
    return EncodedStream(name, n, payload, h, n * width)


def decode_stream(coder: str | int, payload: bytes | memoryview, count: int, alphabet: int) -> np.ndarray:
    """Decodes one stream of ``count`` symbols, each checked to lie in ``0..alphabet-1``."""
    if isinstance(coder, int):
        if coder not in CODER_NAMES:
            raise _corrupt(f"unknown stream coder id {coder}")
        coder = CODER_NAMES[coder]
    if coder == "fixed":
        return decode_fixed(payload, count, alphabet)
    if coder == "huffman":
        return decode_huffman(payload, count, alphabet)
    if coder == "rans":
        return decode_rans(payload, count, alphabet)
    raise _corrupt(f"unknown stream coder '{coder}'")


# --------------------------------------------------------------------------- sparse positions


def gaps_from_positions(
    positions: np.ndarray, values: np.ndarray, gap_bits: int, filler: int
) -> tuple[np.ndarray, np.ndarray]:
    """Deep Compression's relative indexing of sparse positions (section 4, figure 2).

    Each kept entry stores the number of zero positions skipped since the previous entry
    (``gap``, ``0 .. 2**gap_bits - 1``); the first counts from position 0. When more zeros
    are skipped than ``gap_bits`` can say, a *filler* entry is inserted ``2**gap_bits``
    positions after the previous one, with gap ``2**gap_bits - 1`` and value ``filler``
    (which the value stream decodes to an exact zero), as often as needed.

    :param positions: strictly increasing flat positions of the kept entries.
    :param values: the value symbol of each kept entry.
    :return: ``(gaps, values)`` with fillers included, both of one length.
    """
    positions = np.asarray(positions, np.int64).ravel()
    values = np.asarray(values).ravel()
    if not 1 <= gap_bits <= 16:
        raise InvalidValueError(f"gap bits {gap_bits} must be in 1..16")
    if positions.size != values.size:
        raise InvalidValueError("positions and values differ in length")
    if positions.size == 0:
        return np.zeros(0, np.int64), values.astype(np.int64)
    runs = np.diff(positions, prepend=-1) - 1
    if int(runs.min()) < 0:
        raise InvalidValueError("positions must be strictly increasing and >= 0")
    limit = 1 << gap_bits
    fillers = runs // limit
    per_entry = fillers + 1
    total = int(per_entry.sum())
    real = np.cumsum(per_entry) - 1
    gaps = np.full(total, limit - 1, np.int64)
    gaps[real] = runs % limit
    out_values = np.full(total, filler, np.int64)
    out_values[real] = values
    return gaps, out_values


def positions_from_gaps(gaps: np.ndarray, size: int) -> np.ndarray:
    """Flat positions of the entries (fillers included) that ``gaps`` describe, checked < ``size``."""
    gaps = np.asarray(gaps, np.int64)
    positions = np.cumsum(gaps + 1) - 1
    if positions.size and int(positions[-1]) >= size:
        raise _corrupt(f"sparse positions run to {int(positions[-1])}, past the layer's {size} elements")
    return positions


def estimate_sparse_bits(positions: np.ndarray, values: np.ndarray, gap_bits: int) -> float:
    """About what a sparse layer's gap and value streams cost at ``gap_bits``, coded.

    Their entropy bound plus about 6 bits per table entry; fillers count as a value symbol
    of their own. Used to choose the gap width.
    """
    positions = np.asarray(positions, np.int64)
    values = np.asarray(values, np.int64)
    filler = int(values.max()) + 1 if values.size else 0
    gaps, vals = gaps_from_positions(positions, values, gap_bits, filler)
    table = 6 * (np.unique(gaps).size + np.unique(vals).size)  # about 6 bits per table entry
    return entropy_bits(gaps) + entropy_bits(vals) + table


def best_gap_bits(positions: np.ndarray, values: np.ndarray, candidates: range = range(1, 17)) -> int:
    """The gap width (bits) whose streams cost least (:func:`estimate_sparse_bits`).

    A narrow width needs many fillers; a wide one spreads the gaps over a larger alphabet.
    With entropy coding the best width is usually the one just past most gaps.
    """
    best: tuple[float, int] | None = None
    for b in candidates:
        cost = estimate_sparse_bits(positions, values, b)
        if best is None or cost < best[0] - 1e-9:
            best = (cost, b)
    if best is None:
        raise InvalidValueError("no candidate gap width given")
    return best[1]
