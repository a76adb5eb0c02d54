"""Sensitivity analysis on a perceptron trained on the real digits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sigdl_compress_prune import SensitivityAnalysis, choose_sparsities, sensitivity
from sigdl_core.errors import InvalidValueError


@pytest.mark.slow
def test_prune_sensitivity_curves_fall_with_sparsity(mlp, trained_weights):
    calls = []
    analysis = sensitivity(
        trained_weights, mlp.kinds, mlp.accuracy, sparsities=(0.5, 0.8, 0.95, 0.99),
        progress=lambda text, done, total: calls.append((done, total)),
    )
    assert analysis.baseline == pytest.approx(mlp.accuracy(trained_weights))
    assert set(analysis.curves) == {"fc1.weight", "fc2.weight"}
    assert calls[-1] == (8, 8)
    for curve in analysis.curves.values():
        sparsities = [s for s, _ in curve.points]
        accuracies = [a for _, a in curve.points]
        assert sparsities == [0.0, 0.5, 0.8, 0.95, 0.99]
        assert accuracies[0] == analysis.baseline
        # monotone-ish: each point at most 2 points above the previous, and a clear fall overall
        assert all(b <= a + 0.02 for a, b in zip(accuracies, accuracies[1:]))
        assert accuracies[-1] < analysis.baseline - 0.2
        assert accuracies[1] > analysis.baseline - 0.05  # half a layer's smallest weights cost little
    # the analysis never modifies the weights it was given
    assert mlp.accuracy(trained_weights) == analysis.baseline


@pytest.mark.slow
def test_prune_sensitivity_choice_respects_the_allowed_drop(mlp, trained_weights):
    analysis = sensitivity(trained_weights, mlp.kinds, mlp.accuracy,
                           sparsities=(0.25, 0.5, 0.7, 0.8, 0.9, 0.95))
    for drop in (0.0, 0.01, 0.05):
        chosen = choose_sparsities(analysis, drop)
        for name, s in chosen.items():
            points = dict(analysis.curves[name].points)
            assert all(a >= analysis.baseline - drop for t, a in points.items() if t <= s)
            higher = [t for t in sorted(points) if t > s]
            if higher:
                assert points[higher[0]] < analysis.baseline - drop
    loose = analysis.choose_sparsities(0.05)
    tight = analysis.choose_sparsities(0.0)
    assert all(loose[n] >= tight[n] for n in loose)
    assert max(loose.values()) >= 0.7


def test_prune_sensitivity_is_plain_data(trained_weights, mlp):
    analysis = sensitivity(trained_weights, mlp.kinds, mlp.accuracy, sparsities=(0.5,),
                           layers=["fc2.weight"])
    data = json.loads(json.dumps(analysis.to_dict()))
    assert data["layers"]["fc2.weight"]["points"][0] == [0.0, analysis.baseline]
    again = SensitivityAnalysis.from_dict(data)
    assert again.to_dict() == analysis.to_dict()
    with pytest.raises(InvalidValueError):
        SensitivityAnalysis.from_dict({"layers": {}})


def test_prune_sensitivity_bad_arguments(trained_weights, mlp):
    with pytest.raises(InvalidValueError, match="out of range"):
        sensitivity(trained_weights, mlp.kinds, mlp.accuracy, sparsities=(0.5, 1.5))
    with pytest.raises(InvalidValueError, match="no sparsity"):
        sensitivity(trained_weights, mlp.kinds, mlp.accuracy, sparsities=(0.0,))
    with pytest.raises(InvalidValueError, match="callable"):
        sensitivity(trained_weights, mlp.kinds, "accuracy")
    analysis = SensitivityAnalysis(baseline=0.9, sparsities=(0.5,))
    with pytest.raises(InvalidValueError, match="max_drop"):
        choose_sparsities(analysis, -0.1)
    assert choose_sparsities(analysis, np.float64(0.1)) == {}
