"""int8 and fp16 quantization of weights: ONNX arithmetic, grids, projections, masks."""

from __future__ import annotations

import numpy as np
import pytest
from sigdl_core.artifact import dequantize_linear, quantize_linear
from sigdl_core.interfaces import CompressionResult
from sigdl_compress_quant.linear import int8_parameters, quantize_fp16, quantize_int8

KINDS = {"conv.weight": "conv", "conv.bias": "bias", "fc.weight": "fc"}


def _weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "conv.weight": rng.normal(0, 0.1, (8, 3, 3, 3)).astype(np.float32) * np.linspace(0.1, 2, 8)[:, None, None, None],
        "conv.bias": rng.normal(size=8).astype(np.float32),
        "fc.weight": rng.normal(0.05, 0.2, (10, 72)).astype(np.float32),
    }


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("symmetric", [True, False])
def test_int8_weights_lie_on_their_grid(per_channel: bool, symmetric: bool) -> None:
    w = _weights()
    result = quantize_int8(w, KINDS, {"per_channel": per_channel, "symmetric": symmetric})
    np.testing.assert_array_equal(result.weights["conv.bias"], w["conv.bias"])  # biases stay float32
    for name in ("conv.weight", "fc.weight"):
        p = result.state["int8"][name]
        assert p["axis"] == (0 if per_channel else None)
        assert p["signed"] is symmetric
        q = p["q"]
        assert q.dtype == (np.int8 if symmetric else np.uint8)
        deq = dequantize_linear(q, p["scale"], p["zero_point"], p["axis"])
        np.testing.assert_array_equal(result.weights[name], deq)
        # Rounding error at most half a step, per channel.
        step = p["scale"].reshape((-1,) + (1,) * (w[name].ndim - 1)) if per_channel else p["scale"][0]
        assert np.all(np.abs(result.weights[name] - w[name]) <= step / 2 + 1e-7)
        if symmetric:
            assert np.all(p["zero_point"] == 0)
            assert np.abs(q.astype(int)).max() == 127  # the largest weight maps to +-127
        else:
            assert np.all((p["zero_point"] >= 0) & (p["zero_point"] <= 255))
        assert result.state["representation"][name] == "int8"


def test_int8_parameters_match_onnxruntime() -> None:
    quant_utils = pytest.importorskip("onnxruntime.quantization.quant_utils")
    from onnx import TensorProto
    x = _weights()["fc.weight"]
    for symmetric in (True, False):
        scale, zp, _, _ = int8_parameters(x, per_channel=False, symmetric=symmetric)
        qtype = TensorProto.INT8 if symmetric else TensorProto.UINT8
        qmin, qmax = quant_utils.get_qmin_qmax_for_qType(qtype, symmetric=symmetric)
        ort_zp, ort_scale = quant_utils.compute_scale_zp(np.array(x.min(), np.float32), np.array(x.max(), np.float32),
                                                         qmin, qmax, symmetric=symmetric)
        np.testing.assert_allclose(scale[0], ort_scale, rtol=1e-6)
        assert int(zp[0]) == int(ort_zp)


def test_asymmetric_grid_holds_an_exact_zero_and_masks_hold() -> None:
    w = _weights(1)
    mask = np.abs(w["fc.weight"]) > 0.15
    w["fc.weight"][~mask] = 0
    prev = CompressionResult(weights=w, state={"masks": {"fc.weight": mask}})
    result = quantize_int8(w, KINDS, {"symmetric": False, "per_channel": True}, prev)
    x = result.weights["fc.weight"]
    assert not x[~mask].any()
    p = result.state["int8"]["fc.weight"]
    zp_rows = p["zero_point"][:, None]
    assert np.all(p["q"][~mask] == np.broadcast_to(zp_rows, x.shape)[~mask])
    # Training moves the weights; the projection snaps them back and re-zeroes the pruned ones.
    moved = {k: v.copy() for k, v in result.weights.items()}
    rng = np.random.default_rng(2)
    for k in moved:
        moved[k] += rng.normal(0, 0.003, moved[k].shape).astype(np.float32)
    result.projection(moved)
    assert not moved["fc.weight"][~mask].any()
    for name in ("conv.weight", "fc.weight"):
        p = result.state["int8"][name]
        snapped = dequantize_linear(quantize_linear(moved[name], p["scale"], p["zero_point"], p["axis"], p["signed"]),
                                    p["scale"], p["zero_point"], p["axis"])
        np.testing.assert_array_equal(moved[name], snapped)


def test_int8_retraining_keeps_accuracy(quant_mlp, quant_trained) -> None:
    data = quant_mlp.data
    base = quant_mlp.accuracy(quant_trained, data.x_test, data.y_test)
    result = quantize_int8({k: v.copy() for k, v in quant_trained.items()}, quant_mlp.kinds, {})
    w = {k: v.copy() for k, v in result.weights.items()}
    assert quant_mlp.accuracy(w, data.x_test, data.y_test) >= base - 0.01
    quant_mlp.train(w, data, epochs=1, lr=0.01, projection=result.projection)
    for name in ("fc1.weight", "fc2.weight"):
        p = result.state["int8"][name]
        grid = dequantize_linear(quantize_linear(w[name], p["scale"], p["zero_point"], p["axis"]),
                                 p["scale"], p["zero_point"], p["axis"])
        np.testing.assert_array_equal(w[name], grid)
    assert quant_mlp.accuracy(w, data.x_test, data.y_test) >= base - 0.01


def test_fp16_rounds_and_snaps() -> None:
    w = _weights(3)
    result = quantize_fp16(w, KINDS, {"kinds": ["conv", "fc", "bias"]})
    for name, x in result.weights.items():
        np.testing.assert_array_equal(x, w[name].astype(np.float16).astype(np.float32))
        assert result.state["representation"][name] == "fp16"
    moved = {k: v + np.float32(1e-4) for k, v in result.weights.items()}
    result.projection(moved)
    for x in moved.values():
        np.testing.assert_array_equal(x, x.astype(np.float16).astype(np.float32))


def test_fp16_refuses_values_beyond_its_range() -> None:
    from sigdl_core.errors import InvalidValueError

    with pytest.raises(InvalidValueError, match="float16"):
        quantize_fp16({"fc.weight": np.array([[1e6, 0.0]], np.float32)}, {"fc.weight": "fc"}, {})
