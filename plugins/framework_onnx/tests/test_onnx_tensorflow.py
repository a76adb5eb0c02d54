"""ONNX files the TensorFlow plugin exports (tf2onnx), read by the ONNX framework.

Skipped where sigdl-framework-tensorflow is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sigdl_framework_tensorflow")

from sigdl_core.interfaces import ArrayDataset  # noqa: E402
from sigdl_core.plugins import load_plugins  # noqa: E402
from sigdl_framework_onnx.framework import OnnxFramework  # noqa: E402


@pytest.mark.slow
def test_a_keras_lenet5_export_predicts_as_keras_does(tmp_path):
    tf = load_plugins().registry.framework("tensorflow")
    keras_model = tf.build("lenet5", (1, 28, 28), 10, seed=0)
    rng = np.random.default_rng(0)
    tf.set_weights(keras_model, {n: w + rng.standard_normal(w.shape).astype(np.float32) * 0.05
                                 for n, w in tf.get_weights(keras_model).items()})
    fw = OnnxFramework()
    model = fw.load(tf.export_onnx(keras_model, tmp_path / "lenet5.onnx"))
    assert model.input_shape == (1, 28, 28) and model.num_classes == 10
    kinds = fw.layer_kinds(model)
    assert sorted(kinds.values()).count("conv") == 2 and sorted(kinds.values()).count("fc") == 2
    # tf2onnx writes Dense kernels as MatMul's K×N: shown output-first, as the Keras plugin shows them
    shapes = sorted(w.shape for n, w in fw.get_weights(model).items() if kinds[n] == "fc")
    assert shapes == [(10, 500), (500, 800)]
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    labels = model.native.logits(x).argmax(1)
    data = ArrayDataset("random", x, labels, x, labels, num_classes=10)
    assert tf.evaluate(keras_model, data, "test").top1 == pytest.approx(1.0)
    assert fw.evaluate(model, data, "test").top1 == 1.0
