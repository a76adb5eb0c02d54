"""Fixtures for the pruning plugin's tests: real data and a real (tiny) NumPy network.

The data are the 1,797 UCI handwritten digits that scikit-learn ships (copied to
``tests/data/digits.csv.gz`` so that the tests need no scikit-learn); the network is a
64-48-10 ReLU perceptron trained by minibatch SGD on softmax cross-entropy, written in
NumPy with torch's weight layout (``fc1.weight`` is out × in), so that pruning is tested
on weights that training made, and retraining runs through the pruning projection after
every optimizer step exactly as a framework does.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Mapping
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


def load_digits_split(seed: int = 0) -> Digits:
    with gzip.open(DATA, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float64)
    x = (table[:, :-1] / 16.0).astype(np.float32)
    y = table[:, -1].astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order]
    return Digits(x[:1300], y[:1300], x[1300:], y[1300:])


class NumpyMLP:
    """Forward pass, accuracy and SGD training of the 64-h-10 perceptron on ``Digits``."""

    kinds = KINDS

    def __init__(self, data: Digits, hidden: int = 48) -> None:
        self.data = data
        self.hidden = hidden

    def init(self, seed: int = 0) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        return {
            "fc1.weight": (rng.standard_normal((self.hidden, 64)) * np.sqrt(2 / 64)).astype(np.float32),
            "fc1.bias": np.zeros(self.hidden, np.float32),
            "fc2.weight": (rng.standard_normal((10, self.hidden)) * np.sqrt(1 / self.hidden)).astype(np.float32),
            "fc2.bias": np.zeros(10, np.float32),
        }

    @staticmethod
    def logits(weights: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        h = np.maximum(x @ weights["fc1.weight"].T + weights["fc1.bias"], 0.0)
        return h @ weights["fc2.weight"].T + weights["fc2.bias"]

    def accuracy(self, weights: Mapping[str, np.ndarray]) -> float:
        predicted = self.logits(weights, self.data.x_test).argmax(axis=1)
        return float(np.mean(predicted == self.data.y_test))

    def train(
        self,
        weights: Mapping[str, np.ndarray],
        projection: Callable[[dict[str, np.ndarray]], None] | None = None,
        epochs: int = 20,
        lr: float = 0.1,
        batch: int = 32,
        seed: int = 0,
    ) -> dict[str, np.ndarray]:
        """Minibatch SGD; ``projection`` edits the weights in place after every step."""
        w = {name: np.array(a, dtype=np.float32, copy=True) for name, a in weights.items()}
        x, y = self.data.x_train, self.data.y_train
        rng = np.random.default_rng(seed)
        for _ in range(epochs):
            order = rng.permutation(len(y))
            for start in range(0, len(y), batch):
                idx = order[start:start + batch]
                xb, yb = x[idx], y[idx]
                pre = xb @ w["fc1.weight"].T + w["fc1.bias"]
                h = np.maximum(pre, 0.0)
                z = h @ w["fc2.weight"].T + w["fc2.bias"]
                z -= z.max(axis=1, keepdims=True)
                p = np.exp(z)
                p /= p.sum(axis=1, keepdims=True)
                p[np.arange(len(yb)), yb] -= 1.0
                dz = p / len(yb)
                grads = {
                    "fc2.weight": dz.T @ h,
                    "fc2.bias": dz.sum(axis=0),
                }
                dh = (dz @ w["fc2.weight"]) * (pre > 0)
                grads["fc1.weight"] = dh.T @ xb
                grads["fc1.bias"] = dh.sum(axis=0)
                for name, g in grads.items():
                    w[name] -= (lr * g).astype(np.float32)
                if projection is not None:
                    projection(w)
        return w


@pytest.fixture(scope="session")
def digits() -> Digits:
    return load_digits_split()


@pytest.fixture(scope="session")
def mlp(digits: Digits) -> NumpyMLP:
    return NumpyMLP(digits)


@pytest.fixture(scope="session")
def trained_weights(mlp: NumpyMLP) -> dict[str, np.ndarray]:
    """The perceptron trained for 30 epochs from seed 0 (about 96-97 % test accuracy)."""
    weights = mlp.train(mlp.init(0), epochs=30)
    for array in weights.values():
        array.setflags(write=False)
    return weights
