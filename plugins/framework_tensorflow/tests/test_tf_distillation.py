"""Retraining by knowledge distillation in Keras: logits, and a student that follows its teacher."""

from __future__ import annotations

import numpy as np
import pytest

from sigdl_core.errors import InvalidValueError
from sigdl_core.interfaces import Teacher, TrainSettings


def test_logits_are_what_evaluate_ranks(tf_framework, small):
    model = tf_framework.build("lenet300100", (1, 28, 28), 10, seed=0)
    tf_framework.train(model, small, TrainSettings(epochs=1, lr=0.05))
    logits = tf_framework.logits(model, small, "test")
    assert logits.shape == (len(small.y_test), 10) and logits.dtype == np.float32
    assert np.array_equal(logits.argmax(1) == small.y_test, tf_framework.evaluate(model, small, "test").correct)


def test_a_student_learns_the_teachers_answers_not_only_the_labels(tf_framework, small):
    """A teacher that calls every digit d "(d + 1) mod 10": with weight 1 the student follows it."""
    wrong = (small.y_train + 1) % 10
    logits = np.full((len(wrong), 10), -4.0, np.float32)
    logits[np.arange(len(wrong)), wrong] = 4.0
    agree = {}
    for weight in (0.0, 1.0):
        model = tf_framework.build("lenet300100", (1, 28, 28), 10, seed=0)
        tf_framework.train(model, small, TrainSettings(epochs=4, optimizer="adam", lr=0.002, seed=0),
                           teacher=Teacher(logits=logits, weight=weight, temperature=2.0))
        agree[weight] = float(np.mean(tf_framework.logits(model, small, "train").argmax(1) == wrong))
    assert agree[1.0] > 0.8 and agree[0.0] < 0.1


def test_teacher_logits_must_fit_the_training_split(tf_framework, small):
    model = tf_framework.build("lenet300100", (1, 28, 28), 10, seed=0)
    with pytest.raises(InvalidValueError, match="do not match"):
        tf_framework.train(model, small, TrainSettings(epochs=1), teacher=Teacher(logits=np.zeros((3, 10), np.float32)))
