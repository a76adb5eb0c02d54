"""The .sigdl artifact and its coders: bit-exact round trips, bounds, and a strict reader.

Covers :mod:`sigdl_core.entropy` (fixed width, canonical Huffman, rANS, relative indexing with
fillers) and :mod:`sigdl_core.artifact` (container, writer, strict reader, decoder).
"""

from __future__ import annotations

import math
import os
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sigdl_core import artifact as A
from sigdl_core import entropy as E
from sigdl_core.errors import InvalidValueError, ModelFileError

CODERS = ("fixed", "huffman", "rans")


# --------------------------------------------------------------------------- coders


def _roundtrip(symbols: np.ndarray, alphabet: int, coder: str) -> E.EncodedStream:
    stream = E.encode_stream(symbols, alphabet, coder)
    decoded = E.decode_stream(stream.coder, stream.payload, stream.count, alphabet)
    np.testing.assert_array_equal(decoded, symbols)
    return stream


@pytest.mark.parametrize("coder", CODERS + ("auto",))
@pytest.mark.parametrize("n", [0, 1, 2, 7, 1000, 20_000])
def test_streams_round_trip_on_known_distributions(coder: str, n: int) -> None:
    rng = np.random.default_rng(n)
    for symbols in (np.minimum(rng.geometric(0.3, n) - 1, 31), rng.integers(0, 32, n), np.full(n, 5),
                    rng.choice([0, 31], n, p=[0.97, 0.03])):
        _roundtrip(symbols.astype(np.int64), 32, coder)


def test_huffman_is_within_one_bit_per_symbol_of_the_entropy_and_rans_closer() -> None:
    rng = np.random.default_rng(1)
    n = 50_000
    geometric = np.minimum(rng.geometric(0.25, n) - 1, 63)
    uniform = rng.integers(0, 64, n)
    skewed = rng.choice(4, n, p=[0.9, 0.05, 0.03, 0.02])
    for symbols in (geometric, uniform, skewed):
        bound = E.entropy_bits(symbols)
        huff = _roundtrip(symbols, 64, "huffman")
        rans = _roundtrip(symbols, 64, "rans")
        # Huffman: H <= L < H + 1 per symbol (plus its table); rANS within 1 % + table/state.
        assert bound <= huff.bits <= bound + n + 64 * 8 + 64
        assert bound <= rans.bits <= 1.01 * bound + 64 * 12 + 128
    # On the skewed stream Huffman pays ~0.5 bit/symbol over H; rANS must beat it clearly.
    huff = E.encode_stream(skewed, 64, "huffman")
    rans = E.encode_stream(skewed, 64, "rans")
    assert rans.bits < 0.8 * huff.bits
    assert E.encode_stream(skewed, 64, "auto").coder == "rans"
    # On a uniform stream over a power-of-two alphabet, fixed width is optimal and is chosen.
    assert E.encode_stream(uniform, 64, "auto").coder == "fixed"


def test_one_symbol_stream_costs_a_few_bytes() -> None:
    symbols = np.full(100_000, 3)
    stream = _roundtrip(symbols, 8, "auto")
    assert stream.entropy_bits == 0
    assert len(stream.payload) <= 4


def test_huffman_code_lengths_are_optimal_and_limited() -> None:
    lengths = E.huffman_code_lengths(np.array([45, 13, 12, 16, 9, 5]))  # CLRS's example
    assert list(lengths) == [1, 3, 3, 3, 4, 4]
    fib = np.array([1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597, 2584, 4181,
                    6765, 10946, 17711, 28657, 46368, 75025, 121393])  # Huffman depth 25 > 24
    limited = E.huffman_code_lengths(fib, max_length=12)
    assert limited.max() <= 12
    assert sum(2.0 ** -limited) == 1.0  # still a complete prefix code
    symbols = np.repeat(np.arange(fib.size), fib)
    _roundtrip(symbols, fib.size, "huffman")


def test_rans_frequencies_sum_to_the_table_size() -> None:
    counts = np.array([1000, 1, 0, 1, 50, 0, 7])
    for bits in (3, 8, 12, 16):
        f = E.quantize_frequencies(counts, bits)
        assert f.sum() == 1 << bits
        assert np.all(f[counts > 0] >= 1) and np.all(f[counts == 0] == 0)


@pytest.mark.parametrize("lanes", [3, 61, 700])
def test_rans_lanes_round_trip(lanes: int) -> None:
    rng = np.random.default_rng(lanes)
    n = 12_000 + lanes // 2  # the last step leaves some lanes idle
    symbols = np.minimum(rng.geometric(0.2, n) - 1, 255)
    payload = E.encode_rans(symbols, lanes=lanes)
    np.testing.assert_array_equal(E.decode_rans(payload, n, 256), symbols)
    assert 8 * len(payload) <= 1.01 * E.entropy_bits(symbols) + lanes * 64 + 2000
    with pytest.raises(ModelFileError):
        E.decode_rans(payload, n - 1, 256)


def test_long_streams_get_lanes_automatically() -> None:
    n = E.RANS_SCALAR_MAX + 1
    symbols = (np.arange(n) % 3 == 0).astype(np.int64)
    payload = E.encode_rans(symbols)
    lanes, _ = E.decode_varint(payload, _rans_lane_pos(payload))
    assert lanes == -(-n // E.RANS_SYMBOLS_PER_LANE)
    np.testing.assert_array_equal(E.decode_rans(payload, n, 2), symbols)


def _rans_lane_pos(payload: bytes) -> int:
    r = E._BitReader(payload)
    r.read(4)
    E._read_table(r, 2, 1 << 16)
    return r.byte_pos()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 57), st.integers(0, 2**57 - 1)), max_size=300))
def test_pack_bits_matches_a_bit_string(items) -> None:
    widths = np.array([w for w, _ in items], np.int64)
    values = np.array([v & ((1 << w) - 1) for w, v in items], np.uint64)
    data, nbits = E.pack_bits(values, widths)
    expected = "".join(format(int(v), f"0{w}b") for v, w in zip(values, widths))
    assert nbits == len(expected)
    got = "".join(format(b, "08b") for b in data)
    assert got[:nbits] == expected and set(got[nbits:]) <= {"0"} and len(got) == 8 * -(-nbits // 8)


@pytest.mark.parametrize("width", [1, 3, 5, 8, 11, 16, 24, 32])
def test_fixed_width_round_trip(width: int) -> None:
    rng = np.random.default_rng(width)
    symbols = rng.integers(0, 1 << width, 1001, dtype=np.int64)
    payload = E.encode_fixed(symbols, width)
    assert len(payload) == 1 + math.ceil(1001 * width / 8)
    np.testing.assert_array_equal(E.decode_fixed(payload, 1001, 1 << width), symbols)


def test_decoders_reject_wrong_counts_and_damage() -> None:
    rng = np.random.default_rng(3)
    symbols = np.minimum(rng.geometric(0.3, 5000) - 1, 15)
    for coder in CODERS:
        s = E.encode_stream(symbols, 16, coder)
        for count in (s.count - 1, s.count + 1, 0):
            with pytest.raises(ModelFileError):
                E.decode_stream(coder, s.payload, count, 16)
        with pytest.raises(ModelFileError):
            E.decode_stream(coder, s.payload[:-1], s.count, 16)
        with pytest.raises(ModelFileError):
            E.decode_stream(coder, s.payload + b"\0", s.count, 16)
        with pytest.raises(ModelFileError):  # a smaller alphabet than the symbols need
            E.decode_stream(coder, s.payload, s.count, int(symbols.max()))


# --------------------------------------------------------------------------- gaps and fillers


@pytest.mark.parametrize("gap_bits", [1, 3, 5, 8])
def test_gaps_insert_fillers_exactly_at_overflow(gap_bits: int) -> None:
    limit = 1 << gap_bits
    # Runs of zeros: limit - 1 fits; limit needs one filler; 2 * limit needs two, etc.
    runs = [0, limit - 1, limit, limit + 1, 2 * limit - 1, 2 * limit, 3 * limit + 2]
    positions = np.cumsum(np.array(runs) + 1) - 1
    values = np.arange(1, len(runs) + 1)
    gaps, vals = E.gaps_from_positions(positions, values, gap_bits, filler=0)
    expected_fillers = sum(r // limit for r in runs)
    assert np.count_nonzero(vals == 0) == expected_fillers
    assert gaps.max() <= limit - 1
    assert np.all(gaps[vals == 0] == limit - 1)  # a filler sits 2**b after its predecessor
    decoded = E.positions_from_gaps(gaps, int(positions[-1]) + 1)
    np.testing.assert_array_equal(decoded[vals != 0], positions)
    np.testing.assert_array_equal(vals[vals != 0], values)


def test_paper_figure_example() -> None:
    # Deep Compression, figure 2 (3-bit gaps): entries at 1, 4 and 15; 15 - 4 = 11 > 8
    # needs one filler at 12.
    gaps, vals = E.gaps_from_positions(np.array([1, 4, 15]), np.array([1, 2, 3]), 3, filler=0)
    assert list(vals) == [1, 2, 0, 3]
    assert list(E.positions_from_gaps(gaps, 16)) == [1, 4, 12, 15]


def test_sparse_layer_with_fillers_decodes_zeros_there() -> None:
    w = np.zeros((4, 300), np.float32)
    w[0, 0], w[3, 299], w[2, 17] = 1.5, -2.0, 0.25
    mask = w != 0
    layer = A.encode_codebook_layer("x", np.array([-2.0, 0.25, 1.5], np.float32),
                                    np.select([w == -2, w == 0.25, w == 1.5], [0, 1, 2], 0), mask, 5, "fixed")
    assert layer.value_stream.count > 3  # fillers were needed
    np.testing.assert_array_equal(layer.decode(), w)


# --------------------------------------------------------------------------- layers and files


def _sample_layers(rng: np.random.Generator) -> list[A.ArtifactLayer]:
    w = rng.normal(0, 0.05, (30, 40)).astype(np.float32)
    mask = rng.random(w.shape) < 0.2
    cb = np.linspace(-0.1, 0.1, 16).astype(np.float32)
    idx = rng.integers(0, 16, w.shape)
    m8 = rng.random((6, 10)) < 0.4
    zp8 = rng.integers(-5, 5, 6)
    q8 = np.where(m8, rng.integers(-128, 128, (6, 10)), zp8[:, None])
    return [
        A.encode_codebook_layer("conv.weight", cb, idx, mask, 8, "huffman"),
        A.encode_codebook_layer("dense.weight", cb, idx, None, 8, "rans"),
        A.encode_float_layer("conv.bias", rng.normal(size=30)),
        A.encode_float_layer("sparse32", w * mask, mask=mask, gap_bits=4),
        A.encode_float_layer("half", (w * mask).astype(np.float16).astype(np.float32), half=True, mask=mask,
                             gap_bits=5, coder="auto"),
        A.encode_float_layer("half_dense", w.astype(np.float16).astype(np.float32), half=True),
        A.encode_int8_layer("q", q8, rng.random(6) + 0.1, zp8, axis=0, mask=m8, gap_bits=3),
        A.encode_int8_layer("qu", rng.integers(0, 256, (5, 7)), [0.5], [3], axis=None, signed=False),
        A.encode_float_layer("scalar", np.float32(3.0)),
    ]


def test_write_read_decode_is_bit_exact(tmp_path) -> None:
    rng = np.random.default_rng(4)
    layers = _sample_layers(rng)
    path = tmp_path / "m.sigdl"
    size = A.write_artifact(path, layers, {"model": "test", "n": [1, 2]})
    assert size == os.path.getsize(path)
    read, meta = A.read_artifact(path)
    assert meta == {"model": "test", "n": [1, 2]}
    expected = A.decode_weights(layers)
    got = A.decode_weights(read)
    assert list(got) == [layer.name for layer in layers]
    for name, arr in expected.items():
        assert got[name].dtype == np.float32 and got[name].shape == arr.shape
        np.testing.assert_array_equal(got[name].view(np.uint32), arr.view(np.uint32))
    assert got["scalar"].shape == () and float(got["scalar"]) == 3.0


def test_layers_decode_to_what_was_encoded() -> None:
    rng = np.random.default_rng(5)
    w = rng.normal(size=(8, 9)).astype(np.float32)
    assert np.array_equal(A.encode_float_layer("a", w).decode(), w)
    mask = rng.random(w.shape) < 0.5
    assert np.array_equal(A.encode_float_layer("a", w * mask, mask=mask).decode(), w * mask)
    scale, zp = np.float32(0.02), 3
    q = A.quantize_linear(w, [scale], [zp], None, signed=False)
    np.testing.assert_array_equal(A.encode_int8_layer("a", q, [scale], [zp], signed=False).decode(),
                                  A.dequantize_linear(q, [scale], [zp]))


def test_quantize_linear_matches_onnx_reference() -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(6)
    scale = np.array([0.1, 0.05, 0.2], np.float32)
    zp = np.array([0, 3, -2], np.int8)
    x = rng.normal(0, 3, (3, 50)).astype(np.float32)
    x[:, :10] = (np.arange(10) + 0.5) * scale[:, None]  # exact ties: rounding half to even
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], axis=0)
    graph = helper.make_graph([node], "q", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.INT8, x.shape)],
                              [numpy_helper.from_array(scale, "s"), numpy_helper.from_array(zp, "z")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
    np.testing.assert_array_equal(A.quantize_linear(x, scale, zp, axis=0, signed=True), expected)


def test_write_is_atomic_and_leaves_no_temporary(tmp_path) -> None:
    path = tmp_path / "m.sigdl"
    A.write_artifact(path, [A.encode_float_layer("a", np.ones(3))])
    before = path.read_bytes()
    with pytest.raises(InvalidValueError):
        A.write_artifact(path, [A.encode_float_layer("a", np.ones(3)), A.encode_float_layer("a", np.ones(3))])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.sigdl"]


def test_writer_refuses_what_readers_would_refuse(tmp_path) -> None:
    huge = A.encode_codebook_layer("z", np.array([1.0], np.float32), np.zeros((4000, 4000), np.int64),
                                   np.zeros((4000, 4000), bool), 16, "huffman")
    with pytest.raises(InvalidValueError, match="per byte"):
        A.write_artifact(tmp_path / "z.sigdl", [huge])


# --------------------------------------------------------------------------- the strict reader


@pytest.fixture(scope="module")
def good_file() -> bytes:
    return A.artifact_bytes(_sample_layers(np.random.default_rng(7)), {"model": "x"})


def _parse_and_decode(data: bytes) -> None:
    layers, _ = A.parse_artifact(data)
    A.decode_weights(layers)


def _resealed(body: bytes) -> bytes:
    """``body`` (everything but the checksum) with a valid CRC-32 appended."""
    return body + struct.pack("<I", zlib.crc32(body))


def test_good_file_parses(good_file: bytes) -> None:
    _parse_and_decode(good_file)


def test_every_flipped_byte_is_rejected(good_file: bytes) -> None:
    step = max(1, len(good_file) // 400)
    for i in range(0, len(good_file), step):
        bad = bytearray(good_file)
        bad[i] ^= 0x5A
        with pytest.raises(ModelFileError):
            _parse_and_decode(bytes(bad))


@pytest.mark.parametrize("tenth", range(10))
def test_truncated_files_are_rejected(good_file: bytes, tenth: int, tmp_path) -> None:
    path = tmp_path / "t.sigdl"
    path.write_bytes(good_file[: len(good_file) * tenth // 10])
    with pytest.raises(ModelFileError):
        A.read_artifact(path)


def test_missing_and_non_sigdl_files_are_rejected(tmp_path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        A.read_artifact(tmp_path / "nope.sigdl")
    (tmp_path / "x.sigdl").write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(ModelFileError, match="magic"):
        A.read_artifact(tmp_path / "x.sigdl")
    bad_version = bytearray(A.artifact_bytes([A.encode_float_layer("a", np.ones(2))]))
    bad_version[6] = 9
    with pytest.raises(ModelFileError, match="version 9"):
        A.parse_artifact(bytes(bad_version))


def _header_file(records: bytes, payload: bytes = b"", n_layers: int = 1, meta: bytes = b"{}") -> bytes:
    header = E.encode_varint(n_layers) + E.encode_varint(len(meta)) + meta + records
    return _resealed(A.PREAMBLE.pack(A.MAGIC, A.FORMAT_VERSION, len(header)) + header + payload)


def _record(name: bytes = b"w", kind: int = 0x04, dims: tuple[int, ...] = (4,), extra: bytes = b"",
            streams: tuple[tuple[int, int, int], ...] = ((0, 4, 2),)) -> bytes:
    out = E.encode_varint(len(name)) + name + bytes([kind, len(dims)])
    out += b"".join(E.encode_varint(d) for d in dims) + extra
    for coder, count, length in streams:
        out += bytes([coder]) + E.encode_varint(count) + E.encode_varint(length)
    return out


CODEBOOK = E.encode_varint(2) + np.array([0.5, -0.5], "<f4").tobytes()


def test_handmade_valid_file_decodes() -> None:
    payload = E.encode_fixed(np.array([0, 1, 1, 0]), 1)
    layers, _ = A.parse_artifact(_header_file(_record(extra=CODEBOOK), payload))
    np.testing.assert_array_equal(A.decode_weights(layers)["w"], [0.5, -0.5, -0.5, 0.5])


P = pytest.param
NEG_SCALE = b"\x01\x00" + E.encode_varint(1) + np.array([-1], "<f4").tobytes() + b"\x80"


@pytest.mark.parametrize(
    "record, payload, message",
    [
        P(_record(dims=(10**5, 10**5), extra=CODEBOOK, streams=((0, 10**10, 2),)), b"\x01\x00", "per byte",
          id="1e10-elements-in-a-tiny-file"),
        P(_record(dims=(1 << 33, 1 << 33)), b"", "absurd shape", id="absurd-shape"),
        P(_record(dims=(2**64 - 1,)), b"", "ends inside|longer than", id="negative-as-64-bit"),
        P(_record(dims=(1,) * 9), b"", "dims", id="too-many-dims"),
        P(_record(kind=0x07, extra=CODEBOOK), b"\x01\x00", "unknown encoding kind", id="unknown-kind"),
        P(_record(kind=0x44, extra=CODEBOOK), b"\x01\x00", "unknown encoding kind", id="unknown-layout"),
        P(_record(kind=0x24, dims=(4, 4), extra=CODEBOOK + E.encode_varint(3)), b"\x01\x00", "block 3",
          id="circulant-block-not-power-of-two"),
        P(_record(kind=0x24, dims=(4, 4), extra=CODEBOOK + E.encode_varint(1 << 17)), b"\x01\x00", "block",
          id="circulant-block-too-large"),
        P(_record(kind=0x24, dims=(4,), extra=CODEBOOK + E.encode_varint(4)), b"\x01\x00", "at least 2",
          id="circulant-1-d"),
        P(_record(kind=0x24, dims=(4, 4), extra=CODEBOOK + E.encode_varint(4), streams=((0, 16, 2),)),
          b"\x01\x00", "values for 4 elements", id="circulant-count-is-the-vectors"),
        P(_record(kind=0x24, dims=(10**5, 10**5), extra=CODEBOOK + E.encode_varint(1 << 16),
                  streams=((0, 4 * (1 << 16), 2),)), b"\x01\x00", "per byte", id="circulant-1e10-elements"),
        P(_record(kind=0x23, dims=(4, 4), extra=b"\x01\x00" + E.encode_varint(4) + np.ones(4, "<f4").tobytes()
                  + bytes(4) + E.encode_varint(4)), b"\x01\x00", "per tensor", id="circulant-int8-per-channel"),
        P(_record(kind=0x34, dims=(2, 3, 4), extra=CODEBOOK + b"\x05", streams=((0, 4, 2), (0, 4, 1))),
          b"\x01\x00\x00", "square", id="dct-sparse-not-square"),
        P(_record(extra=CODEBOOK, streams=((9, 4, 2),)), b"\x01\x00", "unknown coder", id="unknown-coder"),
        P(_record(extra=CODEBOOK, streams=((0, 4, 10**9),)), b"\x01\x00", "declare", id="length-past-end"),
        P(_record(extra=CODEBOOK, streams=((0, 5, 2),)), b"\x01\x00", "values for 4 elements", id="count"),
        P(_record(extra=E.encode_varint(0)), b"\x01\x00", "codebook of 0", id="empty-codebook"),
        P(_record(extra=E.encode_varint(2) + np.array([np.nan, 1], "<f4").tobytes()), b"\x01\x00", "finite",
          id="nan-codebook"),
        P(_record(name=b"\xff\xfe", extra=CODEBOOK), b"\x01\x00", "UTF-8", id="name-not-utf8"),
        P(_record(kind=0x01, streams=((1, 4, 2),)), b"\x01\x00", "float32 values", id="f32-huffman"),
        P(_record(kind=0x03, extra=NEG_SCALE), b"\x01\x00", "scale", id="negative-scale"),
        P(_record(kind=0x14, extra=CODEBOOK + b"\x11"), b"", "gap bits", id="gap-bits-17"),
    ],
)
def test_hostile_headers_are_rejected_before_allocating(record: bytes, payload: bytes, message: str) -> None:
    data = _header_file(record, payload)
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=message):
            _parse_and_decode(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # nothing near what the header claims was allocated


def test_version_1_files_decode_and_lack_the_new_layouts() -> None:
    payload = E.encode_fixed(np.array([0, 1, 1, 0]), 1)
    header = E.encode_varint(1) + E.encode_varint(2) + b"{}" + _record(extra=CODEBOOK)
    v1 = _resealed(A.PREAMBLE.pack(A.MAGIC, 1, len(header)) + header + payload)
    layers, _ = A.parse_artifact(v1)
    np.testing.assert_array_equal(A.decode_weights(layers)["w"], [0.5, -0.5, -0.5, 0.5])
    header = (E.encode_varint(1) + E.encode_varint(2) + b"{}"
              + _record(kind=0x24, dims=(2, 2), extra=CODEBOOK + E.encode_varint(2), streams=((0, 2, 1),)))
    with pytest.raises(ModelFileError, match="unknown encoding kind"):
        A.parse_artifact(_resealed(A.PREAMBLE.pack(A.MAGIC, 1, len(header)) + header + b"\x01"))


def test_bad_counts_and_layer_lists_are_rejected() -> None:
    payload = E.encode_fixed(np.array([0, 1, 1, 0]), 1)
    rec = _record(extra=CODEBOOK)
    with pytest.raises(ModelFileError, match="twice"):
        A.parse_artifact(_header_file(rec + rec, payload + payload, n_layers=2))
    with pytest.raises(ModelFileError, match="header"):
        A.parse_artifact(_header_file(rec, payload, n_layers=2))
    with pytest.raises(ModelFileError, match="after the last layer"):
        A.parse_artifact(_header_file(rec + b"\0", payload))
    with pytest.raises(ModelFileError, match="metadata"):
        A.parse_artifact(_header_file(rec, payload, meta=b"[1, 2]"))
    with pytest.raises(ModelFileError, match="metadata"):
        A.parse_artifact(_header_file(rec, payload, meta=b"{" * 100_000))
    with pytest.raises(ModelFileError, match="layers"):
        A.parse_artifact(_header_file(rec, payload, n_layers=10**9))
    # A value stream whose symbols fall outside the codebook.
    with pytest.raises(ModelFileError, match="alphabet"):
        _parse_and_decode(_header_file(rec, E.encode_fixed(np.array([0, 3, 1, 0]), 2)))


def test_stream_that_decodes_to_a_different_count_is_rejected() -> None:
    rng = np.random.default_rng(8)
    w = rng.normal(size=(50, 50)).astype(np.float32)
    mask = rng.random(w.shape) < 0.3
    cb = np.linspace(-2, 2, 8).astype(np.float32)
    idx = rng.integers(0, 8, w.shape)
    for coder in CODERS:
        layer = A.encode_codebook_layer("w", cb, idx, mask, 4, coder)
        g = layer.gap_stream
        v = layer.value_stream
        # Declare one entry fewer in both streams (consistent counts, wrong bit streams).
        layer.value_stream = E.EncodedStream(v.coder, v.count - 1, v.payload)
        layer.gap_stream = E.EncodedStream(g.coder, g.count - 1, g.payload)
        with pytest.raises(ModelFileError):
            _parse_and_decode(A.artifact_bytes([layer]))


# --------------------------------------------------------------------------- property-based


@st.composite
def layer_cases(draw):
    shape = tuple(draw(st.lists(st.integers(1, 12), min_size=1, max_size=3)))
    size = math.prod(shape)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    density = draw(st.sampled_from([0.0, 0.05, 0.3, 1.0]))
    mask = rng.random(shape) < density if draw(st.booleans()) else None
    form = draw(st.sampled_from(["codebook", "int8", "f16", "f32"]))
    coder = draw(st.sampled_from(["auto", "huffman", "rans", "fixed"]))
    gap_bits = draw(st.integers(1, 9))
    bits = draw(st.integers(1, 10))
    return shape, size, rng, mask, form, coder, gap_bits, bits


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layer_cases())
def test_random_layers_round_trip_bit_exactly(case) -> None:
    shape, size, rng, mask, form, coder, gap_bits, bits = case
    if form == "codebook":
        k = 1 << bits
        cb = rng.normal(size=k).astype(np.float32)
        idx = rng.integers(0, k, shape)
        layer = A.encode_codebook_layer("l", cb, idx, mask, gap_bits, coder)
        expected = cb[idx] if mask is None else np.where(mask, cb[idx], 0)
    elif form == "int8":
        signed = bool(rng.integers(2))
        axis = 0 if rng.integers(2) else None
        ch = 1 if axis is None else shape[0]
        scale = (rng.random(ch) + 0.01).astype(np.float32)
        lo, hi = A.int8_range(signed)
        zp = rng.integers(lo, hi + 1, ch)
        q = rng.integers(lo, hi + 1, shape)
        if mask is not None:
            zq = zp.reshape((-1,) + (1,) * (len(shape) - 1)) if axis == 0 else zp.reshape((1,) * len(shape))
            q = np.where(mask, q, np.broadcast_to(zq, shape))
        layer = A.encode_int8_layer("l", q, scale, zp, axis, signed, mask, gap_bits, coder)
        expected = A.dequantize_linear(q, scale, zp, axis)
    else:
        w = rng.normal(size=shape).astype(np.float32)
        if form == "f16":
            w = w.astype(np.float16).astype(np.float32)
        if mask is not None:
            w = np.where(mask, w, np.float32(0))
        layer = A.encode_float_layer("l", w, form == "f16", mask, gap_bits, coder)
        expected = w
    data = A.artifact_bytes([layer], {})
    layers, _ = A.parse_artifact(data)
    got = A.decode_weights(layers)["l"]
    assert got.shape == shape
    np.testing.assert_array_equal(got.view(np.uint32), np.asarray(expected, np.float32).view(np.uint32))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=0, max_size=400), st.sampled_from(CODERS))
def test_random_streams_round_trip(symbols, coder) -> None:
    _roundtrip(np.array(symbols, np.int64), 301, coder)


def test_rans_streams_with_too_many_steps_are_refused() -> None:
    n = E.RANS_SCALAR_MAX + 1
    with pytest.raises(InvalidValueError, match="steps"):
        E.encode_rans(np.zeros(n, np.int64), lanes=1)
    # A header declaring one lane for that many symbols is rejected before decoding.
    payload = E.encode_rans(np.zeros(100, np.int64), lanes=1)
    with pytest.raises(ModelFileError, match="steps"):
        E.decode_rans(payload, n, 2)
