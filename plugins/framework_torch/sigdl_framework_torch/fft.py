"""Frequency-domain inference paths: block-circulant FC layers and tiled FFT convolution.

* :class:`CirculantLinear` runs a block-circulant ``nn.Linear`` (``sigdl_core.structured_weights``:
  block ``(i, j)`` is ``W[i*b + r, j*b + s] = V[i, j, (r - s) mod b]``) as ``rfft`` of the
  input's ``b``-chunks → one batched complex matrix product per frequency bin with the
  precomputed spectra of the defining vectors → ``irfft``: ``O(n log b)`` work and
  ``(P/b)(Q/b)(b/2 + 1)`` complex weights instead of ``P*Q`` reals.
* :class:`FFTConv2d` runs a stride-1, undilated ``nn.Conv2d`` by overlap-save over small
  tiles, as NNPACK's FFT-16x16 does: the padded input is cut into ``F x F`` tiles that
  overlap by ``k - 1``, each tile's ``rfft2`` is multiplied by the kernels' conjugate spectra
  (cross-correlation), the product summing over input channels being one batched complex
  matrix product per frequency bin (``[tiles, C] @ [C, O]``), and the ``irfft2`` of each tile
  gives ``(F - k + 1)**2`` valid outputs. A convolution FFT cannot do this way (stride or
  dilation other than 1, ``k >= F``) is never replaced.
* :func:`frequency_module` is the per-layer chooser: for every candidate layer it times the
  direct path and each FFT path on this machine, on the layer's own input shape (as cuDNN's
  benchmark mode does), and keeps a frequency path only when it is faster than direct; the
  fastest measured path (lower quartile of interleaved calls) is taken, so the chosen one
  is never slower than 0.95x of the faster, up to timing noise (on a loaded shared machine
  the noise can exceed 5 %; ``bench/fft.py`` measures the pick in an independent round). The plan, with every timing, is
  returned for the report.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sigdl_core.errors import InvalidValueError
from sigdl_core.structured_weights import circulant_vectors_of
from torch import nn

#: Tile (FFT) sizes the convolution chooser tries; a kernel must be smaller than the tile.
TILE_SIZES = (8, 16, 32)
#: Block sizes tried, largest first, when finding a Linear layer's circulant structure.
BLOCK_SIZES = (256, 128, 64, 32, 16, 8, 4, 2)


class CirculantLinear(nn.Module):
    """A block-circulant ``nn.Linear`` computed by FFT; outputs equal the dense layer's to
    float32 rounding."""

    def __init__(self, vectors: np.ndarray | torch.Tensor, out_features: int, in_features: int, block: int,
                 bias: torch.Tensor | None = None) -> None:
        super().__init__()
        v = torch.as_tensor(np.asarray(vectors, np.float32))
        n_p, n_q = -(-out_features // block), -(-in_features // block)
        if tuple(v.shape) != (n_p, n_q, block):
            raise InvalidValueError(f"circulant vectors of shape {tuple(v.shape)}, expected {(n_p, n_q, block)}")
        self.in_features, self.out_features, self.block = in_features, out_features, block
        spectra = torch.fft.rfft(v, dim=-1)  # (nP, nQ, F)
        # per frequency bin: [nQ, nP], so that x_f [N, nQ] @ it gives y_f [N, nP]
        self.register_buffer("spectra", spectra.permute(2, 1, 0).contiguous())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def from_linear(cls, layer: nn.Linear, block: int) -> CirculantLinear | None:
        """The FFT form of ``layer`` if its weight is block-circulant with ``block``, else None."""
        w = layer.weight.detach().cpu().numpy()
        vectors = circulant_vectors_of(w, block)
        if vectors is None:
            return None
        return cls(vectors, layer.out_features, layer.in_features, block, layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        n_q, n_p = self.spectra.shape[1], self.spectra.shape[2]
        lead = x.shape[:-1]
        x = x.reshape(-1, self.in_features)
        if n_q * b != self.in_features:
            x = F.pad(x, (0, n_q * b - self.in_features))
        xf = torch.fft.rfft(x.reshape(-1, n_q, b), dim=-1)  # (N, nQ, F)
        yf = torch.matmul(xf.permute(2, 0, 1), self.spectra)  # (F, N, nP)
        y = torch.fft.irfft(yf.permute(1, 2, 0), n=b, dim=-1).reshape(-1, n_p * b)[:, : self.out_features]
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, block={self.block}"


def fft_convolution_possible(layer: nn.Conv2d, tile: int) -> bool:
    """Whether :class:`FFTConv2d` can run ``layer`` with ``tile``-sized FFTs."""
    kh, kw = layer.kernel_size
    return (tuple(layer.stride) == (1, 1) and tuple(layer.dilation) == (1, 1)
            and isinstance(layer.padding, tuple) and layer.padding_mode == "zeros"
            and kh == kw and 1 < kh < tile)


class FFTConv2d(nn.Module):
    """A stride-1 ``nn.Conv2d`` by tiled overlap-save FFT (see the module docstring).

    Groups are handled as a block-diagonal product: each group's channels multiply only
    its own kernels.
    """

    def __init__(self, layer: nn.Conv2d, tile: int = 16) -> None:
        super().__init__()
        if not fft_convolution_possible(layer, tile):
            raise InvalidValueError(f"{layer} cannot run as an FFT convolution with {tile}x{tile} tiles",
                                    "keep it direct (stride and dilation 1, square kernel smaller than the tile)")
        self.k = layer.kernel_size[0]
        self.tile = tile
        self.padding = tuple(int(p) for p in layer.padding)
        self.groups = layer.groups
        self.out_channels, self.in_channels = layer.out_channels, layer.in_channels
        w = layer.weight.detach()
        o, cg, k, _ = w.shape
        g = self.groups
        kernel = F.pad(w, (0, tile - k, 0, tile - k))
        spectra = torch.conj(torch.fft.rfft2(kernel))  # (O, C/g, F, F/2+1)
        bins = tile * (tile // 2 + 1)
        # (g, bins, C/g, O/g): per group and frequency bin, [C/g, O/g]
        spectra = spectra.reshape(g, o // g, cg, bins).permute(0, 3, 2, 1).contiguous()
        self.register_buffer("spectra", spectra)
        self.register_buffer("bias", None if layer.bias is None else layer.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        k, f = self.k, self.tile
        t = f - k + 1
        ph, pw = self.padding
        ho, wo = h + 2 * ph - k + 1, w + 2 * pw - k + 1
        ty, tx = -(-ho // t), -(-wo // t)
        need_h, need_w = ty * t + k - 1, tx * t + k - 1
        x = F.pad(x, (pw, need_w - w - pw, ph, need_h - h - ph))
        tiles = x.unfold(2, f, t).unfold(3, f, t)  # (N, C, ty, tx, F, F)
        xf = torch.fft.rfft2(tiles)  # (N, C, ty, tx, F, F/2+1)
        g = self.groups
        bins = f * (f // 2 + 1)
        xf = xf.reshape(n, g, c // g, ty * tx, bins).permute(1, 4, 0, 3, 2).reshape(g, bins, n * ty * tx, c // g)
        yf = torch.matmul(xf, self.spectra)  # (g, bins, N*tiles, O/g)
        og = self.out_channels // g
        yf = yf.reshape(g, f, f // 2 + 1, n, ty, tx, og).permute(3, 0, 6, 4, 5, 1, 2)
        yf = yf.reshape(n, self.out_channels, ty, tx, f, f // 2 + 1)
        y = torch.fft.irfft2(yf, s=(f, f))[..., :t, :t]  # (N, O, ty, tx, t, t)
        y = y.permute(0, 1, 2, 4, 3, 5).reshape(n, self.out_channels, ty * t, tx * t)[:, :, :ho, :wo]
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y.contiguous()

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel={self.k}, tile={self.tile}, groups={self.groups}"


# --------------------------------------------------------------------------- the chooser


@dataclass
class LayerPlan:
    """What the chooser measured for one layer and which path it took."""

    layer: str
    kind: str
    shape: list[int]
    input_shape: list[int]
    timings_ms: dict[str, float] = field(default_factory=dict)
    chosen: str = "direct"

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "kind": self.kind, "shape": self.shape, "input_shape": self.input_shape,
                "timings_ms": self.timings_ms, "chosen": self.chosen}


def time_interleaved(candidates: dict[str, Any], x: torch.Tensor, repeats: int,
                     percentile: float = 25.0) -> dict[str, float]:
    """ms per call of each candidate: the ``percentile`` of its calls, timed in interleaved
    rounds (A B C C B A ...) so that a change in the machine's load falls on all alike.

    The lower quartile by default: other jobs on a shared machine only ever add time, so a
    low percentile estimates the uncontended time better than the median does.
    """
    names = list(candidates)
    samples: dict[str, list[float]] = {n: [] for n in names}
    with torch.no_grad():
        for n in names:
            candidates[n](x)
            candidates[n](x)
        for r in range(repeats):
            for n in (names if r % 2 == 0 else names[::-1]):
                start = time.perf_counter()
                candidates[n](x)
                samples[n].append(time.perf_counter() - start)
    return {n: round(1000.0 * float(np.percentile(s, percentile)), 4) for n, s in samples.items()}


def circulant_block_of(layer: nn.Linear, blocks: Sequence[int] = BLOCK_SIZES) -> int | None:
    """The largest block with which ``layer``'s weight is exactly block-circulant, or None."""
    w = layer.weight.detach().cpu().numpy()
    for b in blocks:
        if b <= min(w.shape) and circulant_vectors_of(w, b) is not None:
            return b
    return None


def _layer_inputs(module: nn.Module, example: torch.Tensor, types: tuple[type, ...]) -> dict[str, torch.Tensor]:
    inputs: dict[str, torch.Tensor] = {}
    hooks = []
    for name, child in module.named_modules():
        if type(child) in types:
            hooks.append(child.register_forward_pre_hook(
                lambda mod, args, name=name: inputs.setdefault(name, args[0].detach().clone())))
    try:
        with torch.no_grad():
            module(example)
    finally:
        for h in hooks:
            h.remove()
    return inputs


def frequency_module(module: nn.Module, example: torch.Tensor, *, repeats: int = 9,
                     tiles: Sequence[int] = TILE_SIZES, choose: bool = True,
                     ) -> tuple[nn.Module, list[LayerPlan]]:
    """A copy of ``module`` (eval mode) with each layer on its fastest path, and the plan.

    Block-circulant ``nn.Linear`` layers may become :class:`CirculantLinear` and stride-1
    ``nn.Conv2d`` layers :class:`FFTConv2d` (each tile size of ``tiles`` the kernel fits);
    every candidate is timed on the layer's input for ``example`` (its batch size matters),
    interleaved with the direct path (lower quartile of ``repeats`` calls), and the fastest
    is kept. ``choose=False`` only
    measures (every layer stays direct). ``module`` itself is not changed.
    """
    result = copy.deepcopy(module).eval()
    inputs = _layer_inputs(result, example, (nn.Linear, nn.Conv2d))
    plans: list[LayerPlan] = []
    for name, child in list(result.named_modules()):
        if name not in inputs:
            continue
        x = inputs[name]
        candidates: dict[str, nn.Module] = {"direct": child}
        if type(child) is nn.Linear:
            block = circulant_block_of(child)
            kind = "fc"
            if block is not None:
                candidates[f"fft-circulant-{block}"] = CirculantLinear.from_linear(child, block)
        else:
            kind = "conv"
            for tile in tiles:
                if fft_convolution_possible(child, tile):
                    candidates[f"fft-tile-{tile}"] = FFTConv2d(child, tile)
        plan = LayerPlan(name, kind, list(child.weight.shape), list(x.shape))
        if len(candidates) > 1:
            plan.timings_ms = time_interleaved(candidates, x, repeats)
            best = min(plan.timings_ms, key=plan.timings_ms.__getitem__)
            if choose and best != "direct":
                plan.chosen = best
                parent_name, _, attr = name.rpartition(".")
                setattr(result.get_submodule(parent_name) if parent_name else result, attr, candidates[best])
        plans.append(plan)
    return result, plans

