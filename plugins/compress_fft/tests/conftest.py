"""Fixtures of the frequency-domain plugin's tests: real digits and a tiny NumPy network.

The network is a 64-64-10 ReLU perceptron in NumPy with torch's weight layout (``fc1.weight``
is out × in), trained by plain minibatch SGD on softmax cross-entropy, calling a projection
after every optimizer step on the very arrays it trains, as a framework does.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data" / "digits.csv.gz"
KINDS = {"fc1.weight": "fc", "fc1.bias": "bias", "fc2.weight": "fc", "fc2.bias": "bias"}


@dataclass
class Digits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits(seed: int = 0) -> Digits:
    with gzip.open(DATA, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float64)
    x = (table[:, :-1] / 16.0).astype(np.float32)
    y = table[:, -1].astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order]
    return Digits(x[:1300], y[:1300], x[1300:], y[1300:])


def init_mlp(seed: int = 0, hidden: int = 64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "fc1.weight": (rng.standard_normal((hidden, 64)) * np.sqrt(2 / 64)).astype(np.float32),
        "fc1.bias": np.zeros(hidden, np.float32),
        "fc2.weight": (rng.standard_normal((10, hidden)) * np.sqrt(1 / hidden)).astype(np.float32),
        "fc2.bias": np.zeros(10, np.float32),
    }


def accuracy(w: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    h = np.maximum(x @ w["fc1.weight"].T + w["fc1.bias"], 0)
    return float(np.mean(np.argmax(h @ w["fc2.weight"].T + w["fc2.bias"], axis=1) == y))


def gradients(w: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Gradients of the mean softmax cross-entropy."""
    pre = x @ w["fc1.weight"].T + w["fc1.bias"]
    h = np.maximum(pre, 0)
    z = h @ w["fc2.weight"].T + w["fc2.bias"]
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    dz = (p / len(y)).astype(np.float32)
    dh = (dz @ w["fc2.weight"]) * (pre > 0)
    return {"fc2.weight": dz.T @ h, "fc2.bias": dz.sum(0), "fc1.weight": dh.T @ x, "fc1.bias": dh.sum(0)}


def train(w: dict[str, np.ndarray], data: Digits, epochs: int, lr: float,
          projection: Callable[[dict[str, np.ndarray]], None] | None = None, seed: int = 0,
          batch: int = 32) -> dict[str, np.ndarray]:
    """Plain SGD in place; ``projection`` runs on ``w`` after every step."""
    rng = np.random.default_rng(seed)
    n = len(data.y_train)
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch):
            i = order[start:start + batch]
            for name, grad in gradients(w, data.x_train[i], data.y_train[i]).items():
                w[name] -= np.float32(lr) * grad.astype(np.float32)
            if projection is not None:
                projection(w)
    return w


class DigitsMLP:
    kinds = KINDS
    init = staticmethod(init_mlp)
    accuracy = staticmethod(accuracy)
    train = staticmethod(train)

    def __init__(self, data: Digits) -> None:
        self.data = data


@pytest.fixture(scope="session")
def mlp() -> DigitsMLP:
    """The digits data (``.data``) and the perceptron's helpers."""
    return DigitsMLP(load_digits())


@pytest.fixture(scope="session")
def trained(mlp: DigitsMLP) -> dict[str, np.ndarray]:
    """A trained 64-64-10 perceptron (about 97 % test accuracy); copy before changing it."""
    return train(init_mlp(0), mlp.data, epochs=30, lr=0.1)
