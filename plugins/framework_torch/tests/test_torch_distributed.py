"""Data-parallel training: real gloo workers started by torch's elastic agent on 127.0.0.1."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from sigdl_core.accelerate import DataParallel, WorkerLostError, train
from sigdl_core.errors import InvalidValueError
from sigdl_core.interfaces import TrainSettings
from sigdl_datasets.loaders import load_digits
from sigdl_framework_torch.distributed import choose_backend
from sigdl_framework_torch.framework import TorchFramework

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent


sys.path.insert(0, str(HERE))
from torch_ddp_helpers import AbortRankOne, KillRankOne, Masks  # noqa: E402  (importable by the workers by this name)


@pytest.fixture
def importable_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))


def _pruned(fw: TorchFramework, seed: int = 0):
    model = fw.build("lenet300100", (1, 8, 8), 10, seed=seed)
    weights = fw.get_weights(model)
    masks = {k: np.abs(v) > np.quantile(np.abs(v), 0.6) for k, v in weights.items() if v.ndim == 2}
    fw.set_weights(model, {k: v * masks[k] if k in masks else v for k, v in weights.items()})
    return model, masks


SETTINGS = TrainSettings(epochs=2, batch_size=64, lr=0.05, seed=3)


def test_two_gloo_workers_train_lenet_with_equal_weights_and_masks_on_every_rank(importable_tests: None) -> None:
    fw = TorchFramework()
    data = load_digits(None, 0)
    model, masks = _pruned(fw)
    before = fw.evaluate(model, data, "test").top1
    history = train(fw, model, data, SETTINGS, DataParallel(workers=2, timeout_s=60), projection=Masks(masks))
    par = history.parallel
    assert par["world_size"] == 2 and par["backend"] == "gloo" and par["threads_per_worker"] == 1
    assert len(par["rank_digests"]) == 2 and len(set(par["rank_digests"])) == 1  # ranks hold equal weights
    from sigdl_framework_torch.distributed import _digest

    assert _digest(model.native) == par["rank_digests"][0]  # the driver got what the ranks held
    weights = fw.get_weights(model)
    for name, mask in masks.items():  # the masks held on rank 0, hence (equal digests) on every rank
        assert not weights[name][~mask].any()
    assert fw.evaluate(model, data, "test").top1 > before + 0.2
    assert par["probe"]["step_ms"] > 0 and par["probe"]["allreduce_ms"] > 0

    # the same global batches as the serial run: the same weights up to float summation order
    serial, _ = _pruned(fw)
    serial_history = fw.train(serial, data, SETTINGS, projection=Masks(masks))
    assert np.allclose(history.loss, serial_history.loss, rtol=1e-5)
    other = fw.get_weights(serial)
    assert max(float(np.abs(weights[k] - other[k]).max()) for k in weights) < 1e-5


def test_data_parallel_training_is_deterministic_for_a_given_worker_count(importable_tests: None) -> None:
    fw = TorchFramework()
    data = load_digits(None, 0)
    digests = []
    for _ in range(2):
        model, masks = _pruned(fw)
        h = train(fw, model, data, TrainSettings(epochs=1, batch_size=128, seed=5), DataParallel(workers=2),
                  projection=Masks(masks))
        digests.append(h.parallel["rank_digests"][0])
    assert digests[0] == digests[1]


def test_a_worker_that_dies_ends_training_with_one_line(importable_tests: None) -> None:
    fw = TorchFramework()
    data = load_digits(None, 0)
    model, masks = _pruned(fw)
    before = fw.get_weights(model)
    with pytest.raises(WorkerLostError) as info:
        train(fw, model, data, SETTINGS, DataParallel(workers=2, timeout_s=30), projection=KillRankOne(masks))
    line = info.value.one_line()
    assert "rank 1" in line and "SIGKILL" in line and "\n" not in line
    assert info.value.exit_code == 2
    after = fw.get_weights(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)  # the model is left as it was


def test_a_worker_killed_by_a_signal_is_named_with_its_last_words(importable_tests: None) -> None:
    fw = TorchFramework()
    data = load_digits(None, 0)
    model, masks = _pruned(fw)
    with pytest.raises(WorkerLostError) as info:
        train(fw, model, data, SETTINGS, DataParallel(workers=2, timeout_s=30), projection=AbortRankOne(masks))
    line = info.value.one_line()
    assert "rank 1 was killed by SIGABRT" in line and "\n" not in line
    assert "its last output: \"terminate called after throwing an instance of 'demo::Lost'\"" in line


def test_a_sigdl_error_in_a_worker_comes_back_as_itself(importable_tests: None) -> None:
    fw = TorchFramework()
    data = load_digits(None, 0)
    model = fw.build("lenet300100", (1, 8, 8), 10)
    with pytest.raises(InvalidValueError, match="training diverged"):
        train(fw, model, data, TrainSettings(epochs=1, lr=1e30, seed=0), DataParallel(workers=2))


def test_nccl_is_never_chosen_without_cuda_and_bad_settings_are_refused() -> None:
    import torch

    if not torch.cuda.is_available():
        assert choose_backend(DataParallel(workers=2)) == "gloo"
        with pytest.raises(InvalidValueError, match="NCCL backend needs a CUDA device"):
            choose_backend(DataParallel(workers=2, backend="nccl"))
    with pytest.raises(InvalidValueError, match="rendezvous endpoint"):
        DataParallel(workers=2, nnodes=2)
    with pytest.raises(InvalidValueError, match="HOST:PORT"):
        DataParallel(workers=2, nnodes=2, rdzv_endpoint="nohost")
    with pytest.raises(InvalidValueError, match="node rank 2"):
        DataParallel(nnodes=2, node_rank=2, rdzv_endpoint="10.0.0.1:29400")


def test_sigdl_train_with_workers_from_the_recipe_and_the_command_line(sigdl_cli, tmp_path: Path) -> None:
    import json

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model: lenet300100\ndataset: digits\ntrain: {epochs: 1}\naccelerate: {train_workers: 2}\n")
    result = sigdl_cli(["train", "--recipe", str(recipe), "--threads-per-worker", "1", "--json",
                        "--out", str(tmp_path / "m.pt")])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["train"]["parallel"]["workers"] == 2 and out["train"]["parallel"]["world_size"] == 2
    assert (tmp_path / "m.pt").is_file() and out["accuracy"]["top1"] > 0.3

    bad = sigdl_cli(["train", "--model", "lenet300100", "--dataset", "digits", "--workers", "0"])
    assert bad.exit_code == 2 and "workers=0 must be a whole number >= 1" in bad.output
    assert "Traceback" not in bad.output


def test_a_batch_norm_model_ends_with_the_same_weights_and_statistics_on_every_rank() -> None:
    from sigdl_core.interfaces import ArrayDataset

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    data = ArrayDataset(name="noise", x_train=x, y_train=y, x_test=x[:8], y_test=y[:8], num_classes=10)
    fw = TorchFramework()
    model = fw.build("mobilenet", (3, 32, 32), 10)
    history = train(fw, model, data, TrainSettings(epochs=1, batch_size=32, lr=0.01, seed=0),
                    DataParallel(workers=2))
    assert len(set(history.parallel["rank_digests"])) == 1  # running means and variances included


def test_distillation_runs_data_parallel_as_it_runs_serially(importable_tests: None) -> None:
    """The teacher's logits travel to the ranks, and each rank distils its own samples: two
    gloo workers take the serial run's steps (up to float summation order)."""
    from sigdl_core.interfaces import Teacher

    fw = TorchFramework()
    data = load_digits(None, 0)
    teacher_model = fw.build("lenet300100", (1, 8, 8), 10, seed=1)
    fw.train(teacher_model, data, TrainSettings(epochs=2, lr=0.05))
    teacher = Teacher(logits=fw.logits(teacher_model, data, "train"), weight=0.9, temperature=4.0)
    model, masks = _pruned(fw)
    history = train(fw, model, data, SETTINGS, DataParallel(workers=2, timeout_s=60), projection=Masks(masks),
                    teacher=teacher)
    assert len(set(history.parallel["rank_digests"])) == 1
    serial, _ = _pruned(fw)
    serial_history = fw.train(serial, data, SETTINGS, projection=Masks(masks), teacher=teacher)
    labels_only, _ = _pruned(fw)
    fw.train(labels_only, data, SETTINGS, projection=Masks(masks))
    assert np.allclose(history.loss, serial_history.loss, rtol=1e-5)
    weights, other = fw.get_weights(model), fw.get_weights(serial)
    assert max(float(np.abs(weights[k] - other[k]).max()) for k in weights) < 1e-5
    assert not np.allclose(fw.get_weights(labels_only)["fc1.weight"], weights["fc1.weight"], atol=1e-4)
