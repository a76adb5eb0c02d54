"""The recipe's JSON Schema (``sigdl run --schema``) accepts the example recipe and rejects bad ones."""

from __future__ import annotations

import json

import pytest
import yaml

jsonschema = pytest.importorskip("jsonschema")


@pytest.fixture(scope="module")
def schema(request) -> dict:
    from sigdl_core.recipe import json_schema

    return json_schema()


def test_schema_is_printed_and_is_a_valid_draft_2020_12_schema(sigdl_cli) -> None:
    result = sigdl_cli(["run", "--schema"])
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(printed)
    assert printed["title"] == "SigDL recipe"
    assert printed["properties"]["train"]["anyOf"][0]["$ref"].endswith("TrainSection")


def test_schema_validates_the_example_recipe(sigdl_cli, schema) -> None:
    example = yaml.safe_load(sigdl_cli(["run", "--example"]).stdout)
    jsonschema.validate(example, schema)
    jsonschema.validate({"targets": ["atom-x5-e3930", {"name": "jetson-tx2", "precision": "fp32"},
                                     {"name": "rpi4-a72", "remote": {"host": "10.0.0.2", "user": "pi"}}],
                         "train": {"optimizer": "adamw", "optimizer_params": {"betas": [0.9, 0.99]}}}, schema)


@pytest.mark.parametrize("bad", [
    {"epochz": 3},                                   # an unknown key
    {"train": {"epochs": "three"}},                  # a wrong type
    {"train": {"epochs": -1}},                       # out of range
    {"search": {"strategy": "greedy"}},              # not an allowed value
    {"search": {"sensitivity": [0.5, 1.5]}},         # an item out of range
    {"targets": [{"precision": "fp32"}]},            # a target without a name
    {"targets": [{"name": "rpi", "remote": {"user": "pi"}}]},  # a remote board without a host
    {"budget": {"min_fpz": 5}},
])
def test_schema_rejects_bad_recipes_as_the_recipe_reader_does(schema, bad) -> None:
    from sigdl_core.errors import BadInputError
    from sigdl_core.recipe import Recipe

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    with pytest.raises(BadInputError) as err:
        Recipe.from_mapping(bad)
    assert "\n" not in err.value.one_line()


@pytest.mark.parametrize("text, words", [
    ("targets: [{precision: fp32}]\n", "recipe key 'targets[0].name' is missing"),
    ("targets: [{name: rpi, remote: {user: pi}}]\n", "recipe key 'targets[0].remote.host' is missing"),
    ("targets: [{name: rpi, remote: {host: h, prot: 22}}]\n", "did you mean 'port'?"),
    ("train: {lr: 0}\n", "recipe key 'train.lr' is 0: must be greater than 0"),
    ("train: {lr: 1e-3}\n", None),                   # YAML 1.2 exponent form is a number
    ("train: 5\n", "recipe key 'train' is 5, expected a mapping"),
    ("validation: 1.5\n", "recipe key 'validation' is 1.5: must be less than 1"),
    ("limits: {max_seconds: null}\ntrain: null\n", None),
])
def test_recipe_errors_name_the_key_path_and_what_it_may_be(tmp_path, text, words) -> None:
    from sigdl_core.errors import BadInputError
    from sigdl_core.recipe import Recipe

    path = tmp_path / "r.yaml"
    path.write_text(text)
    if words is None:
        Recipe.from_file(path)
        return
    with pytest.raises(BadInputError) as err:
        Recipe.from_file(path)
    assert words in err.value.one_line(), err.value.one_line()


def test_model_defaults_fill_only_the_training_keys_left_out() -> None:
    from sigdl_core.recipe import Recipe

    r = Recipe.from_mapping({"train": {"lr": 0.2}}).with_overrides(epochs=3)
    assert r.train_given == {"lr", "epochs"}
    mine = r.for_model({"lr": 0.01, "epochs": 20, "optimizer": "adam", "batch_size": 32})
    assert (mine.train.lr, mine.train.epochs, mine.train.optimizer, mine.train.batch_size) == (0.2, 3, "adam", 32)
    again = Recipe.from_mapping(mine.to_mapping())
    assert again.train == mine.train and again.for_model({"lr": 0.5}).train == mine.train

