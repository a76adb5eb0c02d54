"""Channel groups from the torch.fx graph walk, and thinning of the six zoo models.

The consistency check used throughout: a model thinned by structured pruning must compute
exactly what the original computes with the removed channels' producers and followers set
to zero (a zero channel contributes nothing downstream, through ReLU, pooling, batch norm
with zeroed scale and shift, and depthwise filters). Batch-norm statistics are randomised
first, so that a follower left out would show.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from sigdl_core.errors import InvalidValueError, UnsupportedModelError
from sigdl_core.interfaces import ChannelGroup, Model
from torch import nn

from sigdl_framework_torch.framework import TorchFramework
from sigdl_framework_torch.models import build_module
from sigdl_framework_torch.structure import channel_groups

torch.set_num_threads(1)


def _groups_by_producer(groups: list[ChannelGroup]) -> dict[str, ChannelGroup]:
    return {p.name: g for g in groups for p in g.producers}


def _check_groups_fit(module: nn.Module, groups: list[ChannelGroup]) -> None:
    """Every slice names a float array of the module and lies inside it; no overlaps."""
    state = {k: v for k, v in module.state_dict().items() if v.is_floating_point()}
    claimed: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for group in groups:
        assert group.size >= 1 and group.producers
        for piece in (*group.producers, *group.followers, *group.consumers):
            assert piece.name in state, piece.name
            end = piece.offset + group.size * piece.span
            assert end <= state[piece.name].shape[piece.axis], (piece, group.size)
            for start, stop in claimed.get((piece.name, piece.axis), []):
                assert stop <= piece.offset or end <= start, f"overlap on {piece.name}"
            claimed.setdefault((piece.name, piece.axis), []).append((piece.offset, end))


# --------------------------------------------------------------------------- the zoo's graphs


ZOO = [
    ("lenet300100", (1, 28, 28), 10),
    ("lenet5", (1, 28, 28), 10),
    ("alexnet", (3, 224, 224), 1000),
    ("vgg16", (3, 224, 224), 1000),
    ("mobilenet", (3, 224, 224), 1000),
    ("squeezenet", (3, 224, 224), 1000),
]


@pytest.mark.parametrize("architecture, shape, classes", ZOO)
def test_torch_structure_zoo_groups_at_full_size_on_meta(architecture, shape, classes):
    """The canonical models, built on the meta device (no weights allocated)."""
    module = build_module(architecture, shape, classes, device="meta")
    groups = channel_groups(module, shape)
    _check_groups_fit(module, groups)
    # every conv/linear output is one group; only the classifier's is fixed
    producing = [n for n, m in module.named_modules()
                 if isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.groups == 1)]
    by_producer = _groups_by_producer(groups)
    assert sorted(p.rpartition(".")[0] for p in by_producer if p.endswith(".weight")) == sorted(producing)
    fixed = [g for g in groups if not g.prunable]
    assert len(fixed) == 1 and fixed[0].size == classes
    assert all(g.consumers for g in groups if g.prunable)


def test_torch_structure_flatten_spans():
    lenet5 = channel_groups(build_module("lenet5", (1, 28, 28), 10, device="meta"), (1, 28, 28))
    conv2 = _groups_by_producer(lenet5)["conv2.weight"]
    assert [(c.name, c.axis, c.offset, c.span) for c in conv2.consumers] == [("fc1.weight", 1, 0, 16)]
    alexnet = channel_groups(build_module("alexnet", (3, 224, 224), 1000, device="meta"), (3, 224, 224))
    last = _groups_by_producer(alexnet)["features.10.weight"]
    assert [(c.name, c.span) for c in last.consumers] == [("classifier.1.weight", 36)]
    vgg = channel_groups(build_module("vgg16", (3, 32, 32), 10, device="meta"), (3, 32, 32))
    # at 32x32 the features end 1x1, and the adaptive pool repeats each channel 7x7 times
    assert [(c.name, c.span) for c in _groups_by_producer(vgg)["features.28.weight"].consumers] == [
        ("classifier.0.weight", 49)]
    lenet300 = channel_groups(build_module("lenet300100", (1, 28, 28), 10, device="meta"), (1, 28, 28))
    assert len(lenet300) == 3 and [g.size for g in lenet300] == [300, 100, 10]


def test_torch_structure_mobilenet_depthwise_follows_pointwise():
    groups = channel_groups(build_module("mobilenet", (3, 32, 32), 10, device="meta"), (3, 32, 32))
    group = _groups_by_producer(groups)["features.1.3.weight"]  # block 1's pointwise conv, 64
    followers = {f.name for f in group.followers}
    assert followers == {
        "features.1.4.weight", "features.1.4.bias", "features.1.4.running_mean",
        "features.1.4.running_var",  # its batch norm
        "features.2.0.weight",  # the next block's depthwise filters
        "features.2.1.weight", "features.2.1.bias", "features.2.1.running_mean",
        "features.2.1.running_var",  # the depthwise conv's batch norm
    }
    assert [(c.name, c.axis) for c in group.consumers] == [("features.2.3.weight", 1)]
    assert len(groups) == 15  # stem + 13 pointwise + classifier: depthwise convs make none


def test_torch_structure_squeezenet_fire_concatenation_offsets():
    groups = channel_groups(build_module("squeezenet", (3, 64, 64), 10, device="meta"), (3, 64, 64))
    by = _groups_by_producer(groups)
    squeeze = by["features.3.squeeze.weight"]
    assert sorted((c.name, c.offset) for c in squeeze.consumers) == [
        ("features.3.expand1x1.weight", 0), ("features.3.expand3x3.weight", 0)]
    e1, e3 = by["features.4.expand1x1.weight"], by["features.4.expand3x3.weight"]
    assert [(c.name, c.offset) for c in e1.consumers] == [("features.6.squeeze.weight", 0)]
    assert [(c.name, c.offset) for c in e3.consumers] == [("features.6.squeeze.weight", 64)]
    last3 = by["features.12.expand3x3.weight"]
    assert [(c.name, c.offset) for c in last3.consumers] == [("classifier.1.weight", 256)]
    assert not by["classifier.1.weight"].prunable


# --------------------------------------------------------------------------- thinning the zoo


def _zeroed(weights, groups, keep):
    out = {n: np.array(a, copy=True) for n, a in weights.items()}
    for group, kept in zip(groups, keep):
        dropped = np.setdiff1d(np.arange(group.size), kept)
        for piece in (*group.producers, *group.followers):
            moved = np.moveaxis(out[piece.name], piece.axis, 0)
            for c in dropped:
                moved[piece.offset + c * piece.span: piece.offset + (c + 1) * piece.span] = 0
    return out


def _randomise_norms(framework: TorchFramework, model: Model, seed: int) -> None:
    rng = np.random.default_rng(seed)
    kinds = framework.layer_kinds(model)
    weights = framework.get_weights(model)
    update = {}
    for name, array in weights.items():
        if kinds[name] == "norm":
            low = 0.5 if name.endswith(("running_var", ".weight")) else -0.5
            update[name] = rng.uniform(low, 1.5, array.shape).astype(np.float32)
    framework.set_weights(model, update)


def _forward(model: Model, x: torch.Tensor) -> np.ndarray:
    model.native.eval()
    with torch.no_grad():
        return model.native(x).numpy()


THIN_CASES = [
    ("lenet300100", (1, 28, 28), 10),
    ("lenet5", (1, 28, 28), 10),
    ("mobilenet", (3, 32, 32), 10),
    ("squeezenet", (3, 32, 32), 10),
    pytest.param("alexnet", (3, 64, 64), 10, marks=pytest.mark.slow),
    pytest.param("vgg16", (3, 32, 32), 10, marks=pytest.mark.slow),
]


@pytest.mark.parametrize("architecture, shape, classes", THIN_CASES)
def test_torch_structure_thinning_half_the_channels_keeps_outputs_consistent(architecture, shape, classes):
    prune = pytest.importorskip("sigdl_compress_prune")
    framework = TorchFramework()
    model = framework.build(architecture, shape, classes, seed=0)
    _randomise_norms(framework, model, seed=1)
    x = torch.from_numpy(np.random.default_rng(2).standard_normal((3, *shape)).astype(np.float32))
    weights = framework.get_weights(model)
    kinds = framework.layer_kinds(model)
    groups = framework.channel_groups(model)
    before = framework.parameter_count(model)

    result = prune.ChannelPruner().compress(weights, kinds, {"channel_groups": groups, "ratio": 0.5})
    keep = [np.array(g["kept"]) for g in result.state["thinning"]["groups"]]
    for group, kept in zip(groups, keep):
        assert len(kept) == (group.size - round(0.5 * group.size) if group.prunable else group.size)

    framework.set_weights(model, _zeroed(weights, groups, keep))
    reference = _forward(model, x)
    framework.set_weights(model, result.weights)
    thinned = _forward(model, x)
    after = framework.parameter_count(model)

    assert thinned.shape == reference.shape == (3, classes)
    scale = float(np.abs(reference).max()) or 1.0
    np.testing.assert_allclose(thinned, reference, rtol=1e-3, atol=1e-4 * scale)
    assert after < 0.6 * before, (before, after)
    # the model's arrays now have the thinned shapes, and the graph walk agrees with them
    for name, array in framework.get_weights(model).items():
        assert array.shape == result.weights[name].shape
    regrouped = framework.channel_groups(model)
    assert [g.size for g in regrouped] == [len(k) for k in keep]
    del weights, result


@pytest.mark.parametrize("architecture, shape", [("squeezenet", (3, 32, 32)), ("mobilenet", (3, 32, 32))])
def test_torch_structure_ratio_zero_changes_nothing(architecture, shape):
    prune = pytest.importorskip("sigdl_compress_prune")
    framework = TorchFramework()
    model = framework.build(architecture, shape, 10, seed=3)
    x = torch.from_numpy(np.random.default_rng(4).standard_normal((2, *shape)).astype(np.float32))
    before = _forward(model, x)
    result = prune.ChannelPruner().compress(
        framework.get_weights(model), framework.layer_kinds(model),
        {"channel_groups": framework.channel_groups(model), "ratio": 0.0})
    framework.set_weights(model, result.weights)
    np.testing.assert_array_equal(_forward(model, x), before)


def test_torch_structure_global_ratio_thins_mobilenet_and_it_trains_shape_wise():
    prune = pytest.importorskip("sigdl_compress_prune")
    framework = TorchFramework()
    model = framework.build("mobilenet", (3, 32, 32), 10, seed=5)
    weights = framework.get_weights(model)
    groups = framework.channel_groups(model)
    result = prune.ChannelPruner().compress(
        weights, framework.layer_kinds(model),
        {"channel_groups": [prune.channel_group_to_dict(g) for g in groups], "global_ratio": 0.3,
         "norm": "l2"})
    framework.set_weights(model, result.weights)
    total = sum(g.size for g in groups if g.prunable)
    kept = sum(len(g["kept"]) for g in result.state["thinning"]["groups"] if g["prunable"])
    assert abs((total - kept) - round(0.3 * total)) <= 1
    module = model.native
    module.train()
    out = module(torch.randn(4, 3, 32, 32))
    out.sum().backward()  # gradients flow through the thinned layers
    assert all(p.grad is not None for p in module.parameters())
    dw = module.get_submodule("features.2.0")
    assert dw.groups == dw.in_channels == dw.out_channels == module.get_submodule("features.1.3").out_channels


# --------------------------------------------------------------------------- hand-made graphs


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a = nn.Conv2d(8, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.b = nn.Conv2d(3, 8, 1)
        self.head = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x):
        y = torch.relu(self.stem(x))
        y = self.bn(self.a(y)) + self.b(x)  # ties a's and b's channels together
        y = torch.relu(y)
        y = nn.functional.adaptive_avg_pool2d(y, 4)
        return self.head(y.view(y.size(0), -1))


def test_torch_structure_residual_add_merges_groups_and_thins_consistently():
    prune = pytest.importorskip("sigdl_compress_prune")
    torch.manual_seed(0)
    module = _Residual().eval()
    groups = channel_groups(module, (3, 8, 8))
    _check_groups_fit(module, groups)
    by = _groups_by_producer(groups)
    assert by["a.weight"] is by["b.weight"]
    merged = by["a.weight"]
    assert {p.name for p in merged.producers} == {"a.weight", "a.bias", "b.weight", "b.bias"}
    assert {f.name for f in merged.followers} == {"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"}
    assert [(c.name, c.span) for c in merged.consumers] == [("head.weight", 16)]
    assert len(groups) == 3 and merged.prunable

    framework = TorchFramework()
    model = Model("torch", "residual", (3, 8, 8), 5, module)
    _randomise_norms(framework, model, seed=6)
    x = torch.randn(2, 3, 8, 8)
    weights = framework.get_weights(model)
    result = prune.ChannelPruner().compress(weights, framework.layer_kinds(model),
                                            {"channel_groups": groups, "ratio": 0.5})
    keep = [np.array(g["kept"]) for g in result.state["thinning"]["groups"]]
    framework.set_weights(model, _zeroed(weights, groups, keep))
    reference = _forward(model, x)
    framework.set_weights(model, result.weights)
    np.testing.assert_allclose(_forward(model, x), reference, rtol=1e-4, atol=1e-5)
    assert module.a.out_channels == module.b.out_channels == module.bn.num_features == 4


class _Shuffle(nn.Module):
    """A channel shuffle (ShuffleNet) and a grouped convolution: neither is modelled."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 1)
        self.c2 = nn.Conv2d(8, 8, 1)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.c3 = nn.Conv2d(8, 6, 1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        y = self.c1(x)
        n, c, h, w = y.size(0), y.size(1), y.size(2), y.size(3)
        y = y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        y = self.grouped(torch.relu(self.c2(y)))
        y = self.c3(y).mean([2, 3])
        return self.fc(y)


def test_torch_structure_unknown_ops_make_groups_unprunable():
    groups = channel_groups(_Shuffle(), (3, 5, 5))
    by = _groups_by_producer(groups)
    assert not by["c1.weight"].prunable  # channel shuffle: reshape to 5-D
    assert not by["c2.weight"].prunable  # feeds a grouped (not depthwise) convolution
    assert not by["grouped.weight"].prunable
    assert by["c3.weight"].prunable  # reduced over H, W by .mean([2, 3]): channels pass
    assert [(c.name, c.span) for c in by["c3.weight"].consumers] == [("fc.weight", 1)]
    assert not by["fc.weight"].prunable


class _Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(4, 4, 1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        y = self.c(torch.relu(self.c(x)))  # one layer applied twice
        return self.fc(y.mean([2, 3]))


def test_torch_structure_reused_layer_is_not_pruned():
    groups = channel_groups(_Shared(), (4, 3, 3))
    assert not _groups_by_producer(groups)["c.weight"].prunable
    assert sum(1 for g in groups for p in g.producers if p.name == "c.weight") == 1


class _BranchOnData(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        if x.sum() > 0:
            return self.fc(x)
        return -self.fc(x)


def test_torch_structure_untraceable_and_bad_shapes_are_clear_errors():
    with pytest.raises(UnsupportedModelError, match="cannot trace"):
        channel_groups(_BranchOnData(), (4,))
    with pytest.raises(UnsupportedModelError, match="does not run"):
        channel_groups(build_module("lenet5", (1, 28, 28), 10), (3, 28, 28))
    with pytest.raises(InvalidValueError):
        channel_groups(_Shared(), ("a", 3))


def test_torch_structure_leaves_training_mode_and_weights_alone():
    module = build_module("mobilenet", (3, 32, 32), 10)
    module.train()
    module.features[1].eval()
    modes = {n: m.training for n, m in module.named_modules()}
    state = copy.deepcopy(module.state_dict())
    channel_groups(module, (3, 32, 32))
    assert {n: m.training for n, m in module.named_modules()} == modes
    for name, tensor in module.state_dict().items():
        assert torch.equal(tensor, state[name]), name  # BN statistics untouched


def test_torch_structure_batchnorm1d_after_linear_is_a_follower():
    module = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    groups = channel_groups(module, (3, 2, 2))
    first = _groups_by_producer(groups)["1.weight"]
    assert {f.name for f in first.followers} == {"2.weight", "2.bias", "2.running_mean", "2.running_var"}
    assert [(c.name, c.axis) for c in first.consumers] == [("4.weight", 1)]
