"""Every zoo model trains with its own defaults (``ModelSpec.train_defaults``) and no flag.

``sigdl train --model M`` with no training flag: the LeNets on mnist5k (one epoch here, to
stay fast), the ImageNet models for one epoch on small synthetic images. None may diverge.
"""

from __future__ import annotations

import json
import math

import pytest

from sigdl_framework_torch.plugin import MODEL_CATALOG, MODEL_TRAIN_DEFAULTS

SMALL_IMAGES = {"alexnet": "synthetic:3x64x64", "vgg16": "synthetic:3x32x32", "squeezenet": "synthetic:3x32x32",
                "mobilenet": "synthetic:3x32x32"}


def test_every_zoo_model_has_training_defaults() -> None:
    assert set(MODEL_TRAIN_DEFAULTS) == set(MODEL_CATALOG)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in ("alexnet", "vgg16") else n
                                  for n in sorted(MODEL_CATALOG)])  # those two take ~20 s (their big FC layers)
def test_default_training_of_each_zoo_model_has_no_nan(sigdl_cli, tmp_path, name) -> None:
    dataset = SMALL_IMAGES.get(name, "mnist5k")
    result = sigdl_cli(["train", "--model", name, "--dataset", dataset, "--epochs", "1",
                        "-o", str(tmp_path / f"{name}.pt"), "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    for key, value in MODEL_TRAIN_DEFAULTS[name].items():
        if key != "epochs":
            assert report["settings"][key] == value, key  # the model's own, with no flag given
    assert report["settings"]["epochs"] == 1  # a flag wins over the model's default
    assert all(math.isfinite(v) for v in report["train"]["loss"])
    if dataset == "mnist5k":
        assert report["accuracy"]["top1"] > 0.85  # one epoch already learns the digits


def test_a_recipe_key_wins_over_the_models_default(sigdl_cli, tmp_path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train: {lr: 0.005, epochs: 1}\n")
    result = sigdl_cli(["train", "--model", "lenet5", "--recipe", str(recipe), "-o", str(tmp_path / "m.pt"), "--json"])
    assert result.exit_code == 0, result.stderr
    settings = json.loads(result.stdout)["settings"]
    assert (settings["lr"], settings["batch_size"]) == (0.005, MODEL_TRAIN_DEFAULTS["lenet5"]["batch_size"])
