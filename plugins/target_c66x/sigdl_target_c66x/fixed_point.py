"""Integer kernels of 8/16-bit inference as a TI C66x DSP runs them, bit for bit.

The arithmetic (every function here is deterministic integer or IEEE-754 float32 numpy
code, so the same inputs give the same bits on any host):

* **Codes and zero points.** A quantized tensor holds integer codes ``q`` with a scale ``s``
  and a zero point ``z``: the real value is ``s·(q − z)``. Weights may be per output channel.
* **Multiply-accumulate.** A convolution or fully connected layer sums
  ``(x − z_x)·(w − z_w)`` over its reduction axis and adds the int32 bias (whose scale is
  ``s_x·s_w``) into a **32-bit accumulator**. The C66x ``ADD``/``DADD`` instructions wrap
  around modulo 2³² (two's complement); they do not saturate (``SADD`` would, and costs
  issue slots TI's kernels do not spend). So the accumulator is computed exactly in int64,
  then every value outside [−2³¹, 2³¹) is counted as an **overflow** and wrapped, as the
  DSP would. Overflow needs more than 2¹⁷ int8×int8 products of full magnitude, so it is
  rare at int8 and possible at int16; :class:`KernelStats` reports it.
* **Requantization** maps an accumulator to the output's codes. Two rounding modes:

  - ``"half-up"`` (the default; the DSP's own arithmetic): the real ratio
    ``r = s_x·s_w / s_y`` becomes a 31-bit multiplier ``M`` in [2³⁰, 2³¹) and a right shift
    ``n`` with ``r ≈ M·2⁻ⁿ`` (:func:`quantize_multiplier`); then
    ``y = sat((acc·M + 2ⁿ⁻¹) >> n + z_y)``: a 32×32→64-bit multiply (``MPY32``), the
    rounding constant, an arithmetic shift (round half up, i.e. toward +∞ on ties), the
    zero point, and saturation to the output type. This is the multiplier-and-shift
    requantization of TI's TIDL and of gemmlowp/TFLite (which differ from it only in
    rounding ties away from zero). TIDL's exact constants are not public; the structure is.
  - ``"onnxruntime"``: what onnxruntime's CPU kernels do on x86 (``MlasRequantizeOutput``
    behind QLinearConv and QGemm): ``y = sat(rint(float32(acc) · float32(s_x·s_w/s_y)) +
    z_y)`` with float32 arithmetic and round-half-to-even. The float paths of other ops
    (``DequantizeLinear → op → QuantizeLinear``, ``QLinearAveragePool``,
    ``QLinearGlobalAveragePool``, ``QLinearAdd``) are reproduced operation by operation.
    With this mode the emulation equals onnxruntime's int8 output exactly (tests prove
    it); with ``"half-up"`` each layer is within one LSB of it.

* **Speed.** Convolution is im2col plus a matrix product. The product of two int8 codes is
  below 2¹⁶, so a sum of K of them is an integer below 2⁵³ whenever K < 2³⁷: float64 BLAS
  then gives the exact integer result in any summation order. :func:`exact_matmul` checks
  that bound from the operands' ranges and falls back to int64 ``matmul`` when it does not
  hold (wide int16 layers).

References: TMS320C66x DSP CPU and Instruction Set Reference Guide (SPRUGH7), sections on
``MPY32``/``DOTP4H``/``ADD``; Jacob et al. 2018, "Quantization and Training of Neural
Networks for Efficient Integer-Arithmetic-Only Inference" (the ``M·2⁻ⁿ`` requantizer);
the ONNX ``QuantizeLinear``/``QLinearConv`` specifications.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = [
    "ROUNDING_MODES",
    "KernelStats",
    "QuantParams",
    "RoundingMode",
    "add_requantize",
    "avg_pool_integer",
    "conv2d_accumulate",
    "dtype_range",
    "exact_matmul",
    "fc_accumulate",
    "float_requantize",
    "global_avg_pool_integer",
    "im2col",
    "max_pool_integer",
    "quantize_float",
    "quantize_multiplier",
    "requantize",
    "requantize_codes",
    "rounding_shift",
    "wrap_int32",
]

RoundingMode = Literal["half-up", "onnxruntime"]
ROUNDING_MODES: tuple[str, ...] = ("half-up", "onnxruntime")

_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1
#: Largest im2col (elements) built at once; a bigger batch is split (≈64 MB in float64).
_IM2COL_ELEMENTS = 1 << 23


def dtype_range(dtype: np.dtype | type) -> tuple[int, int]:
    """The smallest and largest code of an integer type (int8 → (−128, 127))."""
    info = np.iinfo(np.dtype(dtype))
    return int(info.min), int(info.max)


@dataclass(frozen=True)
class QuantParams:
    """Scale(s), zero point(s) and code range of one quantized tensor.

    ``scale`` is float32 and ``zero_point`` int64, each a scalar or a vector along
    ``axis`` (per-channel weights). ``qmin``/``qmax`` are the codes' range (int8: −128, 127).
    """

    scale: np.ndarray
    zero_point: np.ndarray
    qmin: int
    qmax: int
    axis: int | None = None

    @classmethod
    def make(
        cls, scale: float | np.ndarray, zero_point: int | np.ndarray, dtype: np.dtype | type,
        axis: int | None = None,
    ) -> QuantParams:
        qmin, qmax = dtype_range(dtype)
        s = np.asarray(scale, dtype=np.float32)
        z = np.asarray(zero_point, dtype=np.int64)
        return cls(s, z, qmin, qmax, axis if s.ndim else None)

    @property
    def per_channel(self) -> bool:
        return self.scale.ndim > 0 and self.scale.size > 1

    def same_as(self, other: QuantParams) -> bool:
        """True when both describe the same real value for every code."""
        return (
            self.qmin == other.qmin and self.qmax == other.qmax
            and self.scale.shape == other.scale.shape
            and bool(np.all(self.scale == other.scale))
            and bool(np.all(self.zero_point == other.zero_point))
        )


@dataclass
class KernelStats:
    """What happened inside the integer pipeline: overflows and saturations, per layer."""

    accumulator_overflows: dict[str, int] = field(default_factory=dict)
    saturated: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, int] = field(default_factory=dict)

    def record(self, layer: str, overflows: int = 0, saturated: int = 0, outputs: int = 0) -> None:
        self.accumulator_overflows[layer] = self.accumulator_overflows.get(layer, 0) + int(overflows)
        self.saturated[layer] = self.saturated.get(layer, 0) + int(saturated)
        self.outputs[layer] = self.outputs.get(layer, 0) + int(outputs)

    @property
    def total_overflows(self) -> int:
        return sum(self.accumulator_overflows.values())

    def to_dict(self) -> dict[str, object]:
        return {
            "accumulator_overflows": dict(self.accumulator_overflows),
            "saturated": dict(self.saturated),
            "outputs": dict(self.outputs),
            "total_overflows": self.total_overflows,
        }


# --------------------------------------------------------------------------- 32-bit accumulators


def wrap_int32(acc: np.ndarray) -> tuple[np.ndarray, int]:
    """``acc`` (int64) wrapped to 32-bit two's complement, and how many values overflowed."""
    acc = np.asarray(acc, dtype=np.int64)
    over = int(np.count_nonzero((acc < _INT32_MIN) | (acc > _INT32_MAX)))
    if over:
        acc = ((acc - _INT32_MIN) & 0xFFFFFFFF) + _INT32_MIN
    return acc, over


# --------------------------------------------------------------------------- requantization


def quantize_multiplier(ratio: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """``(M, n)`` with ``ratio ≈ M·2⁻ⁿ``, ``M`` a 31-bit integer in [2³⁰, 2³¹), ``n ≥ 1``.

    ``ratio`` must be positive and below 2³⁰. ``M = round(ratio·2ⁿ)`` (ties away from zero;
    the exact binary value of the float32/float64 ratio is used). A ratio so small that
    ``n`` would exceed 62 is represented with ``n = 62`` and a smaller ``M``: the product
    ``acc·M`` then still fits in 64 bits, and every result rounds to 0 or ±1 anyway.
    """
    r = np.asarray(ratio, dtype=np.float64)
    if np.any(~np.isfinite(r)) or np.any(r <= 0):
        raise ValueError("requantization ratios must be finite and positive")
    if np.any(r >= 2.0**30):
        raise ValueError("requantization ratio too large for a 31-bit multiplier")
    mant, exp = np.frexp(r)  # r = mant·2^exp, mant in [0.5, 1)
    shift = (31 - exp).astype(np.int64)  # M = mant·2^31 ∈ [2^30, 2^31)
    m = np.floor(mant * 2.0**31 + 0.5).astype(np.int64)
    carry = m >= (1 << 31)  # mant rounded up to 1.0
    m = np.where(carry, m >> 1, m)
    shift = np.where(carry, shift - 1, shift)
    big = shift > 62
    if np.any(big):
        extra = np.where(big, shift - 62, 0)
        # M·2^-n = (M >> extra)·2^-(n-extra), rounded
        m = np.where(big, (m + np.where(big, (np.int64(1) << np.maximum(extra - 1, 0)), 0)) >> extra, m)
        shift = np.where(big, 62, shift)
    return m, shift


def rounding_shift(value: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``(value + 2ⁿ⁻¹) >> n`` with an arithmetic shift: round half up (toward +∞)."""
    value = np.asarray(value, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    return (value + (np.int64(1) << (shift - 1))) >> shift


def _expand(a: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    """A per-channel vector shaped to broadcast along ``axis`` of an ``ndim`` array."""
    a = np.asarray(a)
    if a.ndim == 0 or a.size == 1:
        return a.reshape(())
    shape = [1] * ndim
    shape[axis] = a.size
    return a.reshape(shape)


def requantize(
    acc: np.ndarray,
    ratio: np.ndarray,
    out: QuantParams,
    rounding: RoundingMode = "half-up",
    channel_axis: int = 1,
) -> tuple[np.ndarray, int]:
    """Maps int32 accumulators to output codes; returns ``(codes int32, saturated count)``.

    ``ratio`` (float32: ``s_x·s_w/s_y``, scalar or per channel along ``channel_axis``) is the
    real multiplier; see the module docstring for the two rounding modes.
    """
    acc = np.asarray(acc, dtype=np.int64)
    zp = np.int64(out.zero_point.reshape(()) if out.zero_point.size == 1 else out.zero_point)
    ratio32 = np.asarray(ratio, dtype=np.float32)
    if rounding == "half-up":
        m, n = quantize_multiplier(ratio32.astype(np.float64))
        m = _expand(m, acc.ndim, channel_axis)
        n = _expand(n, acc.ndim, channel_axis)
        y = rounding_shift(acc * m, n) + zp
    elif rounding == "onnxruntime":
        r = _expand(ratio32, acc.ndim, channel_axis).astype(np.float32)
        y = np.rint(acc.astype(np.float32) * r).astype(np.int64) + zp
    else:
        raise ValueError(f"unknown rounding mode '{rounding}' (known: {', '.join(ROUNDING_MODES)})")
    sat = int(np.count_nonzero((y < out.qmin) | (y > out.qmax)))
    return np.clip(y, out.qmin, out.qmax).astype(np.int32), sat


def float_requantize(real: np.ndarray, out: QuantParams) -> tuple[np.ndarray, int]:
    """onnxruntime's ``QuantizeLinear`` of a float32 tensor: ``sat(rint(x / s) + z)``."""
    x = np.asarray(real, dtype=np.float32)
    s = np.float32(out.scale.reshape(()))
    zp = np.int64(out.zero_point.reshape(()))
    y = np.rint(x / s).astype(np.int64) + zp
    sat = int(np.count_nonzero((y < out.qmin) | (y > out.qmax)))
    return np.clip(y, out.qmin, out.qmax).astype(np.int32), sat


def quantize_float(x: np.ndarray, out: QuantParams) -> np.ndarray:
    """Quantizes a float input (done on the host before the DSP sees it), as ONNX does."""
    return float_requantize(x, out)[0]


def dequantize(codes: np.ndarray, params: QuantParams) -> np.ndarray:
    """onnxruntime's ``DequantizeLinear``: ``float32(q − z) · s`` in float32."""
    z = params.zero_point
    s = params.scale
    if params.per_channel:
        axis = params.axis if params.axis is not None else 1
        z = _expand(z, codes.ndim, axis)
        s = _expand(s, codes.ndim, axis)
    diff = (np.asarray(codes, dtype=np.int64) - z).astype(np.float32)
    return diff * np.asarray(s, dtype=np.float32)


def requantize_codes(
    codes: np.ndarray, src: QuantParams, dst: QuantParams, rounding: RoundingMode = "half-up",
) -> tuple[np.ndarray, int]:
    """Re-expresses codes of one scale in another (a pass-through op whose output scale
    differs: Concat, MaxPool, Reshape). Identity when the parameters agree."""
    if src.same_as(dst):
        return np.asarray(codes, dtype=np.int32), 0
    centered = np.asarray(codes, dtype=np.int64) - np.int64(src.zero_point.reshape(()))
    if rounding == "onnxruntime":
        real = dequantize(codes, src)
        return float_requantize(real, dst)
    ratio = np.float32(src.scale.reshape(())) / np.float32(dst.scale.reshape(()))
    return requantize(centered, np.float32(ratio), dst, "half-up")


# --------------------------------------------------------------------------- exact products


def _max_abs(lo: int, hi: int) -> int:
    return max(abs(lo), abs(hi))


def exact_matmul(a: np.ndarray, b: np.ndarray, a_bound: int, b_bound: int) -> np.ndarray:
    """The exact integer product ``a @ b`` (int64), of integer arrays bounded by
    ``|a| ≤ a_bound`` and ``|b| ≤ b_bound``.

    When ``K·a_bound·b_bound < 2⁵³`` every partial sum is an integer that float64 holds
    exactly, so BLAS in float64 is exact whatever order it sums in; otherwise int64
    ``matmul`` is used (slower, also exact while the true sum fits in 63 bits).
    """
    k = a.shape[-1]
    if k * a_bound * b_bound < (1 << 53):
        return np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.int64)
    return np.matmul(a.astype(np.int64), b.astype(np.int64))


# --------------------------------------------------------------------------- convolution


def conv_output_size(size: int, k: int, stride: int, pad_begin: int, pad_end: int, dilation: int) -> int:
    """ONNX's output length of one spatial axis."""
    return (size + pad_begin + pad_end - dilation * (k - 1) - 1) // stride + 1


def im2col(
    x: np.ndarray,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    pads: tuple[int, int, int, int],
    dilations: tuple[int, int],
    pad_value: int = 0,
) -> tuple[np.ndarray, int, int]:
    """Patches of ``x`` (N, C, H, W) as (N, C, kh, kw, Ho, Wo), and Ho, Wo.

    ``pads`` is ONNX's (top, left, bottom, right); padded cells take ``pad_value``.
    """
    n, c, h, w = x.shape
    kh, kw = kernel
    sh, sw = strides
    pt, pl, pb, pr = pads
    dh, dw = dilations
    ho = conv_output_size(h, kh, sh, pt, pb, dh)
    wo = conv_output_size(w, kw, sw, pl, pr, dw)
    if ho < 1 or wo < 1:
        raise ValueError("convolution window larger than the padded input")
    xp = np.pad(x, ((0, 0), (0, 0), (pt, max(pb, 0)), (pl, max(pr, 0))), constant_values=pad_value)
    cols = np.empty((n, c, kh, kw, ho, wo), dtype=x.dtype)
    for i in range(kh):
        r0 = i * dh
        for j in range(kw):
            c0 = j * dw
            cols[:, :, i, j] = xp[:, :, r0: r0 + sh * (ho - 1) + 1: sh, c0: c0 + sw * (wo - 1) + 1: sw]
    return cols, ho, wo


def conv2d_accumulate(
    x: np.ndarray,
    x_zero_point: int,
    x_range: tuple[int, int],
    w: np.ndarray,
    w_zero_point: np.ndarray | int,
    w_range: tuple[int, int],
    bias: np.ndarray | None,
    strides: tuple[int, int] = (1, 1),
    pads: tuple[int, int, int, int] = (0, 0, 0, 0),
    dilations: tuple[int, int] = (1, 1),
    group: int = 1,
) -> tuple[np.ndarray, int]:
    """The int32 accumulators of a 2-D (grouped, depthwise, dilated, strided, padded)
    convolution: ``Σ (x − z_x)(w − z_w) + bias``, wrapped to 32 bits.

    ``x`` (N, C, H, W) and ``w`` (M, C/group, kh, kw) hold integer codes; ``w_zero_point``
    is a scalar or one per output channel. Padding holds the zero point (a real zero), as
    in ONNX's QLinearConv. Returns ``(acc int64 (N, M, Ho, Wo), overflow count)``.
    """
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    if c != cg * group or m % group:
        raise ValueError(f"channels {c} and weight {w.shape} do not match group={group}")
    if n > 1 and n * c * kh * kw * h * wd > _IM2COL_ELEMENTS:  # bound the im2col memory
        half = n // 2
        parts = [conv2d_accumulate(part, x_zero_point, x_range, w, w_zero_point, w_range, bias, strides,
                                   pads, dilations, group) for part in (x[:half], x[half:])]
        return np.concatenate([p[0] for p in parts]), parts[0][1] + parts[1][1]
    xc = np.asarray(x, dtype=np.int32) - np.int32(x_zero_point)
    wz = np.asarray(w_zero_point, dtype=np.int64)
    wc = np.asarray(w, dtype=np.int64) - (wz.reshape(-1, 1, 1, 1) if wz.size > 1 else wz)
    cols, ho, wo = im2col(xc, (kh, kw), strides, pads, dilations, 0)
    mg = m // group
    k = cg * kh * kw
    cols = cols.reshape(n, group, k, ho * wo)
    wg = wc.reshape(group, mg, k)
    xb = _max_abs(x_range[0] - int(x_zero_point), x_range[1] - int(x_zero_point))
    wb = int(np.max(np.abs(wc))) if wc.size else 0
    exact_in_float = k * xb * wb < (1 << 53)
    if mg == 1 and group > 1:  # depthwise: a per-channel dot product over k taps
        dtype = np.float64 if exact_in_float else np.int64
        acc = np.zeros((n, group, ho * wo), dtype)
        wd = wg[:, 0].astype(dtype)
        for t in range(k):  # k multiply-adds of whole feature maps (exact: see exact_matmul)
            acc += cols[:, :, t, :].astype(dtype) * wd[None, :, t, None]
        acc = acc.astype(np.int64).reshape(n, m, ho, wo)
    else:
        # one GEMM per group over the whole batch: (mg, k) @ (k, n·L)
        acc = np.empty((n, group, mg, ho * wo), np.int64)
        for g in range(group):
            rhs = np.ascontiguousarray(cols[:, g].transpose(1, 0, 2)).reshape(k, n * ho * wo)
            acc[:, g] = exact_matmul(wg[g], rhs, wb, xb).reshape(mg, n, ho * wo).transpose(1, 0, 2)
        acc = acc.reshape(n, m, ho, wo)
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64).reshape(1, m, 1, 1)
    return wrap_int32(acc)


def fc_accumulate(
    x: np.ndarray,
    x_zero_point: int,
    x_range: tuple[int, int],
    w: np.ndarray,
    w_zero_point: np.ndarray | int,
    bias: np.ndarray | None,
) -> tuple[np.ndarray, int]:
    """Fully connected: ``x`` (N, K) codes, ``w`` (M, K) codes → int32 accumulators (N, M)."""
    xc = np.asarray(x, dtype=np.int64) - np.int64(x_zero_point)
    wz = np.asarray(w_zero_point, dtype=np.int64)
    wc = np.asarray(w, dtype=np.int64) - (wz.reshape(-1, 1) if wz.size > 1 else wz)
    xb = _max_abs(x_range[0] - int(x_zero_point), x_range[1] - int(x_zero_point))
    wb = int(np.max(np.abs(wc))) if wc.size else 0
    acc = exact_matmul(xc, wc.T, xb, wb)
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64).reshape(1, -1)
    return wrap_int32(acc)


# --------------------------------------------------------------------------- pooling


def max_pool_integer(
    x: np.ndarray,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    pads: tuple[int, int, int, int],
    dilations: tuple[int, int],
    qmin: int,
) -> np.ndarray:
    """Max pooling on codes (max commutes with the monotone code→real map); padding is
    the smallest code, so it never wins."""
    cols, _, _ = im2col(np.asarray(x, dtype=np.int32), kernel, strides, pads, dilations, qmin)
    return cols.max(axis=(2, 3))


def _window_counts(
    h: int, w: int, kernel: tuple[int, int], strides: tuple[int, int],
    pads: tuple[int, int, int, int], ho: int, wo: int,
) -> np.ndarray:
    """How many real (unpadded) input cells each output window covers, (Ho, Wo)."""
    def axis(size: int, k: int, s: int, p0: int, out: int) -> np.ndarray:
        start = np.arange(out) * s - p0
        end = np.minimum(start + k, size)
        return end - np.maximum(start, 0)

    return np.outer(axis(h, kernel[0], strides[0], pads[0], ho), axis(w, kernel[1], strides[1], pads[1], wo))


def avg_pool_integer(
    x: np.ndarray,
    src: QuantParams,
    dst: QuantParams,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    pads: tuple[int, int, int, int],
    count_include_pad: bool,
    rounding: RoundingMode = "half-up",
) -> tuple[np.ndarray, int]:
    """Average pooling of codes into ``dst``'s codes.

    ``half-up``: the int32 window sum of ``q − z_x`` times the multiplier of
    ``s_x / (s_y · count)`` with a rounding shift. ``onnxruntime``: the float path of its
    ``QLinearAveragePool`` (dequantize, sum in window order in float32, divide by the count,
    then ``rint(y / s_y + z_y)``).
    """
    n, c, h, w = x.shape
    zx = int(src.zero_point.reshape(()))
    if rounding == "onnxruntime":
        real = dequantize(x, src)
        cols, ho, wo = im2col(real, kernel, strides, pads, (1, 1), np.float32(0))
        valid, _, _ = im2col(np.ones((1, 1, h, w), np.int8), kernel, strides, pads, (1, 1), 0)
        total = np.zeros((n, c, ho, wo), np.float32)
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                v = valid[0, 0, i, j].astype(bool)
                total = np.where(v, total + cols[:, :, i, j], total).astype(np.float32)
        if count_include_pad:
            count = np.full((ho, wo), kernel[0] * kernel[1], np.float32)
        else:
            count = _window_counts(h, w, kernel, strides, pads, ho, wo).astype(np.float32)
        avg = (total / count).astype(np.float32)
        y = np.rint((avg / np.float32(dst.scale.reshape(()))) + np.float32(dst.zero_point.reshape(())))
        y = y.astype(np.int64)
        sat = int(np.count_nonzero((y < dst.qmin) | (y > dst.qmax)))
        return np.clip(y, dst.qmin, dst.qmax).astype(np.int32), sat
    centered = np.asarray(x, dtype=np.int32) - np.int32(zx)
    cols, ho, wo = im2col(centered, kernel, strides, pads, (1, 1), 0)
    sums = cols.astype(np.int64).sum(axis=(2, 3))
    if count_include_pad:
        counts = np.full((ho, wo), kernel[0] * kernel[1], np.int64)
    else:
        counts = _window_counts(h, w, kernel, strides, pads, ho, wo)
    sx = np.float32(src.scale.reshape(()))
    sy = np.float32(dst.scale.reshape(()))
    ratio = (sx / (sy * counts.astype(np.float32))).astype(np.float32)
    m, sh = quantize_multiplier(ratio.astype(np.float64))
    y = rounding_shift(sums * m[None, None], sh[None, None]) + np.int64(dst.zero_point.reshape(()))
    sat = int(np.count_nonzero((y < dst.qmin) | (y > dst.qmax)))
    return np.clip(y, dst.qmin, dst.qmax).astype(np.int32), sat


def global_avg_pool_integer(
    x: np.ndarray, src: QuantParams, dst: QuantParams, rounding: RoundingMode = "half-up",
) -> tuple[np.ndarray, int]:
    """Global average pooling: the int32 sum over H×W, requantized by ``s_x/(s_y·HW)``
    (``onnxruntime``: ``float32`` scale computed as ``s_x / (s_y · HW)``, as in
    ``MlasQLinearGlobalAveragePool``)."""
    n, c, h, w = x.shape
    zx = np.int64(src.zero_point.reshape(()))
    sums = (np.asarray(x, dtype=np.int64) - zx).reshape(n, c, h * w).sum(axis=2)
    sums, _ = wrap_int32(sums)
    sx = np.float32(src.scale.reshape(()))
    sy = np.float32(dst.scale.reshape(()))
    ratio = np.float32(sx / np.float32(sy * np.float32(h * w)))
    y, sat = requantize(sums, ratio, dst, rounding)
    return y.reshape(n, c, 1, 1), sat


# --------------------------------------------------------------------------- elementwise


def add_requantize(
    a: np.ndarray, pa: QuantParams, b: np.ndarray, pb: QuantParams, out: QuantParams,
    rounding: RoundingMode = "half-up",
) -> tuple[np.ndarray, int]:
    """Elementwise sum of two quantized tensors (broadcasting) into ``out``'s codes.

    ``half-up``: both operands are brought to a common fixed-point scale, multipliers
    ``M_a ≈ (s_a/s_y)·2ⁿ`` and ``M_b ≈ (s_b/s_y)·2ⁿ`` sharing one shift ``n`` (the larger
    multiplier in [2³⁰, 2³¹)), summed in 64 bits and shifted with rounding.
    ``onnxruntime``: ``rint((float32(s_a(q_a − z_a)) + float32(s_b(q_b − z_b))) / s_y) + z_y``
    in float32, the formula of its ``QLinearAdd`` and of ``DequantizeLinear → Add →
    QuantizeLinear``.
    """
    da = np.asarray(a, dtype=np.int64) - np.int64(pa.zero_point.reshape(()))
    db = np.asarray(b, dtype=np.int64) - np.int64(pb.zero_point.reshape(()))
    zy = np.int64(out.zero_point.reshape(()))
    sa, sb, sy = (np.float32(p.scale.reshape(())) for p in (pa, pb, out))
    if rounding == "onnxruntime":
        va = (da.astype(np.float32) * sa).astype(np.float32)
        vb = (db.astype(np.float32) * sb).astype(np.float32)
        y = np.rint(((va + vb).astype(np.float32) / sy).astype(np.float32)).astype(np.int64) + zy
    else:
        ra = float(np.float32(sa / sy))
        rb = float(np.float32(sb / sy))
        _, n = quantize_multiplier(max(ra, rb))
        n = int(n)
        ma = int(np.floor(ra * 2.0**n + 0.5))
        mb = int(np.floor(rb * 2.0**n + 0.5))
        y = rounding_shift(da * ma + db * mb, np.int64(n)) + zy
    sat = int(np.count_nonzero((y < out.qmin) | (y > out.qmax)))
    return np.clip(y, out.qmin, out.qmax).astype(np.int32), sat


def clip_requantize(
    x: np.ndarray, src: QuantParams, dst: QuantParams, lo: float | None, hi: float | None,
    rounding: RoundingMode = "half-up",
) -> tuple[np.ndarray, int]:
    """ReLU (``lo=0``), ReLU6 (``lo=0, hi=6``) or any clip, into ``dst``'s codes.

    The bounds become codes of ``src`` (``z + round(lo/s)``); clipping codes is exact since
    the map is monotone. Then the codes are re-expressed in ``dst``. ``onnxruntime`` clips
    the dequantized float32 values instead, as ``DequantizeLinear → Relu → QuantizeLinear``
    does.
    """
    if rounding == "onnxruntime":
        real = dequantize(x, src)
        if lo is not None:
            real = np.maximum(real, np.float32(lo))
        if hi is not None:
            real = np.minimum(real, np.float32(hi))
        return float_requantize(real, dst)
    codes = np.asarray(x, dtype=np.int64)
    s = float(src.scale.reshape(()))
    z = int(src.zero_point.reshape(()))
    if lo is not None:
        codes = np.maximum(codes, z + int(np.ceil(lo / s - 1e-9)))
    if hi is not None:
        codes = np.minimum(codes, z + int(np.floor(hi / s + 1e-9)))
    codes = np.clip(codes, src.qmin, src.qmax)
    return requantize_codes(codes, src, dst, "half-up")
