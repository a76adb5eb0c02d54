"""The recipe: one YAML or TOML file that describes a run, validated before any work starts.

The recipe's keys are pydantic models (:class:`RecipeModel` and its sections), so that one
declaration gives the checks, the defaults and the recipe's JSON Schema
(``sigdl run --schema``; :func:`json_schema`), which editors use to complete and check a
recipe as it is typed. An unknown key, a value of the wrong type or outside its range is a
:class:`~sigdl_core.errors.BadInputError` in one line naming the key's path and what it may
be; names that plugins register (models, compressors, targets and their options) are
checked against the plugins by the loop's ``Session.check`` before any work. Flags on the
command line override recipe values (:meth:`Recipe.with_overrides`).

Training keys left out take the model's own defaults (``ModelSpec.train_defaults``,
:meth:`Recipe.for_model`), then :class:`~sigdl_core.interfaces.TrainSettings`' defaults.

This module imports pydantic; the CLI imports it only in commands that read a recipe.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union, get_args, get_origin

from annotated_types import Gt, Lt
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from .errors import BadInputError, InvalidValueError
from .files import read_regular_file
from .interfaces import TrainSettings
from .targets import TargetRef

# --------------------------------------------------------------------------- value types


def _yaml12_float(value: Any) -> Any:
    """``1.0e12`` and ``1e-3`` as numbers: YAML 1.2 floats that PyYAML (YAML 1.1) leaves as text."""
    if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", value.strip()):
        return float(value)
    return value


#: A number: an int or a float (YAML 1.2 exponent forms too), never true/false. Bounds go on the
#: field (``Field(gt=0)``), or before the validator in an ``Annotated`` of ``float`` (``Sparsity``),
#: so that the JSON Schema states them.
Number = Annotated[float, BeforeValidator(_yaml12_float)]
#: A name a plugin registers, or of a framework's optimizer or scheduler.
Name = Annotated[str, Field(min_length=1)]


class Section(BaseModel):
    """A recipe section: strict types, no unknown keys, nulls read as "use the defaults"."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _null_sections(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            sections = {k for k, f in cls.model_fields.items()
                        if isinstance(f.annotation, type) and issubclass(f.annotation, Section)}
            return {k: ({} if k in sections and v is None else v) for k, v in data.items()}
        return data


_D = TrainSettings()


class TrainSection(Section):
    """How the baseline trains (skipped when the model is a file)."""

    epochs: int = Field(_D.epochs, ge=0, description="passes over the training split")
    batch_size: int = Field(_D.batch_size, ge=1, description="samples per optimizer step")
    optimizer: Name = Field(_D.optimizer, description="the optimizer by name: sgd, adam, adamw, rmsprop … "
                            "(any of the framework's own, e.g. torch.optim's)")
    optimizer_params: dict[str, Any] = Field(default_factory=dict, description="the optimizer's other keyword "
                                             "arguments, e.g. {betas: [0.9, 0.99]}")
    lr: Number = Field(_D.lr, gt=0, description="the initial learning rate")
    momentum: Number = Field(_D.momentum, ge=0, description="momentum, for the optimizers that take one (SGD, RMSprop)")
    weight_decay: Number = Field(_D.weight_decay, ge=0, description="weight decay")
    schedule: Name = Field(_D.schedule, description="learning-rate schedule: constant, step, cosine, or one of "
                           "the framework's schedulers by name (e.g. ExponentialLR)")
    schedule_params: dict[str, Any] = Field(default_factory=dict, description="a named scheduler's keyword "
                                            "arguments, e.g. {gamma: 0.9}")
    step_size: int = Field(_D.step_size, ge=1, description="epochs between steps of the 'step' schedule")
    gamma: Number = Field(_D.gamma, ge=0, description="factor of the 'step' schedule")


class RetrainSection(Section):
    """Retraining after each compression stage; masks and shared weights hold."""

    epochs: int = Field(2, ge=0, description="retraining epochs after each compression stage (0: none)")
    lr: Number = Field(0.01, gt=0, description="retraining learning rate")
    optimizer: Name = Field("sgd", description="the retraining optimizer by name (as train.optimizer)")
    optimizer_params: dict[str, Any] = Field(default_factory=dict, description="its other keyword arguments")
    batch_size: int = Field(64, ge=1, description="samples per retraining step")
    distill: Number = Field(0.9, ge=0, le=1, description="weight of the baseline's soft targets in the "
                            "retraining loss (knowledge distillation; 0: the labels only)")
    temperature: Number = Field(4.0, gt=0, description="softmax temperature of the distillation")


class CompressSection(Section):
    """The compressors and their fixed parameters."""

    chain: list[Name] = Field(default_factory=list, description="compressor names in order, e.g. "
                              "[prune, quant] (sigdl compressors)")
    params: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per compressor: its "
                                              "parameters, e.g. {prune: {sparsity: 0.9}}")
    retrain: RetrainSection = Field(default_factory=RetrainSection, description=RetrainSection.__doc__)

    @model_validator(mode="after")
    def _params_in_chain(self) -> CompressSection:
        for name in self.params:
            if name not in self.chain:
                raise _KeyProblem(f"recipe key 'compress.params.{name}' names a compressor not in the chain",
                                  "chain: " + (", ".join(self.chain) or "(empty)"))
        return self


class RemoteSection(Section):
    """A real board reached over SSH."""

    host: Name = Field(description="the board's host name or address")
    user: Optional[str] = Field(None, description="the SSH user (default: yours)")
    port: int = Field(22, ge=1, le=65535, description="the SSH port")
    key_file: Optional[str] = Field(None, description="the SSH private key (default: SSH's own search)")
    python: str = Field("python3", description="the board's Python interpreter")
    power_command: Optional[str] = Field(None, description="a shell command on the board that prints its "
                                         "power draw in W")


class TargetEntry(BaseModel):
    """A target with emulator options: {name: jetson-tx2, precision: fp32} (sigdl emulators)."""

    model_config = ConfigDict(extra="allow", strict=True)

    name: Name = Field(description="the target's name (sigdl targets)")
    remote: Optional[RemoteSection] = Field(None, description="re-test on a real board over SSH")


class BudgetSection(Section):
    """What the chosen model must meet; null: no limit."""

    max_accuracy_drop: Optional[Number] = Field(1.0, description="most top-1 points the model may lose (1.0 = one point)")
    max_relative_drop: Optional[Number] = Field(None, description="most top-1 it may lose relative to the "
                                                "baseline (0.02 = 2 %)")
    min_fps: Optional[Number] = Field(None, description="fewest frames per second at batch 1, on every target")
    max_latency_ms: Optional[Number] = Field(None, description="longest p95 latency in ms, on every target")
    max_artifact_bytes: Optional[int] = Field(None, description="largest .sigdl artifact in bytes")
    max_power_w: Optional[Number] = Field(None, description="most power in W, on every target")
    max_energy_mj: Optional[Number] = Field(None, description="most energy per inference in mJ, on every target")


Sparsity = Annotated[float, Gt(0), Lt(1), BeforeValidator(_yaml12_float)]


class SearchSection(Section):
    """How the loop searches for the most compressed model within the budget."""

    strategy: Literal["auto", "fixed"] = Field("auto", description="auto: a gradual pruning path, the heavy "
                                               "layers pushed, then bits; fixed: the chain's parameters as given")
    allocation: Literal["magnitude", "sensitivity"] = Field(
        "magnitude", description="how pruning is shared among layers: magnitude (one threshold across layers) or "
        "sensitivity (each layer's one-shot sensitivity cap)")
    sensitivity: list[Sparsity] = Field(default_factory=lambda: [0.5, 0.7, 0.8, 0.9, 0.95, 0.98], min_length=1,
                                        description="sparsities of the sensitivity analysis, strictly between 0 and 1")
    bisection_steps: int = Field(4, ge=0, description="bisection steps on the global pruning strength")
    min_bits: int = Field(2, ge=1, le=16, description="fewest bits per weight the bits search tries")


class LimitsSection(Section):
    """Bounds on the search's work."""

    max_candidates: int = Field(16, ge=1, description="most candidates to try")
    max_seconds: Optional[Annotated[float, Gt(0), BeforeValidator(_yaml12_float)]] = Field(900, description="most wall-clock seconds for the search "
                                          "(the baseline not counted); null: no limit")


class AccelerateSection(Section):
    """Parallel work: data-parallel training and concurrent candidates (docs/acceleration.md)."""

    train_workers: int = Field(1, ge=1, description="data-parallel training workers per node "
                               "(DistributedDataParallel under torch's elastic agent); 1: in this process")
    threads_per_worker: Optional[int] = Field(None, ge=1, description="compute threads of each training "
                                              "worker (null: one, which avoids oversubscribing the cores)")
    nnodes: int = Field(1, ge=1, description="machines that train together (each runs the same command)")
    rdzv_endpoint: Optional[str] = Field(None, description="HOST:PORT where the nodes meet (torchrun's "
                                         "--rdzv-endpoint); null on one machine")
    timeout_s: Number = Field(300, gt=0, description="most seconds any wait for a peer lasts before the run "
                              "ends with an error")
    jobs: int = Field(1, ge=1, description="candidates evaluated at once by a local process pool")
    cluster: Optional[str] = Field(None, description="a Dask scheduler (tcp://host:8786) that evaluates the "
                                   "candidates instead of the local pool")


class RecipeModel(Section):
    """A SigDL recipe (sigdl run RECIPE). Keys left out take their defaults."""

    model_config = ConfigDict(extra="forbid", strict=True, title="SigDL recipe")

    model: Name = Field("lenet300100", description="a model name (sigdl models) or a model file")
    framework: Optional[str] = Field(None, description="the framework (default: the model's own)")
    dataset: Name = Field("mnist5k", description="a dataset name, or name:argument (sigdl datasets)")
    seed: int = Field(0, description="the seed of every random choice")
    validation: Number = Field(0.1, ge=0, lt=1, description="fraction of the training data held out as the "
                               "validation split the search and the budget decide on (0: none; then nothing "
                               "may be decided)")
    train: TrainSection = Field(default_factory=TrainSection, description=TrainSection.__doc__)
    compress: CompressSection = Field(default_factory=CompressSection, description=CompressSection.__doc__)
    targets: list[Union[Name, TargetEntry]] = Field(
        default_factory=list, description="targets to re-test on (sigdl targets): a name, "
        "name:key=value,..., or {name: NAME, option: value} (sigdl emulators lists the options)")
    budget: BudgetSection = Field(default_factory=BudgetSection, description=BudgetSection.__doc__)
    search: SearchSection = Field(default_factory=SearchSection, description=SearchSection.__doc__)
    limits: LimitsSection = Field(default_factory=LimitsSection, description=LimitsSection.__doc__)
    accelerate: AccelerateSection = Field(default_factory=AccelerateSection,
                                          description=AccelerateSection.__doc__)


def json_schema(registry: Any = None) -> dict[str, Any]:
    """The recipe's JSON Schema (draft 2020-12), for editors (``sigdl run --schema``).

    A section may be null (``train:`` with its keys commented out), as the reader allows.
    Given the plugins' ``registry``, a target mapping naming an installed target is checked
    against its emulator's declared options (name, type, allowed values, bounds, help), so
    that an editor completes and checks them too; other names keep the open form.
    """
    schema = RecipeModel.model_json_schema()
    if registry is not None:
        _target_options_schema(schema, registry)
    sections = {name for name, d in schema.get("$defs", {}).items() if d.get("type") == "object"
                and name.endswith("Section") and name != "RemoteSection"}
    for holder in (schema, *schema.get("$defs", {}).values()):
        for prop in holder.get("properties", {}).values():
            ref = prop.get("$ref", "")
            if ref.rsplit("/", 1)[-1] in sections:
                prop["anyOf"] = [{"$ref": prop.pop("$ref")}, {"type": "null"}]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


_JSON_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string"}


def _option_schema(option: Any) -> dict[str, Any]:
    """One :class:`~sigdl_core.interfaces.EmulatorOption` as a JSON Schema property."""
    is_list = get_origin(option.type) is list
    item_type = (get_args(option.type) or (str,))[0] if is_list else option.type
    one: dict[str, Any] = {"type": _JSON_TYPES.get(item_type, "string")}
    if option.choices is not None:
        one["enum"] = list(option.choices)
    for key, value in (("minimum", option.minimum), ("exclusiveMinimum", option.exclusive_minimum),
                       ("maximum", option.maximum if not isinstance(option.maximum, str) else None)):
        if value is not None:
            one[key] = value
    prop: dict[str, Any] = {"type": "array", "items": one, "minItems": 1} if is_list else one
    if option.default is None:
        prop = {"anyOf": [prop, {"type": "null"}]}
    else:
        prop["default"] = list(option.default) if isinstance(option.default, tuple) else option.default
    prop["description"] = option.help
    return prop


def _target_options_schema(schema: dict[str, Any], registry: Any) -> None:
    """Adds one schema per installed target, with its emulator's options, to ``targets``."""
    defs = schema.setdefault("$defs", {})
    known, branches = [], []
    for spec in registry.specs("target"):
        try:
            emulator = registry.get("emulator", spec.emulator)
        except BadInputError:
            continue
        known.append(spec.name)
        props = {"name": {"const": spec.name, "description": spec.title},
                 "remote": {"$ref": "#/$defs/RemoteSection", "description": "re-test on a real board over SSH"}}
        props.update({o.name: _option_schema(o) for o in emulator.options})
        name = "Target_" + re.sub(r"\W", "_", spec.name)
        defs[name] = {"type": "object", "title": spec.name, "properties": props, "required": ["name"],
                      "additionalProperties": False,
                      "description": f"{spec.title}: options of the '{emulator.name}' emulator (sigdl emulators)"}
        branches.append({"$ref": f"#/$defs/{name}"})
    if not known:
        return
    generic = defs["TargetEntry"]
    generic["properties"]["name"] = {**generic["properties"]["name"], "not": {"enum": known}}
    items = schema["properties"]["targets"]["items"]
    items["anyOf"] = [*items["anyOf"], *branches]


# --------------------------------------------------------------------------- errors in one line


class _KeyProblem(ValueError):
    """A check across keys, raised inside a validator and reported as it is."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


_WORDS = {"int": "a whole number", "float": "a number", "str": "text", "string": "text", "bool": "true/false",
          "dict": "a mapping", "model": "a mapping", "list": "a list"}


def _model_in(annotation: Any) -> Any:
    """The pydantic model an annotation holds (``list[str | TargetEntry]`` → TargetEntry), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _walk(loc: tuple[Any, ...]) -> tuple[str, Any, Any]:
    """An error location's key path, the field it ends on and the model holding that field.

    Union branches and type tags in the location (``str``, ``TargetEntry``, ``function-after[…]``)
    are not keys and are left out of the path.
    """
    model: Any = RecipeModel
    holder: Any = RecipeModel
    parts: list[str] = []
    info = None
    for item in loc:
        if isinstance(item, int):
            if parts:
                parts[-1] += f"[{item}]"
            continue
        fields = getattr(model, "model_fields", {}) if model is not None else {}
        if item in fields:
            holder, info = model, fields[item]
            parts.append(str(item))
            model = _model_in(info.annotation)
        elif model is not None and item == model.__name__ or item in _TAGS or "[" in str(item):
            continue
        else:
            parts.append(str(item))
            holder, info = model, None
    return ".".join(parts), info, holder


_TAGS = {"str", "int", "float", "bool", "dict", "list", "none", "nullable", "function-after", "function-before",
         "constrained-str"}


def _one_line(exc: ValidationError) -> BadInputError:
    errors = exc.errors()
    # of the branches of a union (a target: a name or a mapping), the one that got furthest
    first = max(errors, key=lambda e: len(e["loc"]))
    if first["type"] == "value_error" and isinstance(first.get("ctx", {}).get("error"), _KeyProblem):
        problem = first["ctx"]["error"]
        return BadInputError(problem.message, problem.hint)
    path, info, holder = _walk(tuple(first["loc"]))
    where = f"recipe key '{path}'" if path else "recipe"
    kind = first["type"]
    value = first.get("input")
    if kind == "extra_forbidden":
        key = str(first["loc"][-1])
        siblings = list(getattr(holder, "model_fields", {}))
        close = difflib.get_close_matches(key, siblings, n=1)
        return BadInputError(f"unknown recipe key '{path}'",
                             (f"did you mean '{close[0]}'? " if close else "") + "allowed: " + ", ".join(siblings))
    if kind in ("model_type", "model_attributes_type", "dict_type") and not path:
        return BadInputError(f"recipe must be a mapping of keys, not {type(value).__name__}",
                             "see 'sigdl run --example'")
    if kind == "literal_error":
        return InvalidValueError(f"{where} is {value!r}", "allowed: " + first["ctx"]["expected"].replace("'", "")
                                 .replace(" or ", ", "))
    if kind == "missing":
        return InvalidValueError(f"{where} is missing", info.description if info else None)
    if re.fullmatch(r"(targets|compress\.chain)(\[\d+\])?", path) and kind != "too_short":
        example = "[prune, quant]" if "chain" in path else "[atom-x5-e3930, {name: jetson-tx2, precision: fp32}]"
        return InvalidValueError(f"recipe key '{path.split('[')[0]}' must be a list of names, got {value!r}",
                                 f"e.g. {example}")
    help_text = info.description if info is not None else None
    if kind.endswith("_type") or kind in ("int_from_float", "bool_parsing", "int_parsing", "float_parsing"):
        expected = _WORDS.get(kind.split("_")[0], kind.split("_")[0])
        return InvalidValueError(f"{where} is {value!r}, expected {expected}", help_text)
    bound = first["msg"].replace("Input should be ", "must be ").replace("Value should have", "must have")
    return InvalidValueError(f"{where} is {value!r}: {bound}", help_text)


# --------------------------------------------------------------------------- the recipe


def _defaults(section: type[Section]) -> dict[str, Any]:
    return section().model_dump()


@dataclass(frozen=True)
class Recipe:
    """A validated run description.

    ``train_given`` names the training keys the recipe or the command line set; the others
    may still take the model's own defaults (:meth:`for_model`).
    """

    model: str = "lenet300100"
    framework: str | None = None
    dataset: str = "mnist5k"
    seed: int = 0
    validation: float = 0.1
    train: TrainSettings = field(default_factory=TrainSettings)
    compress: Mapping[str, Any] = field(default_factory=lambda: _defaults(CompressSection))
    targets: tuple[TargetRef, ...] = ()
    budget: Mapping[str, Any] = field(default_factory=lambda: _defaults(BudgetSection))
    search: Mapping[str, Any] = field(default_factory=lambda: _defaults(SearchSection))
    limits: Mapping[str, Any] = field(default_factory=lambda: _defaults(LimitsSection))
    accelerate: Mapping[str, Any] = field(default_factory=lambda: _defaults(AccelerateSection))
    source: str = "built-in default"
    train_given: frozenset[str] = frozenset()

    @classmethod
    def from_mapping(cls, data: Any, source: str = "recipe") -> Recipe:
        try:
            checked = RecipeModel.model_validate(data if data is not None else {})
        except ValidationError as exc:
            raise _one_line(exc) from None
        values = checked.model_dump()
        values["train"] = TrainSettings(**values.pop("train"), seed=values["seed"])
        values["targets"] = tuple(TargetRef.from_recipe(t, f"targets[{i}]") for i, t in enumerate(values["targets"]))
        return cls(source=source, train_given=frozenset(checked.train.model_fields_set), **values)

    def for_model(self, defaults: Mapping[str, Any]) -> Recipe:
        """A copy whose training keys the recipe left out take ``defaults`` (the model's own).

        The keys taken count as given, so that the copy's :meth:`to_mapping` says them.
        """
        taken = {k: v for k, v in defaults.items() if k not in self.train_given and k != "seed"}
        if not taken:
            return self
        try:
            TrainSection.model_validate({**self.train_section(), **taken})
        except ValidationError as exc:
            raise InvalidValueError(f"the model's training defaults {taken} are not valid: "
                                    f"{exc.errors()[0]['msg']}") from None
        return replace(self, train=replace(self.train, **taken), train_given=self.train_given | set(taken))

    def train_section(self) -> dict[str, Any]:
        """The ``train`` section as given (keys the recipe and the command line set)."""
        train = self.train.to_dict()
        return {k: train[k] for k in train if k in self.train_given}

    def distillation(self) -> tuple[float, float] | None:
        """``(weight, temperature)`` of retraining's distillation from the baseline, or None
        when ``compress.retrain.distill`` is 0 (the labels alone)."""
        r = self.compress["retrain"]
        weight = float(r.get("distill", 0.0) or 0.0)
        return (weight, float(r.get("temperature", 4.0))) if weight > 0 else None

    def retrain_settings(self) -> TrainSettings:
        """Training settings for retraining after compression (constant schedule)."""
        r = self.compress["retrain"]
        return TrainSettings(epochs=r["epochs"], lr=r["lr"], optimizer=r["optimizer"], batch_size=r["batch_size"],
                             optimizer_params=dict(r.get("optimizer_params") or {}), schedule="constant",
                             momentum=self.train.momentum, seed=self.seed)

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
        return replace(self, **top, train=replace(self.train, **train, seed=seed),
                       train_given=self.train_given | set(train))

    def to_dict(self) -> dict[str, Any]:
        """Every setting, defaults included (for reports)."""
        train = self.train.to_dict()
        train.pop("seed")
        return {"model": self.model, "framework": self.framework, "dataset": self.dataset,
                "seed": self.seed, "validation": self.validation, "train": train, "compress": _plain(self.compress),
                "targets": [t.to_recipe() for t in self.targets], "budget": dict(self.budget),
                "search": _plain(self.search), "limits": dict(self.limits),
                "accelerate": dict(self.accelerate), "source": self.source}

    def to_mapping(self) -> dict[str, Any]:
        """The recipe as a mapping :meth:`from_mapping` reads back (``source`` left out).

        ``train`` holds only the keys given, so that the others still take the model's own.
        """
        out = self.to_dict()
        out.pop("source")
        out["train"] = self.train_section()
        return out

    def model_path(self) -> Path | None:
        """The model file the recipe names, or None when it names a zoo model."""
        looks_like_file = any(sep in self.model for sep in ("/", os.sep)) or "." in self.model
        return Path(self.model) if looks_like_file else None


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


EXAMPLE = """\
# A SigDL recipe (YAML; TOML works too). Keys left out take these values.
# yaml-language-server: $schema=recipe.schema.json   (write it with: sigdl run --schema > recipe.schema.json)
model: lenet300100        # a model name (sigdl models) or a model file (model.pt)
framework: null           # null: the model's own framework
dataset: mnist5k          # sigdl datasets; mnist-idx:DIR, image-folder:DIR, synthetic:SHAPE
seed: 0                   # training, retraining and splits are deterministic under a seed
validation: 0.1           # held out of training; the search decides on it, the test split only reports

train:                    # the baseline (skipped when model is a file). Keys left out take the
                          # model's own defaults (sigdl models), e.g. LeNet-300-100's:
  # epochs: 12
  # batch_size: 64
  # optimizer: sgd        # any of the framework's: sgd, adam, adamw, rmsprop … (torch.optim)
  # optimizer_params: {}  # its other arguments, e.g. {betas: [0.9, 0.99]} for adam
  # lr: 0.05
  # momentum: 0.9         # for optimizers that take one (sgd, rmsprop)
  # weight_decay: 0.0
  # schedule: cosine      # constant | step | cosine, or a scheduler by name (ExponentialLR …)
  # schedule_params: {}   # a named scheduler's arguments, e.g. {gamma: 0.9}
  # step_size: 5          # for schedule: step
  # gamma: 0.1            # for schedule: step

compress:
  chain: [prune, quant, encode]   # in order (sigdl compressors); [] only trains and tests
  params:                 # fixed parameters per compressor; the search sets the knobs
    quant: {bits_conv: 8, bits_fc: 5, centroid_update: mean}
    encode: {coder: auto}
  retrain:                # after each compression stage and pruning step; masks and shared weights hold
    epochs: 2
    lr: 0.01
    optimizer: sgd
    batch_size: 64
    distill: 0.9          # weight of the baseline's soft targets (knowledge distillation; 0: labels only)
    temperature: 4.0      # of the distillation's softmax

targets: [atom-x5-e3930]  # sigdl targets; every candidate is re-tested on each. With emulator
                          # options (sigdl emulators): [{name: jetson-tx2, precision: fp32}]

budget:                   # null: no limit
  max_accuracy_drop: 1.0  # top-1 points (1.0 = one point below the baseline)
  max_relative_drop: null # fraction of the baseline's top-1 (0.02 = 2 %)
  min_fps: 200            # at batch 1, on every target
  max_latency_ms: null    # p95, on every target
  max_artifact_bytes: null
  max_power_w: null
  max_energy_mj: null

search:
  strategy: auto          # auto: a gradual pruning path, heavy layers pushed, fewest bits; fixed: params as given
  allocation: magnitude   # magnitude: one threshold across layers; sensitivity: per-layer one-shot caps
  sensitivity: [0.5, 0.7, 0.8, 0.9, 0.95, 0.98]   # for allocation: sensitivity
  bisection_steps: 3
  min_bits: 2

limits:
  max_candidates: 24
  max_seconds: 300        # the search's wall time (the baseline not counted)

accelerate:               # parallel work (docs/acceleration.md)
  train_workers: 1        # data-parallel training workers (DDP); also sigdl train --workers N
  threads_per_worker: null  # null: one thread each
  jobs: 1                 # candidates at once in a local process pool; also --jobs N
  cluster: null           # a Dask scheduler, tcp://host:8786; also --cluster
"""
