"""The AGP schedule (Zhu & Gupta 2017) and iterative prune-retrain cycles on real data."""

from __future__ import annotations

import numpy as np
import pytest
from sigdl_compress_prune import (
    agp_schedule,
    agp_sparsity,
    prune_globally,
    prune_iteratively,
    prune_to_sparsity,
)
from sigdl_core.errors import InvalidValueError


def test_prune_agp_values_match_the_formula():
    # s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3 with s_i=0, s_f=0.9, n=4, dt=1
    assert agp_schedule(0.9, 4) == pytest.approx(
        [0.0, 0.9 - 0.9 * 0.75**3, 0.9 - 0.9 * 0.5**3, 0.9 - 0.9 * 0.25**3, 0.9])
    assert agp_schedule(0.9, 4)[1] == pytest.approx(0.5203125)
    # s_i = 0.5, s_f = 0.875, n = 2: 0.5, 0.875 - 0.375/8, 0.875
    assert agp_schedule(0.875, 2, initial_sparsity=0.5) == pytest.approx([0.5, 0.828125, 0.875])


def test_prune_agp_step_function_start_interval_and_ends():
    kwargs = dict(initial_sparsity=0.1, start_step=100, num_steps=5, interval=20)
    assert agp_sparsity(0, 0.8, **kwargs) == 0.0  # before t0 nothing is pruned
    assert agp_sparsity(100, 0.8, **kwargs) == pytest.approx(0.1)
    assert agp_sparsity(119, 0.8, **kwargs) == pytest.approx(0.1)  # holds until the next step
    assert agp_sparsity(120, 0.8, **kwargs) == pytest.approx(0.8 - 0.7 * 0.8**3)
    assert agp_sparsity(200, 0.8, **kwargs) == pytest.approx(0.8)
    assert agp_sparsity(10_000, 0.8, **kwargs) == pytest.approx(0.8)
    values = [agp_sparsity(t, 0.8, **kwargs) for t in range(100, 201)]
    assert all(b >= a for a, b in zip(values, values[1:]))
    steps = np.diff(agp_schedule(0.8, 10))
    assert np.all(np.diff(steps) < 0)  # prunes fast first, slowly near the end


def test_prune_agp_per_layer_schedule():
    schedule = agp_schedule({"fc1.weight": 0.9, "fc2.weight": 0.5}, 3)
    assert len(schedule) == 4
    assert schedule[0] == {"fc1.weight": 0.0, "fc2.weight": 0.0}
    assert schedule[-1] == pytest.approx({"fc1.weight": 0.9, "fc2.weight": 0.5})


@pytest.mark.parametrize("kwargs, match", [
    (dict(final_sparsity=1.5), "out of range"),
    (dict(final_sparsity=0.5, initial_sparsity=0.7), "above the final"),
    (dict(final_sparsity=0.5, num_steps=0), "num_steps"),
    (dict(final_sparsity=0.5, interval=0), "interval"),
])
def test_prune_agp_bad_arguments(kwargs, match):
    with pytest.raises(InvalidValueError, match=match):
        agp_sparsity(3, **kwargs)


@pytest.mark.slow
def test_prune_masks_hold_through_retraining(mlp, trained_weights):
    """Retraining with the projection after every SGD step keeps pruned weights at 0.0
    exactly; without it they revive."""
    result = prune_to_sparsity(trained_weights, mlp.kinds, 0.8)
    masks = result.state["masks"]
    pruned_accuracy = mlp.accuracy(result.weights)
    retrained = mlp.train(result.weights, projection=result.projection, epochs=8, seed=1)
    for name, mask in masks.items():
        assert np.all(retrained[name][~mask] == 0.0)
        assert np.count_nonzero(retrained[name]) == np.count_nonzero(mask)
    # retraining recovers what the cut cost
    assert mlp.accuracy(retrained) > pruned_accuracy + 0.05
    assert mlp.accuracy(retrained) > mlp.accuracy(trained_weights) - 0.03
    # the control: the same training without the projection revives the weights
    free = mlp.train(result.weights, projection=None, epochs=1, seed=1)
    assert np.count_nonzero(free["fc1.weight"][~masks["fc1.weight"]]) > 0


@pytest.mark.slow
def test_prune_iteratively_with_agp_and_retraining(mlp, trained_weights):
    baseline = mlp.accuracy(trained_weights)

    def retrain(weights, projection):
        return mlp.train(weights, projection=projection, epochs=3, seed=2)

    schedule = agp_schedule(0.9, 4)[1:]
    run = prune_iteratively(trained_weights, mlp.kinds, schedule, retrain, mode="global",
                            evaluate=mlp.accuracy)
    final = run.result.weights
    masks = run.result.state["masks"]
    total = sum(m.size for m in masks.values())
    assert len(run.steps) == 4
    for step, target in zip(run.steps, schedule):
        assert step.overall_sparsity == pytest.approx(target, abs=1.0 / total)
        assert step.revived == 0  # the callback used the projection
        assert step.accuracy_retrained > step.accuracy_pruned - 0.01
    zeros = sum(m.size - np.count_nonzero(final[n]) for n, m in masks.items())
    assert abs(zeros - 0.9 * total) <= 1
    for name, mask in masks.items():
        assert np.all(final[name][~mask] == 0)
    overall = [step.overall_sparsity for step in run.steps]
    assert overall == sorted(overall)
    one_shot = prune_globally(trained_weights, mlp.kinds, 0.9)
    gradual = mlp.accuracy(final)
    assert gradual > baseline - 0.04, (gradual, baseline)
    assert gradual > mlp.accuracy(one_shot.weights) + 0.05
    assert run.to_dict()["steps"][-1]["overall_sparsity"] == pytest.approx(0.9, abs=1e-3)


@pytest.mark.slow
def test_prune_iteratively_reapplies_masks_after_a_careless_callback(mlp, trained_weights):
    def careless(weights, projection):  # trains without the projection
        return mlp.train(weights, projection=None, epochs=1, seed=3)

    run = prune_iteratively(trained_weights, mlp.kinds, [0.5, 0.8], careless, mode="global")
    assert all(step.revived > 0 for step in run.steps)
    for name, mask in run.result.state["masks"].items():
        assert np.all(run.result.weights[name][~mask] == 0)


def test_prune_iteratively_checks_its_arguments(trained_weights, mlp):
    with pytest.raises(InvalidValueError, match="empty"):
        prune_iteratively(trained_weights, mlp.kinds, [], None)
    with pytest.raises(InvalidValueError, match="mode"):
        prune_iteratively(trained_weights, mlp.kinds, [0.5], None, mode="diagonal")
    with pytest.raises(InvalidValueError, match="callable"):
        prune_iteratively(trained_weights, mlp.kinds, [0.5], retrain=42)
    with pytest.raises(InvalidValueError, match="shape"):
        prune_iteratively(trained_weights, mlp.kinds, [0.5],
                          lambda w, p: {"fc1.weight": np.zeros((2, 2), np.float32)})
