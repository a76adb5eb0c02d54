"""Caffe nets converted to ONNX, checked against a NumPy reference of Caffe's own layer code.

The reference follows BVLC Caffe's CPU implementations: ``PoolingLayer`` (output size
rounded up, a last window starting in the padding dropped, averages divided by the window
clipped to the padded image), ``ConvolutionLayer`` with groups, ``LRNLayer`` across
channels, ``BatchNormLayer`` (statistics divided by the stored scale factor) + ``ScaleLayer``,
``InnerProductLayer``, ``ConcatLayer``, ``SoftmaxLayer``.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from sigdl_framework_caffe.convert import _pool_size, caffe_to_onnx, read_caffe
from sigdl_framework_caffe.framework import CaffeFramework

# --------------------------------------------------------------------------- the reference


def ref_conv(x, w, b, stride=1, pad=0, group=1):
    n, c, h, wd = x.shape
    out, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    y = np.zeros((n, out, oh, ow), np.float64)
    og = out // group
    for g in range(group):
        for o in range(g * og, (g + 1) * og):
            for i in range(oh):
                for j in range(ow):
                    patch = xp[:, g * cg:(g + 1) * cg, i * stride:i * stride + kh, j * stride:j * stride + kw]
                    y[:, o, i, j] = (patch * w[o]).sum(axis=(1, 2, 3))
    return y + (0 if b is None else b.reshape(1, -1, 1, 1))


def ref_pool(x, k, s, pad, method):
    """Caffe's PoolingLayer::Forward_cpu, loop for loop."""
    n, c, h, w = x.shape
    ph, pw = _caffe_pooled(h, k, s, pad), _caffe_pooled(w, k, s, pad)
    y = np.zeros((n, c, ph, pw), np.float64)
    for i in range(ph):
        for j in range(pw):
            hs, ws = i * s - pad, j * s - pad
            he, we = min(hs + k, h + pad), min(ws + k, w + pad)
            size = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            window = x[:, :, hs:he, ws:we]
            y[:, :, i, j] = window.max(axis=(2, 3)) if method == "MAX" else window.sum(axis=(2, 3)) / size
    return y


def _caffe_pooled(size, k, s, pad):
    out = int(math.ceil(float(size + 2 * pad - k) / s)) + 1
    if pad and (out - 1) * s >= size + pad:
        out -= 1
    return out


def ref_lrn(x, size, alpha, beta, k):
    pre = (size - 1) // 2
    sq = np.pad(x ** 2, ((0, 0), (pre, size - pre - 1), (0, 0), (0, 0)))
    scale = k + alpha / size * sum(sq[:, i:i + x.shape[1]] for i in range(size))
    return x * scale ** -beta


def ref_softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- nets

LENET = """
name: "LeNetSmall"
input: "data"
input_dim: 1 input_dim: 1 input_dim: 13 input_dim: 13
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        param { lr_mult: 1 } param { lr_mult: 2 }
        convolution_param { num_output: 4 kernel_size: 3 stride: 1 weight_filler { type: "xavier" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1" inner_product_param { num_output: 8 } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" inner_product_param { num_output: 5 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" include { phase: TRAIN } }
layer { name: "prob" type: "Softmax" bottom: "ip2" top: "prob" include { phase: TEST } }
"""

ALEXISH = """
name: "AlexSqueezeSmall"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 4 dim: 13 dim: 13 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 6 kernel_size: 3 pad: 1 stride: 2 group: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "norm1" type: "LRN" bottom: "conv1" top: "norm1" lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 2 } }
layer { name: "pool1" type: "Pooling" bottom: "norm1" top: "pool1" pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "squeeze" type: "Convolution" bottom: "pool1" top: "squeeze" convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "bn" type: "BatchNorm" bottom: "squeeze" top: "squeeze" batch_norm_param { use_global_stats: true eps: 0.001 } }
layer { name: "scale" type: "Scale" bottom: "squeeze" top: "squeeze" scale_param { bias_term: true } }
layer { name: "expand1" type: "Convolution" bottom: "squeeze" top: "expand1" convolution_param { num_output: 2 kernel_size: 1 } }
layer { name: "expand3" type: "Convolution" bottom: "squeeze" top: "expand3" convolution_param { num_output: 2 kernel_size: 3 pad: 1 bias_term: false } }
layer { name: "concat" type: "Concat" bottom: "expand1" bottom: "expand3" top: "concat" }
layer { name: "pool2" type: "Pooling" bottom: "concat" top: "pool2" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "drop" type: "Dropout" bottom: "pool2" top: "pool2" dropout_param { dropout_ratio: 0.5 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool2" top: "fc" inner_product_param { num_output: 7 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""

V1_LENET = """
name: "LeNetV1"
input: "data"
input_shape { dim: 1 dim: 1 dim: 13 dim: 13 }
layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1" blobs_lr: 1 blobs_lr: 2
         convolution_param { num_output: 4 kernel_size: 3 } }
layers { name: "pool1" type: POOLING bottom: "conv1" top: "pool1" pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layers { name: "ip1" type: INNER_PRODUCT bottom: "pool1" top: "ip1" inner_product_param { num_output: 5 } }
layers { name: "prob" type: SOFTMAX bottom: "ip1" top: "prob" }
"""


def _lenet_blobs(rng):
    return {"conv1": [rng.standard_normal((4, 1, 3, 3)), rng.standard_normal(4)],
            "ip1": [rng.standard_normal((8, 4 * 6 * 6)) * 0.1, rng.standard_normal(8)],
            "ip2": [rng.standard_normal((5, 8)), rng.standard_normal(5)]}


def _lenet_reference(x, blobs):
    y = ref_conv(x, blobs["conv1"][0], blobs["conv1"][1])
    y = ref_pool(y, 2, 2, 0, "MAX")
    assert y.shape[2:] == (6, 6)  # ceil: 11 → 6 (a floor-rounding pool would give 5)
    y = np.maximum(y.reshape(len(x), -1) @ blobs["ip1"][0].T + blobs["ip1"][1], 0)
    return ref_softmax(y @ blobs["ip2"][0].T + blobs["ip2"][1])


def _alex_blobs(rng):
    factor = 4.0
    return {"conv1": [rng.standard_normal((6, 2, 3, 3)), rng.standard_normal(6)],
            "squeeze": [rng.standard_normal((3, 6, 1, 1)), rng.standard_normal(3)],
            "bn": [rng.standard_normal(3) * factor, (rng.random(3) + 0.5) * factor, np.array([factor])],
            "scale": [rng.random(3) + 0.5, rng.standard_normal(3)],
            "expand1": [rng.standard_normal((2, 3, 1, 1)), rng.standard_normal(2)],
            "expand3": [rng.standard_normal((2, 3, 3, 3))],
            "fc": [rng.standard_normal((7, 4 * 3 * 3)), rng.standard_normal(7)]}


def _alex_reference(x, b):
    y = np.maximum(ref_conv(x, b["conv1"][0], b["conv1"][1], stride=2, pad=1, group=2), 0)  # 13 → 7
    y = ref_lrn(y, 3, 0.5, 0.75, 2.0)
    y = ref_pool(y, 3, 2, 1, "MAX")  # 7 → 4: ceil((7 + 2 - 3) / 2) + 1
    y = ref_conv(y, b["squeeze"][0], b["squeeze"][1])
    s = b["bn"][2][0]
    mean, var = b["bn"][0] / s, b["bn"][1] / s
    y = (y - mean.reshape(1, -1, 1, 1)) / np.sqrt(var.reshape(1, -1, 1, 1) + 0.001)
    y = y * b["scale"][0].reshape(1, -1, 1, 1) + b["scale"][1].reshape(1, -1, 1, 1)
    y = np.concatenate([ref_conv(y, b["expand1"][0], b["expand1"][1]), ref_conv(y, b["expand3"][0], None, pad=1)], 1)
    y = ref_pool(y, 3, 2, 1, "AVE")  # 4 → 3; the last row's window is clipped to 2 rows of the padded image
    return ref_softmax(y.reshape(len(x), -1) @ b["fc"][0].T + b["fc"][1])


def _run(path, x):
    conv = caffe_to_onnx(read_caffe(path))
    onnx.checker.check_model(conv.model, full_check=True)
    sess = ort.InferenceSession(conv.model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0], conv


def test_caffe_pool_rounding_matches_caffes_formula():
    assert _pool_size(11, 2, 2, 0, ceil=True) == 6 and _pool_size(11, 2, 2, 0, ceil=False) == 5
    assert _pool_size(5, 2, 3, 1, ceil=True) == 2  # ceil gives 3; its last window would start in the pad
    for size in range(3, 30):
        for k in (2, 3):
            for s in (1, 2, 3):
                for pad in (0, 1):
                    assert _pool_size(size, k, s, pad, ceil=True) == _caffe_pooled(size, k, s, pad)


def test_lenet_with_legacy_input_fields_matches_the_reference(write_caffe, tmp_path):
    rng = np.random.default_rng(0)
    blobs = _lenet_blobs(rng)
    path = write_caffe(tmp_path, "lenet", LENET, blobs)
    x = rng.standard_normal((3, 1, 13, 13))
    got, conv = _run(path, x)
    np.testing.assert_allclose(got, _lenet_reference(x, blobs), rtol=1e-4, atol=1e-6)
    assert [i.name for i in conv.model.graph.initializer] == [
        "conv1.weight", "conv1.bias", "ip1.weight", "ip1.bias", "ip2.weight", "ip2.bias"]


def test_groups_lrn_padded_pools_batchnorm_scale_and_concat_match_the_reference(write_caffe, tmp_path):
    rng = np.random.default_rng(1)
    blobs = _alex_blobs(rng)
    path = write_caffe(tmp_path, "alex", ALEXISH, blobs)
    x = rng.standard_normal((2, 4, 13, 13))
    got, conv = _run(path, x)
    np.testing.assert_allclose(got, _alex_reference(x, blobs), rtol=1e-4, atol=1e-6)
    ops = [n.op_type for n in conv.model.graph.node]
    assert ops.count("BatchNormalization") == 1 and "Scale" not in ops  # BatchNorm + Scale as one node
    assert "Mul" in ops  # the average pool's divisor correction: Caffe divides by the clipped window


def test_v1_layers_and_4d_legacy_blobs_are_read(write_caffe, tmp_path):
    rng = np.random.default_rng(2)
    blobs = {"conv1": [rng.standard_normal((4, 1, 3, 3)), rng.standard_normal(4)],
             "ip1": [rng.standard_normal((5, 4 * 6 * 6)) * 0.1, rng.standard_normal(5)]}
    path = write_caffe(tmp_path, "v1", V1_LENET, blobs, legacy=True)
    x = rng.standard_normal((2, 1, 13, 13))
    got, _ = _run(path, x)
    y = ref_pool(ref_conv(x, *blobs["conv1"]), 2, 2, 0, "AVE")
    np.testing.assert_allclose(got, ref_softmax(y.reshape(2, -1) @ blobs["ip1"][0].T + blobs["ip1"][1]),
                               rtol=1e-4, atol=1e-6)


def test_the_caffe_framework_evaluates_and_saves_back_to_caffemodel(write_caffe, tmp_path):
    rng = np.random.default_rng(3)
    blobs = _alex_blobs(rng)
    path = write_caffe(tmp_path / "in", "alex", ALEXISH, blobs)
    fw = CaffeFramework()
    model = fw.load(path)
    assert model.framework == "caffe" and model.input_shape == (4, 13, 13) and model.num_classes == 7
    kinds = fw.layer_kinds(model)
    assert kinds["conv1.weight"] == "conv" and kinds["fc.weight"] == "fc" and kinds["scale.weight"] == "norm"
    assert kinds["bn.running_mean"] == "norm" and kinds["expand1.bias"] == "bias"
    w = fw.get_weights(model)
    np.testing.assert_allclose(w["bn.running_mean"], blobs["bn"][0] / 4.0, rtol=1e-6)
    pruned = w["fc.weight"] * (np.abs(w["fc.weight"]) > 0.5)
    fw.set_weights(model, {"fc.weight": pruned})
    saved = fw.save(model, tmp_path / "out" / "alex.caffemodel")
    assert saved.with_suffix(".prototxt").read_text() == ALEXISH
    again = fw.load(saved)
    for name, value in fw.get_weights(again).items():
        np.testing.assert_allclose(value, fw.get_weights(model)[name], rtol=1e-6, err_msg=name)
    x = rng.standard_normal((2, 4, 13, 13)).astype(np.float32)
    blobs["fc"][0] = pruned
    np.testing.assert_allclose(again.native.logits(x), _alex_reference(x, blobs), rtol=1e-4, atol=1e-6)
    # and the ONNX export carries the compressed weights
    exported = onnx.load(str(fw.export_onnx(again, tmp_path / "alex.onnx")))
    fc = {t.name: onnx.numpy_helper.to_array(t) for t in exported.graph.initializer}["fc.weight"]
    np.testing.assert_array_equal(fc, pruned)


def test_a_caffe_net_converts_to_torch_for_retraining(write_caffe, tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("sigdl_framework_torch")
    from sigdl_framework_onnx.to_torch import OnnxModule

    rng = np.random.default_rng(4)
    blobs = _alex_blobs(rng)
    model = CaffeFramework().load(write_caffe(tmp_path, "alex", ALEXISH, blobs))
    x = rng.standard_normal((2, 4, 13, 13)).astype(np.float32)
    twin = OnnxModule(model.native).eval()
    with torch.no_grad():
        logits = twin(torch.from_numpy(x)).numpy()  # the final Softmax is left out for training
    np.testing.assert_allclose(ref_softmax(logits.astype(np.float64)), _alex_reference(x, blobs), rtol=1e-4, atol=1e-6)


SQUEEZE_TAIL = """
name: "SqueezeTail"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 8 dim: 8 } } }
layer { name: "conv10" type: "Convolution" bottom: "data" top: "conv10" convolution_param { num_output: 10 kernel_size: 3 pad: 1 } }
layer { name: "relu10" type: "ReLU" bottom: "conv10" top: "conv10" }
layer { name: "pool10" type: "Pooling" bottom: "conv10" top: "pool10" pooling_param { pool: AVE global_pooling: true } }
layer { name: "prob" type: "Softmax" bottom: "pool10" top: "prob" }
"""


def test_a_squeezenet_style_head_with_n_c_1_1_scores_retrains(write_caffe, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("sigdl_framework_torch")
    from sigdl_core.interfaces import ArrayDataset, TrainSettings

    rng = np.random.default_rng(5)
    blobs = {"conv10": [rng.standard_normal((10, 1, 3, 3)), np.zeros(10)]}
    fw = CaffeFramework()
    model = fw.load(write_caffe(tmp_path, "tail", SQUEEZE_TAIL, blobs))
    assert model.num_classes == 10  # the N×10×1×1 softmax output, flattened
    x = rng.standard_normal((64, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    data = ArrayDataset("noise", x, y, x, y, num_classes=10)
    history = fw.train(model, data, TrainSettings(epochs=1, batch_size=16, lr=0.01))
    assert len(history.loss) == 1 and np.isfinite(history.loss[0])
    assert not np.array_equal(fw.get_weights(model)["conv10.weight"], blobs["conv10"][0].astype(np.float32))
