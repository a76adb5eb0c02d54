"""Caffe files through the framework and the CLI: a trained net, damaged files, exit codes."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from sigdl_core import hookimpl
from sigdl_core.errors import BadInputError, ModelFileError
from sigdl_core.interfaces import ArrayDataset, DatasetSpec
from sigdl_framework_caffe import plugin
from sigdl_framework_caffe.framework import CaffeFramework
from sigdl_framework_onnx import plugin as onnx_plugin

MLP = """
name: "DigitsMLP"
input: "data"
input_dim: 1 input_dim: 1 input_dim: 8 input_dim: 8
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" inner_product_param { num_output: 32 } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "drop1" type: "Dropout" bottom: "ip1" top: "ip1" dropout_param { dropout_ratio: 0.2 } }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" inner_product_param { num_output: 10 } }
layer { name: "prob" type: "Softmax" bottom: "ip2" top: "prob" }
"""
DATASET = "caffe-digits"


def _digits(argument: str | None = None, seed: int = 0) -> ArrayDataset:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    order = np.random.default_rng(99).permutation(len(y))
    x, y = x[order], y[order].astype(np.int64)
    return ArrayDataset(DATASET, x[:1400], y[:1400], x[1400:], y[1400:], num_classes=10)


class _DigitsPlugin:
    @hookimpl
    def sigdl_datasets(self) -> list[DatasetSpec]:
        return [DatasetSpec(DATASET, "sklearn digits for the Caffe plugin's tests", loader=_digits)]


PLUGINS = [plugin, onnx_plugin, ("caffe_test_digits", _DigitsPlugin())]


@functools.lru_cache(maxsize=1)
def _trained() -> tuple[dict[str, list[np.ndarray]], float]:
    """A digits MLP trained in NumPy (softmax cross-entropy, full-batch gradient descent):
    its blobs and its NumPy accuracy on the test split. One BLAS thread: these products are
    too small to split, and a loaded 2-core machine makes many threads ten times slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _train_mlp()


def _train_mlp() -> tuple[dict[str, list[np.ndarray]], float]:
    data = _digits()
    rng = np.random.default_rng(0)
    x, y = data.x_train.reshape(len(data.x_train), -1).astype(np.float64), data.y_train
    w1, b1 = rng.standard_normal((32, 64)) * 0.2, np.zeros(32)
    w2, b2 = rng.standard_normal((10, 32)) * 0.2, np.zeros(10)
    onehot = np.eye(10)[y]
    for _ in range(150):
        h = np.maximum(x @ w1.T + b1, 0)
        z = h @ w2.T + b2
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) / len(y)
        gh = (g @ w2) * (h > 0)
        w2 -= 0.5 * g.T @ h
        b2 -= 0.5 * g.sum(0)
        w1 -= 0.5 * gh.T @ x
        b1 -= 0.5 * gh.sum(0)
    xt = data.x_test.reshape(len(data.x_test), -1)
    acc = float(((np.maximum(xt @ w1.T + b1, 0) @ w2.T + b2).argmax(1) == data.y_test).mean())
    return {"ip1": [w1, b1], "ip2": [w2, b2]}, acc


def _write_trained(write_caffe, folder):
    blobs, acc = _trained()
    return write_caffe(folder, "digits", MLP, blobs), acc


def test_a_trained_caffe_net_keeps_its_accuracy(write_caffe, tmp_path, sigdl_cli):
    path, acc = _write_trained(write_caffe, tmp_path)
    assert acc > 0.9
    fw = CaffeFramework()
    model = fw.load(path)
    assert fw.evaluate(model, _digits(), "test").top1 == pytest.approx(acc)
    assert fw.layer_kinds(model)["ip1.weight"] == "fc"
    # found from either file, and through the CLI by the file's ending
    assert fw.load(path.with_suffix(".prototxt")).num_classes == 10
    result = sigdl_cli(["test", str(path), "--dataset", DATASET, "--json"], plugins=PLUGINS)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["accuracy"]["top1"] == pytest.approx(acc)


def test_truncated_corrupt_and_empty_caffemodels_are_one_line_exit_2(write_caffe, tmp_path, sigdl_cli):
    path, _ = _write_trained(write_caffe, tmp_path / "good")
    data = path.read_bytes()
    fw = CaffeFramework()
    for i, cut in enumerate([0, 1, 7, 100, len(data) // 3, len(data) // 2, len(data) - 5, len(data) - 1]):
        bad = write_caffe(tmp_path / f"cut{i}", "digits", MLP, {})
        bad.write_bytes(data[:cut])
        with pytest.raises(ModelFileError):
            fw.load(bad)
    garbage = write_caffe(tmp_path / "garbage", "digits", MLP, {})
    garbage.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(ModelFileError):
        fw.load(garbage)
    for bad in (tmp_path / "cut5" / "digits.caffemodel", garbage):
        result = sigdl_cli(["test", str(bad), "--dataset", DATASET], plugins=PLUGINS)
        text = result.output.strip()
        assert result.exit_code == 2 and len(text.splitlines()) == 1 and "Traceback" not in text, text


def test_a_net_without_weights_or_partner_file_or_input_is_refused(write_caffe, tmp_path):
    fw = CaffeFramework()
    path, _ = _write_trained(write_caffe, tmp_path / "a")
    path.with_suffix(".prototxt").unlink()
    with pytest.raises(ModelFileError, match="prototxt"):
        fw.load(path)
    other = write_caffe(tmp_path / "b", "digits", MLP, {"ip1": [np.zeros((32, 64)), np.zeros(32)]})
    with pytest.raises(ModelFileError, match="ip2"):
        fw.load(other)  # ip2's weights are missing from the .caffemodel
    noinput = write_caffe(tmp_path / "c", "digits", MLP.replace('input: "data"', ""), {})
    with pytest.raises(BadInputError, match="input"):
        fw.load(noinput)
    bad_text = write_caffe(tmp_path / "d", "digits", "layer { name: ", {})
    with pytest.raises(ModelFileError, match="prototxt"):
        fw.load(bad_text)


def test_sigdl_frameworks_lists_caffe(sigdl_cli):
    result = sigdl_cli(["frameworks", "--json"], plugins=PLUGINS)
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert {"caffe", "onnx"} <= set(rows) and ".caffemodel" in json.dumps(rows["caffe"])


def test_compress_and_decode_a_caffe_model_through_the_cli(write_caffe, tmp_path, sigdl_cli):
    pytest.importorskip("sigdl_compress_prune")
    pytest.importorskip("sigdl_compress_quant")
    path, acc = _write_trained(write_caffe, tmp_path)
    out = tmp_path / "out"
    result = sigdl_cli(["compress", str(path), "--with", "prune,quant,encode", "-p", "prune.sparsity=0.8",
                        "--dataset", DATASET, "--retrain-epochs", "0", "-o", str(out), "--json"],
                       plugins=[PLUGINS[-1]], entry_points=True)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["ratio"] > 5
    assert summary["retraining"] == "post-training: no retraining (retraining epochs are 0)"
    assert (out / "baseline.caffemodel").is_file() and (out / "baseline.prototxt").is_file()
    decoded = sigdl_cli(["decode", str(out / "model.sigdl"), "-o", str(tmp_path / "small.caffemodel")],
                        plugins=[PLUGINS[-1]], entry_points=True)
    assert decoded.exit_code == 0, decoded.output
    fw = CaffeFramework()
    small = fw.load(tmp_path / "small.caffemodel")
    w = fw.get_weights(small)["ip1.weight"]
    assert (w == 0).mean() == pytest.approx(0.8, abs=0.01)  # the pruned weights, back in a .caffemodel
    # post-training, the decoded .caffemodel scores what the compressed candidate scored
    assert fw.evaluate(small, _digits(), "test").top1 == pytest.approx(summary["accuracy"])
    assert summary["baseline_accuracy"] == pytest.approx(acc)


def test_retraining_a_caffe_model_keeps_a_mask_and_saves_back(write_caffe, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("sigdl_framework_torch")
    from sigdl_core.interfaces import TrainSettings

    fw = CaffeFramework()
    model = fw.load(_write_trained(write_caffe, tmp_path / "in")[0])
    assert fw.training_unavailable(model) is None
    w = fw.get_weights(model)["ip1.weight"]
    mask = np.abs(w) >= np.quantile(np.abs(w), 0.7)
    fw.set_weights(model, {"ip1.weight": w * mask})
    data = _digits()
    before = fw.evaluate(model, data, "test").top1

    def projection(views: dict[str, np.ndarray]) -> None:
        views["ip1.weight"] *= mask

    fw.train(model, data, TrainSettings(epochs=2, lr=0.02, batch_size=32), projection=projection)
    after = fw.get_weights(model)["ip1.weight"]
    assert np.all(after[~mask] == 0) and not np.array_equal(after, w * mask)
    acc = fw.evaluate(model, data, "test").top1
    assert acc >= before - 0.02  # retraining (with Caffe's Dropout active) recovers from the pruning
    saved = fw.load(fw.save(model, tmp_path / "out" / "retrained.caffemodel"))
    np.testing.assert_array_equal(fw.get_weights(saved)["ip1.weight"], after)
    assert fw.evaluate(saved, data, "test").top1 == pytest.approx(acc)
