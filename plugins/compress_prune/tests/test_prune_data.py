"""The vendored digits file is scikit-learn's, and the test network really learns from it."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np

#: sha256 of scikit-learn's ``sklearn/datasets/data/digits.csv.gz`` (1.x releases).
DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
DATA = Path(__file__).parent / "data" / "digits.csv.gz"


def test_prune_data_is_sklearns_digits(digits):
    assert hashlib.sha256(DATA.read_bytes()).hexdigest() == DIGITS_SHA256
    ours = np.concatenate([digits.x_train, digits.x_test]) * 16.0
    labels = np.concatenate([digits.y_train, digits.y_test])
    assert ours.shape == (1797, 64) and set(np.unique(ours)) <= set(range(17))
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.submodule_search_locations:  # where installed, byte for byte
        theirs = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
        assert theirs.read_bytes() == DATA.read_bytes()


def test_prune_data_network_learns(mlp, trained_weights):
    assert mlp.accuracy(mlp.init(0)) < 0.3
    assert mlp.accuracy(trained_weights) > 0.94
    assert len(mlp.data.y_train) == 1300 and len(mlp.data.y_test) == 497
    assert set(np.unique(mlp.data.y_test)) == set(range(10))
