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
from .targets import TargetRef


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


_NUM = (int, float, type(None))

#: The recipe's keys. A nested dict is a section.
SCHEMA: dict[str, Any] = {
    "model": Key((str,), "lenet300100", "a model name (sigdl models) or a model file"),
    "framework": Key((str, type(None)), None, "the framework (default: the model's own)"),
    "dataset": Key((str,), "mnist5k", "a dataset name, or name:argument (sigdl datasets)"),
    "seed": Key((int,), 0, "the seed of every random choice"),
    "validation": Key((int, float), 0.1, "fraction of the training data held out as the validation split "
                      "the search and the budget decide on (0: none; then nothing may be decided)"),
    "train": _train_schema(),
    "compress": {
        "chain": Key((list,), [], "compressor names in order, e.g. [prune, quant] (sigdl compressors)"),
        "params": Key((dict,), {}, "per compressor: its parameters, e.g. {prune: {sparsity: 0.9}}"),
        "retrain": {
            "epochs": Key((int,), 2, "retraining epochs after each compression stage (0: none)"),
            "lr": Key((int, float), 0.01, "retraining learning rate"),
            "optimizer": Key((str,), "sgd", "the retraining optimizer", ("sgd", "adam")),
            "batch_size": Key((int,), 64, "samples per retraining step"),
        },
    },
    "targets": Key((list,), [], "targets to re-test on (sigdl targets): names, name:key=value,..., "
                   "or {name: NAME, option: value} mappings (sigdl emulators lists the options)"),
    "budget": {
        "max_accuracy_drop": Key(_NUM, 1.0, "most top-1 points the model may lose (1.0 = one point)"),
        "max_relative_drop": Key(_NUM, None, "most top-1 it may lose relative to the baseline (0.02 = 2 %)"),
        "min_fps": Key(_NUM, None, "fewest frames per second at batch 1, on every target"),
        "max_latency_ms": Key(_NUM, None, "longest p95 latency in ms, on every target"),
        "max_artifact_bytes": Key((int, type(None)), None, "largest .sigdl artifact in bytes"),
        "max_power_w": Key(_NUM, None, "most power in W, on every target"),
        "max_energy_mj": Key(_NUM, None, "most energy per inference in mJ, on every target"),
    },
    "search": {
        "strategy": Key((str,), "auto", "auto: sensitivity, then bisection on strength, then bits; "
                        "fixed: the chain's parameters as given", ("auto", "fixed")),
        "sensitivity": Key((list,), [0.5, 0.7, 0.8, 0.9, 0.95, 0.98], "sparsities of the sensitivity analysis"),
        "bisection_steps": Key((int,), 4, "bisection steps on the global pruning strength"),
        "min_bits": Key((int,), 2, "fewest bits per weight the bits search tries"),
    },
    "limits": {
        "max_candidates": Key((int,), 16, "most candidates to try"),
        "max_seconds": Key(_NUM, 900, "most wall-clock seconds for the search (the baseline not counted)"),
    },
}

EXAMPLE = """\
# A SigDL recipe (YAML; TOML works too). Keys left out take these values.
model: lenet300100        # a model name (sigdl models) or a model file (model.pt)
framework: null           # null: the model's own framework
dataset: mnist5k          # sigdl datasets; mnist-idx:DIR, image-folder:DIR, synthetic:SHAPE
seed: 0                   # training, retraining and splits are deterministic under a seed
validation: 0.1           # held out of training; the search decides on it, the test split only reports

train:                    # the baseline (skipped when model is a file)
  epochs: 12
  batch_size: 64
  optimizer: sgd          # sgd | adam
  lr: 0.05
  momentum: 0.9
  weight_decay: 0.0
  schedule: cosine        # constant | step | cosine
  step_size: 5            # for schedule: step
  gamma: 0.1              # for schedule: step

compress:
  chain: [prune, quant, encode]   # in order (sigdl compressors); [] only trains and tests
  params:                 # fixed parameters per compressor; the search sets the knobs
    quant: {bits_conv: 8, bits_fc: 5, centroid_update: mean}
    encode: {coder: auto}
  retrain:                # after each compression stage; masks and shared weights hold
    epochs: 4
    lr: 0.01
    optimizer: sgd
    batch_size: 64

targets: [atom-x5-e3930]  # sigdl targets; every candidate is re-tested on each

budget:                   # null: no limit
  max_accuracy_drop: 1.0  # top-1 points (1.0 = one point below the baseline)
  max_relative_drop: null # fraction of the baseline's top-1 (0.02 = 2 %)
  min_fps: 200            # at batch 1, on every target
  max_latency_ms: null    # p95, on every target
  max_artifact_bytes: null
  max_power_w: null
  max_energy_mj: null

search:
  strategy: auto          # auto: sensitivity, bisection on strength, fewest bits; fixed: params as given
  sensitivity: [0.5, 0.7, 0.8, 0.9, 0.95, 0.98]
  bisection_steps: 3
  min_bits: 2

limits:
  max_candidates: 14
  max_seconds: 150        # the search's wall time (the baseline not counted)
"""


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _names(value: Any, where: str) -> list[str]:
    if not all(isinstance(v, str) and v for v in value):
        raise InvalidValueError(f"recipe key '{where}' must be a list of names, got {value!r}",
                                "e.g. [prune, quant]" if "chain" in where else "e.g. [atom-x5-e3930]")
    return list(value)


def _check_params(params: Mapping[str, Any], chain: list[str]) -> None:
    for name, value in params.items():
        if name not in chain:
            raise BadInputError(f"recipe key 'compress.params.{name}' names a compressor not in the chain",
                                "chain: " + (", ".join(chain) or "(empty)"))
        if not isinstance(value, Mapping):
            raise InvalidValueError(f"recipe key 'compress.params.{name}' must be a mapping of parameters",
                                    f"e.g. {name}: {{...}} (sigdl compressors lists them)")


def _check_search(search: Mapping[str, Any], limits: Mapping[str, Any]) -> None:
    grid = search["sensitivity"]
    if not grid or not all(isinstance(s, (int, float)) and not isinstance(s, bool) and 0 < s < 1 for s in grid):
        raise InvalidValueError(f"recipe key 'search.sensitivity' is {grid!r}",
                                "give sparsities strictly between 0 and 1, e.g. [0.5, 0.8, 0.9]")
    if search["bisection_steps"] < 0:
        raise InvalidValueError("recipe key 'search.bisection_steps' must be >= 0")
    if not 1 <= search["min_bits"] <= 16:
        raise InvalidValueError("recipe key 'search.min_bits' must be between 1 and 16")
    if limits["max_candidates"] < 1:
        raise InvalidValueError("recipe key 'limits.max_candidates' must be >= 1")
    if limits["max_seconds"] is not None and limits["max_seconds"] <= 0:
        raise InvalidValueError("recipe key 'limits.max_seconds' must be > 0, or null for no limit")


def _yaml12_float(text: str) -> Any:
    """``1.0e12`` and ``1e-3`` as numbers: YAML 1.2 floats that PyYAML (YAML 1.1) leaves as text."""
    import re

    if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text.strip()):
        return float(text)
    return text


def _type_names(types: tuple[type, ...]) -> str:
    names = {int: "a whole number", float: "a number", str: "text", bool: "true/false",
             type(None): "null", list: "a list", dict: "a mapping"}
    if float in types:
        types = tuple(t for t in types if t is not int)
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
        if isinstance(value, str) and float in rule.types:
            value = _yaml12_float(value)
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
    validation: float = 0.1
    train: TrainSettings = field(default_factory=TrainSettings)
    compress: Mapping[str, Any] = field(default_factory=lambda: validate({}, SCHEMA["compress"], "compress"))
    targets: tuple[TargetRef, ...] = ()
    budget: Mapping[str, Any] = field(default_factory=lambda: validate({}, SCHEMA["budget"], "budget"))
    search: Mapping[str, Any] = field(default_factory=lambda: validate({}, SCHEMA["search"], "search"))
    limits: Mapping[str, Any] = field(default_factory=lambda: validate({}, SCHEMA["limits"], "limits"))
    source: str = "built-in default"

    @classmethod
    def from_mapping(cls, data: Any, source: str = "recipe") -> Recipe:
        values = validate(data)
        train = TrainSettings(**values.pop("train"), seed=values["seed"])
        values["targets"] = tuple(TargetRef.from_recipe(t, f"targets[{i}]") for i, t in enumerate(values["targets"]))
        values["compress"]["chain"] = _names(values["compress"]["chain"], "compress.chain")
        _check_params(values["compress"]["params"], values["compress"]["chain"])
        _check_search(values["search"], values["limits"])
        if not 0 <= values["validation"] < 1:
            raise InvalidValueError(f"recipe key 'validation' is {values['validation']!r}",
                                    "give a fraction in [0, 1), e.g. 0.1")
        return cls(train=train, source=source, **values)

    def retrain_settings(self) -> TrainSettings:
        """Training settings for retraining after compression (constant schedule)."""
        r = self.compress["retrain"]
        return TrainSettings(epochs=r["epochs"], lr=r["lr"], optimizer=r["optimizer"],
                             batch_size=r["batch_size"], schedule="constant", momentum=self.train.momentum,
                             seed=self.seed)

    @classmethod
    def default(cls) -> Recipe:
        """The built-in run of ``sigdl run``: the example recipe above."""
        import yaml

        return cls.from_mapping(yaml.safe_load(EXAMPLE), source="built-in default")

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

    def with_overrides(self, **overrides: Any) -> Recipe:  # noqa: D401
        """A copy with the non-None values replaced; ``train`` keys go by their own names."""
        train_keys = set(TrainSettings.__dataclass_fields__) - {"seed"}  # the seed is the recipe's
        train = {k: v for k, v in overrides.items() if k in train_keys and v is not None}
        top = {k: v for k, v in overrides.items() if k not in train_keys and v is not None}
        seed = top.get("seed", self.seed)
        return replace(self, **top, train=replace(self.train, **train, seed=seed))

    def to_dict(self) -> dict[str, Any]:
        train = self.train.to_dict()
        train.pop("seed")
        return {"model": self.model, "framework": self.framework, "dataset": self.dataset,
                "seed": self.seed, "validation": self.validation, "train": train, "compress": _plain(self.compress),
                "targets": [t.to_recipe() for t in self.targets], "budget": dict(self.budget), "search": _plain(self.search),
                "limits": dict(self.limits), "source": self.source}

    def to_mapping(self) -> dict[str, Any]:
        """The recipe as a mapping :meth:`from_mapping` reads back (``source`` left out)."""
        out = self.to_dict()
        out.pop("source")
        return out

    def model_path(self) -> Path | None:
        """The model file the recipe names, or None when it names a zoo model."""
        looks_like_file = any(sep in self.model for sep in ("/", os.sep)) or "." in self.model
        return Path(self.model) if looks_like_file else None
