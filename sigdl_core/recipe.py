"""The recipe: one YAML or TOML file that describes a run, validated before any work starts.

An unknown key, a value of the wrong type or a name no plugin registered is a
:class:`~sigdl_core.errors.BadInputError` naming the key and what it may be. Flags on the
command line override recipe values (:meth:`Recipe.with_overrides`).
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import BadInputError, InvalidValueError
from .files import read_regular_file
from .interfaces import TrainSettings


@dataclass(frozen=True)
class Key:
    """One recipe key: the types it takes, its default and one line of help."""

    types: tuple[type, ...]
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None


def _train_schema() -> dict[str, Key]:
    d = TrainSettings()
    return {
        "epochs": Key((int,), d.epochs, "passes over the training split"),
        "batch_size": Key((int,), d.batch_size, "samples per optimizer step"),
        "optimizer": Key((str,), d.optimizer, "the optimizer", ("sgd", "adam")),
        "lr": Key((int, float), d.lr, "the initial learning rate"),
        "momentum": Key((int, float), d.momentum, "SGD momentum"),
        "weight_decay": Key((int, float), d.weight_decay, "L2 weight decay"),
        "schedule": Key((str,), d.schedule, "learning-rate schedule", ("constant", "step", "cosine")),
        "step_size": Key((int,), d.step_size, "epochs between steps of the 'step' schedule"),
        "gamma": Key((int, float), d.gamma, "factor of the 'step' schedule"),
    }


#: The recipe's keys. A nested dict is a section.
SCHEMA: dict[str, Any] = {
    "model": Key((str,), "lenet300100", "a model name (sigdl models) or a model file"),
    "framework": Key((str, type(None)), None, "the framework (default: the model's own)"),
    "dataset": Key((str,), "mnist5k", "a dataset name, or name:argument (sigdl datasets)"),
    "seed": Key((int,), 0, "the seed of every random choice"),
    "train": _train_schema(),
}

EXAMPLE = """\
# A SigDL recipe. Every key is optional; these are the defaults.
model: lenet300100        # a model name (sigdl models) or a model file (model.pt)
framework: null           # null: the model's own framework
dataset: mnist5k          # sigdl datasets; mnist-idx:DIR, image-folder:DIR, synthetic:SHAPE
seed: 0                   # training and data splits are deterministic under a seed
train:
  epochs: 10
  batch_size: 64
  optimizer: sgd          # sgd | adam
  lr: 0.05
  momentum: 0.9
  weight_decay: 0.0
  schedule: cosine        # constant | step | cosine
  step_size: 5            # for schedule: step
  gamma: 0.1              # for schedule: step
"""


def _type_names(types: tuple[type, ...]) -> str:
    names = {int: "a whole number", float: "a number", str: "text", bool: "true/false",
             type(None): "null", list: "a list", dict: "a mapping"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def validate(data: Any, schema: Mapping[str, Any] = SCHEMA, where: str = "") -> dict[str, Any]:
    """Checks ``data`` against ``schema`` and returns it with defaults filled in."""
    if not isinstance(data, Mapping):
        raise BadInputError(
            f"recipe{' section ' + repr(where) if where else ''} must be a mapping of keys, "
            f"not {type(data).__name__}",
            "see 'sigdl run --example'",
        )
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = (f"did you mean '{close[0]}'? " if close else "") + "allowed: " + ", ".join(schema)
            raise BadInputError(f"unknown recipe key '{path}'", hint)
        rule = schema[key]
        if isinstance(rule, dict):
            out[key] = validate(value if value is not None else {}, rule, path)
            continue
        ok = isinstance(value, rule.types) and not (isinstance(value, bool) and bool not in rule.types)
        if not ok:
            raise InvalidValueError(
                f"recipe key '{path}' is {value!r}, expected {_type_names(rule.types)}", rule.help
            )
        if rule.choices is not None and value not in rule.choices:
            raise InvalidValueError(
                f"recipe key '{path}' is {value!r}", "allowed: " + ", ".join(map(str, rule.choices))
            )
        out[key] = value
    for key, rule in schema.items():
        if key not in out:
            out[key] = validate({}, rule, f"{where}.{key}" if where else key) if isinstance(rule, dict) else rule.default
    return out


@dataclass(frozen=True)
class Recipe:
    """A validated run description."""

    model: str = "lenet300100"
    framework: str | None = None
    dataset: str = "mnist5k"
    seed: int = 0
    train: TrainSettings = field(default_factory=TrainSettings)
    source: str = "built-in default"

    @classmethod
    def from_mapping(cls, data: Any, source: str = "recipe") -> Recipe:
        values = validate(data)
        train = TrainSettings(**values.pop("train"), seed=values["seed"])
        return cls(train=train, source=source, **values)

    @classmethod
    def from_file(cls, path: os.PathLike[str] | str) -> Recipe:
        p = read_regular_file(path, "recipe")
        text = p.read_text(encoding="utf-8", errors="replace")
        try:
            if p.suffix.lower() == ".toml":
                data = tomllib.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except Exception as exc:  # yaml.YAMLError, tomllib.TOMLDecodeError
            first = " ".join(str(exc).split())[:200]
            raise BadInputError(f"recipe '{p}' is not valid {'TOML' if p.suffix == '.toml' else 'YAML'}: {first}") from None
        return cls.from_mapping(data if data is not None else {}, source=str(p))

    def with_overrides(self, **overrides: Any) -> Recipe:
        """A copy with the non-None values replaced; ``train`` keys go by their own names."""
        train_keys = set(TrainSettings.__dataclass_fields__)
        train = {k: v for k, v in overrides.items() if k in train_keys and v is not None}
        top = {k: v for k, v in overrides.items() if k not in train_keys and v is not None}
        seed = top.get("seed", self.seed)
        return replace(self, **top, train=replace(self.train, **train, seed=seed))

    def to_dict(self) -> dict[str, Any]:
        train = self.train.to_dict()
        train.pop("seed")
        return {"model": self.model, "framework": self.framework, "dataset": self.dataset,
                "seed": self.seed, "train": train, "source": self.source}

    def model_path(self) -> Path | None:
        """The model file the recipe names, or None when it names a zoo model."""
        looks_like_file = any(sep in self.model for sep in ("/", os.sep)) or "." in self.model
        return Path(self.model) if looks_like_file else None
