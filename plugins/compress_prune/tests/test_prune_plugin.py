"""The plugin's registration and the compressors' strict parameter checks."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import sigdl_compress_prune.plugin as prune_plugin
from sigdl_core.errors import BadInputError, InvalidValueError, UnknownNameError
from sigdl_core.interfaces import ChannelGroup, ChannelSlice, CompressorSpec
from sigdl_core.plugins import load_plugins


@pytest.fixture(scope="module")
def registry():
    loaded = load_plugins(entry_points=False, extra=[("compress_prune", prune_plugin)])
    assert not loaded.failed
    return loaded.registry


def test_prune_plugin_registers_two_documented_compressors(registry):
    assert registry.names("compressor") == ["prune", "prune-structured"]
    for spec in registry.specs("compressor"):
        assert isinstance(spec, CompressorSpec) and spec.description
        assert spec.params and all(isinstance(v, str) and v for v in spec.params.values())
    assert registry.get("compressor", "prune").role == "prune"  # the search's sparsity knob
    assert registry.get("compressor", "prune-structured").role == "other"
    assert registry.compressor("prune").name == "prune"
    assert registry.compressor("prune-structured").name == "prune-structured"


def test_prune_plugin_entry_point_is_installed():
    from importlib import metadata

    points = {ep.name: ep.value for ep in metadata.entry_points(group="sigdl.plugins")}
    assert points.get("compress_prune") == "sigdl_compress_prune.plugin"


def test_prune_plugin_module_imports_nothing_heavy():
    import subprocess

    code = ("import sys, sigdl_compress_prune.plugin as p; p.sigdl_compressors(); "
            "print(sorted(m for m in ('numpy', 'torch', 'tensorflow', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_prune_compressor_runs_each_method(registry, trained_weights, mlp):
    prune = registry.compressor("prune")
    for params in ({"sparsity": 0.8}, {"quality": 1.0}, {"global_sparsity": 0.8},
                   {"sparsity": {"fc1": 0.9, "fc2.weight": 0.5}},
                   {"sparsity": 0.9, "agp_steps": 4, "agp_step": 1},
                   {"global_sparsity": 0.9, "agp_steps": 4, "agp_step": 4},
                   {"sparsity": {"fc1": 0.9}, "agp_steps": 2, "agp_step": 1},
                   {"sparsity": 0.5, "layers": ["fc1.weight"]}):
        result = prune.compress(trained_weights, mlp.kinds, params)
        assert result.state["masks"], params
        for name, mask in result.state["masks"].items():
            assert np.all(result.weights[name][~mask] == 0)
    step1 = prune.compress(trained_weights, mlp.kinds, {"sparsity": 0.9, "agp_steps": 4, "agp_step": 1})
    mask = step1.state["masks"]["fc1.weight"]
    assert 1 - mask.mean() == pytest.approx(0.9 - 0.9 * 0.75**3, abs=1 / mask.size)


@pytest.mark.slow
def test_prune_compressor_runs_the_whole_agp_schedule_with_retrain(registry, trained_weights, mlp):
    prune = registry.compressor("prune")
    seen = []

    def retrain(weights, projection):
        seen.append(1)
        return mlp.train(weights, projection=projection, epochs=2, seed=7)

    result = prune.compress(trained_weights, mlp.kinds,
                            {"sparsity": 0.8, "agp_steps": 3, "retrain": retrain,
                             "evaluate": mlp.accuracy})
    assert len(seen) == 4  # steps 0..3
    steps = result.state["agp"]["steps"]
    assert [round(s["overall_sparsity"], 2) for s in steps] == [0.0, 0.56, 0.77, 0.8]
    assert mlp.accuracy(result.weights) > mlp.accuracy(trained_weights) - 0.03
    # chaining on into a structured stage cuts the masks along
    structured = registry.compressor("prune-structured").compress(
        result.weights, mlp.kinds,
        {"channel_groups": [ChannelGroup(48, (ChannelSlice("fc1.weight", 0), ChannelSlice("fc1.bias", 0)),
                                          consumers=(ChannelSlice("fc2.weight", 1),))],
         "ratio": 0.25}, previous=result)
    assert structured.state["masks"]["fc1.weight"].shape == (36, 64)


BAD_PRUNE = [
    ({"sparsity": 1.5}, InvalidValueError, "out of range"),
    ({"sparsity": -0.1}, InvalidValueError, "out of range"),
    ({"sparsity": "a lot"}, InvalidValueError, "not a number"),
    ({"sparsity": True}, InvalidValueError, "not a number"),
    ({"quality": -1.0}, InvalidValueError, "out of range"),
    ({"quality": float("nan")}, InvalidValueError, "out of range"),
    ({"global_sparsity": 1.0}, InvalidValueError, "out of range"),
    ({"sparsity": {"fc9.weight": 0.5}}, UnknownNameError, "fc9.weight"),
    ({"sparsity": {"conv*": 0.5}}, UnknownNameError, "conv"),
    ({"sparsity": {"fc1.weight": 2}}, InvalidValueError, "out of range"),
    ({"sparsity": 0.5, "layers": ["fc7"]}, UnknownNameError, "fc7"),
    ({"sparsity": 0.5, "layers": 5}, InvalidValueError, "not a list"),
    ({"sparsity": 0.5, "kinds": ["fc", "weird"]}, UnknownNameError, "weird"),
    ({"sparsity": 0.5, "sparsty": 0.5}, UnknownNameError, "sparsty"),
    ({}, InvalidValueError, "exactly one"),
    ({"sparsity": 0.5, "quality": 1.0}, InvalidValueError, "exactly one"),
    ({"quality": 1.0, "agp_steps": 3, "agp_step": 1}, InvalidValueError, "not quality"),
    ({"sparsity": 0.5, "agp_step": 1}, InvalidValueError, "agp_steps"),
    ({"sparsity": 0.5, "agp_steps": 0, "agp_step": 0}, InvalidValueError, "agp_steps"),
    ({"sparsity": 0.5, "agp_steps": 3, "agp_step": 4}, InvalidValueError, "past the last"),
    ({"sparsity": 0.5, "agp_steps": 3}, InvalidValueError, "retrain"),
    ({"sparsity": 0.5, "agp_steps": 3, "retrain": "train.py"}, InvalidValueError, "not callable"),
    ({"sparsity": 0.5, "agp_steps": 3, "agp_step": 1, "evaluate": len}, InvalidValueError, "either"),
    ({"sparsity": 0.5, "agp_steps": 3, "initial_sparsity": 0.7, "agp_step": 1}, InvalidValueError,
     "above the final"),
]


@pytest.mark.parametrize("params, error, match", BAD_PRUNE)
def test_prune_bad_params_are_clear_errors(registry, trained_weights, mlp, params, error, match):
    with pytest.raises(error, match=match) as info:
        registry.compressor("prune").compress(trained_weights, mlp.kinds, params)
    assert isinstance(info.value, BadInputError)
    assert info.value.hint, "every bad-input error says how to mend it"


def test_prune_unknown_param_suggests_the_right_one(registry, trained_weights, mlp):
    with pytest.raises(UnknownNameError) as info:
        registry.compressor("prune").compress(trained_weights, mlp.kinds, {"sparsty": 0.5})
    assert "sparsity" in info.value.hint


GROUPS = [
    ChannelGroup(48, (ChannelSlice("fc1.weight", 0), ChannelSlice("fc1.bias", 0)),
                 consumers=(ChannelSlice("fc2.weight", 1),)),
    ChannelGroup(10, (ChannelSlice("fc2.weight", 0), ChannelSlice("fc2.bias", 0)), prunable=False),
]

BAD_STRUCTURED = [
    ({"ratio": 0.5}, InvalidValueError, "channel groups"),
    ({"channel_groups": GROUPS}, InvalidValueError, "exactly one"),
    ({"channel_groups": GROUPS, "ratio": 1.5}, InvalidValueError, "out of range"),
    ({"channel_groups": GROUPS, "ratio": 0.5, "global_ratio": 0.5}, InvalidValueError, "exactly one"),
    ({"channel_groups": GROUPS, "global_ratio": {"fc1": 0.5}}, InvalidValueError, "one fraction"),
    ({"channel_groups": GROUPS, "ratio": {"conv1": 0.5}}, UnknownNameError, "conv1"),
    ({"channel_groups": GROUPS, "ratio": {"fc2": 0.5}}, InvalidValueError, "cannot be pruned"),
    ({"channel_groups": GROUPS, "ratio": 0.5, "norm": "l0"}, UnknownNameError, "l0"),
    ({"channel_groups": GROUPS, "ratio": 0.5, "min_channels": 0}, InvalidValueError, "min_channels"),
    ({"channel_groups": GROUPS, "ratio": 0.5, "prune_bias": True}, UnknownNameError, "prune_bias"),
    ({"channel_groups": "all of them", "ratio": 0.5}, InvalidValueError, "not a list"),
    ({"channel_groups": [ChannelGroup(64, (ChannelSlice("fc1.weight", 0),))], "ratio": 0.5},
     InvalidValueError, "outside"),
]


@pytest.mark.parametrize("params, error, match", BAD_STRUCTURED)
def test_prune_structured_bad_params_are_clear_errors(registry, trained_weights, mlp, params, error, match):
    with pytest.raises(error, match=match) as info:
        registry.compressor("prune-structured").compress(trained_weights, mlp.kinds, params)
    assert info.value.hint
