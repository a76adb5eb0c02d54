"""The C66x integer kernels against a straightforward reference written with plain loops.

The reference below shares no code with :mod:`sigdl_target_c66x.fixed_point`: Python
integers (unbounded), explicit loops over every output and kernel tap, the multiplier
derived with ``math.frexp``, the rounding shift written as ``(v + 2**(n-1)) >> n``. The
kernels must equal it bit for bit on random layers (hypothesis).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sigdl_target_c66x.fixed_point import (
    QuantParams,
    add_requantize,
    avg_pool_integer,
    conv2d_accumulate,
    fc_accumulate,
    global_avg_pool_integer,
    max_pool_integer,
    quantize_multiplier,
    requantize,
    rounding_shift,
    wrap_int32,
)

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- the reference


def ref_multiplier(ratio: float) -> tuple[int, int]:
    mant, exp = math.frexp(ratio)  # ratio = mant * 2**exp, 0.5 <= mant < 1
    m = math.floor(mant * 2**31 + 0.5)
    n = 31 - exp
    if m == 2**31:
        m //= 2
        n -= 1
    return m, n


def ref_requant(acc: int, ratio: float, zp: int, qmin: int, qmax: int) -> int:
    m, n = ref_multiplier(ratio)
    y = ((acc * m + 2 ** (n - 1)) >> n) + zp
    return min(max(y, qmin), qmax)


def ref_wrap(v: int) -> int:
    return ((v + 2**31) % 2**32) - 2**31


def ref_conv(x, zx, w, zw, bias, stride, pads, dil, group):
    n_, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    ho = (h + pads[0] + pads[2] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (wd + pads[1] + pads[3] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    out = [[[[0] * wo for _ in range(ho)] for _ in range(m)] for _ in range(n_)]
    mg = m // group
    for b in range(n_):
        for oc in range(m):
            g = oc // mg
            zwo = int(zw[oc]) if np.ndim(zw) else int(zw)
            for i in range(ho):
                for j in range(wo):
                    s = int(bias[oc]) if bias is not None else 0
                    for ic in range(cg):
                        for p in range(kh):
                            for q in range(kw):
                                r = i * stride[0] - pads[0] + p * dil[0]
                                col = j * stride[1] - pads[1] + q * dil[1]
                                if 0 <= r < h and 0 <= col < wd:
                                    xv = int(x[b, g * cg + ic, r, col]) - zx
                                else:
                                    xv = 0  # padding holds the zero point
                                s += xv * (int(w[oc, ic, p, q]) - zwo)
                    out[b][oc][i][j] = s
    return out


def _flat(nested) -> list[int]:
    if isinstance(nested, list):
        return [v for item in nested for v in _flat(item)]
    return [nested]


# --------------------------------------------------------------------------- basic rules


def test_c66x_rounding_shift_rounds_half_up() -> None:
    v = np.array([5, -5, 6, -6, 7, -7, 4, -4], np.int64)
    # halves: 2.5 → 3, −2.5 → −2 (toward +∞); 3.5 → 4, −3.5 → −3
    assert rounding_shift(v, np.int64(1)).tolist() == [3, -2, 3, -3, 4, -3, 2, -2]


@SETTINGS
@given(st.floats(min_value=1e-12, max_value=1e6, allow_nan=False, allow_infinity=False))
def test_c66x_quantize_multiplier_is_31_bit_and_accurate(ratio: float) -> None:
    m, n = quantize_multiplier(ratio)
    m, n = int(m), int(n)
    assert 1 <= n <= 62
    if n < 62:
        assert 2**30 <= m < 2**31
        assert (m, n) == ref_multiplier(ratio)
    assert abs(m / 2**n - ratio) <= 2.0 ** -(n + 1) * 1.0000001


def test_c66x_wrap_int32_counts_overflows() -> None:
    acc = np.array([2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 5 * 2**31 + 7], np.int64)
    wrapped, over = wrap_int32(acc)
    assert over == 3
    assert wrapped.tolist() == [ref_wrap(int(v)) for v in acc]


# --------------------------------------------------------------------------- random layers


@st.composite
def conv_layers(draw):
    group_kind = draw(st.sampled_from(["dense", "grouped", "depthwise"]))
    cg = draw(st.integers(1, 3))
    group = 1 if group_kind == "dense" else draw(st.integers(2, 3))
    if group_kind == "depthwise":
        cg = 1
    c = cg * group
    m = group * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h = draw(st.integers(max(1, dil[0] * (kh - 1) + 1 - pads[0] - pads[2]), 7))
    w = draw(st.integers(max(1, dil[1] * (kw - 1) + 1 - pads[1] - pads[3]), 7))
    n = draw(st.integers(1, 2))
    signed = draw(st.booleans())
    per_channel = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    return dict(n=n, c=c, m=m, kh=kh, kw=kw, h=h, w=w, dil=dil, stride=stride, pads=pads, group=group,
                signed=signed, per_channel=per_channel, seed=seed)


@SETTINGS
@given(conv_layers())
def test_c66x_conv_is_bit_exact_against_loops(layer) -> None:
    rng = np.random.default_rng(layer["seed"])
    lo, hi = (-128, 127) if layer["signed"] else (0, 255)
    x = rng.integers(lo, hi + 1, size=(layer["n"], layer["c"], layer["h"], layer["w"]))
    zx = int(rng.integers(lo, hi + 1))
    w = rng.integers(-127, 128, size=(layer["m"], layer["c"] // layer["group"], layer["kh"], layer["kw"]))
    zw = rng.integers(-3, 4, size=layer["m"]) if layer["per_channel"] else np.int64(0)
    bias = rng.integers(-(2**15), 2**15, size=layer["m"])
    acc, over = conv2d_accumulate(x, zx, (lo, hi), w, zw, (-128, 127), bias, layer["stride"],
                                  layer["pads"], layer["dil"], layer["group"])
    ref = ref_conv(x, zx, w, zw, bias, layer["stride"], layer["pads"], layer["dil"], layer["group"])
    assert over == 0
    assert acc.reshape(-1).tolist() == _flat(ref)
    # requantize: per-channel ratios, output uint8 or int8
    ratios = (rng.uniform(1e-4, 2e-2, size=layer["m"]) if layer["per_channel"]
              else np.array(rng.uniform(1e-4, 2e-2))).astype(np.float32)
    out = QuantParams.make(1.0, int(rng.integers(lo, hi + 1)), np.int8 if layer["signed"] else np.uint8)
    codes, _ = requantize(acc, ratios, out, "half-up", channel_axis=1)
    expect = []
    for b in range(layer["n"]):
        for oc in range(layer["m"]):
            r = float(ratios[oc] if ratios.ndim else ratios)
            for v in np.asarray(acc[b, oc]).reshape(-1):
                expect.append(ref_requant(int(v), r, int(out.zero_point), out.qmin, out.qmax))
    assert codes.reshape(-1).tolist() == expect


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 40), st.integers(1, 12), st.booleans(), st.integers(0, 2**32 - 1))
def test_c66x_fully_connected_is_bit_exact(n: int, k: int, m: int, signed: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    lo, hi = (-128, 127) if signed else (0, 255)
    x = rng.integers(lo, hi + 1, size=(n, k))
    zx = int(rng.integers(lo, hi + 1))
    w = rng.integers(-127, 128, size=(m, k))
    bias = rng.integers(-(2**20), 2**20, size=m)
    acc, over = fc_accumulate(x, zx, (lo, hi), w, 0, bias)
    ref = [[int(bias[j]) + sum((int(x[i, t]) - zx) * int(w[j, t]) for t in range(k)) for j in range(m)]
           for i in range(n)]
    assert over == 0
    assert acc.tolist() == ref
    ratio = np.float32(rng.uniform(1e-5, 1e-2))
    out = QuantParams.make(1.0, 3, np.int8)
    codes, _ = requantize(acc, ratio, out, "half-up")
    assert codes.tolist() == [[ref_requant(v, float(ratio), 3, -128, 127) for v in row] for row in ref]


def test_c66x_int16_accumulator_overflow_wraps_and_is_flagged() -> None:
    # int16 codes: 40 products of 32767·32767 exceed 2^31 many times over
    x = np.full((1, 40, 1, 1), 32767)
    w = np.full((2, 40, 1, 1), 32767)
    w[1] = -1
    acc, over = conv2d_accumulate(x, 0, (-32768, 32767), w, 0, (-32768, 32767), None)
    true0 = 40 * 32767 * 32767
    assert over == 1
    assert int(acc[0, 0, 0, 0]) == ref_wrap(true0)
    assert int(acc[0, 1, 0, 0]) == -40 * 32767


@SETTINGS
@given(st.integers(1, 2), st.integers(1, 3), st.integers(2, 7), st.integers(2, 7), st.integers(1, 3),
       st.integers(1, 3), st.integers(0, 1), st.booleans(), st.integers(0, 2**32 - 1))
def test_c66x_pooling_is_bit_exact(n, c, h, w, k, s, pad, include_pad, seed) -> None:
    rng = np.random.default_rng(seed)
    k = min(k, h + 2 * pad, w + 2 * pad)
    pad = min(pad, k - 1)
    x = rng.integers(0, 256, size=(n, c, h, w))
    src = QuantParams.make(np.float32(rng.uniform(0.01, 0.1)), int(rng.integers(0, 256)), np.uint8)
    dst = QuantParams.make(np.float32(rng.uniform(0.01, 0.1)), int(rng.integers(0, 256)), np.uint8)
    pads = (pad, pad, pad, pad)
    ho = (h + 2 * pad - k) // s + 1
    wo = (w + 2 * pad - k) // s + 1
    mx = max_pool_integer(x, (k, k), (s, s), pads, (1, 1), 0)
    av, _ = avg_pool_integer(x, src, dst, (k, k), (s, s), pads, include_pad, "half-up")
    zx, zy = int(src.zero_point), int(dst.zero_point)
    sx, sy = np.float32(src.scale), np.float32(dst.scale)
    for b in range(n):
        for ch in range(c):
            for i in range(ho):
                for j in range(wo):
                    cells = [int(x[b, ch, r, q]) for r in range(i * s - pad, i * s - pad + k)
                             for q in range(j * s - pad, j * s - pad + k) if 0 <= r < h and 0 <= q < w]
                    assert int(mx[b, ch, i, j]) == max(cells)
                    count = k * k if include_pad else len(cells)
                    ratio = float(np.float32(sx / np.float32(sy * np.float32(count))))
                    total = sum(v - zx for v in cells)
                    assert int(av[b, ch, i, j]) == ref_requant(total, ratio, zy, 0, 255)
    g, _ = global_avg_pool_integer(x, src, dst, "half-up")
    for b in range(n):
        for ch in range(c):
            total = sum(int(v) - zx for v in x[b, ch].reshape(-1))
            ratio = float(np.float32(sx / np.float32(sy * np.float32(h * w))))
            assert int(g[b, ch, 0, 0]) == ref_requant(total, ratio, zy, 0, 255)


@SETTINGS
@given(st.integers(1, 30), st.integers(0, 2**32 - 1))
def test_c66x_add_is_bit_exact(size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, size)
    b = rng.integers(0, 256, size)
    pa = QuantParams.make(np.float32(rng.uniform(0.005, 0.2)), int(rng.integers(0, 256)), np.uint8)
    pb = QuantParams.make(np.float32(rng.uniform(0.005, 0.2)), int(rng.integers(0, 256)), np.uint8)
    py = QuantParams.make(np.float32(rng.uniform(0.01, 0.3)), int(rng.integers(0, 256)), np.uint8)
    y, _ = add_requantize(a, pa, b, pb, py, "half-up")
    ra = float(np.float32(np.float32(pa.scale) / np.float32(py.scale)))
    rb = float(np.float32(np.float32(pb.scale) / np.float32(py.scale)))
    _, n = ref_multiplier(max(ra, rb))
    ma, mb = math.floor(ra * 2**n + 0.5), math.floor(rb * 2**n + 0.5)
    for i in range(size):
        v = (int(a[i]) - int(pa.zero_point)) * ma + (int(b[i]) - int(pb.zero_point)) * mb
        expect = min(max(((v + 2 ** (n - 1)) >> n) + int(py.zero_point), 0), 255)
        assert int(y[i]) == expect


def test_c66x_onnxruntime_mode_rounds_half_to_even() -> None:
    out = QuantParams.make(1.0, 0, np.int8)
    acc = np.array([1, 3, 5, -1, -3], np.int64)
    codes, _ = requantize(acc, np.float32(0.5), out, "onnxruntime")
    assert codes.tolist() == [0, 2, 2, 0, -2]  # 0.5→0, 1.5→2, 2.5→2, −0.5→0, −1.5→−2
    codes, _ = requantize(acc, np.float32(0.5), out, "half-up")
    assert codes.tolist() == [1, 2, 3, 0, -1]  # ties toward +∞


def test_c66x_requantize_rejects_unknown_rounding() -> None:
    with pytest.raises(ValueError):
        requantize(np.zeros(2, np.int64), np.float32(0.5), QuantParams.make(1.0, 0, np.int8), "bankers")


def test_c66x_conv_splits_large_batches_without_changing_a_bit(monkeypatch) -> None:
    import sigdl_target_c66x.fixed_point as fp

    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, size=(5, 4, 9, 9))
    w = rng.integers(-127, 128, size=(6, 2, 3, 3))
    whole, _ = conv2d_accumulate(x, 17, (0, 255), w, 0, (-128, 127), None, (1, 1), (1, 1, 1, 1), (1, 1), 2)
    monkeypatch.setattr(fp, "_IM2COL_ELEMENTS", 100)  # force splitting down to single images
    split, over = conv2d_accumulate(x, 17, (0, 255), w, 0, (-128, 127), None, (1, 1), (1, 1, 1, 1), (1, 1), 2)
    assert over == 0 and np.array_equal(whole, split)
