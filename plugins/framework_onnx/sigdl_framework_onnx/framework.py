"""The ``onnx`` framework: any ONNX model file is a model.

:class:`OnnxFramework` implements :class:`sigdl_core.interfaces.Framework` on
:class:`~sigdl_framework_onnx.graph.OnnxGraph`: it evaluates with onnxruntime, shows the
float initializers as named weights (kinds from their consuming ops), and writes the model
back with the compressed weights.

**Training.** An ONNX file holds a graph, not a training program. When
``sigdl-framework-torch`` is installed (the ``[torch]`` extra) and every op of the graph is
one :mod:`sigdl_framework_onnx.to_torch` converts, :meth:`OnnxFramework.train` converts the
graph to a torch module holding the same weights, trains it with the torch framework (got
through the core's plugin registry, so the same optimizers, schedules, seeding and
projection after every step) and copies the weights back. Otherwise
:meth:`OnnxFramework.training_unavailable` says why, and the loop compresses post-training
(no retraining, said in the report); :meth:`train` itself then raises one clear line.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sigdl_core.errors import BadInputError, InvalidValueError, UnsupportedModelError
from sigdl_core.interfaces import (
    Accuracy,
    ArrayDataset,
    Framework,
    LayerKind,
    Model,
    ProgressCallback,
    Projection,
    Teacher,
    TrainHistory,
    TrainSettings,
)

from .graph import OnnxGraph, first_line, read_onnx, save_checked
from .plugin import FRAMEWORK

__all__ = ["NEEDS_TORCH", "OnnxFramework", "RetrainingUnavailableError"]

#: Why an ONNX model cannot be retrained without the torch plugin.
NEEDS_TORCH = "retraining an ONNX model needs sigdl-framework-torch"
#: The framework that retrains converted ONNX graphs, by its registered name.
TORCH_FRAMEWORK = "torch"


class RetrainingUnavailableError(BadInputError):
    """Retraining was asked for a model this installation cannot retrain."""


class OnnxFramework(Framework):
    """SigDL's ONNX framework (registered as ``onnx``)."""

    name = FRAMEWORK
    #: The model files :meth:`build` and :meth:`load` read.
    suffixes: tuple[str, ...] = (".onnx",)

    def __init__(self) -> None:
        self._torch: Framework | None | bool = False  # False: not looked up yet

    # ------------------------------------------------------------------ models

    def _graph(self, model: Model) -> OnnxGraph:
        if getattr(model, "framework", None) != self.name or not isinstance(getattr(model, "native", None), OnnxGraph):
            raise InvalidValueError(f"model '{getattr(model, 'architecture', model)}' is not a model of "
                                    f"framework '{self.name}'", "use the framework that built or loaded it")
        return model.native

    def build(self, architecture: str, input_shape: Sequence[int], num_classes: int, seed: int = 0) -> Model:
        """The ONNX model in the file ``architecture`` (the framework has no zoo of its own).

        ``sigdl decode`` rebuilds a model this way from the path the artifact recorded.
        """
        path = Path(architecture)
        if path.suffix.lower() not in self.suffixes or not path.is_file():
            raise UnsupportedModelError(
                f"the {self.name} framework builds no model '{architecture}': it reads model files",
                f"give the path of a {' or '.join(self.suffixes)} file (the zoo models belong to other "
                "frameworks: sigdl models)")
        model = self.load(path)
        if tuple(input_shape) != tuple(model.input_shape) or int(num_classes) != model.num_classes:
            raise InvalidValueError(
                f"ONNX model '{path}' takes {tuple(model.input_shape)} with {model.num_classes} classes, "
                f"not {tuple(input_shape)} with {num_classes}", "use the model file the artifact was made from")
        return model

    def load(self, path: Path, architecture: str | None = None, input_shape: Sequence[int] | None = None,
             num_classes: int | None = None) -> Model:
        """Reads, checks and test-runs an ONNX file; its weights come from its initializers."""
        graph = self._read(Path(path))
        if input_shape is not None and tuple(input_shape) != graph.input_shape:
            raise InvalidValueError(f"ONNX model '{path}' takes inputs {graph.input_shape}, not {tuple(input_shape)}",
                                    "leave the input shape out: the file fixes it")
        if num_classes is not None and int(num_classes) != graph.num_classes:
            raise InvalidValueError(f"ONNX model '{path}' has {graph.num_classes} outputs, not {num_classes}",
                                    "leave the class count out: the file fixes it")
        return Model(self.name, str(Path(path).resolve()), graph.input_shape, graph.num_classes, graph)

    def _read(self, path: Path) -> OnnxGraph:
        """The graph in ``path`` (a subclass reads another format and converts it)."""
        return read_onnx(path)

    def save(self, model: Model, path: Path) -> Path:
        """Writes the ONNX model with its current weights (input and output names kept)."""
        return self._graph(model).write(Path(path))

    def parameter_count(self, model: Model) -> int:
        return self._graph(model).parameter_count()

    # ------------------------------------------------------------------ weights

    def get_weights(self, model: Model) -> dict[str, np.ndarray]:
        return {n: w.copy() for n, w in self._graph(model).weights.items()}

    def set_weights(self, model: Model, weights: Mapping[str, np.ndarray]) -> None:
        self._graph(model).set_weights(weights)

    def layer_kinds(self, model: Model) -> dict[str, LayerKind]:
        return dict(self._graph(model).kinds)

    # ------------------------------------------------------------------ evaluation

    @property
    def distills(self) -> bool:  # type: ignore[override]
        """Retraining runs in the torch twin, which distils; without torch nothing trains."""
        return self._torch_framework() is not None

    def logits(self, model: Model, data: ArrayDataset,
               split: Literal["train", "validation", "test"] = "train") -> np.ndarray:
        x, _labels = data.arrays_for(model, split)
        return np.asarray(self._graph(model).logits(x), dtype=np.float32)

    def evaluate(self, model: Model, data: ArrayDataset,
                 split: Literal["train", "validation", "test"] = "test") -> Accuracy:
        graph = self._graph(model)
        x, labels = data.arrays_for(model, split)  # shapes, labels and an empty split checked
        logits = graph.logits(x)
        k = min(5, logits.shape[1])
        top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
        n = len(labels)
        correct = top[:, 0] == labels
        return Accuracy(top1=float(correct.sum()) / n,
                        top5=float((top == labels[:, None]).any(axis=1).sum()) / n, samples=n,
                        correct=correct)

    # ------------------------------------------------------------------ ONNX

    def export_onnx(self, model: Model, path: Path, batch_size: int = 1) -> Path:
        """Writes the model with its current weights, input ``input``, output ``logits``.

        The batch axis is made dynamic where the graph allows it (checked once by running a
        batch of two); a graph that hard-codes its batch size keeps it.
        """
        graph = self._graph(model)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidValueError(f"batch size {batch_size!r} must be a whole number >= 1")
        proto = graph.current_proto(rename_io=True)
        if graph.batch is not None and _dynamic_batch_works(graph):
            _make_batch_dynamic(proto)
        return save_checked(proto, Path(path), graph.path.name)

    # ------------------------------------------------------------------ training

    def training_unavailable(self, model: Model) -> str | None:
        """Why this model cannot be retrained here, or None: torch missing, or an op it lacks."""
        graph = self._graph(model)
        if self._torch_framework() is None:
            return NEEDS_TORCH + " (pip install 'sigdl-framework-onnx[torch]')"
        from .to_torch import unsupported_ops

        missing = unsupported_ops(graph)
        if missing:
            return ("retraining converts the ONNX graph to torch, which does not cover its ops "
                    + ", ".join(missing))
        return None

    def train(self, model: Model, data: ArrayDataset, settings: TrainSettings,
              projection: Projection | None = None, progress: ProgressCallback | None = None,
              teacher: Teacher | None = None) -> TrainHistory:
        """Converts the graph to torch, trains it with the torch framework, copies weights back."""
        graph = self._graph(model)
        if settings.epochs == 0:
            return TrainHistory()
        reason = self.training_unavailable(model)
        if reason is not None:
            raise RetrainingUnavailableError(reason, "compress post-training instead (--retrain-epochs 0)")
        torch_fw = self._torch_framework()
        assert torch_fw is not None
        twin, names = self._torch_twin(graph)
        torch_fw.set_weights(twin, {names[n]: w for n, w in graph.weights.items()})
        wrapped = None
        if projection is not None:
            def wrapped(views: dict[str, np.ndarray]) -> None:
                projection({n: views[t] for n, t in names.items()})
        history = torch_fw.train(twin, data, settings, projection=wrapped, progress=progress, teacher=teacher)
        trained = torch_fw.get_weights(twin)
        graph.set_weights({n: trained[t] for n, t in names.items()})
        return history

    def _torch_framework(self) -> Framework | None:
        """The registered torch framework, or None where it is not installed."""
        if self._torch is False:
            self._torch = None
            if importlib.util.find_spec("torch") is not None:
                from sigdl_core.plugins import load_plugins

                try:
                    registry = load_plugins(tolerate_conflicts=True).registry
                    if TORCH_FRAMEWORK in registry.names("framework"):
                        self._torch = registry.framework(TORCH_FRAMEWORK)
                except Exception:  # noqa: BLE001 - a broken plugin set means no torch route
                    self._torch = None
        return self._torch  # type: ignore[return-value]

    @staticmethod
    def _torch_twin(graph: OnnxGraph) -> tuple[Model, dict[str, str]]:
        """The graph as a torch :class:`Model` (cached), and ONNX weight name → torch state name."""
        if "torch" not in graph.cache:
            from .to_torch import OnnxModule

            try:
                module = OnnxModule(graph)
            except UnsupportedModelError:
                raise
            except Exception as exc:  # noqa: BLE001 - a graph the converter mis-reads
                raise UnsupportedModelError(f"cannot convert ONNX model '{graph.path.name}' to torch: "
                                            f"{first_line(exc)}", "compress it post-training (--retrain-epochs 0)") from None
            twin = Model(TORCH_FRAMEWORK, graph.path.stem, graph.input_shape, graph.num_classes, module)
            graph.cache["torch"] = (twin, dict(module.state_names))
        return graph.cache["torch"]


def _dynamic_batch_works(graph: OnnxGraph) -> bool:
    """Whether the graph still runs with its batch axis made dynamic (checked once)."""
    if "dynamic_batch" not in graph.cache:
        from .graph import make_session

        proto = graph.current_proto(rename_io=True)
        _make_batch_dynamic(proto)
        try:
            sess = make_session(proto, graph.parameter_count())
            out = sess.run(None, {"input": np.zeros((2, *graph.input_shape), np.float32)})[0]
            ok = np.asarray(out).shape[0] == 2
        except Exception:  # noqa: BLE001 - a Reshape that hard-codes the batch size, say
            ok = False
        graph.cache["dynamic_batch"] = ok
    return bool(graph.cache["dynamic_batch"])


def _make_batch_dynamic(proto: Any) -> None:
    from .graph import INPUT_NAME, OUTPUT_NAME

    for value in (*proto.graph.input, *proto.graph.output):
        if value.name not in (INPUT_NAME, OUTPUT_NAME):
            continue
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_param = "batch"
    del proto.graph.value_info[:]  # inferred shapes with the old batch size would contradict
