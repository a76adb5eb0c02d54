"""The framework-neutral interfaces that SigDL's plugins speak.

Four kinds of plugin meet here (``../DESIGN.md``):

* a **framework** (:class:`Framework`) builds, loads, trains, evaluates and exports models of
  one deep-learning framework, and shows the core a model's weights as named NumPy arrays;
* a **compressor** (:class:`Compressor`) works on those named arrays, framework-neutral, and
  hands back compressed weights, a *projection* that keeps retraining inside the compressed
  form, and the per-layer encoding it chose;
* a **target** (:class:`TargetSpec`) is one board's datasheet as data, naming the emulator
  that re-tests on it;
* an **emulator** (:class:`Emulator`) re-tests an ONNX model on a target and says, for every
  number, how it was obtained (:class:`Method`).

Plugins register *specs*: frozen dataclasses with a unique ``name``. A spec holds data and,
where work is needed, a zero-argument ``factory`` that builds the working object on first use,
so that listing plugins never imports torch, tensorflow or onnxruntime.

This module imports nothing heavy; NumPy appears in annotations only.
"""

from __future__ import annotations

import enum
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from .errors import InvalidValueError, UnsupportedModelError

if TYPE_CHECKING:  # pragma: no cover - annotations only
    import numpy as np

#: What a named weight array is, so that a compressor can treat layers by kind (Deep
#: Compression gives conv layers 8 bits and fully connected ones 5, say).
LayerKind = Literal["conv", "depthwise", "fc", "norm", "bias", "other"]

#: Kinds that hold the bulk of a model's weights and that compressors work on by default.
COMPRESSIBLE_KINDS: frozenset[str] = frozenset({"conv", "depthwise", "fc"})

#: Called after every optimizer step with the model's weights as NumPy arrays that share
#: memory with the framework's own tensors; it edits them in place (re-applies a pruning
#: mask, re-ties shared weights). Only the arrays it is given are to be touched.
Projection = Callable[[dict[str, "np.ndarray"]], None]


class ProgressCallback(Protocol):
    """Reports progress of long work: ``callback(description, completed, total)``."""

    def __call__(self, description: str, completed: int, total: int) -> None: ...


# --------------------------------------------------------------------------- data


@dataclass
class ArrayDataset:
    """A labelled dataset held as NumPy arrays, split into train and test.

    ``x_*`` are float32 with the sample axis first, laid out as the model takes them
    (``N×C×H×W`` for images); ``y_*`` are int64 class indices. ``timing_only`` marks data
    whose labels mean nothing (``synthetic:``): reports then give no accuracy.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    timing_only: bool = False
    description: str = ""
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample, without the batch axis."""
        return tuple(int(d) for d in self.x_test.shape[1:])

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of one split: ``train``, ``validation`` or ``test``.

        Frameworks evaluate through this, so that every split is reached the same way.
        Raises :class:`InvalidValueError` for an unknown split or a validation split the
        dataset does not have (see :meth:`with_validation`).
        """
        if split == "train":
            return self.x_train, self.y_train
        if split == "test":
            return self.x_test, self.y_test
        if split == "validation":
            if self.x_val is None or self.y_val is None:
                raise InvalidValueError(
                    f"dataset '{self.name}' has no validation split",
                    "carve one from the training data with validation: 0.1 in the recipe")
            return self.x_val, self.y_val
        raise InvalidValueError(f"unknown split '{split}'", "use train, validation or test")

    def arrays_for(self, model: Model, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of one split as ``model`` takes them: float32 and int64, C-contiguous.

        Raises :class:`InvalidValueError` (one line) when the samples' shape is not the model's
        input shape, the split is empty or its labels fall outside the model's classes.
        """
        import numpy as np

        x, y = self.arrays(split)
        if x.ndim < 2 or tuple(x.shape[1:]) != tuple(model.input_shape):
            raise InvalidValueError(
                f"dataset '{self.name}' has samples shaped {tuple(x.shape[1:])}, but the model "
                f"'{model.architecture}' takes {tuple(model.input_shape)}",
                "build the model for the dataset's input shape",
            )
        if len(x) != len(y):
            raise InvalidValueError(f"dataset '{self.name}' has {len(x)} {split} samples but {len(y)} labels")
        if len(y) == 0:
            raise InvalidValueError(f"dataset '{self.name}' has no {split} samples", f"use a dataset with a {split} split")
        labels = np.ascontiguousarray(y, dtype=np.int64)
        if labels.min() < 0 or labels.max() >= model.num_classes:
            raise InvalidValueError(
                f"dataset '{self.name}' has labels from {labels.min()} to {labels.max()}, but the model "
                f"has {model.num_classes} classes",
                "build the model with the dataset's number of classes",
            )
        return np.ascontiguousarray(x, dtype=np.float32), labels

    def with_validation(self, fraction: float, seed: int = 0) -> ArrayDataset:
        """A copy whose validation split is ``fraction`` of the training samples.

        The split is stratified by class and depends only on the labels and ``seed``, so it
        is the same in every run and disjoint from what stays in training and from test.
        ``fraction`` 0 gives a copy without a validation split.
        """
        if not 0.0 <= fraction < 1.0:
            raise InvalidValueError(f"validation fraction {fraction} is not in [0, 1)",
                                    "use e.g. validation: 0.1")
        if fraction == 0.0:
            return replace(self, x_val=None, y_val=None)
        import numpy as np

        rng = np.random.default_rng(seed)
        held: list[np.ndarray] = []
        for label in np.unique(self.y_train):
            members = np.flatnonzero(self.y_train == label)
            take = int(round(fraction * len(members)))
            if take:
                held.append(rng.permutation(members)[:take])
        chosen = np.sort(np.concatenate(held)) if held else np.empty(0, dtype=np.int64)
        if len(chosen) == 0 or len(chosen) == len(self.y_train):
            raise InvalidValueError(
                f"a validation fraction of {fraction} leaves dataset '{self.name}' "
                f"({len(self.y_train)} training samples) with an empty split",
                "choose a fraction between 0.05 and 0.5")
        keep = np.ones(len(self.y_train), dtype=bool)
        keep[chosen] = False
        return replace(self, x_train=self.x_train[keep], y_train=self.y_train[keep],
                       x_val=self.x_train[chosen], y_val=self.y_train[chosen])

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "train": int(len(self.y_train)),
            "validation": 0 if self.y_val is None else int(len(self.y_val)),
            "test": int(len(self.y_test)),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "timing_only": self.timing_only,
        }


@dataclass(frozen=True)
class Accuracy:
    """Top-1 and top-5 accuracy as fractions in [0, 1], on ``samples`` samples.

    ``correct`` (optional) is the per-sample top-1 hit, a boolean array of ``samples``
    entries in the split's order: two models scored on the same samples can then be compared
    by a paired statistic (:func:`paired_difference`). Frameworks fill it in ``evaluate``;
    it is not part of :meth:`to_dict` (which stays JSON-clean) nor of equality.
    """

    top1: float
    top5: float
    samples: int
    correct: Any = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, float | int]:
        return {"top1": self.top1, "top5": self.top5, "samples": self.samples}


def paired_difference(candidate: Any, reference: Any) -> tuple[float, float, int, int]:
    """The accuracy difference of two models scored on the same samples, and its standard error.

    ``candidate`` and ``reference`` are per-sample top-1 hits (:attr:`Accuracy.correct`).
    With ``b`` the samples only the reference gets right and ``c`` those only the candidate
    gets right, the difference is ``(c - b) / n`` and its standard error is that of a mean of
    per-sample differences in {-1, 0, 1}: ``sqrt((b + c) - (c - b)^2 / n) / n`` (McNemar's
    ``sqrt(b + c) / n`` less the squared mean). Samples both models get right or wrong add
    nothing to it, so two models that agree on most samples have a far smaller standard error
    of their difference than either accuracy alone. Returns ``(difference, se, b, c)``.
    """
    import numpy as np

    cand = np.asarray(candidate, dtype=bool).ravel()
    ref = np.asarray(reference, dtype=bool).ravel()
    if cand.shape != ref.shape or not cand.size:
        raise InvalidValueError(f"paired accuracies need the same samples: {cand.size} and {ref.size} hits given")
    n = cand.size
    b = int(np.count_nonzero(ref & ~cand))
    c = int(np.count_nonzero(cand & ~ref))
    se = math.sqrt(max(0.0, (b + c) - (c - b) ** 2 / n)) / n
    return (c - b) / n, se, b, c


#: Learning-rate schedules every framework knows; a framework may take more by name (its own
#: library's schedulers, e.g. ``torch.optim.lr_scheduler``'s ``ExponentialLR``).
SCHEDULES = ("constant", "step", "cosine")


@dataclass(frozen=True)
class TrainSettings:
    """How to train: optimizer, learning-rate schedule, batch size, epochs and seed.

    Framework-neutral: ``optimizer`` is a name the framework resolves in its own library
    (``sgd``, ``adam``, ``adamw``, ``rmsprop`` … for PyTorch's ``torch.optim``, matched
    without regard to case), given ``lr``, ``weight_decay`` and ``optimizer_params`` (its
    other keyword arguments, e.g. ``{"betas": [0.9, 0.99]}``); ``momentum`` goes to the
    optimizers that take one (SGD, RMSprop).
    ``schedule`` is ``constant``, ``step`` (multiply by ``gamma`` every ``step_size``
    epochs), ``cosine`` (anneal to zero over the run, per step), or the name of one of the
    framework's schedulers with ``schedule_params`` as its keyword arguments.
    :meth:`Framework.check_settings` tells whether a framework knows the names and arguments.
    Training under one seed is deterministic.
    """

    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    step_size: int = 5
    gamma: float = 0.1
    seed: int = 0
    optimizer_params: Mapping[str, Any] = field(default_factory=dict)
    schedule_params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> InvalidValueError:
            return InvalidValueError(f"training setting '{name}'={getattr(self, name)!r} {why}")

        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise bad("epochs", "must be a whole number >= 0")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise bad("batch_size", "must be a whole number >= 1")
        for name in ("optimizer", "schedule"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.isidentifier():
                raise bad(name, "must be a name, e.g. sgd, adamw, rmsprop" if name == "optimizer"
                          else "must be a name: " + ", ".join(SCHEDULES) + " or a scheduler's")
        for name in ("lr", "momentum", "weight_decay", "gamma"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise bad(name, "must be a finite number >= 0")
        if self.lr == 0:
            raise bad("lr", "must be > 0")
        if not isinstance(self.step_size, int) or self.step_size < 1:
            raise bad("step_size", "must be a whole number >= 1")
        for name in ("optimizer_params", "schedule_params"):
            value = getattr(self, name)
            if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
                raise bad(name, "must be a mapping of keyword arguments")

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["optimizer_params"], out["schedule_params"] = dict(self.optimizer_params), dict(self.schedule_params)
        return out


@dataclass
class TrainHistory:
    """What training did: per-epoch mean loss and train accuracy, and the seconds it took."""

    loss: list[float] = field(default_factory=list)
    train_top1: list[float] = field(default_factory=list)
    seconds: float = 0.0
    #: Data-parallel training only: workers, backend, where the time went, the measured
    #: all-reduce/step ratio (:func:`sigdl_core.accelerate.train`); None when serial.
    parallel: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"loss": self.loss, "train_top1": self.train_top1, "seconds": self.seconds}
        if self.parallel is not None:
            out["parallel"] = self.parallel
        return out


@dataclass(frozen=True, eq=False)
class Teacher:
    """Soft targets for retraining by knowledge distillation (Hinton, Vinyals & Dean 2015).

    ``logits`` are the teacher's outputs (before softmax) on the training split, one row per
    sample in the order of ``data.arrays("train")``: the uncompressed baseline's, so that a
    compressed model learns to answer as the model it replaces. Retraining then minimises
    ``(1 - weight) * CE(student, labels) + weight * T^2 * KL(softmax(teacher/T) || softmax(student/T))``
    with ``T = temperature``. A model that already fits its training labels (a small
    dataset learnt to 100 %) gets almost no gradient from the labels alone; the teacher's
    softened outputs still tell it how the baseline ranks the other classes.
    """

    logits: np.ndarray
    weight: float = 0.9
    temperature: float = 4.0

    def __post_init__(self) -> None:
        import numpy as np

        if not 0.0 <= float(self.weight) <= 1.0:
            raise InvalidValueError(f"distillation weight {self.weight!r} is not in [0, 1]",
                                    "use e.g. compress.retrain.distill: 0.9 (0: labels only)")
        if not (isinstance(self.temperature, (int, float)) and math.isfinite(self.temperature)
                and self.temperature > 0):
            raise InvalidValueError(f"distillation temperature {self.temperature!r} must be a number > 0",
                                    "use e.g. compress.retrain.temperature: 4")
        logits = np.asarray(self.logits)
        if logits.ndim != 2 or not np.isfinite(logits).all():
            raise InvalidValueError("teacher logits must be a finite samples × classes array")

    def check(self, samples: int, classes: int | None = None) -> None:
        """Raises when the logits do not have one row per training sample (and, given
        ``classes``, one column per class)."""
        if len(self.logits) != samples or (classes is not None and self.logits.shape[1] != classes):
            raise InvalidValueError(
                f"teacher logits of shape {tuple(self.logits.shape)} do not match {samples} training "
                f"samples of {classes} classes", "compute them on the same training split")


@dataclass
class Model:
    """A framework's model together with what the core needs to know about it.

    ``native`` is the framework's own object (a ``torch.nn.Module``, a Keras model); only the
    framework that made it looks inside.
    """

    framework: str
    architecture: str
    input_shape: tuple[int, ...]
    num_classes: int
    native: Any


# --------------------------------------------------------------------------- frameworks


def float32_weight(name: str, value: Any) -> np.ndarray:
    """``value`` as a new float32 array, for :meth:`Framework.set_weights`.

    Raises :class:`InvalidValueError` (one line, naming the weight) for anything that is not
    a numeric array or holds NaN or infinite values, so every framework refuses the same bad
    input the same way.
    """
    import numpy as np

    try:
        array = np.asarray(value)
    except Exception:  # noqa: BLE001 - anything that is not array-like
        array = None
    if array is None or array.dtype.kind not in "fiub":
        raise InvalidValueError(f"weight '{name}' is not a numeric array", "give NumPy float arrays")
    converted = np.array(array, dtype=np.float32, copy=True)
    if not np.isfinite(converted).all():
        raise InvalidValueError(f"weight '{name}' holds NaN or infinite values", "check the compression step that made it")
    return converted


class Framework(ABC):
    """Builds, loads, trains, evaluates and exports the models of one framework."""

    name: str = ""

    @abstractmethod
    def build(
        self, architecture: str, input_shape: Sequence[int], num_classes: int, seed: int = 0
    ) -> Model:
        """A freshly initialised model of a registered architecture (see ``sigdl_models``)."""

    @abstractmethod
    def load(
        self,
        path: Path,
        architecture: str | None = None,
        input_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
    ) -> Model:
        """A model read from ``path`` safely: loading never runs code that came in the file.

        A bare weights file (a state_dict) needs ``architecture`` to know what to build.
        Raises :class:`~sigdl_core.errors.ModelFileError` for a missing, corrupt or unsafe file.
        """

    @abstractmethod
    def save(self, model: Model, path: Path) -> Path:
        """Writes ``model`` to ``path`` atomically, in a form :meth:`load` reads back."""

    #: Whether :meth:`train` (and :meth:`train_data_parallel`) take a ``teacher`` and
    #: :meth:`logits` gives one: the core distils retraining from the baseline only then.
    distills: bool = False

    @abstractmethod
    def train(
        self,
        model: Model,
        data: ArrayDataset,
        settings: TrainSettings,
        projection: Projection | None = None,
        progress: ProgressCallback | None = None,
    ) -> TrainHistory:
        """Trains in place; ``projection`` runs after every optimizer step.

        A framework with :attr:`distills` also takes ``teacher=`` (a :class:`Teacher`, or
        None): the training loss then mixes the teacher's soft targets with the labels.
        """

    def logits(self, model: Model, data: ArrayDataset,
               split: Literal["train", "validation", "test"] = "train") -> np.ndarray:
        """The model's outputs before softmax on one split, samples × classes (float32).

        Needed for :attr:`distills`; the default says the framework has none.
        """
        raise UnsupportedModelError(f"framework '{self.name}' gives no logits",
                                    "retrain without distillation (compress.retrain.distill: 0)")

    def check_settings(self, settings: TrainSettings) -> None:
        """Raises :class:`~sigdl_core.errors.InvalidValueError` (one line) when this framework
        does not know ``settings``' optimizer or schedule, or their parameters.

        The core calls it before any work starts, so that a misspelt optimizer fails at once
        rather than after loading data; the default accepts everything (then :meth:`train`
        is where a bad name fails).
        """

    @abstractmethod
    def evaluate(
        self, model: Model, data: ArrayDataset,
        split: Literal["train", "validation", "test"] = "test",
    ) -> Accuracy:
        """Top-1 and top-5 accuracy on one split (read with :meth:`ArrayDataset.arrays`)."""

    @abstractmethod
    def get_weights(self, model: Model) -> dict[str, np.ndarray]:
        """Copies of the model's float state as named float32 arrays, in model order.

        That is every parameter and every float buffer (batch-norm running statistics),
        so that the arrays alone restore the model; :meth:`layer_kinds` tells them apart.
        """

    @abstractmethod
    def set_weights(self, model: Model, weights: Mapping[str, np.ndarray]) -> None:
        """Writes the named arrays back; names not given keep their values.

        An array whose shape differs from the parameter's (a structurally pruned layer)
        is accepted where the framework can reshape the layer consistently.
        """

    @abstractmethod
    def layer_kinds(self, model: Model) -> dict[str, LayerKind]:
        """The :data:`LayerKind` of every named weight of :meth:`get_weights`."""

    @abstractmethod
    def export_onnx(self, model: Model, path: Path, batch_size: int = 1) -> Path:
        """Writes an ONNX model checked by ``onnx.checker``, input ``input``, output ``logits``.

        The batch axis is dynamic; ``batch_size`` only sets the example used for tracing.
        """

    @abstractmethod
    def parameter_count(self, model: Model) -> int:
        """The number of trainable parameters (buffers not counted)."""

    def channel_groups(self, model: Model) -> list[ChannelGroup]:
        """The model's channels that structured pruning must remove together.

        Raises :class:`~sigdl_core.errors.UnsupportedModelError` where the framework
        cannot trace the model's graph.
        """
        raise UnsupportedModelError(
            f"framework '{self.name}' cannot list the channel groups of '{model.architecture}'",
            "use unstructured (magnitude) pruning for this model",
        )

    def warm_up(self) -> None:
        """Pays this process's one-time costs of training (imports, kernel registries), for a
        worker of a pool that will retrain candidates (:func:`sigdl_core.parallel.warm_up`).
        The default does nothing."""

    def training_unavailable(self, model: Model) -> str | None:
        """Why :meth:`train` cannot train ``model`` in this installation, or None (it can).

        A framework that only runs models (an ONNX file without a training route) says why
        in one line; the loop then compresses *post-training*: no retraining, said in the
        report. Asking for retraining explicitly (``--retrain-epochs N``) is then an error.
        """
        return None

    def execution_plan(self, model: Model) -> list[dict[str, Any]] | None:
        """How this framework would run each layer of ``model`` fastest on this machine, or
        None (the default: it has one way only).

        A framework with several execution paths (direct, FFT, block-circulant FFT) times
        them per layer at batch 1 and returns one JSON-ready record per layer:
        ``{"layer", "kind", "shape", "input_shape", "timings_ms": {path: ms}, "chosen"}``.
        The loop asks only when the chosen chain wrote a frequency form (timing costs
        seconds) and records the plan in the report.
        """
        return None

    def train_data_parallel(
        self,
        model: Model,
        data: ArrayDataset,
        settings: TrainSettings,
        parallel: Any,
        projection: Projection | None = None,
        progress: ProgressCallback | None = None,
    ) -> TrainHistory:
        """Trains as :meth:`train` does, data-parallel on several workers.

        ``parallel`` is a :class:`sigdl_core.accelerate.DataParallel` (workers per node,
        threads per worker, nodes and rendezvous). The projection runs on every worker after
        every step, so that every worker keeps the compressed form. The core calls this, via
        :func:`sigdl_core.accelerate.train`, only when more than one worker is asked for; a
        framework without a data-parallel engine keeps this refusal.
        """
        raise UnsupportedModelError(
            f"framework '{self.name}' cannot train with several workers",
            "train with --workers 1 (accelerate: {train_workers: 1})",
        )


@dataclass(frozen=True)
class ChannelSlice:
    """Channels of one named weight along ``axis``: channel ``c`` of the group is the
    ``span`` consecutive entries starting at ``offset + c * span`` (``span`` > 1 where a
    flatten turns each conv channel into H×W features of a fully connected layer)."""

    name: str
    axis: int
    offset: int = 0
    span: int = 1


@dataclass(frozen=True)
class ChannelGroup:
    """``size`` channels that structured pruning keeps or removes together.

    ``producers`` make the channels (a conv's or linear layer's weight and bias along axis
    0); their norms rank the channels. ``followers`` are per-channel arrays that go with them
    (batch-norm parameters and running statistics, a depthwise conv's filters).
    ``consumers`` read the channels (the next layer's weight along its input axis). Removing
    channel ``c`` slices all three. ``prunable`` is False for the model's output.
    """

    size: int
    producers: tuple[ChannelSlice, ...]
    followers: tuple[ChannelSlice, ...] = ()
    consumers: tuple[ChannelSlice, ...] = ()
    prunable: bool = True


# --------------------------------------------------------------------------- compressors


@dataclass
class LayerEncoding:
    """How one named weight was compressed, for reports and for the ``.sigdl`` writer.

    ``kept`` is the number of non-zero weights kept, ``weight_bits`` the bits spent on the
    weight values and ``index_bits`` on their positions (all summed over the layer).
    """

    name: str
    shape: tuple[int, ...]
    kept: int
    weight_bits: int
    index_bits: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return int(math.prod(self.shape))


@dataclass
class CompressionResult:
    """What a compressor hands on: weights, a projection, per-layer encodings and state.

    ``state`` carries what later stages need (pruning masks under ``"masks"``, shared-weight
    codebooks and indices under ``"codebooks"``/``"indices"``), so that compressors chain
    as in Deep Compression: prune → quantize → encode.
    """

    weights: dict[str, np.ndarray]
    projection: Projection | None = None
    layers: dict[str, LayerEncoding] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    #: Training settings (:class:`TrainSettings` field → value) that the retraining right
    #: after this stage should use instead of the run's own, e.g. a longer retraining a
    #: structural constraint needs; None: the run's retraining settings.
    retrain: dict[str, Any] | None = None


class Compressor(ABC):
    """Compresses named weight arrays, framework-neutral."""

    name: str = ""

    @abstractmethod
    def compress(
        self,
        weights: Mapping[str, np.ndarray],
        kinds: Mapping[str, LayerKind],
        params: Mapping[str, Any],
        previous: CompressionResult | None = None,
    ) -> CompressionResult:
        """Compresses ``weights`` with ``params``; ``previous`` is the prior stage's result.

        Raises :class:`~sigdl_core.errors.InvalidValueError` for a bad parameter (naming it).
        """

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Raises :class:`~sigdl_core.errors.InvalidValueError` (one line) for parameters that
        :meth:`compress` would refuse whatever the weights: a missing or conflicting key, a
        value of the wrong type or out of range.

        The loop calls it before any training, with the parameters a user gave for a chain
        run as given (``search.strategy: fixed``, ``sigdl compress``); checks that need the
        weights (a layer name that matches nothing) stay in :meth:`compress`. The default
        accepts everything.
        """

    def export_frequency_form(self, onnx_path: Path, out_path: Path) -> list[dict[str, Any]] | None:
        """Writes a second form of the dense ONNX model ``onnx_path`` to ``out_path``: the
        one this compressor's structure runs fastest in (e.g. block-circulant layers through
        ONNX ``DFT``), naming ``onnx_path`` as its dense equivalent
        (:data:`sigdl_core.targets.DENSE_EQUIVALENT_KEY`).

        The loop calls it for every compressor of the chosen chain, in order, after writing
        ``model.onnx``; from the second writer on, ``onnx_path`` is ``out_path`` itself
        (convert in place). Returns one JSON-ready record per layer it rewrote, or None
        when it wrote nothing (the default: no such form). Raises
        :class:`~sigdl_core.errors.BadInputError` when the model cannot take that form.
        """
        return None


# --------------------------------------------------------------------------- targets, emulators


class Method(str, enum.Enum):
    """How an emulator obtained a number, from most to least direct."""

    MEASURED = "measured on the board"
    """Measured on the real target, reached over SSH (the target's own runtime and clock)."""
    EXECUTED = "executed"
    """Run for real on this host under the target's limits (cores, memory), then scaled."""
    BIT_EXACT = "bit-exact"
    """Computed by a software emulation of the target's arithmetic, bit for bit."""
    ANALYTICAL = "analytical"
    """Predicted by a model (roofline, datasheet power) without running the target's code."""


@dataclass(frozen=True)
class Provenance:
    """The method behind one reported number and how far to trust it, in words."""

    method: Method
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"method": self.method.value, "detail": self.detail}


@dataclass(frozen=True)
class TargetSpec:
    """One board's datasheet as data; every figure's source belongs in a comment beside it.

    ``peak_ops`` maps a number format (``fp32``, ``fp16``, ``int8``, ``int16``) to peak
    operations per second (a multiply-accumulate counts as two). ``emulator`` names the
    emulator (``sigdl_emulators``) that re-tests on this target.
    """

    name: str
    title: str
    emulator: str
    cores: int
    clock_hz: float
    memory_bytes: int
    memory_bandwidth: float  # bytes per second
    peak_ops: Mapping[str, float]
    tdp_w: float
    idle_w: float = 0.0
    formats: tuple[str, ...] = ("fp32",)
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""  # filled in by the core: the plugin that registered it

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "emulator": self.emulator,
            "cores": self.cores,
            "clock_hz": self.clock_hz,
            "memory_bytes": self.memory_bytes,
            "memory_bandwidth": self.memory_bandwidth,
            "peak_ops": dict(self.peak_ops),
            "tdp_w": self.tdp_w,
            "idle_w": self.idle_w,
            "formats": list(self.formats),
            "description": self.description,
            "extra": dict(self.extra),
            "source": self.source,
        }


@dataclass
class EmulationReport:
    """What re-testing a model on one target found, with the method behind every number."""

    target: str
    emulator: str
    accuracy: Accuracy | None = None
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    fps_batch1: float | None = None
    fps_best: float | None = None
    best_batch: int | None = None
    peak_memory_bytes: int | None = None
    memory_limit_bytes: int | None = None
    power_w: float | None = None
    energy_mj: float | None = None
    fits: bool = True
    provenance: dict[str, Provenance] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "emulator": self.emulator,
            "accuracy": self.accuracy.to_dict() if self.accuracy else None,
            "latency_ms_p50": self.latency_ms_p50,
            "latency_ms_p95": self.latency_ms_p95,
            "fps_batch1": self.fps_batch1,
            "fps_best": self.fps_best,
            "best_batch": self.best_batch,
            "peak_memory_bytes": self.peak_memory_bytes,
            "memory_limit_bytes": self.memory_limit_bytes,
            "power_w": self.power_w,
            "energy_mj": self.energy_mj,
            "fits": self.fits,
            "provenance": {k: v.to_dict() for k, v in self.provenance.items()},
            "warnings": list(self.warnings),
            "extra": self.extra,
        }


class Emulator(ABC):
    """Re-tests an ONNX model on a target."""

    name: str = ""

    @abstractmethod
    def emulate(
        self,
        onnx_path: Path,
        target: TargetSpec,
        data: ArrayDataset | None,
        options: Mapping[str, Any] | None = None,
    ) -> EmulationReport:
        """Accuracy (unless ``data`` is None or timing-only), latency, fps, memory, power."""

    def export_target_model(
        self, onnx_path: Path, target: TargetSpec, data: ArrayDataset | None, folder: Path,
        options: Mapping[str, Any] | None = None,
    ) -> Path | None:
        """Writes the model in the form the target runs (FP16, int8 QDQ …) into ``folder``.

        Returns its path, or None where the target runs ``onnx_path`` as it is. ``data``
        calibrates integer formats; ``options`` are the target's options as :meth:`emulate`
        got them, so that the form written is the one emulated (an implementation may leave
        the argument out; the core then passes none). The loop stores the result beside the
        chosen model.
        """
        return None


# --------------------------------------------------------------------------- registration specs


@dataclass(frozen=True)
class FrameworkSpec:
    """A framework: ``factory()`` builds its :class:`Framework` on first use.

    ``suffixes`` are the model-file endings it reads (``.pt``), so that ``sigdl test
    model.pt`` finds the framework by the file's name. ``preference`` settles which
    framework builds a zoo model that several frameworks register under one name when the
    user names no framework: the highest wins (a tie is an error asking for ``framework``).
    """

    name: str
    description: str
    factory: Callable[[], Framework]
    suffixes: tuple[str, ...] = ()
    preference: int = 0
    source: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """An architecture a framework can build, with its canonical sizes.

    Models are registered per framework: two frameworks may each register ``lenet5``
    (:meth:`sigdl_core.plugins.Registry.get` takes the framework to choose).

    ``parameters`` is the canonical trainable-parameter count at ``input_shape`` and
    ``num_classes``; ``dataset`` is the dataset it is usually trained on, if it is small.
    ``train_defaults`` are the :class:`TrainSettings` fields this model trains well with
    (``{"lr": 0.01, "epochs": 12}``); a recipe's or a flag's value wins over them, and
    fields left out take :class:`TrainSettings`' defaults.
    """

    name: str
    framework: str
    description: str
    input_shape: tuple[int, ...]
    num_classes: int
    parameters: int
    dataset: str | None = None
    source: str = ""
    train_defaults: Mapping[str, Any] = field(default_factory=dict)


def check_input_shape(architecture: str, input_shape: Sequence[int], least: int | None = None) -> tuple[int, ...]:
    """Validates a sample shape (no batch axis) for a zoo ``architecture``; returns it as ints.

    ``least`` is the smallest height and width a convolutional architecture takes (it then
    needs C×H×W); None for one that takes any shape. Raises :class:`InvalidValueError` for a
    malformed shape and :class:`UnsupportedModelError` for one the architecture cannot take.
    """
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise InvalidValueError(
            f"input shape {input_shape!r} is not a sequence of whole numbers", "give it as C×H×W, e.g. 1x28x28"
        ) from None
    if not shape or any(d < 1 for d in shape):
        raise InvalidValueError(
            f"input shape {shape} must have at least one axis and only sizes >= 1", "give it as C×H×W, e.g. 1x28x28"
        )
    if least is not None:
        if len(shape) != 3:
            raise UnsupportedModelError(
                f"'{architecture}' takes images shaped C×H×W, not an input of shape {shape}",
                "use an image dataset, or lenet300100 for flat feature vectors",
            )
        if shape[1] < least or shape[2] < least:
            raise UnsupportedModelError(
                f"'{architecture}' needs inputs of at least {least}×{least} pixels, "
                f"but the input is {shape[1]}×{shape[2]}",
                "resize the images (image-folder:DIR@HxW) or pick a model for small inputs "
                "(lenet300100 takes any size)",
            )
    return shape


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset. ``loader(argument, seed)`` returns an :class:`ArrayDataset`.

    ``argument`` names what follows a colon on the command line (``DIR`` for
    ``mnist-idx:DIR``), or is ``None`` when the dataset takes none.
    """

    name: str
    description: str
    loader: Callable[[str | None, int], ArrayDataset]
    argument: str | None = None
    source: str = ""


#: What a compressor does, so that the loop's search can turn its knob:
#: ``prune`` accepts ``sparsity`` as a mapping layer name → fraction removed;
#: ``quantize`` accepts ``layers`` as a mapping layer name → bits per weight;
#: ``structure`` (a structural constraint: block-circulant blocks, kept DCT coefficients)
#: accepts ``strength``, a number in (0, 1] scaling its own default (1: as configured, e.g.
#: the largest block; smaller: a gentler constraint);
#: ``encode`` (entropy coding) and ``other`` take no knob from the search.
COMPRESSOR_ROLES = ("prune", "quantize", "structure", "encode", "other")


@dataclass(frozen=True)
class CompressorSpec:
    """A compressor. ``params`` documents its parameters: name → one-line description.

    ``role`` (one of :data:`COMPRESSOR_ROLES`) tells the loop's search which knob it has.
    ``defaults`` are the parameters a chain run as given uses when the user gives this
    compressor none (``sigdl compress M --with prune`` prunes ``{"sparsity": 0.9}``);
    ``sigdl compressors`` lists them. The core refuses a parameter ``params`` does not name
    (when it names any) before any work.
    """

    name: str
    description: str
    factory: Callable[[], Compressor]
    params: Mapping[str, str] = field(default_factory=dict)
    role: str = "other"
    source: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EmulatorOption:
    """One option an emulator takes, declared as data so that the core validates it.

    ``type`` is ``int``, ``float``, ``str`` or ``bool``, or a list of one of them
    (``list[int]``; give its ``default`` as a tuple); ``choices`` lists the allowed values
    where there is a fixed set. ``minimum``/``exclusive_minimum``/``maximum`` bound a number
    (each item of a list); a text ``maximum`` names a :class:`TargetSpec` field (``"cores"``).
    A ``default`` of None means "not set" (the emulator then uses the target's own figure).
    The core checks a user's value against these before any work
    (:func:`sigdl_core.targets.validate_options`), fills in ``default`` where none is given,
    and lists the options in ``sigdl emulators``.
    """

    name: str
    type: Any
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    exclusive_minimum: float | None = None
    maximum: float | str | None = None


@dataclass(frozen=True)
class EmulatorSpec:
    """An emulator. ``factory()`` builds its :class:`Emulator` on first use.

    ``options`` declares every option its ``emulate`` accepts (see :class:`EmulatorOption`).
    ``calibration`` is the evidence behind its numbers: one :class:`CalibrationRow` per
    published measurement it was fitted to (``set="calibration"``) or judged on
    (``set="held-out"``), with its prediction error; ``sigdl emulators`` shows them.
    """

    name: str
    description: str
    factory: Callable[[], Emulator]
    options: tuple[EmulatorOption, ...] = ()
    source: str = ""
    calibration: tuple[CalibrationRow, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        from .targets import option_dict

        return {"name": self.name, "description": self.description,
                "options": [option_dict(o) for o in self.options], "source": self.source,
                "calibration": [row.to_dict() for row in self.calibration]}


@dataclass(frozen=True)
class CalibrationRow:
    """One published measurement an emulator was calibrated on or judged by.

    ``quantity`` says what was measured (``"latency_ms"``, ``"fps"``, ``"power_w"``);
    ``predicted`` is the emulator's figure for it, ``error`` = predicted / published − 1;
    ``sets`` names the constants this row set (empty for a held-out row); ``method`` is
    ``analytical`` (reproducible from the shipped constants) or ``executed`` (timed on the
    host when the benchmark ran: ``note`` says when and under what load).
    """

    target: str
    model: str
    quantity: str
    published: float
    predicted: float
    source: str
    set: str = "calibration"
    sets: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    method: str = "analytical"
    note: str = ""

    @property
    def error(self) -> float:
        """predicted / published − 1."""
        return self.predicted / self.published - 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "model": self.model, "quantity": self.quantity,
                "published": self.published, "predicted": self.predicted,
                "error": self.error, "set": self.set, "sets": list(self.sets),
                "options": dict(self.options), "method": self.method, "source": self.source,
                "note": self.note}


def calibration_summary(rows: Sequence[CalibrationRow]) -> str:
    """One line on how an emulator did on published measurements, for reports and listings."""
    if not rows:
        return "no published measurement to calibrate on"
    parts = []
    for kind in ("calibration", "held-out"):
        sel = [r for r in rows if r.set == kind]
        if sel:
            worst = max(sel, key=lambda r: abs(r.error))
            parts.append(f"{len(sel)} {kind} row(s), worst {worst.error:+.1%} ({worst.model})")
    return "; ".join(parts)


#: The registration hooks and the spec type each one returns, in listing order.
SPEC_TYPES: dict[str, type] = {
    "framework": FrameworkSpec,
    "model": ModelSpec,
    "dataset": DatasetSpec,
    "compressor": CompressorSpec,
    "target": TargetSpec,
    "emulator": EmulatorSpec,
}
