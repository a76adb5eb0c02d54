"""Retraining by knowledge distillation: the teacher's logits, the loss, and what a student learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sigdl_core.errors import InvalidValueError
from sigdl_core.interfaces import Teacher, TrainSettings
from sigdl_datasets.loaders import load_digits
from sigdl_framework_torch.framework import distillation_loss


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    return load_digits(None, 0)


def test_logits_are_what_evaluate_ranks(fw, digits):
    model = fw.build("lenet300100", (1, 8, 8), 10, seed=0)
    fw.train(model, digits, TrainSettings(epochs=2, lr=0.05))
    logits = fw.logits(model, digits, "test")
    assert logits.shape == (len(digits.y_test), 10) and logits.dtype == np.float32
    acc = fw.evaluate(model, digits, "test")
    assert np.array_equal(logits.argmax(1) == digits.y_test, acc.correct)
    assert fw.logits(model, digits, "train").shape == (len(digits.y_train), 10)


def test_distillation_loss_is_the_mixed_objective():
    rng = np.random.default_rng(0)
    s, t = (torch.from_numpy(rng.normal(size=(6, 4)).astype(np.float32)) for _ in range(2))
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    teacher = Teacher(logits=t.numpy(), weight=0.7, temperature=3.0)
    got = distillation_loss(s, y, t, teacher, whole=6)
    p_t = F.softmax(t / 3, 1)
    kl = (p_t * (p_t.log() - F.log_softmax(s / 3, 1))).sum(1).mean()
    expected = 0.3 * F.cross_entropy(s, y) + 0.7 * 9 * kl
    assert torch.allclose(got, expected, atol=1e-6)
    # a data-parallel rank sums its share and scales by world / global batch
    half = distillation_loss(s[:3], y[:3], t[:3], teacher, whole=6, world=2)
    other = distillation_loss(s[3:], y[3:], t[3:], teacher, whole=6, world=2)
    assert torch.allclose((half + other) / 2, got, atol=1e-6)


def test_weight_zero_is_training_on_labels_alone(fw, digits):
    runs = []
    for teacher in (None, Teacher(logits=np.zeros((len(digits.y_train), 10), np.float32), weight=0.0)):
        model = fw.build("lenet300100", (1, 8, 8), 10, seed=0)
        fw.train(model, digits, TrainSettings(epochs=1, lr=0.05, seed=3), teacher=teacher)
        runs.append(fw.get_weights(model))
    assert all(np.array_equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_a_student_learns_the_teachers_answers_not_only_the_labels(fw, digits):
    """A teacher that calls every digit d "(d + 1) mod 10": with weight 1 the student follows
    it, with weight 0 the labels, so the teacher's logits must reach the loss."""
    wrong = (digits.y_train + 1) % 10
    logits = np.full((len(wrong), 10), -4.0, np.float32)
    logits[np.arange(len(wrong)), wrong] = 4.0
    agree = {}
    for weight in (0.0, 1.0):
        model = fw.build("lenet300100", (1, 8, 8), 10, seed=0)
        fw.train(model, digits, TrainSettings(epochs=6, optimizer="adam", lr=0.003, seed=0),
                 teacher=Teacher(logits=logits, weight=weight, temperature=2.0))
        predicted = fw.logits(model, digits, "train").argmax(1)
        agree[weight] = float(np.mean(predicted == wrong))
    assert agree[1.0] > 0.8 and agree[0.0] < 0.1


def test_teacher_logits_must_fit_the_training_split(fw, digits):
    model = fw.build("lenet300100", (1, 8, 8), 10, seed=0)
    short = Teacher(logits=np.zeros((5, 10), np.float32))
    narrow = Teacher(logits=np.zeros((len(digits.y_train), 7), np.float32))
    for teacher in (short, narrow):
        with pytest.raises(InvalidValueError, match="do not match"):
            fw.train(model, digits, TrainSettings(epochs=1), teacher=teacher)


@pytest.mark.parametrize("kwargs,match", [({"weight": 1.5}, "not in"), ({"temperature": 0}, "> 0"),
                                          ({"logits": np.full((2, 3), np.nan)}, "finite")])
def test_bad_teachers_are_refused_in_one_line(kwargs, match):
    with pytest.raises(InvalidValueError, match=match):
        Teacher(**{"logits": np.zeros((2, 3)), **kwargs})
