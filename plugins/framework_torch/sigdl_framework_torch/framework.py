"""The ``torch`` framework: builds, loads, trains, evaluates and exports PyTorch models.

:class:`TorchFramework` implements :class:`sigdl_core.interfaces.Framework` for the zoo of
:mod:`sigdl_framework_torch.models`.

**Training** is mini-batch training on cross-entropy with any ``torch.optim`` optimizer by
name (SGD with momentum, Adam, AdamW, RMSprop …) and a ``torch.optim.lr_scheduler``
schedule: constant, step, cosine (Loshchilov & Hutter, "SGDR", ICLR 2017, without restarts;
applied per step) or any scheduler by name (:mod:`sigdl_framework_torch.optimization`). The
whole training split is held as one tensor and batches are gathered with a seeded
permutation per epoch, without ``DataLoader`` worker processes: on two CPU cores the
per-batch overhead of a loader would dominate these small models. Convolutional models run
in channels-last layout while they train and evaluate (faster pooling on this CPU build).
Under one seed, training is bit-for-bit repeatable on one machine and thread count (the
permutation, dropout and every initialisation draw from generators seeded by the settings,
inside ``torch.random.fork_rng`` so that the caller's global RNG state is left alone).

After every optimizer step a *projection* gets NumPy arrays of the parameters and float
buffers, in :meth:`TorchFramework.get_weights`' names and shapes, that it edits in place
(views sharing memory; a channels-last weight is mirrored into a C-ordered array and copied
back), so that a compressor can re-apply a pruning mask or re-tie shared weights, as Deep
Compression's retraining does (Han et al., ICLR 2016).

**Checkpoints** are ``torch.save({"sigdl": {"format": 1, "architecture", "input_shape",
"num_classes"}, "state_dict": ...})``, written atomically. :meth:`TorchFramework.load` reads
them, or a bare ``state_dict`` (e.g. torchvision's published weights) when told the
architecture, with ``torch.load(weights_only=True)``: a file that holds pickled objects or
code is refused with :class:`~sigdl_core.errors.UnsafeFileError` and never runs.

**Structured pruning** changes layer shapes: :meth:`TorchFramework.set_weights` accepts
arrays of a new shape for ``Conv2d`` (``out_channels``, ``in_channels``, and ``groups`` of a
depthwise convolution), ``Linear`` (``out_features``, ``in_features``) and ``BatchNorm``
(``num_features``) layers, rebuilds their parameters, and checks with one forward pass that
the model still runs and still has ``num_classes`` outputs, undoing everything if not.

**ONNX export** uses the TorchScript-based exporter (``dynamo=False``): measured on this
machine it exports a small CNN in about 0.3 s against about 10 s (2.7 s warm) for the
``torch.export``-based one, which also needs opset 18 and prints its progress; the
TorchScript exporter writes opset 17 directly. The graph has one input ``input`` and one
output ``logits`` with a dynamic batch axis, and is checked by ``onnx.checker``.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import pickle
import pickletools
import re
import sys
import time
import warnings
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sigdl_core.errors import (
    InvalidValueError,
    ModelFileError,
    UnknownNameError,
    UnsafeFileError,
    UnsupportedModelError,
)
from sigdl_core.files import atomic_path, read_regular_file
from sigdl_core.interfaces import (
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

from .models import ARCHITECTURES, build_module, count_parameters
from .optimization import check_settings, make_optimizer, make_scheduler
from .plugin import FRAMEWORK, MODEL_CATALOG, RECOMMENDED_SETTINGS

__all__ = ["CHECKPOINT_FORMAT", "OUTPUT_LAYER", "RECOMMENDED_SETTINGS", "RankGroup", "TorchFramework", "train_module"]

#: The version of the checkpoint layout :meth:`TorchFramework.save` writes.
CHECKPOINT_FORMAT = 1
#: The weight of each architecture's output layer, whose first axis is the class count.
OUTPUT_LAYER: dict[str, str] = {
    "lenet300100": "fc3.weight",
    "lenet5": "fc2.weight",
    "alexnet": "classifier.6.weight",
    "vgg16": "classifier.6.weight",
    "squeezenet": "classifier.1.weight",
    "mobilenet": "classifier.weight",
}
#: Globals a plain torch checkpoint's pickle may name; anything else in a pickle that the
#: safe loader refused means the file carries objects or code.
_TORCH_PICKLE_GLOBALS = ("torch.", "collections.OrderedDict", "_codecs.encode", "builtins.set")
#: Above this many canonical parameters, load() builds on the meta device and skips the
#: initialisation (which takes seconds for AlexNet and VGG-16). The meta device's first use
#: costs about 3 s of imports, more than initialising the smaller models.
_SKIP_INIT_ABOVE = 10_000_000
#: Activations (values) per evaluation batch; keeps 224×224 batches to a few hundred MB.
_EVAL_VALUES_PER_BATCH = 2**22


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    line = text.splitlines()[0]
    for tail in (" Please feel free to request support", " [Caused by"):
        line = line.split(tail)[0]
    return line[:300]


def _names(names: Sequence[str], limit: int = 4) -> str:
    names = list(names)
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


#: Models below this many parameters train and evaluate on one thread (see torch_threads).
SMALL_MODEL_PARAMETERS = 10_000_000
THREADS_ENV = "SIGDL_TORCH_THREADS"


@contextlib.contextmanager
def torch_threads(module: nn.Module) -> Iterator[int]:
    """Runs the body on one torch thread for small models, torch's default for large ones.

    Small models' operations are too short to split: on the 2-core machine an epoch of
    LeNet-300-100 took 0.19 s on one thread and 2.1 s on two while another job ran (LeNet-5:
    1.7 s against 8.7 s), and a second thread gains little even on an idle machine. Large
    models (VGG-16, AlexNet) keep every thread. ``SIGDL_TORCH_THREADS=N`` sets the count.
    """
    before = torch.get_num_threads()
    wanted = os.environ.get(THREADS_ENV, "").strip()
    if wanted:
        if not wanted.isdigit() or int(wanted) < 1:
            raise InvalidValueError(f"{THREADS_ENV}={wanted!r} is not a whole number >= 1", f"e.g. {THREADS_ENV}=2")
        threads = int(wanted)
    else:
        threads = 1 if sum(p.numel() for p in module.parameters()) < SMALL_MODEL_PARAMETERS else before
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


class TorchFramework(Framework):
    """SigDL's PyTorch framework (registered as ``torch``)."""

    name = FRAMEWORK
    distills = True

    # ------------------------------------------------------------------ models

    def build(
        self, architecture: str, input_shape: Sequence[int], num_classes: int, seed: int = 0
    ) -> Model:
        """A freshly initialised zoo model, initialised from ``seed`` (in eval mode)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            module = build_module(architecture, input_shape, num_classes)
        module.eval()
        return Model(FRAMEWORK, architecture, tuple(int(d) for d in input_shape), int(num_classes), module)

    def parameter_count(self, model: Model) -> int:
        return count_parameters(self._module(model))

    @staticmethod
    def _module(model: Model) -> nn.Module:
        if getattr(model, "framework", None) != FRAMEWORK or not isinstance(getattr(model, "native", None), nn.Module):
            raise InvalidValueError(
                f"model '{getattr(model, 'architecture', model)}' is not a PyTorch model",
                "use the framework that built or loaded it",
            )
        return model.native

    # ------------------------------------------------------------------ files

    def save(self, model: Model, path: Path) -> Path:
        """Writes a SigDL checkpoint (metadata and ``state_dict``) to ``path`` atomically."""
        module = self._module(model)
        payload = {
            "sigdl": {
                "format": CHECKPOINT_FORMAT,
                "framework": FRAMEWORK,
                "architecture": model.architecture,
                "input_shape": [int(d) for d in model.input_shape],
                "num_classes": int(model.num_classes),
            },
            "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        }
        path = Path(path)
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
        return path

    def load(
        self,
        path: Path,
        architecture: str | None = None,
        input_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
    ) -> Model:
        """Reads a SigDL checkpoint, or a bare ``state_dict`` of a named architecture, safely.

        ``input_shape`` defaults to the checkpoint's, else the architecture's canonical one;
        ``num_classes`` to the checkpoint's, else the output layer's size in the file.
        """
        path = read_regular_file(path, "checkpoint")
        meta, state = self._read_checkpoint(path)
        arch = meta.get("architecture")
        if architecture is not None and arch is not None and architecture != arch:
            raise InvalidValueError(
                f"checkpoint '{path}' holds a '{arch}' model, not '{architecture}'",
                f"name the model '{arch}' or leave it out",
            )
        arch = architecture or arch
        if arch is None:
            raise ModelFileError(
                f"checkpoint '{path}' is a bare state_dict and does not say which architecture it is",
                "name the model it belongs to (one of " + ", ".join(ARCHITECTURES) + ")",
            )
        if arch not in ARCHITECTURES:
            raise UnknownNameError("model", arch, ARCHITECTURES)
        shape = input_shape if input_shape is not None else meta.get("input_shape", MODEL_CATALOG[arch][1])
        classes = num_classes if num_classes is not None else meta.get("num_classes")
        if classes is None:
            out = state.get(OUTPUT_LAYER[arch])
            classes = int(out.shape[0]) if isinstance(out, torch.Tensor) and out.dim() >= 1 else MODEL_CATALOG[arch][2]
        if MODEL_CATALOG[arch][3] > _SKIP_INIT_ABOVE:
            # Every entry comes from the file: skip initialising tens of millions of weights.
            with torch.device("meta"):
                module = build_module(arch, shape, int(classes))
            module = module.to_empty(device="cpu")
        else:
            module = build_module(arch, shape, int(classes))
        module.eval()
        model = Model(FRAMEWORK, arch, tuple(int(d) for d in shape), int(classes), module)
        self._load_state(model, state, path)
        return model

    def _read_checkpoint(self, path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        hint = "the file is damaged or not a PyTorch checkpoint; save it again"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                obj = torch.load(path, weights_only=True, map_location="cpu")
        except pickle.UnpicklingError as exc:
            raise self._refusal(path, exc) from None
        except Exception as exc:  # torch reports damage as RuntimeError, EOFError, KeyError, ...
            if path.stat().st_size == 0:
                raise ModelFileError(f"checkpoint '{path}' is empty", hint) from None
            raise ModelFileError(f"checkpoint '{path}' is corrupt or truncated ({_first_line(exc)})", hint) from None

        meta: dict[str, Any] = {}
        if isinstance(obj, dict) and "sigdl" in obj:
            meta = self._checked_meta(path, obj["sigdl"])
            state = obj.get("state_dict")
        elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            state = obj["state_dict"]
        else:
            state = obj
        if not isinstance(state, dict) or not state:
            raise ModelFileError(
                f"checkpoint '{path}' holds no state_dict (found {type(state).__name__})",
                "save the model with torch.save(model.state_dict(), path) or with sigdl",
            )
        bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
        if bad:
            raise ModelFileError(
                f"checkpoint '{path}' has entries that are not named tensors: {_names(map(str, bad))}",
                "save only the model's state_dict",
            )
        if all(k.startswith("module.") for k in state):  # saved from nn.DataParallel
            state = {k[len("module."):]: v for k, v in state.items()}
        return meta, state

    @staticmethod
    def _checked_meta(path: Path, meta: Any) -> dict[str, Any]:
        def bad(what: str) -> ModelFileError:
            return ModelFileError(f"checkpoint '{path}' has a malformed SigDL header: {what}", "save it again")

        if not isinstance(meta, dict):
            raise bad("not a mapping")
        fmt = meta.get("format")
        if not isinstance(fmt, int):
            raise bad("no format number")
        if fmt > CHECKPOINT_FORMAT:
            raise ModelFileError(
                f"checkpoint '{path}' has format {fmt}; this sigdl-framework-torch reads format {CHECKPOINT_FORMAT}",
                "upgrade sigdl-framework-torch",
            )
        if not isinstance(meta.get("architecture"), str):
            raise bad("no architecture")
        shape = meta.get("input_shape")
        if not isinstance(shape, (list, tuple)) or not shape or not all(isinstance(d, int) and d > 0 for d in shape):
            raise bad("no valid input_shape")
        classes = meta.get("num_classes")
        if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
            raise bad("no valid num_classes")
        return dict(meta)

    @staticmethod
    def _refusal(path: Path, exc: pickle.UnpicklingError) -> ModelFileError:
        """Tells a file that carries pickled objects or code from one that is just damaged."""
        text = str(exc)
        culprit: str | None = None
        found = re.search(r"GLOBAL ([\w.]+)", text) or re.search(r"but got <class '([^']+)'>", text)
        if found:
            culprit = found.group(1)
        elif "Can only" in text or "call reduce" in text:
            culprit = "an object"
        else:
            culprit = _foreign_pickle_global(path)
        if culprit is not None:
            return UnsafeFileError(
                f"checkpoint '{path}' holds pickled code or objects ({culprit}), which sigdl refuses to run",
                "save only tensors (torch.save(model.state_dict(), path)); load it elsewhere only if you trust its source",
            )
        return ModelFileError(
            f"checkpoint '{path}' is not a readable PyTorch checkpoint ({_first_line(exc)})",
            "the file is damaged or not a PyTorch checkpoint; save it again",
        )

    def _load_state(self, model: Model, state: Mapping[str, torch.Tensor], path: Path) -> None:
        module = model.native
        expected = module.state_dict(keep_vars=True)
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected]
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing {_names(missing)}")
            if unexpected:
                parts.append(f"unexpected {_names(unexpected)}")
            raise ModelFileError(
                f"checkpoint '{path}' does not fit '{model.architecture}': " + "; ".join(parts),
                "check that it was saved from this architecture (name the right model)",
            )
        floats = {k: v for k, v in state.items() if expected[k].is_floating_point()}
        for k, v in floats.items():
            if not v.is_floating_point():
                raise ModelFileError(f"checkpoint '{path}': '{k}' is {v.dtype}, not a float tensor", "save it again")
        try:
            self._write_arrays(model, {k: v.detach().to(torch.float32) for k, v in floats.items()})
        except InvalidValueError as exc:
            raise ModelFileError(
                f"checkpoint '{path}' does not fit '{model.architecture}' at input {model.input_shape} "
                f"with {model.num_classes} classes: {exc.message}",
                "give the input shape and class count it was trained with",
            ) from None
        current = module.state_dict(keep_vars=True)
        with torch.no_grad():
            for k, v in state.items():
                if not current[k].is_floating_point():
                    if current[k].shape != v.shape:
                        raise ModelFileError(f"checkpoint '{path}': '{k}' has shape {tuple(v.shape)}", "save it again")
                    current[k].copy_(v)

    # ------------------------------------------------------------------ weights

    @staticmethod
    def _float_state(module: nn.Module) -> dict[str, torch.Tensor]:
        """Parameters and float buffers by state_dict name, in model order."""
        return _float_state_of(module)

    def get_weights(self, model: Model) -> dict[str, np.ndarray]:
        return {
            k: v.detach().cpu().numpy().astype(np.float32, copy=True)
            for k, v in self._float_state(self._module(model)).items()
        }

    def set_weights(self, model: Model, weights: Mapping[str, np.ndarray]) -> None:
        self._module(model)
        tensors: dict[str, torch.Tensor] = {}
        for name, value in weights.items():
            converted = float32_weight(name, value)
            tensors[name] = torch.from_numpy(converted)
        self._write_arrays(model, tensors)

    def _write_arrays(self, model: Model, tensors: Mapping[str, torch.Tensor]) -> None:
        module = model.native
        targets = self._float_state(module)
        for name in tensors:
            if name not in targets:
                raise UnknownNameError("weight", name, targets)
        changed = [n for n, t in tensors.items() if tuple(t.shape) != tuple(targets[n].shape)]
        if changed:
            self._resize_layers(model, tensors, changed)
            targets = self._float_state(module)
        with torch.no_grad():
            for name, tensor in tensors.items():
                targets[name].copy_(tensor)

    def _resize_layers(self, model: Model, tensors: Mapping[str, torch.Tensor], changed: Sequence[str]) -> None:
        """Rebuilds the layers that own ``changed`` for the new shapes; undoes all on failure."""
        module = model.native
        owners: dict[str, nn.Module] = {}
        for name in changed:
            prefix, _, _ = name.rpartition(".")
            owners[prefix] = module.get_submodule(prefix)
        saved = [
            (sub, dict(sub._parameters), dict(sub._buffers), {a: getattr(sub, a) for a in _LAYER_SIZES if hasattr(sub, a)})
            for sub in owners.values()
        ]
        try:
            for prefix, sub in owners.items():
                _resize_layer(prefix, sub, tensors)
            _check_runs(model)
        except BaseException:
            for sub, params, buffers, sizes in saved:
                sub._parameters.clear()
                sub._parameters.update(params)
                sub._buffers.clear()
                sub._buffers.update(buffers)
                for attr, value in sizes.items():
                    setattr(sub, attr, value)
            raise

    def layer_kinds(self, model: Model) -> dict[str, LayerKind]:
        module = self._module(model)
        kinds: dict[str, LayerKind] = {}
        for name in self._float_state(module):
            prefix, _, attr = name.rpartition(".")
            owner = module.get_submodule(prefix)
            kinds[name] = _kind_of(owner, attr)
        return kinds

    def channel_groups(self, model: Model) -> list[ChannelGroup]:
        from .structure import channel_groups

        return channel_groups(model.native, model.input_shape)

    def sparse_module(self, model: Model, max_density: float | None = None) -> nn.Module:
        """An inference-only copy whose pruned fully connected layers compute in CSR form.

        Layers keeping at most ``max_density`` of their weights (default 0.25, where CSR
        starts to beat dense at batch 1: ``bench/sparse_fc.py``) become
        :class:`~sigdl_framework_torch.sparse.SparseLinear`; outputs equal the dense model's.
        """
        from .sparse import DEFAULT_MAX_DENSITY, sparsify

        return sparsify(self._module(model), DEFAULT_MAX_DENSITY if max_density is None else max_density)

    def frequency_module(self, model: Model, batch_size: int = 1, repeats: int = 7) -> tuple[nn.Module, list[dict]]:
        """An inference-only copy with each layer on the path timed fastest here, and the plan.

        Block-circulant FC layers may run by FFT and stride-1 convolutions by tiled FFT
        (:mod:`sigdl_framework_torch.fft`); each is timed against direct at ``batch_size``.
        """
        from .fft import frequency_module

        example = torch.zeros((batch_size, *model.input_shape), dtype=torch.float32)
        module, plans = frequency_module(self._module(model), example, repeats=repeats)
        return module, [p.to_dict() for p in plans]

    def execution_plan(self, model: Model) -> list[dict]:
        """The per-layer plan of :meth:`frequency_module` at batch 1: direct, FFT convolution or
        block-circulant FFT, each timed here (lower quartile of interleaved calls)."""
        return self.frequency_module(model, batch_size=1)[1]

    # ------------------------------------------------------------------ training

    def _tensors(self, model: Model, data: ArrayDataset, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        x, labels = data.arrays_for(model, split)
        return torch.from_numpy(x), torch.from_numpy(labels)

    def check_settings(self, settings: TrainSettings) -> None:
        check_settings(settings)

    def train(
        self,
        model: Model,
        data: ArrayDataset,
        settings: TrainSettings,
        projection: Projection | None = None,
        progress: ProgressCallback | None = None,
        teacher: Teacher | None = None,
    ) -> TrainHistory:
        module = self._module(model)
        x, y = self._tensors(model, data, "train")
        if teacher is not None:
            teacher.check(len(y), model.num_classes)
        return train_module(module, x, y, settings, projection, progress, teacher=teacher)

    def train_data_parallel(
        self,
        model: Model,
        data: ArrayDataset,
        settings: TrainSettings,
        parallel: Any,
        projection: Projection | None = None,
        progress: ProgressCallback | None = None,
        teacher: Teacher | None = None,
    ) -> TrainHistory:
        """Trains with DistributedDataParallel on ``parallel.workers`` processes per node,
        launched by torch's elastic agent (:mod:`sigdl_framework_torch.distributed`)."""
        from .distributed import train_data_parallel

        return train_data_parallel(self, model, data, settings, parallel, projection, progress, teacher=teacher)

    def _batched_logits(self, model: Model, x: torch.Tensor) -> list[torch.Tensor]:
        """The model's logits in evaluation mode, batch by batch, without gradients."""
        module = self._module(model)
        batch = max(1, min(1024, _EVAL_VALUES_PER_BATCH // max(1, math.prod(model.input_shape))))
        out = []
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad(), _channels_last(module) as layout, torch_threads(module):
                for i in range(0, len(x), batch):
                    xb = x[i : i + batch]
                    out.append(module(xb if layout is None else xb.contiguous(memory_format=layout)))
        finally:
            module.train(was_training)
        return out

    def warm_up(self) -> None:
        """A process's first ``torch.optim`` optimizer imports ``torch._dynamo`` (about 1 s on
        the 2-core machine): a pool worker pays it here, before its first retraining."""
        weight = nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.SGD([weight], lr=0.1)
        weight.sum().backward()
        optimizer.step()

    def logits(self, model: Model, data: ArrayDataset,
               split: Literal["train", "validation", "test"] = "train") -> np.ndarray:
        if split not in ("train", "validation", "test"):
            raise InvalidValueError(f"split '{split}' is not 'train', 'validation' or 'test'")
        x, _y = self._tensors(model, data, split)
        parts = [out.float().cpu().numpy() for out in self._batched_logits(model, x)]
        return np.concatenate(parts) if parts else np.zeros((0, model.num_classes), np.float32)

    def evaluate(
        self, model: Model, data: ArrayDataset,
        split: Literal["train", "validation", "test"] = "test",
    ) -> Accuracy:
        if split not in ("train", "validation", "test"):
            raise InvalidValueError(f"split '{split}' is not 'train', 'validation' or 'test'")
        x, y = self._tensors(model, data, split)
        correct1 = correct5 = 0
        hits = []  # per-sample top-1 hits (Accuracy.correct)
        start = 0
        for logits in self._batched_logits(model, x):
            yb = y[start : start + len(logits)]
            start += len(logits)
            k = min(5, logits.shape[1])
            top = logits.topk(k, dim=1).indices
            hit = top[:, 0] == yb
            hits.append(hit.cpu().numpy())
            correct1 += int(hit.sum())
            correct5 += int((top == yb[:, None]).any(dim=1).sum())
        n = len(y)
        correct = np.concatenate(hits) if hits else np.zeros(0, dtype=bool)
        return Accuracy(top1=correct1 / n, top5=correct5 / n, samples=n, correct=correct)

    # ------------------------------------------------------------------ ONNX

    def export_onnx(self, model: Model, path: Path, batch_size: int = 1) -> Path:
        import onnx

        module = self._module(model)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidValueError(f"batch size {batch_size!r} must be a whole number >= 1")
        path = Path(path)
        example = torch.zeros((batch_size, *model.input_shape), dtype=torch.float32)
        was_training = module.training
        module.eval()
        try:
            with atomic_path(path) as tmp:
                try:
                    with warnings.catch_warnings(), _native_stdout_silenced():
                        # The TorchScript exporter announces its deprecation on every call.
                        warnings.simplefilter("ignore")
                        torch.onnx.export(
                            module,
                            (example,),
                            str(tmp),
                            input_names=["input"],
                            output_names=["logits"],
                            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                            opset_version=17,
                            do_constant_folding=True,
                            dynamo=False,
                        )
                    onnx.checker.check_model(str(tmp), full_check=True)
                except (RuntimeError, torch.onnx.errors.OnnxExporterError, onnx.checker.ValidationError) as exc:
                    raise UnsupportedModelError(
                        f"cannot export '{model.architecture}' at input {tuple(model.input_shape)} to ONNX: "
                        f"{_first_line(exc)}",
                        "export at the model's canonical input size, where every pooling size divides evenly",
                    ) from None
        finally:
            module.train(was_training)
        return path


class RankGroup:
    """Where one data-parallel worker stands: its rank among ``world`` workers, and the
    :class:`~torch.nn.parallel.DistributedDataParallel` wrapper that all-reduces its gradients.

    :func:`train_module` gives each rank every ``world``-th sample of each global batch
    (the same seeded permutation on every rank), so that a step's global batch is the
    serial run's; the loss is summed over the rank's samples and divided by the global
    batch's size times ``world``, so that DDP's averaged gradient is the serial gradient.
    """

    def __init__(self, rank: int, world: int, wrap: Any, all_reduce: Any) -> None:
        self.rank, self.world, self.wrap, self.all_reduce = rank, world, wrap, all_reduce


def train_module(
    module: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    settings: TrainSettings,
    projection: Projection | None = None,
    progress: ProgressCallback | None = None,
    group: RankGroup | None = None,
    teacher: Teacher | None = None,
) -> TrainHistory:
    """Trains ``module`` on ``x, y`` (see the module docstring); with ``group``, as one rank
    of a data-parallel run, on its share of every global batch. With ``teacher``, the loss
    is :func:`distillation_loss` against the teacher's logits of the same samples."""
    history = TrainHistory()
    if settings.epochs == 0:
        return history
    n = len(y)
    batch = settings.batch_size
    steps_per_epoch = math.ceil(n / batch)
    total_steps = steps_per_epoch * settings.epochs
    order = torch.Generator().manual_seed(int(settings.seed))
    start = time.perf_counter()
    step = 0
    rank, world = (group.rank, group.world) if group is not None else (0, 1)
    soft = None
    if teacher is not None and teacher.weight > 0:
        teacher.check(n)  # one row per sample; TorchFramework.train checks the classes against the model
        soft = torch.from_numpy(np.ascontiguousarray(teacher.logits, dtype=np.float32)).to(x.device)
    with torch.random.fork_rng(devices=[]), _channels_last(module) as layout, torch_threads(module):
        # dropout draws differ between ranks (each sees other samples), but not between runs
        torch.manual_seed(int(settings.seed) + 7919 * rank)
        optimizer = make_optimizer([p for p in module.parameters() if p.requires_grad], settings)
        schedule = make_scheduler(optimizer, settings, total_steps)
        shared = _ProjectionViews(_float_state_of(module)) if projection is not None else None
        module.train()
        forward = group.wrap(module) if group is not None else module
        try:
            for epoch in range(settings.epochs):
                perm = torch.randperm(n, generator=order)
                loss_sum = 0.0
                correct = 0
                for b in range(steps_per_epoch):
                    idx = perm[b * batch : (b + 1) * batch]
                    whole = len(idx)
                    if group is not None:
                        idx = idx[rank::world]
                    xb = x.index_select(0, idx)
                    if layout is not None:
                        xb = xb.contiguous(memory_format=layout)
                    yb = y.index_select(0, idx)
                    optimizer.zero_grad()
                    logits = forward(xb)
                    if soft is not None:
                        loss = distillation_loss(logits, yb, soft.index_select(0, idx), teacher, whole, world)
                    elif group is None:
                        loss = F.cross_entropy(logits, yb)
                    else:
                        loss = F.cross_entropy(logits, yb, reduction="sum") * (world / whole)
                    loss.backward()
                    optimizer.step()
                    schedule.after_batch()
                    if shared is not None:
                        shared.apply(projection)
                    value = loss.item()
                    if not math.isfinite(value):
                        raise InvalidValueError(
                            f"training diverged: the loss became {value} in epoch {epoch + 1}, step {b + 1}",
                            f"lower the learning rate (now {settings.lr})",
                        )
                    loss_sum += value * (whole / world if group is not None else len(idx))
                    correct += int((logits.detach().argmax(1) == yb).sum())
                    step += 1
                    if progress is not None:
                        progress(f"train epoch {epoch + 1}/{settings.epochs}", step, total_steps)
                if group is not None:
                    loss_sum, correct = group.all_reduce(loss_sum, correct)
                history.loss.append(loss_sum / n)
                history.train_top1.append(correct / n)
                schedule.after_epoch(loss_sum / n)
        finally:
            optimizer.zero_grad()
            module.eval()
    history.seconds = time.perf_counter() - start
    return history


def distillation_loss(logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor,
                      teacher: Teacher, whole: int, world: int = 1) -> torch.Tensor:
    """``(1 - w) CE(logits, labels) + w T^2 KL(softmax(teacher/T) || softmax(logits/T))``
    (:class:`~sigdl_core.interfaces.Teacher`), summed over the rank's samples and divided by
    the global batch ``whole``, times ``world`` (DDP averages the ranks' gradients), so that
    every number of workers takes the serial step."""
    t, w = float(teacher.temperature), float(teacher.weight)
    hard = F.cross_entropy(logits, labels, reduction="sum")
    kl = F.kl_div(F.log_softmax(logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                  reduction="sum", log_target=True)
    return ((1.0 - w) * hard + w * t * t * kl) * (world / whole)


def _float_state_of(module: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and float buffers by state_dict name, in model order."""
    return {k: v for k, v in module.state_dict(keep_vars=True).items() if v.is_floating_point()}


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _native_stdout_silenced() -> Iterator[None]:
    """Sends what C++ code writes to standard output (file descriptor 1) to /dev/null.

    torch 2.13's TorchScript exporter switches its C++ log on for every export (its
    ``setup_onnx_logging`` tests the function ``_jit_is_onnx_log_enabled`` instead of
    calling it) and, when an export fails, dumps the whole TorchScript graph to
    ``std::cout``, which would garble ``sigdl --json`` and the one-line error.
    """
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no file descriptor 1 (embedded interpreters): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def _channels_last(module: nn.Module) -> Iterator[torch.memory_format | None]:
    """Runs a convolutional model in channels-last layout, and restores the layout after.

    On this CPU build ``max_pool2d`` is several times faster on channels-last activations
    (measured: 13 ms against 58 ms for a 256×20×24×24 batch on one core), which makes a
    LeNet-5 training step about 1.5× faster. Models without a 2-D convolution are left as
    they are (yields ``None``).
    """
    if not any(isinstance(m, nn.Conv2d) for m in module.modules()):
        yield None
        return
    module.to(memory_format=torch.channels_last)
    try:
        yield torch.channels_last
    finally:
        module.to(memory_format=torch.contiguous_format)


class _ProjectionViews:
    """The arrays a projection edits: NumPy views of the float state, in get_weights' order.

    A contiguous tensor is shown as a view that shares its memory. A tensor held in
    channels-last layout would give a strided view on which ``reshape(-1)`` silently
    copies, so it is mirrored instead: copied into a persistent C-ordered array before
    each call and copied back after it. Either way the projection sees and edits the
    current weights, and the dict and arrays it gets stay the same objects for the run.
    """

    def __init__(self, state: Mapping[str, torch.Tensor]) -> None:
        self.views: dict[str, np.ndarray] = {}
        self.mirrors: list[tuple[torch.Tensor, torch.Tensor]] = []
        for name, tensor in state.items():
            t = tensor.detach()
            if t.is_contiguous() and t.device.type == "cpu":  # a CUDA tensor is mirrored too
                self.views[name] = t.numpy()
            else:
                mirror = np.empty(tuple(t.shape), dtype=np.float32)
                self.views[name] = mirror
                self.mirrors.append((t, torch.from_numpy(mirror)))

    def apply(self, projection: Projection) -> None:
        with torch.no_grad():
            for tensor, mirror in self.mirrors:
                mirror.copy_(tensor)
            projection(self.views)
            for tensor, mirror in self.mirrors:
                tensor.copy_(mirror)


def _kind_of(owner: nn.Module, attr: str) -> LayerKind:
    if isinstance(owner, nn.modules.conv._ConvNd):
        if attr == "bias":
            return "bias"
        return "depthwise" if owner.groups > 1 else "conv"
    if isinstance(owner, nn.Linear):
        return "bias" if attr == "bias" else "fc"
    if isinstance(owner, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)):
        return "norm"
    return "other"


#: Layer attributes that :func:`_resize_layer` may change (restored on failure).
_LAYER_SIZES = ("in_channels", "out_channels", "groups", "in_features", "out_features", "num_features")


def _resize_layer(prefix: str, layer: nn.Module, tensors: Mapping[str, torch.Tensor]) -> None:
    """Gives ``layer`` the shapes of the arrays named ``prefix.*`` in ``tensors``."""

    def full(attr: str) -> str:
        return f"{prefix}.{attr}" if prefix else attr

    def given(attr: str) -> torch.Tensor | None:
        return tensors.get(full(attr))

    def bad(message: str, hint: str = "change connected layers together (see Framework.channel_groups)") -> InvalidValueError:
        return InvalidValueError(message, hint)

    if isinstance(layer, nn.Conv2d):
        w = given("weight")  # the bias follows the weight's output channels
        if w is None:
            raise bad(f"'{full('bias')}' changes shape, so '{full('weight')}' must be given too")
        if w.dim() != 4 or tuple(w.shape[2:]) != tuple(layer.weight.shape[2:]):
            raise bad(f"'{full('weight')}' has shape {tuple(w.shape)}; only its channel axes may change, "
                      f"not the kernel {tuple(layer.weight.shape[2:])}")
        out = int(w.shape[0])
        depthwise = layer.groups > 1 and layer.groups == layer.in_channels == layer.out_channels
        if layer.groups == 1:
            groups, in_channels = 1, int(w.shape[1])
        elif depthwise and w.shape[1] == 1:
            groups, in_channels = out, out
        else:
            groups = layer.groups
            in_channels = int(w.shape[1]) * groups
            if out % groups:
                raise bad(f"'{full('weight')}' has {out} filters, not a multiple of the layer's {groups} groups")
        expected = {"weight": tuple(w.shape), "bias": (out,)}
        sizes = {"in_channels": in_channels, "out_channels": out, "groups": groups}
    elif isinstance(layer, nn.Linear):
        w = given("weight")
        if w is None:
            raise bad(f"'{full('bias')}' changes shape, so '{full('weight')}' must be given too")
        if w.dim() != 2:
            raise bad(f"'{full('weight')}' must be 2-D (out × in), not {tuple(w.shape)}")
        out = int(w.shape[0])
        expected = {"weight": tuple(w.shape), "bias": (out,)}
        sizes = {"in_features": int(w.shape[1]), "out_features": out}
    elif isinstance(layer, nn.modules.batchnorm._BatchNorm):
        shapes = {tuple(t.shape) for a in ("weight", "bias", "running_mean", "running_var") if (t := given(a)) is not None}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise bad(f"the batch-norm arrays of '{prefix}' must all be 1-D and of one length, not {sorted(shapes)}")
        (features,) = next(iter(shapes))
        expected = {a: (features,) for a in ("weight", "bias", "running_mean", "running_var")}
        sizes = {"num_features": features}
    else:
        names = [n for n in tensors if n.rpartition(".")[0] == prefix]
        raise bad(
            f"'{names[0]}' belongs to a {type(layer).__name__} layer, whose shape cannot change",
            "give it in its current shape",
        )

    own = {**{a: p for a, p in layer._parameters.items() if p is not None},
           **{a: t for a, t in layer._buffers.items() if t is not None and t.is_floating_point()}}
    for attr, current in own.items():
        want = expected.get(attr)
        if want is None:
            continue
        new = given(attr)
        if new is None:
            if tuple(current.shape) != want:
                raise bad(f"'{full(attr)}' must be given too, with shape {want}, to match the layer's new size")
        elif tuple(new.shape) != want:
            raise bad(f"'{full(attr)}' has shape {tuple(new.shape)}, but the layer's new size needs {want}")
    for attr in expected:
        if given(attr) is not None and attr not in own:
            raise bad(f"'{full(attr)}' does not exist in this layer")
    for attr, new_size in sizes.items():
        setattr(layer, attr, new_size)
    for attr, current in own.items():
        new = given(attr)
        if new is None or tuple(new.shape) == tuple(current.shape):
            continue
        if attr in layer._parameters:
            layer._parameters[attr] = nn.Parameter(new.clone(), requires_grad=current.requires_grad)
        else:
            layer._buffers[attr] = new.clone()


def _check_runs(model: Model) -> None:
    """Runs the model once on one all-zero sample; raises if its shapes no longer fit.

    A real forward pass rather than one on the meta device: the first use of the meta
    device imports sympy and torch's meta registrations (3 s or more here), which costs
    more than one forward pass of any zoo model on one sample.
    """
    module = model.native
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(torch.zeros((1, *model.input_shape)))
    except Exception as exc:  # noqa: BLE001 - any failure means the shapes do not fit
        raise InvalidValueError(
            f"with the new shapes the model no longer runs: {_first_line(exc)}",
            "change the channels of connected layers together (see Framework.channel_groups)",
        ) from None
    finally:
        module.train(was_training)
    if tuple(out.shape) != (1, model.num_classes):
        raise InvalidValueError(
            f"with the new shapes the model gives {tuple(out.shape[1:])} outputs, not {model.num_classes} classes",
            "keep the output layer's size",
        )


def _foreign_pickle_global(path: Path) -> str | None:
    """The first global a pickle names beyond a plain checkpoint's, found without running it.

    ``pickletools.genops`` only parses the opcodes. Returns ``None`` when the pickle names
    no foreign global or cannot be parsed (then the file is damaged, not unsafe).
    """
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                member = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
                if member is None or archive.getinfo(member).file_size > 64 * 2**20:
                    return None
                data = archive.read(member)
        else:
            if path.stat().st_size > 64 * 2**20:
                return None
            data = path.read_bytes()
        strings: list[str] = []
        for opcode, arg, _ in pickletools.genops(io.BytesIO(data)):
            name: str | None = None
            if opcode.name in ("GLOBAL", "INST"):
                name = str(arg).replace(" ", ".")
            elif opcode.name == "STACK_GLOBAL":
                name = ".".join(strings[-2:]) if len(strings) >= 2 else "an object"
            if isinstance(arg, str):
                strings.append(arg)
            if name is not None and not name.startswith(_TORCH_PICKLE_GLOBALS):
                return name
    except (ValueError, EOFError, OSError, zipfile.BadZipFile, KeyError, UnicodeDecodeError):
        return None
    return None
