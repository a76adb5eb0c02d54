"""evaluate gives the per-sample top-1 hits the search's paired statistic compares."""

from __future__ import annotations

import numpy as np

from sigdl_core.interfaces import TrainSettings


def test_evaluate_gives_per_sample_hits(tf_framework, small):
    model = tf_framework.build("lenet300100", (1, 28, 28), 10, seed=0)
    tf_framework.train(model, small, TrainSettings(epochs=1, batch_size=64, optimizer="adam", lr=0.002))
    acc = tf_framework.evaluate(model, small, "validation")
    logits = tf_framework.predict(model, small.x_val)
    assert acc.correct.shape == (len(small.y_val),)
    assert np.array_equal(acc.correct, logits.argmax(1) == small.y_val)
    assert acc.correct.mean() == acc.top1
