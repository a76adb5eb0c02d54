"""Fixtures of the TensorFlow plugin's tests: real MNIST digits, and the framework.

``mnist5k`` is the core loop's ``mnist5k`` dataset, registered by ``sigdl-datasets`` (a
dependency of this plugin), so the tests run on the same fixed 4,000/1,000 split as the loop.
"""

from __future__ import annotations

import pytest

from sigdl_core.interfaces import ArrayDataset


@pytest.fixture(scope="session")
def mnist5k() -> ArrayDataset:
    from sigdl_core.plugins import load_plugins

    return load_plugins().registry.load_dataset("mnist5k", 0)


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
