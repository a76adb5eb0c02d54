"""Frequency-domain inference paths: tiled FFT convolution and block-circulant FC layers.

FFT convolution equals torch's direct convolution to 1e-4 for every kernel size, stride,
padding and group count the zoo uses; what it cannot do (stride > 1, dilation, 1x1) stays
direct. Which path is faster is a benchmark's business (bench/fft.py), not a test's.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sigdl_core.structured_weights import expand_circulant, nearest_circulant_vectors
from torch import nn

from sigdl_framework_torch.fft import (
    CirculantLinear,
    FFTConv2d,
    circulant_block_of,
    fft_convolution_possible,
    frequency_module,
)

# (in, out, kernel, stride, padding, groups, size): the zoo's convolutions at small widths.
ZOO_CONVS = [
    pytest.param(1, 20, 5, 1, 0, 1, 28, id="lenet5-conv1"),
    pytest.param(20, 50, 5, 1, 0, 1, 12, id="lenet5-conv2"),
    pytest.param(3, 16, 11, 4, 2, 1, 63, id="alexnet-conv1-stride4"),
    pytest.param(16, 24, 5, 1, 2, 1, 27, id="alexnet-conv2"),
    pytest.param(24, 16, 3, 1, 1, 1, 13, id="alexnet-vgg-3x3"),
    pytest.param(3, 16, 3, 2, 0, 1, 33, id="squeezenet-conv1-stride2"),
    pytest.param(16, 8, 1, 1, 0, 1, 15, id="squeezenet-1x1"),
    pytest.param(8, 16, 3, 1, 1, 1, 15, id="squeezenet-expand3x3"),
    pytest.param(3, 8, 3, 2, 1, 1, 32, id="mobilenet-conv-bn-stride2"),
    pytest.param(16, 16, 3, 1, 1, 16, 14, id="mobilenet-depthwise"),
    pytest.param(16, 16, 3, 2, 1, 16, 14, id="mobilenet-depthwise-stride2"),
    pytest.param(12, 8, 7, 1, 3, 4, 20, id="grouped-7x7"),
]


@pytest.mark.parametrize("cin, cout, k, stride, pad, groups, size", ZOO_CONVS)
def test_fft_convolution_equals_direct_or_falls_back(cin, cout, k, stride, pad, groups, size) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, groups=groups).eval()
    x = torch.randn(2, cin, size, size + 1)
    with torch.no_grad():
        direct = conv(x)
        for tile in (8, 16, 32):
            if fft_convolution_possible(conv, tile):
                out = FFTConv2d(conv, tile)(x)
                assert out.shape == direct.shape
                torch.testing.assert_close(out, direct, atol=1e-4, rtol=1e-4)
            else:
                assert stride != 1 or k == 1 or k >= tile
        chosen, plans = frequency_module(nn.Sequential(conv), x[:1], repeats=1)
        torch.testing.assert_close(chosen(x), direct, atol=1e-4, rtol=1e-4)
    if stride != 1 or k == 1:
        assert plans[0].chosen == "direct" and not plans[0].timings_ms  # nothing to choose from


def test_dilated_convolution_stays_direct() -> None:
    conv = nn.Conv2d(4, 4, 3, padding=2, dilation=2)
    assert not any(fft_convolution_possible(conv, t) for t in (8, 16, 32))
    with pytest.raises(Exception, match="cannot run as an FFT convolution"):
        FFTConv2d(conv, 16)


def _circulant_linear(out_f: int, in_f: int, block: int) -> nn.Linear:
    layer = nn.Linear(in_f, out_f)
    v = nearest_circulant_vectors(layer.weight.detach().numpy(), block)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(expand_circulant(v, (out_f, in_f), block)))
    return layer


@pytest.mark.parametrize("out_f, in_f, block", [(300, 784, 16), (100, 300, 16), (64, 64, 64), (10, 33, 4)])
def test_circulant_linear_equals_the_dense_layer(out_f, in_f, block) -> None:
    torch.manual_seed(1)
    layer = _circulant_linear(out_f, in_f, block)
    assert circulant_block_of(layer) == block
    fft = CirculantLinear.from_linear(layer, block)
    x = torch.randn(5, in_f)
    with torch.no_grad():
        torch.testing.assert_close(fft(x), layer(x), atol=1e-4, rtol=1e-4)
    assert CirculantLinear.from_linear(nn.Linear(in_f, out_f), block) is None  # a dense layer is not


def test_the_chooser_records_a_plan_and_keeps_outputs() -> None:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(3, 8, 5, padding=2), nn.ReLU(), nn.Flatten(), _circulant_linear(16, 8 * 12 * 12, 16))
    x = torch.randn(1, 3, 12, 12)
    chosen, plans = frequency_module(model, x, repeats=2)
    assert [p.layer for p in plans] == ["0", "3"]
    assert set(plans[0].timings_ms) >= {"direct", "fft-tile-8", "fft-tile-16"}
    assert set(plans[1].timings_ms) == {"direct", "fft-circulant-16"}
    for p in plans:
        assert p.chosen == min(p.timings_ms, key=p.timings_ms.get)
    with torch.no_grad():
        torch.testing.assert_close(chosen(x), model(x), atol=1e-4, rtol=1e-4)
    only, _ = frequency_module(model, x, repeats=1, choose=False)
    assert all(type(m) in (nn.Conv2d, nn.Linear, nn.ReLU, nn.Flatten, nn.Sequential) for m in only.modules())
