"""A small but real SigDL plugin for the core's own tests: no torch needed.

It registers the framework ``numpy`` (softmax regression trained by mini-batch SGD, saved
with ``np.savez`` without pickles, exported to ONNX as one Gemm), the model ``softmax``,
the dataset ``digits-flat`` (scikit-learn's bundled 8×8 digits, flattened) and records
every lifecycle hook it sees in :data:`EVENTS`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sigdl_core import hookimpl
from sigdl_core.errors import InvalidValueError, ModelFileError
from sigdl_core.files import atomic_path
from sigdl_core.interfaces import (
    Accuracy,
    ArrayDataset,
    DatasetSpec,
    Framework,
    FrameworkSpec,
    Model,
    ModelSpec,
    TrainHistory,
    TrainSettings,
)

EVENTS: list[tuple[str, str]] = []
TRAIN_CALLS: list[int] = []  # the epochs of every train() call, in order


def load_digits_flat(argument: str | None, seed: int) -> ArrayDataset:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    order = np.random.default_rng(1234).permutation(len(y))
    x, y = x[order], y[order].astype(np.int64)
    cut = int(0.8 * len(y))
    return ArrayDataset("digits-flat", x[:cut], y[:cut], x[cut:], y[cut:], num_classes=10)


class NumpyFramework(Framework):
    name = "numpy"

    def build(self, architecture: str, input_shape: Sequence[int], num_classes: int, seed: int = 0) -> Model:
        rng = np.random.default_rng(seed)
        features = int(np.prod(input_shape))
        weights = {"fc.weight": (rng.standard_normal((num_classes, features)) * 0.01).astype(np.float32),
                   "fc.bias": np.zeros(num_classes, np.float32)}
        return Model("numpy", architecture, tuple(input_shape), num_classes, weights)

    def load(self, path: Path, architecture: str | None = None, input_shape: Sequence[int] | None = None,
             num_classes: int | None = None) -> Model:
        try:
            with np.load(path, allow_pickle=False) as f:
                w, b, shape = f["fc.weight"], f["fc.bias"], tuple(int(d) for d in f["input_shape"])
        except Exception as exc:
            raise ModelFileError(f"'{path}' is not a numpy model: {type(exc).__name__}") from None
        return Model("numpy", "softmax", shape, int(w.shape[0]), {"fc.weight": w, "fc.bias": b})

    def save(self, model: Model, path: Path) -> Path:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, input_shape=np.array(model.input_shape), **model.native)
        return Path(path)

    def _logits(self, model: Model, x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), -1) @ model.native["fc.weight"].T + model.native["fc.bias"]

    def check_settings(self, settings: TrainSettings) -> None:
        if settings.optimizer != "sgd" or settings.optimizer_params:
            raise InvalidValueError(f"framework 'numpy' trains with plain sgd, not optimizer '{settings.optimizer}'",
                                    "set optimizer: sgd without optimizer_params")

    def train(self, model: Model, data: ArrayDataset, settings: TrainSettings, projection: Any = None,
              progress: Any = None) -> TrainHistory:
        TRAIN_CALLS.append(settings.epochs)
        rng = np.random.default_rng(settings.seed)
        history, start = TrainHistory(), time.perf_counter()
        x, y = data.x_train.reshape(len(data.x_train), -1), data.y_train
        steps = (len(y) + settings.batch_size - 1) // settings.batch_size
        for epoch in range(settings.epochs):
            order, losses = rng.permutation(len(y)), []
            for step in range(steps):
                idx = order[step * settings.batch_size:(step + 1) * settings.batch_size]
                logits = self._logits(model, x[idx])
                p = np.exp(logits - logits.max(1, keepdims=True))
                p /= p.sum(1, keepdims=True)
                losses.append(float(-np.log(p[np.arange(len(idx)), y[idx]] + 1e-12).mean()))
                p[np.arange(len(idx)), y[idx]] -= 1
                model.native["fc.weight"] -= settings.lr * (p.T @ x[idx]) / len(idx)
                model.native["fc.bias"] -= settings.lr * p.mean(0)
                if projection is not None:
                    projection(model.native)
                if progress is not None:
                    progress(f"epoch {epoch + 1}/{settings.epochs}", step + 1, steps)
            history.loss.append(float(np.mean(losses)))
            history.train_top1.append(self.evaluate(model, data, "train").top1)
        history.seconds = time.perf_counter() - start
        return history

    def evaluate(self, model: Model, data: ArrayDataset, split: str = "test") -> Accuracy:
        x, y = data.arrays(split)
        logits = self._logits(model, x)
        top5 = np.argsort(-logits, 1)[:, :5]
        return Accuracy(float((top5[:, 0] == y).mean()), float((top5 == y[:, None]).any(1).mean()), len(y))

    def get_weights(self, model: Model) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in model.native.items()}

    def set_weights(self, model: Model, weights: Mapping[str, np.ndarray]) -> None:
        for k, v in weights.items():
            model.native[k] = np.asarray(v, np.float32).copy()

    def layer_kinds(self, model: Model) -> dict[str, str]:
        return {"fc.weight": "fc", "fc.bias": "bias"}

    def parameter_count(self, model: Model) -> int:
        return int(sum(v.size for v in model.native.values()))

    def export_onnx(self, model: Model, path: Path, batch_size: int = 1) -> Path:
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        features = int(np.prod(model.input_shape))
        graph = helper.make_graph(
            [helper.make_node("Flatten", ["input"], ["flat"], axis=1),
             helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], transB=1)],
            "softmax",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *model.input_shape])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", model.num_classes])],
            [numpy_helper.from_array(model.native["fc.weight"].reshape(-1, features), "fc.weight"),
             numpy_helper.from_array(model.native["fc.bias"], "fc.bias")],
        )
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
        onnx.checker.check_model(proto)
        with atomic_path(path) as tmp:
            onnx.save(proto, tmp)
        return Path(path)


@hookimpl
def sigdl_frameworks() -> list[FrameworkSpec]:
    return [FrameworkSpec("numpy", "softmax regression in NumPy (tests)", factory=NumpyFramework,
                          suffixes=(".npz",))]


@hookimpl
def sigdl_models() -> list[ModelSpec]:
    return [ModelSpec("softmax", "numpy", "softmax regression", (64,), 10, 650, dataset="digits-flat")]


@hookimpl
def sigdl_datasets() -> list[DatasetSpec]:
    return [DatasetSpec("digits-flat", "scikit-learn's 8x8 digits, flattened", loader=load_digits_flat)]


@hookimpl
def sigdl_stage_started(stage: str, run_dir: Path, info: Mapping[str, Any]) -> None:
    EVENTS.append(("started", stage))


@hookimpl
def sigdl_stage_finished(stage: str, run_dir: Path, result: Mapping[str, Any]) -> None:
    EVENTS.append(("finished", stage))


@hookimpl
def sigdl_run_finished(run_dir: Path, report: Mapping[str, Any]) -> None:
    EVENTS.append(("run_finished", str(run_dir)))
