"""Block-circulant matrices and the 2-D DCT of kernels: the transforms behind two ``.sigdl`` layouts.

The core decodes the circulant and frequency-sparse layouts of :mod:`sigdl_core.artifact`
with these functions, without any plugin; the ``compress_fft`` plugin compresses and
projects with the same functions, so a decoded artifact equals the retrained weights
bit-for-bit.

**Block-circulant weights** (Cheng et al., ICCV 2015; CirCNN, Ding et al., MICRO 2017).
A weight of shape ``(P, Q, *rest)`` (an FC layer ``(out, in)``, a convolution
``(out, in, kh, kw)``) is cut, along its first two axes, into ``b x b`` blocks after zero
padding to ``(nP*b, nQ*b)`` with ``nP = ceil(P/b)`` and ``nQ = ceil(Q/b)``. Block ``(i, j)``
is circulant, defined by one vector ``c`` (its first column):
``W[i*b + r, j*b + s, ...] = V[i, j, (r - s) mod b, ...]``. The defining vectors ``V`` have
shape ``(nP, nQ, b, *rest)``: the padding is stored, so its cost is counted honestly. Such a
block multiplies a vector as a circular convolution: ``irfft(rfft(c) * rfft(x))``.

:func:`nearest_circulant_vectors` is the projection: the least-squares (Frobenius) nearest
block-circulant matrix to a weight is, block by block, the mean of each wrapped diagonal
taken over the weight's real (unpadded) entries; a diagonal with no real entry is 0.

**Frequency-sparse kernels** (Liu et al., NeurIPS 2018). A ``k x k`` kernel is held as its
orthonormal 2-D DCT-II coefficients ``X = C K C^T`` (``C`` the ``k x k`` DCT-II matrix);
:func:`idct2` turns coefficients back into kernels. It sums in a fixed order with NumPy's
element-wise float64 operations (each correctly rounded, no BLAS, no fused multiply-add),
then rounds to float32, so it gives the same bits on every machine.
"""

from __future__ import annotations

import math

import numpy as np

#: Largest block a circulant layout may declare (``2**16``).
MAX_BLOCK = 1 << 16


def circulant_grid(shape: tuple[int, ...], block: int) -> tuple[int, int]:
    """``(nP, nQ)``: blocks along the first two axes of ``shape`` (padded up)."""
    if len(shape) < 2:
        raise ValueError(f"a block-circulant weight needs at least 2 dims, got shape {shape}")
    return -(-int(shape[0]) // block), -(-int(shape[1]) // block)


def circulant_vector_shape(shape: tuple[int, ...], block: int) -> tuple[int, ...]:
    """The shape ``(nP, nQ, b, *rest)`` of the defining vectors of a weight of ``shape``."""
    n_p, n_q = circulant_grid(shape, block)
    return (n_p, n_q, block, *(int(d) for d in shape[2:]))


def _diagonal_index(block: int) -> np.ndarray:
    r = np.arange(block)
    return (r[:, None] - r[None, :]) % block


def expand_circulant(vectors: np.ndarray, shape: tuple[int, ...], block: int) -> np.ndarray:
    """The weight of ``shape`` whose blocks the defining ``vectors`` define (a gather: exact)."""
    v = np.asarray(vectors)
    expected = circulant_vector_shape(shape, block)
    if v.shape != expected:
        raise ValueError(f"defining vectors of shape {v.shape}, expected {expected}")
    n_p, n_q = expected[:2]
    rest = expected[3:]
    full = v[:, :, _diagonal_index(block)]  # (nP, nQ, b, b, *rest): [i, j, r, s]
    full = np.moveaxis(full, 2, 1)  # (nP, b, nQ, b, *rest)
    full = full.reshape(n_p * block, n_q * block, *rest)
    return np.ascontiguousarray(full[: shape[0], : shape[1]])


def _padded_blocks(w: np.ndarray, block: int) -> np.ndarray:
    """``w`` zero padded and viewed as ``(R, nP, nQ, b, b)`` with ``R`` the trailing elements."""
    n_p, n_q = circulant_grid(w.shape, block)
    rest = int(math.prod(w.shape[2:]))
    pad = np.zeros((n_p * block, n_q * block, rest), np.float64)
    pad[: w.shape[0], : w.shape[1]] = w.reshape(w.shape[0], w.shape[1], rest)
    return pad.reshape(n_p, block, n_q, block, rest).transpose(4, 0, 2, 1, 3)


def _diagonal_sums(blocks: np.ndarray, block: int) -> np.ndarray:
    """Per block, the sums along wrapped diagonal ``d`` (entries ``[(s + d) % b, s]``)."""
    d = np.arange(block)
    rows = (d[:, None] + d[None, :]) % block
    cols = np.broadcast_to(d[None, :], (block, block))
    return blocks[..., rows, cols].sum(axis=-1)  # (R, nP, nQ, b)


def nearest_circulant_vectors(weight: np.ndarray, block: int) -> np.ndarray:
    """The defining vectors of the block-circulant matrix nearest ``weight`` (Frobenius norm).

    Each entry is the mean of its wrapped diagonal over the real entries of that block;
    padding is free (it is not a weight), and a diagonal made only of padding is 0.
    """
    w = np.asarray(weight, np.float64)
    sums = _diagonal_sums(_padded_blocks(w, block), block)
    counts = _diagonal_sums(_padded_blocks(np.ones(w.shape[:2] + (1,) * (w.ndim - 2)), block), block)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)  # counts broadcast over R
    out_shape = circulant_vector_shape(w.shape, block)
    # (R, nP, nQ, b) -> (nP, nQ, b, R) -> (nP, nQ, b, *rest)
    return np.ascontiguousarray(np.moveaxis(means, 0, -1).reshape(out_shape)).astype(np.float32)


def circulant_vectors_of(weight: np.ndarray, block: int) -> np.ndarray | None:
    """The defining vectors of ``weight`` if it is exactly block-circulant, else None."""
    w = np.asarray(weight, np.float32)
    if w.ndim < 2 or not 1 <= block <= MAX_BLOCK:
        return None
    v = nearest_circulant_vectors(w, block)
    # The mean of equal float32 values, computed in float64, is that value exactly.
    return v if np.array_equal(expand_circulant(v, w.shape, block), w) else None


# --------------------------------------------------------------------------- the 2-D DCT


def dct_matrix(k: int) -> np.ndarray:
    """The orthonormal DCT-II matrix ``C`` (``k x k``, float64): ``X = C @ x`` for a k-vector."""
    n = np.arange(k)
    c = np.cos(np.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * k)) * math.sqrt(2.0 / k)
    c[0] /= math.sqrt(2.0)
    return c


def _ordered_product(a: np.ndarray, m: np.ndarray, axis: int) -> np.ndarray:
    """``sum_p a[..., p, ...] * m[p, q]`` along ``axis``, summed in increasing ``p``."""
    a = np.moveaxis(a, axis, -1)
    k = m.shape[0]
    out = np.zeros(a.shape[:-1] + (m.shape[1],), np.float64)
    for p in range(k):
        out += a[..., p : p + 1] * m[p]
    return np.moveaxis(out, -1, axis)


def dct2(kernels: np.ndarray) -> np.ndarray:
    """The orthonormal 2-D DCT-II of the last two axes (square ``k x k``), float64."""
    x = np.asarray(kernels, np.float64)
    c = dct_matrix(x.shape[-1])
    # X = C K C^T: along rows then columns.
    return _ordered_product(_ordered_product(x, c.T, x.ndim - 2), c.T, x.ndim - 1)


def idct2(coefficients: np.ndarray) -> np.ndarray:
    """Kernels from their orthonormal 2-D DCT coefficients (``K = C^T X C``), as float32.

    Deterministic to the bit on every machine (see the module docstring).
    """
    x = np.asarray(coefficients, np.float32).astype(np.float64)
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"DCT coefficients need square trailing dims, got {x.shape}")
    c = dct_matrix(x.shape[-1])
    return _ordered_product(_ordered_product(x, c, x.ndim - 2), c, x.ndim - 1).astype(np.float32)
