"""The ``tensorflow`` framework: builds, loads, trains, evaluates and exports Keras 3 models.

:class:`TensorFlowFramework` implements :class:`sigdl_core.interfaces.Framework` for Keras 3
models on TensorFlow 2.21 (the zoo of :mod:`sigdl_framework_tensorflow.models`, or any
``.keras`` file made of Keras' built-in layers).

**Layout.** The core's datasets are N×C×H×W; Keras convolutions take N×H×W×C. The framework
transposes the arrays it feeds (``Model.input_shape`` stays C×H×W, as in every framework) and
exports ONNX with an N×C×H×W input (tf2onnx's ``inputs_as_nchw``), so emulators and reports
see one layout. Named weights are in the layout the compressors expect, output channels on
axis 0 (:mod:`sigdl_framework_tensorflow.layout`).

**Training** runs a compiled step (``tf.function``: forward, sparse categorical cross-entropy
on logits, gradients, ``optimizer.apply``) over a seeded permutation of the training split,
and after every step, in Python, hands the *projection* the model's weights as NumPy arrays
in :meth:`~TensorFlowFramework.get_weights`' names and layout and writes back what it edited
(TensorFlow variables share no memory with NumPy, so the arrays are copies made for each
step). The projection thus holds masks and shared weights after every optimizer step, which
``model.fit`` with an ``on_train_batch_end`` callback would not guarantee
(``steps_per_execution > 1`` skips callbacks). The optimizer is any ``keras.optimizers`` class,
named case-insensitively (``sgd``, ``adam``, ``adamw``, ``rmsprop``, ``nadam`` …). The learning
rate follows the settings' schedule (constant, step, cosine per step, computed as the torch
framework does, or any ``keras.optimizers.schedules`` class by name with ``schedule_params``)
by assigning the optimizer's learning-rate variable before each step. SGD takes
``momentum``; ``weight_decay`` is Keras' decoupled decay (``w -= lr·wd·w`` after the update),
not torch's L2 term added to the gradient. Under one seed training is repeatable bit for bit
(``keras.utils.set_random_seed``, ``tf.config.experimental.enable_op_determinism`` switched on
when this module is imported, the dropout layers' seed generators reset from the seed).

**Files.** :meth:`~TensorFlowFramework.load` reads ``.keras`` files with
``keras.saving.load_model(safe_mode=True)``: a ``Lambda`` layer holding Python code is refused
with :class:`~sigdl_core.errors.UnsafeFileError` before anything in it runs, and only Keras'
own modules are ever imported. :meth:`~TensorFlowFramework.save` writes ``.keras`` atomically,
with a ``sigdl.json`` member naming the architecture. ONNX goes through tf2onnx 1.17
(``from_keras`` on the model wrapped in a functional one, because ``from_keras`` fails on a Keras
3 ``Sequential``), opset 17, input ``input`` and output ``logits``, checked by ``onnx.checker``.
TFLite (float, or full-integer int8 calibrated on training samples) is
:meth:`~TensorFlowFramework.export_tflite`, read back by
:meth:`~TensorFlowFramework.evaluate_tflite`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import random
import time
import warnings
import weakref
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no oneDNN banner

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

from sigdl_core.errors import (  # noqa: E402
    InvalidValueError,
    ModelFileError,
    UnknownNameError,
    UnsafeFileError,
    UnsupportedModelError,
)
from sigdl_core.files import atomic_path, atomic_write_bytes, read_regular_file  # noqa: E402
from sigdl_core.interfaces import (  # noqa: E402
    Accuracy,
    ArrayDataset,
    ChannelGroup,
    Framework,
    LayerKind,
    Model,
    ProgressCallback,
    Projection,
    Teacher,
    TrainHistory,
    TrainSettings,
    float32_weight,
)

from .layout import WeightEntry, weight_entries  # noqa: E402
from .models import ARCHITECTURES, build_keras_model, count_parameters  # noqa: E402
from .plugin import FRAMEWORK  # noqa: E402

__all__ = ["FILE_FORMAT", "TensorFlowFramework", "keras_input", "learning_rates", "make_optimizer", "to_keras_layout"]

tf.config.experimental.enable_op_determinism()

#: The version of the ``sigdl.json`` member :meth:`TensorFlowFramework.save` writes.
FILE_FORMAT = 1
_META_MEMBER = "sigdl.json"
#: Activations (values) per evaluation batch.
_EVAL_VALUES_PER_BATCH = 2**22
#: Training samples that calibrate a full-integer TFLite model.
CALIBRATION_SAMPLES = 256


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def to_keras_layout(x: np.ndarray) -> np.ndarray:
    """N×C×H×W arrays as N×H×W×C (float32, C-contiguous); other ranks as they are."""
    x = np.asarray(x, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1) if x.ndim == 4 else x)


def keras_input(shape: Sequence[int]) -> tuple[int, ...]:
    """SigDL's C×H×W sample shape as the Keras model's H×W×C (other ranks unchanged)."""
    shape = tuple(int(d) for d in shape)
    return (shape[1], shape[2], shape[0]) if len(shape) == 3 else shape


def _sigdl_input(shape: Sequence[Any]) -> tuple[int, ...]:
    dims = tuple(int(d) for d in shape)
    return (dims[2], dims[0], dims[1]) if len(dims) == 3 else dims


#: The schedules every framework knows; any other name is a ``keras.optimizers.schedules`` class.
_BUILT_IN_SCHEDULES = ("constant", "step", "cosine")


def _keras_classes(module: Any, base: type) -> dict[str, type]:
    return {n.lower(): obj for n, obj in vars(module).items()
            if isinstance(obj, type) and issubclass(obj, base) and obj is not base}


def learning_rates(settings: TrainSettings, total_steps: int) -> Any:
    """``rate(epoch, step)``: the learning rate before optimizer step ``step`` (counted from 0).

    ``constant``, ``step`` and ``cosine`` (per step) are computed as the torch framework does;
    another name is a ``keras.optimizers.schedules`` class (``ExponentialDecay``,
    ``PiecewiseConstantDecay`` …, any case) built with ``initial_learning_rate=lr`` where it
    takes one and ``schedule_params``, and called with the step number.
    """
    name = str(settings.schedule)
    if name == "constant":
        return lambda epoch, step: settings.lr
    if name == "step":
        return lambda epoch, step: settings.lr * float(settings.gamma) ** (epoch // settings.step_size)
    if name == "cosine":
        return lambda epoch, step: settings.lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    schedule = _make_schedule(settings)
    return lambda epoch, step: float(schedule(step))


def _make_schedule(settings: TrainSettings) -> Any:
    import inspect

    classes = _keras_classes(keras.optimizers.schedules, keras.optimizers.schedules.LearningRateSchedule)
    cls = classes.get(str(settings.schedule).lower())
    if cls is None:
        raise UnknownNameError("learning-rate schedule", str(settings.schedule), [*_BUILT_IN_SCHEDULES, *sorted(classes)])
    kwargs = dict(getattr(settings, "schedule_params", None) or {})
    if "initial_learning_rate" in inspect.signature(cls.__init__).parameters:
        kwargs.setdefault("initial_learning_rate", float(settings.lr))
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(
            f"schedule '{settings.schedule}' does not take these parameters: {_first_line(exc)}",
            f"see keras.optimizers.schedules.{cls.__name__} for its arguments (schedule_params)",
        ) from None


def _optimizer_class(name: str) -> type:
    """The ``keras.optimizers`` class called ``name`` (any case: sgd, Adam, AdamW, rmsprop …)."""
    classes = _keras_classes(keras.optimizers, keras.optimizers.Optimizer)
    for wrapper in ("lossscaleoptimizer", "multioptimizer"):  # they wrap other optimizers
        classes.pop(wrapper, None)
    try:
        return classes[str(name).lower()]
    except KeyError:
        raise UnknownNameError("optimizer", str(name), sorted(classes)) from None


def make_optimizer(settings: TrainSettings) -> keras.optimizers.Optimizer:
    """The Keras optimizer the settings name, at their initial learning rate.

    ``momentum`` goes to optimizers that take it (SGD, RMSprop), ``weight_decay`` (when > 0) to
    Keras' decoupled weight decay; ``settings.optimizer_params`` (where the settings carry it)
    are passed on as keyword arguments, checked by the optimizer itself.
    """
    cls = _optimizer_class(settings.optimizer)
    import inspect

    accepted = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = {"learning_rate": float(settings.lr)}
    if "momentum" in accepted and getattr(settings, "momentum", None) is not None:
        kwargs["momentum"] = float(settings.momentum)
    if getattr(settings, "weight_decay", 0):
        kwargs["weight_decay"] = float(settings.weight_decay)
    extra = getattr(settings, "optimizer_params", None) or {}
    kwargs.update(dict(extra))
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(
            f"optimizer '{settings.optimizer}' does not take these settings: {_first_line(exc)}",
            f"see keras.optimizers.{cls.__name__} for its arguments",
        ) from None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silences tf2onnx's and the TFLite converter's logging and Python warnings."""
    loggers = [logging.getLogger(n) for n in ("tf2onnx", "tensorflow", "absl")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seeds Keras, TensorFlow, NumPy and ``random`` (``keras.utils.set_random_seed``) for the
    body, and gives the caller's global NumPy and ``random`` states back after it."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    keras.utils.set_random_seed(seed)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


class _Trainer:
    """A compiled training step for one Keras model and one optimizer configuration.

    Kept per model so that retraining the same model (the loop does this for every
    candidate) reuses the traced step; the optimizer's slots are restored to their
    initial values at the start of every run.
    """

    def __init__(self, keras_model: keras.Model, optimizer: keras.optimizers.Optimizer) -> None:
        self.optimizer = optimizer
        variables = keras_model.trainable_variables
        optimizer.build(variables)
        self.initial = [v.numpy() for v in optimizer.variables]
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        spec = keras_model.inputs[0].shape

        @tf.function(input_signature=[tf.TensorSpec([None, *spec[1:]], tf.float32), tf.TensorSpec([None], tf.int64)])
        def step(xb: tf.Tensor, yb: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            with tf.GradientTape() as tape:
                logits = keras_model(xb, training=True)
                loss = loss_fn(yb, logits)
            grads = tape.gradient(loss, variables)
            optimizer.apply(grads, variables)
            correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, axis=1), yb), tf.int64))
            return loss, correct

        @tf.function(input_signature=[tf.TensorSpec([None, *spec[1:]], tf.float32), tf.TensorSpec([None], tf.int64),
                                      tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([], tf.float32),
                                      tf.TensorSpec([], tf.float32)])
        def distil_step(xb: tf.Tensor, yb: tf.Tensor, tb: tf.Tensor, weight: tf.Tensor,
                        temperature: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            """The step on ``(1 - w) CE + w T^2 KL(softmax(teacher/T) || softmax(student/T))``
            (sigdl_core.interfaces.Teacher), means over the batch."""
            with tf.GradientTape() as tape:
                logits = keras_model(xb, training=True)
                hard = loss_fn(yb, logits)
                log_p = tf.nn.log_softmax(tb / temperature, axis=1)
                log_q = tf.nn.log_softmax(logits / temperature, axis=1)
                kl = tf.reduce_mean(tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=1))
                loss = (1.0 - weight) * hard + weight * temperature * temperature * kl
            grads = tape.gradient(loss, variables)
            optimizer.apply(grads, variables)
            correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, axis=1), yb), tf.int64))
            return loss, correct

        self.step = step
        self.distil_step = distil_step

    def reset(self) -> None:
        for variable, value in zip(self.optimizer.variables, self.initial):
            variable.assign(value)


class TensorFlowFramework(Framework):
    """SigDL's TensorFlow/Keras 3 framework (registered as ``tensorflow``)."""

    name = FRAMEWORK
    distills = True

    def __init__(self) -> None:
        self._trainers: weakref.WeakKeyDictionary[keras.Model, dict[str, _Trainer]] = weakref.WeakKeyDictionary()
        self._forwards: weakref.WeakKeyDictionary[keras.Model, Any] = weakref.WeakKeyDictionary()

    # ------------------------------------------------------------------ models

    def build(self, architecture: str, input_shape: Sequence[int], num_classes: int, seed: int = 0) -> Model:
        """A freshly initialised zoo model, its weights drawn from ``seed``."""
        if architecture not in ARCHITECTURES:
            raise UnknownNameError("model", architecture, ARCHITECTURES)
        with _seeded(int(seed)):
            km = build_keras_model(architecture, input_shape, num_classes)
        return Model(FRAMEWORK, architecture, tuple(int(d) for d in input_shape), int(num_classes), km)

    def parameter_count(self, model: Model) -> int:
        return count_parameters(self._keras(model))

    @staticmethod
    def _keras(model: Model) -> keras.Model:
        if getattr(model, "framework", None) != FRAMEWORK or not isinstance(getattr(model, "native", None), keras.Model):
            raise InvalidValueError(
                f"model '{getattr(model, 'architecture', model)}' is not a Keras model",
                "use the framework that built or loaded it",
            )
        return model.native

    # ------------------------------------------------------------------ files

    def save(self, model: Model, path: Path) -> Path:
        """Writes ``model`` as a ``.keras`` file (with SigDL's ``sigdl.json`` member), atomically."""
        km = self._keras(model)
        path = Path(path)
        meta = {"format": FILE_FORMAT, "framework": FRAMEWORK, "architecture": model.architecture,
                "input_shape": [int(d) for d in model.input_shape], "num_classes": int(model.num_classes)}
        with atomic_path(path) as tmp:
            staged = tmp.with_name(tmp.name + ".keras")  # Keras insists on the .keras ending
            try:
                with _quiet():
                    km.save(staged)
                with zipfile.ZipFile(staged, "a") as archive:
                    archive.writestr(_META_MEMBER, json.dumps(meta))
                os.replace(staged, tmp)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    staged.unlink()
        return path

    def load(
        self,
        path: Path,
        architecture: str | None = None,
        input_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
    ) -> Model:
        """Reads a ``.keras`` file safely (``safe_mode=True``: no code from the file runs).

        The architecture is the ``sigdl.json`` member's, else the Keras model's name; the input
        shape and class count are the model's own (given ones must agree with them).
        """
        path = read_regular_file(path, "model file")
        hint = "the file is damaged or not a Keras .keras file; save it again with model.save('x.keras')"
        if not path.name.lower().endswith(".keras"):
            raise ModelFileError(f"'{path}' is not a .keras file", "TensorFlow models are read from .keras files")
        if not zipfile.is_zipfile(path):
            raise ModelFileError(f"'{path}' is not a Keras .keras file (not a zip archive)", hint)
        meta = self._read_meta(path)
        try:
            with _quiet():
                km = keras.saving.load_model(path, compile=False, safe_mode=True)
        except ValueError as exc:
            text = str(exc)
            if "safe_mode" in text or "arbitrary code" in text:
                raise UnsafeFileError(
                    f"'{path}' holds Python code (a Lambda layer or a pickled function), which sigdl refuses to run",
                    "rebuild the model from Keras' built-in layers; load it elsewhere only if you trust its source",
                ) from None
            raise ModelFileError(f"'{path}' is not a readable Keras model ({_first_line(exc)})", hint) from None
        except Exception as exc:  # noqa: BLE001 - Keras reports damage as many error types
            raise ModelFileError(f"'{path}' is not a readable Keras model ({_first_line(exc)})", hint) from None
        if not isinstance(km, keras.Model) or len(km.inputs) != 1 or len(km.outputs) != 1:
            raise UnsupportedModelError(f"'{path}' is not a model with one input and one output",
                                        "SigDL trains classifiers with one input and one logits output")
        arch = meta.get("architecture") or km.name
        if architecture is not None and architecture != arch:
            raise InvalidValueError(f"'{path}' holds a '{arch}' model, not '{architecture}'",
                                    f"name the model '{arch}' or leave it out")
        dims = [*km.inputs[0].shape[1:], km.outputs[0].shape[-1]]
        if any(d is None for d in dims):
            raise UnsupportedModelError(f"'{path}' has a variable input or output size {tuple(dims)}",
                                        "save the model with a fixed input shape, e.g. keras.Input((28, 28, 1))")
        shape = _sigdl_input(km.inputs[0].shape[1:])
        classes = int(km.outputs[0].shape[-1])
        if input_shape is not None and tuple(int(d) for d in input_shape) != shape:
            raise InvalidValueError(f"'{path}' takes inputs of shape {shape}, not {tuple(input_shape)}",
                                    "leave the input shape out or give the model's own")
        if num_classes is not None and int(num_classes) != classes:
            raise InvalidValueError(f"'{path}' has {classes} outputs, not {num_classes}",
                                    "leave the class count out or give the model's own")
        return Model(FRAMEWORK, str(arch), shape, classes, km)

    @staticmethod
    def _read_meta(path: Path) -> dict[str, Any]:
        try:
            with zipfile.ZipFile(path) as archive:
                if _META_MEMBER not in archive.namelist():
                    return {}
                meta = json.loads(archive.read(_META_MEMBER).decode("utf-8"))
        except (zipfile.BadZipFile, OSError, ValueError, UnicodeDecodeError) as exc:
            raise ModelFileError(f"'{path}' has a damaged {_META_MEMBER} ({_first_line(exc)})", "save it again") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("format"), int):
            raise ModelFileError(f"'{path}' has a malformed {_META_MEMBER}", "save it again")
        if meta["format"] > FILE_FORMAT:
            raise ModelFileError(f"'{path}' has format {meta['format']}; this plugin reads format {FILE_FORMAT}",
                                 "upgrade sigdl-framework-tensorflow")
        return meta

    # ------------------------------------------------------------------ weights

    def _entries(self, model: Model) -> list[WeightEntry]:
        return weight_entries(self._keras(model))

    def get_weights(self, model: Model) -> dict[str, np.ndarray]:
        return {e.name: np.array(e.to_sigdl(e.variable.numpy()), dtype=np.float32, copy=True)
                for e in self._entries(model)}

    def layer_kinds(self, model: Model) -> dict[str, LayerKind]:
        return {e.name: e.kind for e in self._entries(model)}

    def set_weights(self, model: Model, weights: Mapping[str, np.ndarray]) -> None:
        entries = {e.name: e for e in self._entries(model)}
        arrays: dict[str, np.ndarray] = {}
        for name, value in weights.items():
            if name not in entries:
                raise UnknownNameError("weight", name, entries)
            array = float32_weight(name, value)
            arrays[name] = array
        changed = [n for n, a in arrays.items() if a.shape != entries[n].to_sigdl(np.empty(entries[n].variable.shape)).shape]
        if changed:
            self._rebuild(model, arrays, changed)
            entries = {e.name: e for e in self._entries(model)}
        for name, array in arrays.items():
            entries[name].variable.assign(entries[name].from_sigdl(array))

    def _rebuild(self, model: Model, arrays: Mapping[str, np.ndarray], changed: Sequence[str]) -> None:
        """Rebuilds the Keras model with the channel counts of ``changed`` (structured pruning).

        The output width of each changed ``Dense``/``Conv2D`` comes from its new weight; every
        layer after it takes its new input width from Keras' shape inference. The new model
        gets every weight (the given arrays, else the old values) and must still give
        ``num_classes`` outputs; on any failure ``model`` is left as it was.
        """
        km = self._keras(model)
        entries = {e.name: e for e in weight_entries(km)}
        widths: dict[str, int] = {}
        for name in changed:
            entry = entries[name]
            kind = type(entry.layer).__name__
            if entry.attribute == "weight" and kind in ("Dense", "Conv2D"):
                widths[entry.layer.name] = int(arrays[name].shape[0])
            elif kind not in ("Dense", "Conv2D", "DepthwiseConv2D", "BatchNormalization"):
                raise InvalidValueError(f"'{name}' belongs to a {kind} layer, whose shape cannot change",
                                        "give it in its current shape")
        config = km.get_config()
        for layer in config.get("layers", []):
            layer.pop("build_config", None)  # the old input widths; shape inference sets the new ones
            cfg = layer.get("config", {})
            if cfg.get("name") in widths:
                cfg["units" if "units" in cfg else "filters"] = widths[cfg["name"]]
        try:
            with _quiet():
                rebuilt = type(km).from_config(config)
            new_entries = weight_entries(rebuilt)
            old = {n: e.to_sigdl(e.variable.numpy()) for n, e in entries.items()}
            for e in new_entries:
                value = arrays.get(e.name, old.get(e.name))
                want = e.to_sigdl(np.empty(e.variable.shape)).shape
                if value is None or value.shape != want:
                    got = "missing" if value is None else f"shaped {value.shape}"
                    raise InvalidValueError(f"'{e.name}' must be given too, with shape {want} ({got} now)",
                                            "change the channels of connected layers together (see Framework.channel_groups)")
                e.variable.assign(e.from_sigdl(value))
            out = rebuilt(np.zeros((1, *keras_input(model.input_shape)), np.float32), training=False)
        except InvalidValueError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure means the shapes do not fit
            raise InvalidValueError(f"with the new shapes the model no longer builds or runs: {_first_line(exc)}",
                                    "change the channels of connected layers together (see Framework.channel_groups)") from None
        if tuple(out.shape) != (1, model.num_classes):
            raise InvalidValueError(f"with the new shapes the model gives {tuple(out.shape[1:])} outputs, "
                                    f"not {model.num_classes} classes", "keep the output layer's size")
        model.native = rebuilt

    def channel_groups(self, model: Model) -> list[ChannelGroup]:
        """Channel groups of chain-shaped models (not SqueezeNet: see :mod:`.structure`)."""
        from .structure import channel_groups

        return channel_groups(self._keras(model), model.architecture)

    # ------------------------------------------------------------------ data

    @staticmethod
    def _arrays(model: Model, data: ArrayDataset, split: str) -> tuple[np.ndarray, np.ndarray]:
        x, y = data.arrays_for(model, split)
        return to_keras_layout(x), y

    # ------------------------------------------------------------------ training

    def _trainer(self, km: keras.Model, settings: TrainSettings) -> _Trainer:
        key = json.dumps([settings.optimizer, getattr(settings, "momentum", None), getattr(settings, "weight_decay", 0),
                          getattr(settings, "optimizer_params", None)], sort_keys=True, default=str)
        per_model = self._trainers.setdefault(km, {})
        if key not in per_model:
            per_model[key] = _Trainer(km, make_optimizer(settings))
        trainer = per_model[key]
        trainer.reset()
        return trainer

    def check_settings(self, settings: TrainSettings) -> None:
        """Builds the optimizer and schedule the settings name once; a bad name or argument raises."""
        make_optimizer(settings)
        if str(settings.schedule) not in _BUILT_IN_SCHEDULES:
            _make_schedule(settings)

    def train(
        self,
        model: Model,
        data: ArrayDataset,
        settings: TrainSettings,
        projection: Projection | None = None,
        progress: ProgressCallback | None = None,
        teacher: Teacher | None = None,
    ) -> TrainHistory:
        km = self._keras(model)
        x, y = self._arrays(model, data, "train")
        if settings.epochs == 0:
            return TrainHistory()
        if teacher is not None:
            teacher.check(len(y), model.num_classes)
        with _seeded(int(settings.seed)):
            return self._train(km, x, y, settings, projection, progress,
                               teacher if teacher is not None and teacher.weight > 0 else None)

    def _train(self, km: keras.Model, x: np.ndarray, y: np.ndarray, settings: TrainSettings,
               projection: Projection | None, progress: ProgressCallback | None,
               teacher: Teacher | None = None) -> TrainHistory:
        history, start = TrainHistory(), time.perf_counter()
        n, batch = len(y), settings.batch_size
        soft = np.ascontiguousarray(teacher.logits, dtype=np.float32) if teacher is not None else None
        steps_per_epoch = math.ceil(n / batch)
        total_steps = steps_per_epoch * settings.epochs
        for i, layer in enumerate(km._flatten_layers(include_self=False)):
            generator = getattr(layer, "seed_generator", None)
            if generator is not None:  # dropout masks repeat under the settings' seed
                generator.state.assign(np.array([int(settings.seed) + i, 0], dtype=generator.state.dtype.name))
        rate = learning_rates(settings, total_steps)
        trainer = self._trainer(km, settings)
        entries = weight_entries(km) if projection is not None else []
        order = np.random.default_rng(int(settings.seed))
        step = 0
        for epoch in range(settings.epochs):
            perm = order.permutation(n)
            loss_sum, correct = 0.0, 0
            for b in range(steps_per_epoch):
                idx = perm[b * batch:(b + 1) * batch]
                trainer.optimizer.learning_rate = rate(epoch, step)
                if soft is None:
                    loss, right = trainer.step(tf.constant(x[idx]), tf.constant(y[idx]))
                else:
                    loss, right = trainer.distil_step(tf.constant(x[idx]), tf.constant(y[idx]), tf.constant(soft[idx]),
                                                      tf.constant(float(teacher.weight), tf.float32),
                                                      tf.constant(float(teacher.temperature), tf.float32))
                if projection is not None:
                    self._project(entries, projection)
                value = float(loss)
                if not math.isfinite(value):
                    raise InvalidValueError(
                        f"training diverged: the loss became {value} in epoch {epoch + 1}, step {b + 1}",
                        f"lower the learning rate (now {settings.lr})",
                    )
                loss_sum += value * len(idx)
                correct += int(right)
                step += 1
                if progress is not None:
                    progress(f"train epoch {epoch + 1}/{settings.epochs}", step, total_steps)
            history.loss.append(loss_sum / n)
            history.train_top1.append(correct / n)
        history.seconds = time.perf_counter() - start
        return history

    @staticmethod
    def _project(entries: Sequence[WeightEntry], projection: Projection) -> None:
        """Runs ``projection`` on the weights in SigDL's layout and writes back what changed."""
        arrays = {e.name: np.ascontiguousarray(e.to_sigdl(e.variable.numpy())) for e in entries}
        before = {n: a.copy() for n, a in arrays.items()}
        projection(arrays)
        for e in entries:
            if not np.array_equal(arrays[e.name], before[e.name]):
                e.variable.assign(e.from_sigdl(arrays[e.name]))

    # ------------------------------------------------------------------ evaluation

    def _forward(self, km: keras.Model) -> Any:
        if km not in self._forwards:
            spec = km.inputs[0].shape
            self._forwards[km] = tf.function(lambda xb: km(xb, training=False),
                                             input_signature=[tf.TensorSpec([None, *spec[1:]], tf.float32)])
        return self._forwards[km]

    def logits(self, model: Model, data: ArrayDataset,
               split: Literal["train", "validation", "test"] = "train") -> np.ndarray:
        xk, _y = self._arrays(model, data, split)
        return np.asarray(self._logits(model, xk), dtype=np.float32)

    def predict(self, model: Model, x: np.ndarray) -> np.ndarray:
        """Logits for samples ``x`` in SigDL's layout (N×C×H×W, or N×features), in batches."""
        return self._logits(model, to_keras_layout(x))

    def _logits(self, model: Model, xk: np.ndarray) -> np.ndarray:
        forward = self._forward(self._keras(model))
        batch = max(1, min(1024, _EVAL_VALUES_PER_BATCH // max(1, math.prod(model.input_shape))))
        return np.concatenate([forward(tf.constant(xk[i:i + batch])).numpy() for i in range(0, len(xk), batch)])

    def evaluate(
        self, model: Model, data: ArrayDataset,
        split: Literal["train", "validation", "test"] = "test",
    ) -> Accuracy:
        xk, y = self._arrays(model, data, split)
        return _accuracy(self._logits(model, xk), y)

    # ------------------------------------------------------------------ ONNX

    def export_onnx(self, model: Model, path: Path, batch_size: int = 1) -> Path:
        """ONNX via tf2onnx (opset 17), input ``input`` in N×C×H×W, output ``logits``."""
        import onnx
        import tf2onnx

        km = self._keras(model)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidValueError(f"batch size {batch_size!r} must be a whole number >= 1")
        shape = keras_input(model.input_shape)
        inputs = keras.Input(shape, name="input")
        wrapped = keras.Model(inputs, km(inputs, training=False), name=f"{model.architecture}_onnx")
        signature = (tf.TensorSpec((None, *shape), tf.float32, name="input"),)
        path = Path(path)
        try:
            with _quiet():
                proto, _ = tf2onnx.convert.from_keras(
                    wrapped, input_signature=signature, opset=17,
                    inputs_as_nchw=["input"] if len(shape) == 3 else None,
                )
            _rename_io(proto.graph, "input", "logits")
            onnx.checker.check_model(proto, full_check=True)
        except (ValueError, KeyError, TypeError, RuntimeError, onnx.checker.ValidationError) as exc:
            raise UnsupportedModelError(
                f"cannot export '{model.architecture}' to ONNX with tf2onnx: {_first_line(exc)}",
                "use layers tf2onnx converts (Keras' built-in Dense, Conv2D, pooling, batch norm, activations)",
            ) from None
        atomic_write_bytes(path, proto.SerializeToString())
        return path

    # ------------------------------------------------------------------ TFLite

    def export_tflite(
        self, model: Model, path: Path, quantization: Literal["float", "int8"] = "float",
        data: ArrayDataset | None = None, calibration_samples: int = CALIBRATION_SAMPLES, seed: int = 0,
    ) -> Path:
        """Writes a TFLite flatbuffer: ``float`` (float32), or ``int8`` full-integer.

        ``int8`` quantizes weights and activations, input and output included (TFLite's
        ``TFLITE_BUILTINS_INT8``), calibrated on ``calibration_samples`` training samples of
        ``data`` drawn with ``seed``. The input is N×H×W×C, as TensorFlow Lite runs it.
        """
        km = self._keras(model)
        if quantization not in ("float", "int8"):
            raise InvalidValueError(f"TFLite quantization '{quantization}' is neither 'float' nor 'int8'")
        converter = tf.lite.TFLiteConverter.from_keras_model(km)
        if quantization == "int8":
            if data is None:
                raise InvalidValueError("a full-integer TFLite model needs data to calibrate on",
                                        "pass the training dataset as data=")
            x, _ = self._arrays(model, data, "train")
            rng = np.random.default_rng(int(seed))
            chosen = x[rng.permutation(len(x))[:max(1, int(calibration_samples))]]

            def representative() -> Iterator[list[np.ndarray]]:
                for sample in chosen:
                    yield [sample[None]]

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        try:
            with _quiet():
                flatbuffer = converter.convert()
        except Exception as exc:  # noqa: BLE001 - the converter raises many error types
            raise UnsupportedModelError(f"cannot convert '{model.architecture}' to TFLite: {_first_line(exc)}",
                                        "use layers TFLite's built-in operators cover") from None
        return atomic_write_bytes(Path(path), flatbuffer)

    def evaluate_tflite(self, path: Path, data: ArrayDataset, split: Literal["train", "validation", "test"] = "test") -> Accuracy:
        """Top-1/top-5 of a TFLite model on one split (int8 inputs quantized with its own scale)."""
        path = read_regular_file(path, "TFLite model")
        x, y = data.arrays(split)
        xk = to_keras_layout(x)
        with _quiet():
            interpreter = tf.lite.Interpreter(model_path=str(path))
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        interpreter.resize_tensor_input(inp["index"], [len(xk), *xk.shape[1:]])
        interpreter.allocate_tensors()
        feed = xk
        if inp["dtype"] != np.float32:
            scale, zero = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            feed = np.clip(np.round(xk / scale + zero), info.min, info.max).astype(inp["dtype"])
        interpreter.set_tensor(inp["index"], feed)
        interpreter.invoke()
        logits = interpreter.get_tensor(out["index"]).astype(np.float32)
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            logits = (logits - zero) * scale
        return _accuracy(logits, np.asarray(y, dtype=np.int64))


def _accuracy(logits: np.ndarray, y: np.ndarray) -> Accuracy:
    k = min(5, logits.shape[1])
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    correct = top[:, 0] == y
    return Accuracy(top1=float(np.mean(correct)), top5=float(np.mean((top == y[:, None]).any(axis=1))),
                    samples=int(len(y)), correct=correct)


def _rename_io(graph: Any, input_name: str, output_name: str) -> None:
    """Names the graph's one input ``input_name``, its one output ``output_name``, their batch axis ``batch``."""
    renames = {graph.input[0].name: input_name, graph.output[0].name: output_name}
    for old, new in renames.items():
        if old == new:
            continue
        for node in graph.node:
            node.input[:] = [new if n == old else n for n in node.input]
            node.output[:] = [new if n == old else n for n in node.output]
    graph.input[0].name = input_name
    graph.output[0].name = output_name
    for value in (graph.input[0], graph.output[0]):  # tf2onnx names the dynamic axis unk__N
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"
