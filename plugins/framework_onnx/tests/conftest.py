"""Fixtures for the ONNX plugin's tests: real digits, and ONNX models neither framework made.

``mlp_onnx`` is built by hand with ``onnx.helper``: scikit-learn's MLP trained on the 8×8
digits, written as Flatten → MatMul → Add → Relu → Gemm (``transB=0``) → Softmax, with
initializer names that are no module paths. ``DigitsPlugin`` registers those digits as the
dataset ``onnx-digits`` (fixture ``digits_plugin``), a split of its own that the tests' MLP is trained on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sigdl_core import hookimpl
from sigdl_core.interfaces import ArrayDataset, DatasetSpec

DATASET = "onnx-digits"


def load_onnx_digits(argument: str | None = None, seed: int = 0) -> ArrayDataset:
    """scikit-learn's 1,797 digits, N×1×8×8 in [0, 1], a fixed 80/20 split."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    order = np.random.default_rng(1234).permutation(len(y))
    x, y = x[order], y[order].astype(np.int64)
    cut = int(0.8 * len(y))
    return ArrayDataset(DATASET, x[:cut], y[:cut], x[cut:], y[cut:], num_classes=10)


class DigitsPlugin:
    """A plugin object that registers :func:`load_onnx_digits`."""

    @hookimpl
    def sigdl_datasets(self) -> list[DatasetSpec]:
        return [DatasetSpec(DATASET, "sklearn digits for the ONNX plugin's tests", loader=load_onnx_digits)]


@pytest.fixture
def digits_plugin() -> tuple[str, object]:
    """``(name, plugin)`` for ``sigdl_cli(..., plugins=[...])``: registers ``onnx-digits``."""
    return ("onnx_test_digits", DigitsPlugin())


@pytest.fixture(scope="session")
def digits() -> ArrayDataset:
    return load_onnx_digits()


def write_mlp_onnx(path: Path, data: ArrayDataset) -> Path:
    """A 64-32-10 MLP trained by scikit-learn, written with onnx.helper (opset 17)."""
    import warnings

    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from sklearn.neural_network import MLPClassifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: 200 iterations are plenty here
        clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=200, random_state=0)
        clf.fit(data.x_train.reshape(len(data.x_train), -1), data.y_train)
    (w1, w2), (b1, b2) = clf.coefs_, clf.intercepts_
    nodes = [
        helper.make_node("Flatten", ["pixels"], ["flat"]),
        helper.make_node("MatMul", ["flat", "hidden/W"], ["h0"]),
        helper.make_node("Add", ["h0", "hidden/b"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("Gemm", ["h2", "out/W", "out/b"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["prob"], axis=1),
    ]
    inits = [numpy_helper.from_array(np.asarray(a, np.float32), n)
             for a, n in ((w1, "hidden/W"), (b1, "hidden/b"), (w2, "out/W"), (b2, "out/b"))]
    graph = helper.make_graph(nodes, "hand-made-mlp",
                              [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", 1, 8, 8])],
                              [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["n", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def mlp_onnx(tmp_path_factory: pytest.TempPathFactory, digits: ArrayDataset) -> Path:
    return write_mlp_onnx(tmp_path_factory.mktemp("onnx") / "mlp.onnx", digits)
