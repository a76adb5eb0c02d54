"""Bad parameters get a clear error naming the parameter; the plugin registers cheaply."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sigdl_core.errors import BadInputError, InvalidValueError, UnknownNameError
from sigdl_core.interfaces import Compressor
from sigdl_core.plugins import load_plugins
from sigdl_compress_quant import plugin
from sigdl_compress_quant.coding import encode_weights
from sigdl_compress_quant.linear import quantize_fp16, quantize_int8
from sigdl_compress_quant.weight_sharing import share_weights

W = {"conv.weight": np.ones((4, 2, 3, 3), np.float32), "fc.weight": np.linspace(-1, 1, 20, dtype=np.float32).reshape(2, 10)}
K = {"conv.weight": "conv", "fc.weight": "fc"}


@pytest.mark.parametrize(
    "params, error, text",
    [
        ({"bits": 0}, InvalidValueError, "'bits'=0 is out of range"),
        ({"bits": 17}, InvalidValueError, "'bits'=17 is out of range"),
        ({"bits": 2.5}, InvalidValueError, "whole number"),
        ({"bits": True}, InvalidValueError, "whole number"),
        ({"bits_fc": -1}, InvalidValueError, "bits_fc"),
        ({"layers": {"fc9.weight": 4}}, UnknownNameError, "fc9.weight"),
        ({"layers": {"fc.weight": 0}}, InvalidValueError, "layers.fc.weight"),
        ({"layers": [4]}, InvalidValueError, "mapping"),
        ({"skip": ["nope"]}, UnknownNameError, "nope"),
        ({"kinds": ["convv"]}, UnknownNameError, "convv"),
        ({"bitz": 4}, UnknownNameError, "bitz"),
        ({"centroid_update": "median"}, InvalidValueError, "centroid_update"),
        ({"iterations": 0}, InvalidValueError, "iterations"),
    ],
)
def test_quant_rejects_bad_parameters(params, error, text) -> None:
    with pytest.raises(error) as info:
        share_weights(W, K, params)
    assert text in info.value.one_line()
    assert info.value.hint  # says how to mend it


def test_unknown_layer_names_suggest_the_right_one() -> None:
    with pytest.raises(UnknownNameError) as info:
        share_weights(W, K, {"layers": {"fc.weigth": 4}})
    assert "did you mean 'fc.weight'" in info.value.one_line()


@pytest.mark.parametrize(
    "fn, params, text",
    [
        (quantize_int8, {"per_channel": "yes"}, "per_channel"),
        (quantize_int8, {"symmetric": 1}, "symmetric"),
        (quantize_int8, {"bits": 8}, "bits"),
        (quantize_fp16, {"skip": "fc9"}, "fc9"),
        (encode_weights, {"coder": "zip"}, "coder"),
        (encode_weights, {"index_bits": 0}, "index_bits"),
        (encode_weights, {"index_bits_fc": 17}, "index_bits_fc"),
        (encode_weights, {"layers": {"conv": "big"}}, "layers.conv"),
        (encode_weights, {"others": "f8"}, "others"),
    ],
)
def test_other_compressors_reject_bad_parameters(fn, params, text) -> None:
    with pytest.raises(BadInputError) as info:
        fn(W, K, params)
    assert text in info.value.one_line()


def test_nan_weights_are_refused() -> None:
    bad = {"fc.weight": np.array([[np.nan, 1.0]], np.float32)}
    for fn in (share_weights, quantize_int8, quantize_fp16):
        with pytest.raises(InvalidValueError, match="NaN"):
            fn(bad, {"fc.weight": "fc"}, {})


def test_plugin_registers_its_compressors_with_documented_parameters() -> None:
    loaded = load_plugins(entry_points=False, extra=[("compress_quant", plugin)])
    assert not loaded.failed
    names = loaded.registry.names("compressor")
    assert names == ["encode", "fp16", "huffman", "int8", "quant"]
    for name in names:
        spec = loaded.registry.get("compressor", name)
        assert spec.params and all(isinstance(v, str) and v for v in spec.params.values())
        compressor = loaded.registry.compressor(name)
        assert isinstance(compressor, Compressor) and compressor.name == name
    assert {"bits", "bits_conv", "bits_fc", "layers"} <= set(loaded.registry.get("compressor", "quant").params)
    roles = {n: loaded.registry.get("compressor", n).role for n in names}
    assert roles == {"encode": "encode", "fp16": "other", "huffman": "encode", "int8": "other", "quant": "quantize"}


def test_search_style_bits_mapping_with_numpy_integers() -> None:
    result = share_weights(W, K, {"layers": {"conv.weight": np.int64(3), "fc.weight": np.int32(2)}})
    assert result.state["quant"]["conv.weight"]["bits"] == 3
    assert len(np.unique(result.weights["fc.weight"])) <= 4


def test_hook_module_imports_nothing_heavy() -> None:
    code = ("import sys, sigdl_compress_quant.plugin as p; p.sigdl_compressors(); "
            "heavy = [m for m in ('numpy', 'onnx', 'onnxruntime', 'torch') if m in sys.modules]; "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
