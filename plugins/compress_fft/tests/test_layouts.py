"""The circulant and dct-sparse ``.sigdl`` layouts: bit-exact round trips (hypothesis), and
truncated or corrupt files refused, with exit code 2 from the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sigdl_core import artifact as A
from sigdl_core.errors import ModelFileError
from sigdl_core.structured_weights import circulant_vector_shape, dct2, expand_circulant, idct2


def _circulant_layer(values: str, shape, block, seed):
    rng = np.random.default_rng(seed)
    vshape = circulant_vector_shape(shape, block)
    if values == "codebook":
        codebook = rng.standard_normal(8).astype(np.float32)
        idx = rng.integers(0, 8, vshape)
        inner = A.encode_codebook_layer("w", codebook, idx, coder="auto")
        expected = expand_circulant(codebook[idx], shape, block)
    elif values == "int8":
        q = rng.integers(-128, 128, vshape).astype(np.int8)
        inner = A.encode_int8_layer("w", q, np.float32(0.01), 3, None, True, coder="auto")
        expected = expand_circulant(A.dequantize_linear(q, np.float32(0.01), 3), shape, block)
    else:
        v = rng.standard_normal(vshape).astype(np.float32)
        if values == "f16":
            v = v.astype(np.float16).astype(np.float32)
        inner = A.encode_float_layer("w", v, values == "f16", coder="auto")
        expected = expand_circulant(v, shape, block)
    return A.as_circulant_layer(inner, shape, block), expected


@settings(max_examples=60, deadline=None)
@given(values=st.sampled_from(["f32", "f16", "int8", "codebook"]), p=st.integers(1, 40), q=st.integers(1, 40),
       rest=st.sampled_from([(), (3, 3), (1, 5)]), log_b=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_circulant_layout_round_trips_bit_exactly(values, p, q, rest, log_b, seed) -> None:
    shape = (p, q, *rest)
    layer, expected = _circulant_layer(values, shape, 1 << log_b, seed)
    data = A.artifact_bytes([layer], {"m": 1})
    back, meta = A.parse_artifact(data)
    assert meta == {"m": 1} and back[0].layout == "circulant" and back[0].block == 1 << log_b
    decoded = A.decode_weights(back)["w"]
    assert decoded.shape == shape
    np.testing.assert_array_equal(decoded.view(np.uint32), expected.view(np.uint32))


@settings(max_examples=60, deadline=None)
@given(o=st.integers(1, 6), c=st.integers(1, 6), k=st.integers(2, 7), keep=st.floats(0.05, 1.0),
       half=st.booleans(), seed=st.integers(0, 2**16))
def test_dct_sparse_layout_round_trips_bit_exactly(o, c, k, keep, half, seed) -> None:
    w = np.random.default_rng(seed).standard_normal((o, c, k, k)).astype(np.float32)
    x = dct2(w).astype(np.float32)
    mask = np.abs(x) >= np.quantile(np.abs(x), 1 - keep)
    x[~mask] = 0
    if half:
        x = x.astype(np.float16).astype(np.float32)
    layer = A.as_dct_sparse_layer(A.encode_float_layer("k", x, half, mask, 4, "auto"))
    back, _ = A.parse_artifact(A.artifact_bytes([layer]))
    decoded = A.decode_weights(back)["k"]
    np.testing.assert_array_equal(decoded.view(np.uint32), idct2(x).view(np.uint32))


def test_idct_is_deterministic_and_inverts_the_dct() -> None:
    w = np.random.default_rng(0).standard_normal((4, 3, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(idct2(dct2(w)), w, atol=1e-6)
    scipy_fft = pytest.importorskip("scipy.fft")
    np.testing.assert_allclose(dct2(w), scipy_fft.dctn(w.astype(np.float64), axes=(-2, -1), norm="ortho"),
                               atol=1e-12)


def _file(tmp_path):
    layer, _ = _circulant_layer("codebook", (20, 30), 8, 0)
    x = np.zeros((2, 2, 3, 3), np.float32)
    x[..., 0, 0] = 1.5
    sparse = A.as_dct_sparse_layer(A.encode_float_layer("k", x, True, x != 0, 4, "auto"))
    path = tmp_path / "m.sigdl"
    A.write_artifact(path, [layer, sparse], {"framework": "torch", "model": "x", "input_shape": [1],
                                             "num_classes": 2})
    return path


def test_truncated_or_flipped_files_are_refused(tmp_path) -> None:
    data = _file(tmp_path).read_bytes()
    for cut in (10, len(data) // 2, len(data) - 1):
        with pytest.raises(ModelFileError):
            A.parse_artifact(data[:cut])
    for pos in range(8, len(data), max(1, len(data) // 25)):
        bad = bytearray(data)
        bad[pos] ^= 0x5A
        with pytest.raises(ModelFileError):
            A.decode_weights(A.parse_artifact(bytes(bad))[0])


def test_the_cli_refuses_a_truncated_artifact_with_exit_2(tmp_path, sigdl_cli) -> None:
    path = _file(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 7])
    result = sigdl_cli(["decode", str(path)])
    assert result.exit_code == 2
    assert "not a valid .sigdl file" in result.output and "Traceback" not in result.output
