"""TorchFramework: build, weights in and out (with changed shapes), kinds, checkpoints, training."""

from __future__ import annotations

import builtins
import os
import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch

from sigdl_core.errors import (
    BadInputError,
    InvalidValueError,
    ModelFileError,
    UnknownNameError,
    UnsafeFileError,
    UnsupportedModelError,
)
from sigdl_core.interfaces import COMPRESSIBLE_KINDS, ArrayDataset, Framework, TrainSettings
from sigdl_datasets.loaders import load_digits, load_mnist5k
from sigdl_framework_torch.framework import TorchFramework
from sigdl_framework_torch.optimization import make_optimizer, make_scheduler


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits() -> ArrayDataset:
    return load_digits(None, 0)


@pytest.fixture(scope="module")
def mnist_small() -> ArrayDataset:
    data = load_mnist5k(None, 0)
    return replace(data, x_train=data.x_train[:384], y_train=data.y_train[:384],
                   x_test=data.x_test[:200], y_test=data.y_test[:200])


def _forward(model, x):
    with torch.no_grad():
        return model.native.eval()(torch.from_numpy(x)).numpy()


# --------------------------------------------------------------------------- build, weights


def test_torch_framework_is_complete(fw):
    assert isinstance(fw, Framework) and fw.name == "torch"
    assert not TorchFramework.__abstractmethods__


def test_torch_build_is_seeded_and_leaves_global_rng_alone(fw):
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = fw.build("lenet5", (1, 28, 28), 10, seed=4)
    after = torch.rand(1)
    assert torch.equal(after, expected_next)
    b = fw.build("lenet5", (1, 28, 28), 10, seed=4)
    c = fw.build("lenet5", (1, 28, 28), 10, seed=5)
    wa, wb, wc = fw.get_weights(a), fw.get_weights(b), fw.get_weights(c)
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    assert not np.array_equal(wa["conv1.weight"], wc["conv1.weight"])
    assert a.input_shape == (1, 28, 28) and a.num_classes == 10 and a.framework == "torch"
    assert fw.parameter_count(a) == 431_080


def test_torch_build_errors(fw):
    with pytest.raises(UnknownNameError):
        fw.build("resnet50", (3, 224, 224), 1000)
    with pytest.raises(UnsupportedModelError, match="at least 16"):
        fw.build("lenet5", (1, 8, 8), 10)


def test_torch_get_weights_includes_batchnorm_statistics(fw):
    model = fw.build("mobilenet", (3, 32, 32), 10)
    weights = fw.get_weights(model)
    assert "features.0.1.running_mean" in weights and "features.0.1.running_var" in weights
    assert not any(k.endswith("num_batches_tracked") for k in weights)
    assert all(w.dtype == np.float32 for w in weights.values())
    assert list(weights) == [k for k in model.native.state_dict() if not k.endswith("num_batches_tracked")]
    # copies, not views
    weights["classifier.weight"][:] = 0
    assert model.native.classifier.weight.abs().sum() > 0


def test_torch_layer_kinds(fw):
    kinds = fw.layer_kinds(fw.build("mobilenet", (3, 32, 32), 10))
    assert kinds["features.0.0.weight"] == "conv"
    assert kinds["features.1.0.weight"] == "depthwise"
    assert kinds["features.1.3.weight"] == "conv"
    assert kinds["features.1.1.weight"] == kinds["features.1.1.running_var"] == "norm"
    assert kinds["classifier.weight"] == "fc" and kinds["classifier.bias"] == "bias"
    lenet5 = fw.layer_kinds(fw.build("lenet5", (1, 28, 28), 10))
    assert lenet5 == {
        "conv1.weight": "conv", "conv1.bias": "bias", "conv2.weight": "conv", "conv2.bias": "bias",
        "fc1.weight": "fc", "fc1.bias": "bias", "fc2.weight": "fc", "fc2.bias": "bias",
    }
    assert {k for k, v in lenet5.items() if v in COMPRESSIBLE_KINDS} == {
        "conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"}


def test_torch_set_weights_round_trip(fw, mnist_small):
    a = fw.build("lenet5", (1, 28, 28), 10, seed=1)
    b = fw.build("lenet5", (1, 28, 28), 10, seed=2)
    x = mnist_small.x_test[:8]
    assert not np.allclose(_forward(a, x), _forward(b, x))
    fw.set_weights(b, fw.get_weights(a))
    assert np.array_equal(_forward(a, x), _forward(b, x))
    # a partial update changes only what is named, and float64 input is accepted
    fw.set_weights(b, {"fc2.bias": np.arange(10, dtype=np.float64)})
    assert np.array_equal(fw.get_weights(b)["fc2.bias"], np.arange(10, dtype=np.float32))
    assert np.array_equal(fw.get_weights(b)["fc1.weight"], fw.get_weights(a)["fc1.weight"])


def test_torch_set_weights_rejects_bad_input(fw):
    model = fw.build("lenet300100", (1, 28, 28), 10)
    with pytest.raises(UnknownNameError, match="fc9.weight"):
        fw.set_weights(model, {"fc9.weight": np.zeros((3, 3), np.float32)})
    with pytest.raises(InvalidValueError, match="not a numeric array"):
        fw.set_weights(model, {"fc1.bias": np.array(["a"] * 300)})
    with pytest.raises(InvalidValueError, match="NaN or infinite"):
        fw.set_weights(model, {"fc1.bias": np.full(300, np.nan)})
    assert np.isfinite(fw.get_weights(model)["fc1.bias"]).all()


def test_torch_set_weights_prunes_lenet5_channels(fw, mnist_small):
    model = fw.build("lenet5", (1, 28, 28), 10, seed=0)
    w = fw.get_weights(model)
    keep1 = np.arange(0, 20, 2)  # 10 of conv1's 20 filters
    keep2 = np.arange(30)  # 30 of conv2's 50 filters: fc1 reads 30×4×4 inputs
    fc1 = w["fc1.weight"].reshape(500, 50, 16)[:, keep2].reshape(500, -1)
    pruned = {
        "conv1.weight": w["conv1.weight"][keep1], "conv1.bias": w["conv1.bias"][keep1],
        "conv2.weight": w["conv2.weight"][keep2][:, keep1], "conv2.bias": w["conv2.bias"][keep2],
        "fc1.weight": fc1,
    }
    fw.set_weights(model, pruned)
    conv1, conv2, fc = model.native.conv1, model.native.conv2, model.native.fc1
    assert (conv1.out_channels, conv2.in_channels, conv2.out_channels, fc.in_features) == (10, 10, 30, 480)
    after = fw.get_weights(model)
    assert all(np.array_equal(after[k], v) for k, v in pruned.items())
    assert fw.parameter_count(model) == 10 * 26 + 30 * (250 + 1) + 500 * 481 + 5010
    assert _forward(model, mnist_small.x_test[:4]).shape == (4, 10)
    # it still trains, and survives a checkpoint round trip
    fw.train(model, mnist_small, TrainSettings(epochs=1, batch_size=128))
    assert fw.get_weights(model)["conv2.weight"].shape == (30, 10, 5, 5)


def test_torch_set_weights_prunes_mobilenet_depthwise(fw, tmp_path):
    model = fw.build("mobilenet", (3, 32, 32), 10, seed=0)
    w = fw.get_weights(model)
    keep = np.arange(16)
    change = {"features.0.0.weight": w["features.0.0.weight"][keep],
              "features.1.0.weight": w["features.1.0.weight"][keep],
              "features.1.3.weight": w["features.1.3.weight"][:, keep]}
    for bn in ("features.0.1", "features.1.1"):
        for attr in ("weight", "bias", "running_mean", "running_var"):
            change[f"{bn}.{attr}"] = w[f"{bn}.{attr}"][keep]
    fw.set_weights(model, change)
    dw = model.native.features[1][0]
    assert (dw.in_channels, dw.out_channels, dw.groups) == (16, 16, 16)
    assert model.native.features[1][1].num_features == 16
    assert fw.layer_kinds(model)["features.1.0.weight"] == "depthwise"
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    out = _forward(model, x)
    path = fw.save(model, tmp_path / "pruned.pt")
    again = fw.load(path)
    assert again.native.features[1][0].groups == 16
    assert np.array_equal(_forward(again, x), out)


def test_torch_inconsistent_shapes_are_refused_and_undone(fw, mnist_small):
    model = fw.build("lenet5", (1, 28, 28), 10, seed=0)
    before = fw.get_weights(model)
    x = mnist_small.x_test[:4]
    expected = _forward(model, x)
    # conv1 loses filters but conv2 still reads 20 channels
    with pytest.raises(InvalidValueError, match="no longer runs"):
        fw.set_weights(model, {"conv1.weight": before["conv1.weight"][:10], "conv1.bias": before["conv1.bias"][:10]})
    # a new filter count without the matching bias
    with pytest.raises(InvalidValueError, match="conv1.bias"):
        fw.set_weights(model, {"conv1.weight": before["conv1.weight"][:10]})
    # a kernel size cannot change
    with pytest.raises(InvalidValueError, match="kernel"):
        fw.set_weights(model, {"conv1.weight": np.zeros((20, 1, 3, 3), np.float32)})
    # the output layer keeps its classes
    with pytest.raises(InvalidValueError, match="10 classes"):
        fw.set_weights(model, {"fc2.weight": before["fc2.weight"][:5], "fc2.bias": before["fc2.bias"][:5]})
    after = fw.get_weights(model)
    assert all(after[k].shape == v.shape and np.array_equal(after[k], v) for k, v in before.items())
    assert model.native.conv1.out_channels == 20 and model.native.fc2.out_features == 10
    assert np.array_equal(_forward(model, x), expected)


# --------------------------------------------------------------------------- checkpoints


def test_torch_checkpoint_round_trip(fw, tmp_path, digits):
    model = fw.build("lenet300100", (1, 8, 8), 10, seed=3)
    path = fw.save(model, tmp_path / "sub" / "model.pt")
    assert path.exists() and [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temp files
    loaded = fw.load(path)
    assert (loaded.architecture, loaded.input_shape, loaded.num_classes) == ("lenet300100", (1, 8, 8), 10)
    assert np.array_equal(_forward(loaded, digits.x_test[:5]), _forward(model, digits.x_test[:5]))
    raw = torch.load(path, weights_only=True)
    assert raw["sigdl"]["format"] == 1 and raw["sigdl"]["architecture"] == "lenet300100"
    with pytest.raises(InvalidValueError, match="holds a 'lenet300100' model"):
        fw.load(path, architecture="lenet5")


def test_torch_loads_batchnorm_counters_and_bare_state_dicts(fw, tmp_path):
    model = fw.build("squeezenet", (3, 64, 64), 7, seed=0)
    path = tmp_path / "bare.pth"
    torch.save(model.native.state_dict(), path)
    with pytest.raises(ModelFileError, match="does not say which architecture"):
        fw.load(path)
    loaded = fw.load(path, architecture="squeezenet", input_shape=(3, 64, 64))
    assert loaded.num_classes == 7  # read off the output layer
    assert all(np.array_equal(a, b) for a, b in zip(fw.get_weights(loaded).values(), fw.get_weights(model).values()))
    # a training script's {"state_dict": ..., "epoch": ...}, saved from nn.DataParallel
    mob = fw.build("mobilenet", (3, 32, 32), 10)
    mob.native.features[0][1].num_batches_tracked.fill_(17)
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in mob.native.state_dict().items()}}
    torch.save(wrapped, tmp_path / "wrapped.pt")
    back = fw.load(tmp_path / "wrapped.pt", architecture="mobilenet", input_shape=(3, 32, 32))
    assert int(back.native.features[0][1].num_batches_tracked) == 17


class _RunsCode:
    """Unpickling this calls builtins.open(marker, "w"): it would create the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def test_torch_checkpoint_with_pickled_code_is_refused(fw, tmp_path):
    marker = tmp_path / "was-run"
    model = fw.build("lenet300100", (1, 28, 28), 10)
    evil = {"sigdl": {"format": 1}, "state_dict": model.native.state_dict(), "hook": _RunsCode(str(marker))}
    torch.save(evil, tmp_path / "evil.pt")
    with pytest.raises(UnsafeFileError, match=r"pickled code or objects \((builtins|io)\.open\)"):
        fw.load(tmp_path / "evil.pt")
    # the same as a plain (protocol 5) pickle, and as torch's legacy format
    with open(tmp_path / "evil.pkl", "wb") as fh:
        pickle.dump({"x": _RunsCode(str(marker))}, fh, protocol=5)
    with pytest.raises(UnsafeFileError, match=r"(builtins|io)\.open"):
        fw.load(tmp_path / "evil.pkl", architecture="lenet300100")
    with open(tmp_path / "legacy.pt", "wb") as fh:
        torch.save({"x": _RunsCode(str(marker))}, fh, _use_new_zipfile_serialization=False)
    with pytest.raises(UnsafeFileError):
        fw.load(tmp_path / "legacy.pt", architecture="lenet300100")
    assert not marker.exists()


def test_torch_damaged_checkpoints(fw, tmp_path):
    model = fw.build("lenet300100", (1, 28, 28), 10)
    good = fw.save(model, tmp_path / "good.pt").read_bytes()
    with pytest.raises(ModelFileError, match="does not exist"):
        fw.load(tmp_path / "missing.pt")
    with pytest.raises(ModelFileError, match="not a file"):
        fw.load(tmp_path)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty"):
        fw.load(tmp_path / "empty.pt")
    (tmp_path / "half.pt").write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelFileError, match="corrupt or truncated"):
        fw.load(tmp_path / "half.pt")
    (tmp_path / "noise.pt").write_bytes(os.urandom(4096))
    with pytest.raises(ModelFileError) as info:
        fw.load(tmp_path / "noise.pt")
    assert not isinstance(info.value, UnsafeFileError)
    torch.save({"fc1.weight": torch.zeros(300, 784)}, tmp_path / "partial.pt")
    with pytest.raises(ModelFileError, match="missing 'fc1.bias'"):
        fw.load(tmp_path / "partial.pt", architecture="lenet300100")
    state = dict(model.native.state_dict(), extra=torch.zeros(1))
    torch.save(state, tmp_path / "extra.pt")
    with pytest.raises(ModelFileError, match="unexpected 'extra'"):
        fw.load(tmp_path / "extra.pt", architecture="lenet300100")
    torch.save(model.native.state_dict(), tmp_path / "wrong.pt")
    with pytest.raises(ModelFileError, match="does not fit 'lenet5'"):
        fw.load(tmp_path / "wrong.pt", architecture="lenet5")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ModelFileError, match="holds no state_dict"):
        fw.load(tmp_path / "list.pt", architecture="lenet300100")
    torch.save({"sigdl": {"format": 9}, "state_dict": model.native.state_dict()}, tmp_path / "future.pt")
    with pytest.raises(ModelFileError, match="format 9"):
        fw.load(tmp_path / "future.pt")
    with pytest.raises(ModelFileError, match="does not fit"):
        fw.load(tmp_path / "good.pt", input_shape=(1, 8, 8))


# --------------------------------------------------------------------------- training


def test_torch_training_is_deterministic(fw, mnist_small):
    settings = TrainSettings(epochs=2, batch_size=64, lr=0.02, seed=11)
    runs = []
    for _ in range(2):
        model = fw.build("lenet5", (1, 28, 28), 10, seed=0)
        history = fw.train(model, mnist_small, settings)
        runs.append((fw.get_weights(model), history))
    (wa, ha), (wb, hb) = runs
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    assert ha.loss == hb.loss and len(ha.loss) == 2 and ha.seconds > 0
    other = fw.build("lenet5", (1, 28, 28), 10, seed=0)
    fw.train(other, mnist_small, replace(settings, seed=12))
    assert not np.array_equal(fw.get_weights(other)["fc1.weight"], wa["fc1.weight"])
    # the weights come back in the ordinary (contiguous) layout
    assert all(p.is_contiguous() for p in other.native.parameters())


def test_torch_training_learns_digits_with_adam_and_step_schedule(fw, digits):
    model = fw.build("lenet300100", (1, 8, 8), 10, seed=0)
    settings = TrainSettings(epochs=4, optimizer="adam", lr=0.003, schedule="step", step_size=2, gamma=0.5)
    history = fw.train(model, digits, settings)
    assert history.loss[-1] < history.loss[0]
    assert fw.evaluate(model, digits).top1 > 0.9


def test_torch_projection_keeps_a_mask_at_zero(fw, mnist_small):
    model = fw.build("lenet5", (1, 28, 28), 10, seed=0)
    rng = np.random.default_rng(0)
    masks = {name: rng.random(w.shape) < 0.5 for name, w in fw.get_weights(model).items()
             if name in ("conv2.weight", "fc1.weight")}
    calls = []

    def projection(views):
        calls.append(sorted(views))
        for name, mask in masks.items():
            flat = views[name].reshape(-1)  # must edit the weights, not a copy
            flat[mask.reshape(-1)] = 0.0

    fw.set_weights(model, {n: np.where(m, 0, fw.get_weights(model)[n]) for n, m in masks.items()})
    settings = TrainSettings(epochs=1, batch_size=64, lr=0.02)
    fw.train(model, mnist_small, settings, projection=projection)
    assert len(calls) == 6  # 384 samples / 64 = one call per optimizer step
    assert calls[0] == sorted(fw.get_weights(model))
    after = fw.get_weights(model)
    for name, mask in masks.items():
        assert np.all(after[name][mask] == 0)
        assert np.count_nonzero(after[name][~mask]) == np.count_nonzero(~mask)


def test_torch_progress_is_reported_per_step(fw, digits):
    seen = []
    model = fw.build("lenet300100", (1, 8, 8), 10)
    fw.train(model, digits, TrainSettings(epochs=2, batch_size=512), progress=lambda d, c, t: seen.append((d, c, t)))
    steps = -(-len(digits.y_train) // 512)
    assert [c for _, c, _ in seen] == list(range(1, 2 * steps + 1))
    assert {t for _, _, t in seen} == {2 * steps}
    assert seen[0][0] == "train epoch 1/2" and seen[-1][0] == "train epoch 2/2"


def test_torch_zero_epochs_and_divergence(fw, digits):
    model = fw.build("lenet300100", (1, 8, 8), 10)
    before = fw.get_weights(model)
    assert fw.train(model, digits, TrainSettings(epochs=0)).loss == []
    assert all(np.array_equal(before[k], v) for k, v in fw.get_weights(model).items())
    with pytest.raises(InvalidValueError, match="diverged"):
        fw.train(model, digits, TrainSettings(epochs=3, lr=1e4, momentum=0.99, schedule="constant"))


def test_torch_data_must_fit_the_model(fw, digits):
    model = fw.build("lenet300100", (1, 28, 28), 10)
    with pytest.raises(InvalidValueError, match="samples shaped"):
        fw.train(model, digits, TrainSettings(epochs=1))
    small = fw.build("lenet300100", (1, 8, 8), 5)
    with pytest.raises(InvalidValueError, match="5 classes"):
        fw.evaluate(small, digits)


def test_torch_evaluate_top5_covers_few_classes(fw, digits):
    keep = digits.y_test < 3
    data = replace(digits, y_test=digits.y_test[keep], x_test=digits.x_test[keep], num_classes=3)
    model = fw.build("lenet300100", (1, 8, 8), 3)
    acc = fw.evaluate(model, data)
    assert acc.samples == int(keep.sum()) and acc.top5 == 1.0 and 0 <= acc.top1 <= 1
    full = fw.evaluate(fw.build("lenet300100", (1, 8, 8), 10), digits, split="train")
    assert full.samples == len(digits.y_train) and full.top1 <= full.top5


def _learning_rates(settings: TrainSettings, batches_per_epoch: int) -> list[float]:
    """The learning rate of every batch of a run, as the framework's schedule sets it."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = make_optimizer([param], settings)
    schedule = make_scheduler(optimizer, settings, batches_per_epoch * settings.epochs)
    rates = []
    for _ in range(settings.epochs):
        for _ in range(batches_per_epoch):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            schedule.after_batch()
        schedule.after_epoch(1.0)
    return rates


def test_torch_learning_rate_schedules():
    cosine = _learning_rates(TrainSettings(epochs=10, lr=1.0, schedule="cosine"), 10)
    assert cosine[0] == 1.0 and cosine[50] == pytest.approx(0.5) and cosine[99] < 0.001
    step = _learning_rates(TrainSettings(epochs=7, lr=1.0, schedule="step", step_size=3, gamma=0.1), 1)
    assert [step[e] for e in (0, 2, 3, 6)] == pytest.approx([1, 1, 0.1, 0.01])
    assert set(_learning_rates(TrainSettings(epochs=3, schedule="constant", lr=0.2), 4)) == {0.2}
    exponential = _learning_rates(TrainSettings(epochs=3, lr=1.0, schedule="ExponentialLR",
                                                schedule_params={"gamma": 0.5}), 2)
    assert exponential == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25])  # a torch scheduler steps per epoch


def test_torch_optimizers_are_torch_optim_by_name_with_their_arguments(fw):
    params = [torch.nn.Parameter(torch.zeros(2))]
    adamw = make_optimizer(params, TrainSettings(optimizer="AdamW", lr=0.01, weight_decay=0.05,
                                                 optimizer_params={"betas": [0.8, 0.9]}))
    assert type(adamw) is torch.optim.AdamW
    assert adamw.defaults["betas"] == (0.8, 0.9) and adamw.defaults["weight_decay"] == 0.05
    sgd = make_optimizer(params, TrainSettings(optimizer="sgd", momentum=0.5, optimizer_params={"nesterov": True}))
    assert type(sgd) is torch.optim.SGD and sgd.defaults["momentum"] == 0.5 and sgd.defaults["nesterov"]
    rms = make_optimizer(params, TrainSettings(optimizer="rmsprop", momentum=0.0))
    assert type(rms) is torch.optim.RMSprop
    for bad, says in [(TrainSettings(optimizer="adamx"), "unknown optimizer 'adamx'"),
                      (TrainSettings(optimizer="adam", optimizer_params={"beta": 0.9}), "no argument 'beta'"),
                      (TrainSettings(schedule="warmup"), "unknown learning-rate schedule 'warmup'"),
                      (TrainSettings(schedule="StepLR", schedule_params={"steps": 2}), "no argument 'steps'"),
                      (TrainSettings(schedule="cosine", schedule_params={"T_max": 2}), "takes no schedule_params")]:
        with pytest.raises(BadInputError) as err:
            fw.check_settings(bad)
        assert says in err.value.one_line(), err.value.one_line()


@pytest.mark.parametrize("optimizer,lr,params", [("adamw", 0.003, {}), ("rmsprop", 0.001, {"alpha": 0.9})])
def test_torch_adamw_and_rmsprop_train(fw, digits, optimizer, lr, params):
    model = fw.build("lenet300100", digits.input_shape, 10, seed=0)
    settings = TrainSettings(epochs=4, batch_size=64, optimizer=optimizer, lr=lr, momentum=0.0,
                             optimizer_params=params, schedule="constant")
    history = fw.train(model, digits, settings)
    assert history.loss[-1] < history.loss[0] / 3
    assert fw.evaluate(model, digits).top1 > 0.85


def test_torch_small_models_train_on_one_thread_and_the_count_is_restored(monkeypatch) -> None:
    import torch

    from sigdl_framework_torch.framework import THREADS_ENV, torch_threads
    from sigdl_framework_torch.models import build_module

    before = torch.get_num_threads()
    small = build_module("lenet300100", (1, 28, 28), 10)
    with torch_threads(small) as threads:
        assert threads == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == before
    monkeypatch.setenv(THREADS_ENV, "2")
    with torch_threads(small) as threads:
        assert threads == 2 == torch.get_num_threads()
    monkeypatch.setenv(THREADS_ENV, "many")
    with pytest.raises(InvalidValueError, match=THREADS_ENV):
        with torch_threads(small):
            pass
    assert torch.get_num_threads() == before
