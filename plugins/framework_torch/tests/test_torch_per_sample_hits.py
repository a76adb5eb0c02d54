"""evaluate gives the per-sample top-1 hits the search's paired statistic compares."""

from __future__ import annotations

import numpy as np
import torch

from sigdl_core.interfaces import ArrayDataset
from sigdl_framework_torch.framework import TorchFramework


def test_evaluate_gives_per_sample_hits():
    rng = np.random.default_rng(0)
    x = rng.random((300, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 300)
    data = ArrayDataset(name="noise", x_train=x[:10], y_train=y[:10], x_test=x, y_test=y, num_classes=10)
    fw = TorchFramework()
    model = fw.build("lenet300100", (1, 28, 28), 10, seed=0)
    acc = fw.evaluate(model, data, "test")
    with torch.no_grad():
        expected = model.native.eval()(torch.from_numpy(x)).argmax(1).numpy() == y
    assert acc.correct.dtype == bool and np.array_equal(acc.correct, expected)
    assert acc.correct.mean() == acc.top1
