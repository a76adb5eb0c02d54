"""The conformance suite: contracts every plugin of a kind must pass.

Each contract is a function ``check_…(registry, name, folder)`` that raises
:class:`ContractError` (an ``AssertionError``) whose message names the plugin, the
contract, what was wrong and what to fix; or calls ``pytest.skip`` with the reason where a
contract cannot apply (a compressor that leaves the weights as they are has no projection
to test). The test classes :class:`TargetContract`, :class:`CompressorContract` and
:class:`FrameworkContract` run them, parametrised by :mod:`sigdl_core.testing` over every
installed plugin of the kind or over the names a subclass gives. A plugin author runs the
whole suite with one line in the plugin's tests::

    from sigdl_core.testing import TargetContract

    class TestAcmeBoard(TargetContract): targets = ["acme-board"]

Contracts
---------
Target and emulator (on a tiny ONNX model, 12×1×8×8 inputs, ten classes):

* every number in the report carries a method (``report.provenance``);
* analytical numbers are deterministic (two runs agree on every number marked analytical);
* an unknown option is refused with a :class:`~sigdl_core.errors.BadInputError` naming the
  declared ones (``EmulatorSpec.options``), and a declared one given a value of no valid
  type is refused by its name;
* an operator the target cannot run (a node of a domain no runtime knows) is named, in a
  ``fits=False`` report's warnings or in a ``BadInputError``, never as a traceback;
* ``fits`` is False, not an exception, when the model exceeds the target's memory;
* ``export_target_model`` returns None or a file onnxruntime loads.

Compressor (on tiny named weights: a conv, an fc layer and their biases):

* an unknown parameter, and each documented one given a value of no valid type, is refused
  with a ``BadInputError`` naming it, before any weight array is read;
* the projection is idempotent, and after an optimizer step plus the projection the
  weights are still exactly representable in the compressed form (the ``.sigdl`` artifact
  built from them decodes to them);
* the per-layer encoded size (``LayerEncoding.weight_bits + index_bits``) matches the bits
  the ``.sigdl`` artifact spends on that layer (within 1 % and 16 bits per stream);
* the weights round-trip through a ``.sigdl`` file exactly (``±0`` taken as equal).

Framework (on its smallest registered model, or a tiny ONNX model for a framework that
reads ``.onnx`` and builds none):

* named weights round-trip through ``set_weights``/``get_weights`` and ``save``/``load``;
* the ONNX export (input ``input``, output ``logits``, dynamic batch) gives the same top-1
  class as the framework's own evaluation;
* loading a file that would run code (a pickle whose loading creates a folder) raises a
  ``BadInputError`` and runs nothing;
* a framework that distils (``distills``) gives logits that rank as its evaluation does,
  and trains with a ``teacher``.

Everything here imports NumPy, onnx and onnxruntime only inside the checks.
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from .errors import BadInputError

__all__ = [
    "CompressorContract",
    "ContractError",
    "FrameworkContract",
    "TargetContract",
    "UNKNOWN_NAME",
    "UNSUPPORTED_OP",
    "check_compressor_encoded_size",
    "check_compressor_projection",
    "check_compressor_refuses_bad_params",
    "check_compressor_sigdl_round_trip",
    "check_emulator_analytical_deterministic",
    "check_emulator_export_target_model",
    "check_emulator_memory_exceeded",
    "check_emulator_numbers_have_methods",
    "check_emulator_refuses_unknown_option",
    "check_emulator_unsupported_operator",
    "check_framework_distills",
    "check_framework_loading_runs_no_code",
    "check_framework_onnx_matches",
    "check_framework_weights_round_trip",
    "tiny_dataset",
    "tiny_onnx_model",
    "tiny_weights",
]

#: The option or parameter name the contracts use as one no plugin declares.
UNKNOWN_NAME = "sigdl_conformance_no_such_name"
#: The operator no target can run: a node of a domain that no runtime implements.
UNSUPPORTED_OP = ("ai.sigdl.conformance", "SigdlConformanceOp")


class ContractError(AssertionError):
    """A plugin broke a contract; the message says which, what happened and what to fix."""

    def __init__(self, kind: str, name: str, contract: str, problem: str, fix: str) -> None:
        super().__init__(f"{kind} '{name}' breaks the contract '{contract}': {problem}. Fix: {fix}")
        self.kind, self.name, self.contract = kind, name, contract


# --------------------------------------------------------------------------- tiny inputs


def tiny_onnx_model(path: Path, unsupported_op: bool = False, seed: int = 0) -> Path:
    """A small CNN as ONNX: ``input`` N×1×8×8 → Conv 4×3×3 → Relu → Flatten → Gemm → ``logits`` (10).

    With ``unsupported_op`` a node of :data:`UNSUPPORTED_OP` follows the Relu.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array((rng.standard_normal((4, 1, 3, 3)) * 0.5).astype(np.float32), "conv.weight"),
             numpy_helper.from_array((rng.standard_normal(4) * 0.1).astype(np.float32), "conv.bias"),
             numpy_helper.from_array((rng.standard_normal((10, 144)) * 0.1).astype(np.float32), "fc.weight"),
             numpy_helper.from_array((rng.standard_normal(10) * 0.1).astype(np.float32), "fc.bias")]
    relu_out = "relu"
    nodes = [helper.make_node("Conv", ["input", "conv.weight", "conv.bias"], ["conv"], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["conv"], [relu_out])]
    opsets = [helper.make_opsetid("", 17)]
    if unsupported_op:
        domain, op = UNSUPPORTED_OP
        nodes.append(helper.make_node(op, [relu_out], ["custom"], domain=domain))
        opsets.append(helper.make_opsetid(domain, 1))
        relu_out = "custom"
    nodes += [helper.make_node("Flatten", [relu_out], ["flat"], axis=1),
              helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], transB=1)]
    graph = helper.make_graph(
        nodes, "sigdl_conformance",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], inits)
    model = helper.make_model(graph, opset_imports=opsets, producer_name="sigdl-conformance")
    model.ir_version = 8
    if not unsupported_op:
        onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path


def tiny_dataset(input_shape: Sequence[int] = (1, 8, 8), num_classes: int = 10, samples: int = 12,
                 seed: int = 0) -> Any:
    """A labelled :class:`~sigdl_core.interfaces.ArrayDataset` of random inputs (train = test)."""
    import numpy as np

    from .interfaces import ArrayDataset

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, *input_shape)).astype(np.float32)
    y = (np.arange(samples) % num_classes).astype(np.int64)
    return ArrayDataset("conformance", x, y, x.copy(), y.copy(), num_classes=num_classes)


def tiny_weights(seed: int = 0) -> tuple[dict[str, Any], dict[str, str]]:
    """Named float32 weights and their layer kinds: a 16×4×3×3 conv, a 10×256 fc, biases."""
    import numpy as np

    rng = np.random.default_rng(seed)
    weights = {"conv1.weight": (rng.standard_normal((16, 4, 3, 3)) * 0.2).astype(np.float32),
               "conv1.bias": (rng.standard_normal(16) * 0.05).astype(np.float32),
               "fc1.weight": (rng.standard_normal((10, 256)) * 0.05).astype(np.float32),
               "fc1.bias": (rng.standard_normal(10) * 0.05).astype(np.float32)}
    kinds = {"conv1.weight": "conv", "conv1.bias": "bias", "fc1.weight": "fc", "fc1.bias": "bias"}
    return weights, kinds


# --------------------------------------------------------------------------- targets and emulators


class _NotAValue:
    """A parameter value of no type any parameter takes."""

    def __repr__(self) -> str:
        return "<not a value>"


#: Reports of the tiny model per registry and target, so that two contracts share two runs.
_REPORTS: weakref.WeakKeyDictionary[Any, dict[str, list[Any]]] = weakref.WeakKeyDictionary()


def _emulate(registry: Any, target: str, folder: Path, options: Mapping[str, Any] | None = None,
             spec: Any = None, onnx_path: Path | None = None) -> Any:
    spec = spec or registry.get("target", target)
    emulator = registry.emulator(spec.emulator)
    onnx_path = onnx_path or tiny_onnx_model(Path(folder) / "tiny.onnx")
    return emulator.emulate(onnx_path, spec, tiny_dataset(), dict(options or {}))


def _default_options(registry: Any, target: str) -> dict[str, Any]:
    spec = registry.get("emulator", registry.get("target", target).emulator)
    return {o.name: o.default for o in spec.options}


def _reports(registry: Any, target: str, folder: Path, count: int) -> list[Any]:
    """``count`` reports of the tiny model on ``target`` with default options (cached)."""
    got = _REPORTS.setdefault(registry, {}).setdefault(target, [])
    while len(got) < count:
        got.append(_emulate(registry, target, folder, _default_options(registry, target)))
    return got[:count]


def check_emulator_numbers_have_methods(registry: Any, target: str, folder: Path) -> None:
    """Every number of the target's report on the tiny model carries a method."""
    from .emulation.reporting import missing_provenance
    from .interfaces import EmulationReport

    report = _reports(registry, target, folder, 1)[0]
    if not isinstance(report, EmulationReport):
        raise ContractError("target", target, "every number carries a method",
                            f"emulate returned {type(report).__name__}, not an EmulationReport",
                            "return sigdl_core.interfaces.EmulationReport (sigdl_core.emulation.ReportBuilder builds one)")
    missing = missing_provenance(report)
    if missing:
        raise ContractError("target", target, "every number carries a method",
                            "the report gives " + ", ".join(missing) + " without a method",
                            "set report.provenance[field] = Provenance(Method..., 'how far to trust it') for each, "
                            "or fill the report with sigdl_core.emulation.ReportBuilder.set")
    if report.latency_ms_p50 is None and report.fits:
        raise ContractError("target", target, "every number carries a method",
                            "the report of a model that fits gives no latency",
                            "estimate latency_ms_p50 (sigdl_core.emulation.estimate_latency) or measure it")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def check_emulator_analytical_deterministic(registry: Any, target: str, folder: Path) -> None:
    """Two runs on the tiny model agree on every number whose method is analytical."""
    from .emulation.reporting import NUMBER_FIELDS
    from .interfaces import Method

    first, second = _reports(registry, target, folder, 2)
    differ = [f"{f} ({getattr(first, f)!r} then {getattr(second, f)!r})" for f in NUMBER_FIELDS
              if (p := first.provenance.get(f)) is not None and p.method == Method.ANALYTICAL
              and not _same(getattr(first, f), getattr(second, f))]
    if differ:
        raise ContractError("target", target, "analytical numbers are deterministic",
                            "two runs on one model gave different analytical " + ", ".join(differ),
                            "compute analytical numbers from the model and the datasheet only; mark numbers "
                            "that come from a timed run Method.EXECUTED")


def check_emulator_refuses_unknown_option(registry: Any, target: str, folder: Path) -> None:
    """An unknown option is refused, naming the options the emulator declares."""
    spec = registry.get("emulator", registry.get("target", target).emulator)
    declared = [o.name for o in spec.options]
    try:
        _emulate(registry, target, folder, {UNKNOWN_NAME: 1})
    except BadInputError as exc:
        text = exc.one_line()
        unnamed = [n for n in declared if n not in text]
        if UNKNOWN_NAME not in text or unnamed:
            raise ContractError("target", target, "unknown options are refused, naming the allowed ones",
                                f"the error '{text}' does not name "
                                + ", ".join([f"the unknown option '{UNKNOWN_NAME}'"] * (UNKNOWN_NAME not in text)
                                            + [f"the declared option '{n}'" for n in unnamed]),
                                "raise InvalidValueError(f\"unknown option '{key}'\", 'known: ' + ', '.join(names)) "
                                "naming every option of EmulatorSpec.options") from None
        _refuse_bad_option_values(registry, target, folder, spec.options)
        return
    except Exception as exc:
        raise ContractError("target", target, "unknown options are refused, naming the allowed ones",
                            f"an unknown option raised {type(exc).__name__}: {exc}",
                            "check options against EmulatorSpec.options first and raise InvalidValueError") from exc
    raise ContractError("target", target, "unknown options are refused, naming the allowed ones",
                        f"emulate accepted the unknown option '{UNKNOWN_NAME}'",
                        "declare every option in EmulatorSpec.options and refuse any other with InvalidValueError")


def _refuse_bad_option_values(registry: Any, target: str, folder: Path, declared: Sequence[Any]) -> None:
    """Each declared option given a value of no valid type is refused, by its name."""
    contract = "unknown options are refused, naming the allowed ones"
    for option in declared:
        try:
            _emulate(registry, target, folder, {option.name: _NotAValue()})
        except BadInputError as exc:
            if option.name not in exc.one_line():
                raise ContractError("target", target, contract, f"the error '{exc.one_line()}' for "
                                    f"{option.name}=<not a value> does not name the option",
                                    "name the offending option and what it may be") from None
            continue
        except Exception as exc:
            raise ContractError("target", target, contract,
                                f"the option {option.name}=<not a value> raised {type(exc).__name__}: {exc}",
                                "validate options first: sigdl_core.targets.validate_options(OPTIONS, options, "
                                "target)") from exc
        raise ContractError("target", target, contract, f"emulate accepted {option.name}=<not a value>",
                            "validate options first: sigdl_core.targets.validate_options(OPTIONS, options, target)")


def check_emulator_unsupported_operator(registry: Any, target: str, folder: Path) -> None:
    """A model with an operator no runtime implements is refused by that operator's name."""
    op = UNSUPPORTED_OP[1]
    path = tiny_onnx_model(Path(folder) / "unsupported.onnx", unsupported_op=True)
    contract = "an operator the target cannot run is named, not a traceback"
    try:
        report = _emulate(registry, target, folder, _default_options(registry, target), onnx_path=path)
    except BadInputError as exc:
        if op not in exc.one_line():
            raise ContractError("target", target, contract, f"the error '{exc.one_line()}' does not name {op}",
                                "name the offending operator (and its node) in the message") from None
        return
    except Exception as exc:
        raise ContractError("target", target, contract,
                            f"a model with the operator {op} raised {type(exc).__name__}: {exc}",
                            "check the model's operators before running it: report fits=False with a warning "
                            "naming each one, or raise UnsupportedModelError naming it") from exc
    said = " ".join(report.warnings) + " " + repr(report.extra)
    if report.fits or op not in said:
        raise ContractError("target", target, contract,
                            f"the report says fits={report.fits} and its warnings do not name {op}",
                            "set fits=False and add a warning naming each operator the target cannot run")


def check_emulator_memory_exceeded(registry: Any, target: str, folder: Path) -> None:
    """On a copy of the target with 1 KiB of memory, the tiny model does not fit: fits=False."""
    spec = dataclasses.replace(registry.get("target", target), memory_bytes=1024)
    contract = "fits is false, not a crash, when memory is exceeded"
    try:
        report = _emulate(registry, target, folder, _default_options(registry, target), spec=spec)
    except Exception as exc:
        raise ContractError("target", target, contract,
                            f"a model larger than the memory raised {type(exc).__name__}: {exc}",
                            "compare the model's peak memory with target.memory_bytes and report fits=False") from exc
    if report.fits:
        raise ContractError("target", target, contract,
                            "a model of about 6 KB of weights 'fits' in 1 KiB of memory",
                            "set fits=False when weights + live activations exceed target.memory_bytes")


def check_emulator_export_target_model(registry: Any, target: str, folder: Path) -> None:
    """``export_target_model`` returns None or writes a model onnxruntime loads and runs."""
    spec = registry.get("target", target)
    emulator = registry.emulator(spec.emulator)
    out = Path(folder) / "export"
    out.mkdir(exist_ok=True)
    contract = "export_target_model writes a model onnxruntime loads, or None"
    try:
        path = emulator.export_target_model(tiny_onnx_model(Path(folder) / "tiny.onnx"), spec, tiny_dataset(), out)
    except Exception as exc:
        raise ContractError("target", target, contract, f"it raised {type(exc).__name__}: {exc}",
                            "write the model the target runs, or return None where it runs the ONNX model as it is"
                            ) from exc
    if path is None:
        return
    if not Path(path).is_file():
        raise ContractError("target", target, contract, f"it returned '{path}', which is not a file",
                            "return the path of the file it wrote")
    import numpy as np
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        first = session.get_inputs()[0]
        if first.type == "tensor(float)":
            session.run(None, {first.name: tiny_dataset().x_test[:2].astype(np.float32)})
    except Exception as exc:
        raise ContractError("target", target, contract, f"onnxruntime cannot load or run '{path}': {exc}",
                            "write a valid ONNX model (onnx.checker.check_model) with a float32 input") from None


TARGET_CHECKS = (check_emulator_numbers_have_methods, check_emulator_analytical_deterministic,
                 check_emulator_refuses_unknown_option, check_emulator_unsupported_operator,
                 check_emulator_memory_exceeded, check_emulator_export_target_model)


# --------------------------------------------------------------------------- compressors


class _WatchedWeights(Mapping):
    """Named weight arrays that remember whether any array was read (not just the names)."""

    def __init__(self, weights: Mapping[str, Any]) -> None:
        self._weights = dict(weights)
        self.read: list[str] = []

    def __getitem__(self, name: str) -> Any:
        self.read.append(name)
        return self._weights[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._weights)

    def __len__(self) -> int:
        return len(self._weights)


def _compress(registry: Any, name: str, params: Mapping[str, Any]) -> tuple[Any, dict[str, Any], dict[str, str]]:
    import numpy as np

    weights, kinds = tiny_weights()
    given = {n: a.copy() for n, a in weights.items()}
    result = registry.compressor(name).compress(given, kinds, dict(params))
    for n, a in weights.items():
        if not np.array_equal(given[n], a):
            raise ContractError("compressor", name, "compress leaves its input alone",
                                f"compress changed the input array '{n}' in place",
                                "work on copies; hand the compressed weights back in CompressionResult.weights")
    return result, weights, kinds


def _refuse(registry: Any, name: str, params: Mapping[str, Any], bad: str, what: str) -> None:
    weights, kinds = tiny_weights()
    watched = _WatchedWeights(weights)
    contract = "bad parameters are refused before work"
    try:
        registry.compressor(name).compress(watched, kinds, params)
    except BadInputError as exc:
        if bad not in exc.one_line():
            raise ContractError("compressor", name, contract, f"the error '{exc.one_line()}' for {what} does not "
                                f"name '{bad}'", "name the offending parameter") from None
        if watched.read:
            raise ContractError("compressor", name, contract,
                                f"it read the weight array '{watched.read[0]}' before refusing {what}",
                                "check every parameter first, then touch the weights") from None
        return
    except Exception as exc:
        raise ContractError("compressor", name, contract, f"{what} raised {type(exc).__name__}: {exc}",
                            "check parameters against CompressorSpec.params and raise InvalidValueError") from exc
    raise ContractError("compressor", name, contract, f"compress accepted {what}",
                        "refuse parameters that CompressorSpec.params does not document, and values of the wrong "
                        "type or range, with InvalidValueError")


def check_compressor_refuses_bad_params(registry: Any, name: str, folder: Path,
                                        params: Mapping[str, Any] | None = None) -> None:
    """An unknown parameter, and a documented one given a value of no valid type, are refused
    with a BadInputError naming them before any weight array is read."""
    base = dict(params or {})
    _refuse(registry, name, {**base, UNKNOWN_NAME: 1}, UNKNOWN_NAME, f"the unknown parameter '{UNKNOWN_NAME}'")
    for param in registry.get("compressor", name).params:
        _refuse(registry, name, {**base, param: _NotAValue()}, param, f"the parameter {param}=<not a value>")


def _artifact_round_trip(result: Any, weights: Mapping[str, Any], kinds: Mapping[str, str],
                         folder: Path) -> tuple[dict[str, Any], list[Any]]:
    from .artifact import artifact_bytes, load_weights
    from .compression import build_artifact_layers
    from .files import atomic_write_bytes

    layers = build_artifact_layers(result, weights, kinds)
    path = Path(folder) / "conformance.sigdl"
    atomic_write_bytes(path, artifact_bytes(layers, {"conformance": True}))
    decoded, _ = load_weights(path)
    return decoded, layers


def _differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    import numpy as np

    out = [f"'{n}' is missing" for n in a if n not in b]
    for n, x in a.items():
        if n in b:
            y = np.asarray(b[n])
            if np.shape(x) != y.shape:
                out.append(f"'{n}' has shape {y.shape}, not {np.shape(x)}")
            elif not np.array_equal(np.asarray(x, np.float32), y.astype(np.float32), equal_nan=True):
                diff = np.abs(np.asarray(x, np.float64) - y.astype(np.float64))
                out.append(f"'{n}' differs in {int(np.count_nonzero(diff))} elements (at most {float(np.nanmax(diff)):.3g})")
    return out


def check_compressor_projection(registry: Any, name: str, folder: Path,
                                params: Mapping[str, Any] | None = None) -> None:
    """The projection is idempotent and keeps the compressed form through an optimizer step."""
    import numpy as np

    result, original, kinds = _compress(registry, name, params or {})
    contract = "the projection is idempotent and keeps the compressed form through an optimizer step"
    projection = result.projection
    if projection is None:
        same_shape = {n: a for n, a in result.weights.items() if n in original and np.shape(original[n]) == np.shape(a)}
        changed = _differences({n: original[n] for n in same_shape}, same_shape)
        if changed:
            raise ContractError("compressor", name, contract,
                                "compress changed the weights (" + "; ".join(changed[:2]) + ") but returned no "
                                "projection, so retraining undoes it",
                                "return CompressionResult(projection=...) that puts weights back in the compressed "
                                "form (re-applies masks, re-ties shared weights, rounds to the grid)")
        if len(same_shape) == len(result.weights) == len(original):
            pytest.skip(f"compressor '{name}' leaves the weights as they are: it has no projection to test")

        def projection(weights: dict[str, Any]) -> None:  # a thinner dense model keeps its shapes by itself
            return None
    once = {n: np.array(a, np.float32, copy=True) for n, a in result.weights.items()}
    projection(once)
    changed = _differences(result.weights, once)
    if changed:
        raise ContractError("compressor", name, contract,
                            "projecting the compressed weights changed them: " + "; ".join(changed[:3]),
                            "the projection of weights already in the compressed form must leave them as they are")
    rng = np.random.default_rng(1)
    stepped = {n: (a - np.float32(0.01) * rng.standard_normal(a.shape).astype(np.float32)).astype(np.float32)
               for n, a in once.items()}
    projection(stepped)
    twice = {n: a.copy() for n, a in stepped.items()}
    projection(twice)
    changed = _differences(stepped, twice)
    if changed:
        raise ContractError("compressor", name, contract,
                            "projecting twice after an optimizer step gave other weights than projecting once: "
                            + "; ".join(changed[:3]), "make the projection idempotent: P(P(w)) == P(w)")
    try:
        decoded, _ = _artifact_round_trip(result, stepped, kinds, folder)
    except BadInputError as exc:
        raise ContractError("compressor", name, contract,
                            f"after an optimizer step and the projection the weights no longer fit the "
                            f"compressed form: {exc.one_line()}",
                            "make the projection restore the form compress left (zeros where the mask removed, "
                            "values on the codebook or grid)") from None
    lost = _differences(stepped, decoded)
    if lost:
        raise ContractError("compressor", name, contract,
                            "after an optimizer step and the projection the .sigdl artifact no longer holds the "
                            "weights exactly: " + "; ".join(lost[:3]),
                            "make the projection put the weights back on the compressed form (tie shared weights, "
                            "round to the quantization grid)")


def check_compressor_encoded_size(registry: Any, name: str, folder: Path,
                                  params: Mapping[str, Any] | None = None) -> None:
    """Each layer's reported bits match the bits its ``.sigdl`` layer takes."""
    result, _, kinds = _compress(registry, name, params or {})
    contract = "the encoded size matches the artifact's bytes"
    if not result.layers:
        pytest.skip(f"compressor '{name}' reports no per-layer encoding (it changes no layer's size)")
    _, layers = _artifact_round_trip(result, result.weights, kinds, folder)
    stored = {layer.name: layer for layer in layers}
    wrong = []
    for lname, enc in result.layers.items():
        layer = stored.get(lname)
        if layer is None:
            wrong.append(f"'{lname}' is reported but not stored")
            continue
        rep = layer.report()
        actual = int(rep["weight_bits"]) + int(rep["index_bits"])
        claimed = int(enc.weight_bits) + int(enc.index_bits)
        if abs(actual - claimed) > 0.01 * actual + 16 * len(layer.streams):
            wrong.append(f"'{lname}' reports {claimed:,} bits ({enc.weight_bits:,} weight + {enc.index_bits:,} index)"
                         f" but its .sigdl layer takes {actual:,} ({rep['weight_bits']:,} + {rep['index_bits']:,})")
    if wrong:
        raise ContractError("compressor", name, contract, "; ".join(wrong[:3]),
                            "report in LayerEncoding the bits the artifact spends on the layer: value stream plus "
                            "codebook/scales as weight_bits, gap stream as index_bits (sigdl_core.compression."
                            "build_artifact_layers(result)[i].report() gives them)")


def check_compressor_sigdl_round_trip(registry: Any, name: str, folder: Path,
                                      params: Mapping[str, Any] | None = None) -> None:
    """The compressed weights come back exactly from a ``.sigdl`` file."""
    result, _, kinds = _compress(registry, name, params or {})
    contract = "the weights round-trip bit-exactly through .sigdl"
    try:
        decoded, _ = _artifact_round_trip(result, result.weights, kinds, folder)
    except BadInputError as exc:
        raise ContractError("compressor", name, contract, f"the artifact cannot hold them: {exc.one_line()}",
                            "leave CompressionResult.state as sigdl_core.compression documents (masks, "
                            "representation, codebooks, int8)") from None
    lost = _differences(result.weights, decoded)
    if lost:
        raise ContractError("compressor", name, contract, "decoded weights differ: " + "; ".join(lost[:3]),
                            "describe the weights' form in CompressionResult.state so the artifact stores them "
                            "exactly (see sigdl_core.compression)")


COMPRESSOR_CHECKS = (check_compressor_refuses_bad_params, check_compressor_projection,
                     check_compressor_encoded_size, check_compressor_sigdl_round_trip)


# --------------------------------------------------------------------------- frameworks


def _framework_model(registry: Any, framework: str, folder: Path) -> tuple[Any, Any, tuple[int, ...], int, str | None]:
    """The framework, a model of it, its input shape and classes, and its architecture name."""
    fw = registry.framework(framework)
    models = [m for m in registry.specs("model") if m.framework == framework]
    if models:
        spec = min(models, key=lambda m: (m.parameters, m.name))
        return fw, fw.build(spec.name, spec.input_shape, spec.num_classes, seed=0), tuple(spec.input_shape), \
            spec.num_classes, spec.name
    suffixes = registry.get("framework", framework).suffixes
    if ".onnx" in suffixes:
        return fw, fw.load(tiny_onnx_model(Path(folder) / "tiny.onnx")), (1, 8, 8), 10, None
    pytest.skip(f"framework '{framework}' registers no model it can build and reads no .onnx file")


def check_framework_weights_round_trip(registry: Any, framework: str, folder: Path) -> None:
    """Named weights come back as written, through set/get_weights and save/load."""
    import numpy as np

    fw, model, shape, classes, arch = _framework_model(registry, framework, folder)
    contract = "named weights round-trip"
    weights = fw.get_weights(model)
    bad = [n for n, a in weights.items() if not isinstance(a, np.ndarray) or a.dtype != np.float32]
    if bad or not weights:
        raise ContractError("framework", framework, contract,
                            f"get_weights gave {len(weights)} arrays, {len(bad)} not float32 NumPy (e.g. {bad[:1]})",
                            "return every parameter and float buffer as a named float32 numpy array")
    kinds = fw.layer_kinds(model)
    if set(kinds) != set(weights):
        raise ContractError("framework", framework, contract, "layer_kinds names other weights than get_weights",
                            "give a LayerKind for exactly the names get_weights returns")
    changed = {n: (a * np.float32(1.5) + np.float32(0.25)).astype(np.float32) for n, a in weights.items()}
    fw.set_weights(model, changed)
    back = _differences(changed, fw.get_weights(model))
    if back:
        raise ContractError("framework", framework, contract, "set_weights then get_weights: " + "; ".join(back[:3]),
                            "write every named array into the model, and read back what is there")
    suffix = (registry.get("framework", framework).suffixes or (".model",))[0]
    path = fw.save(model, Path(folder) / f"round_trip{suffix}")
    loaded = fw.load(Path(path), architecture=arch, input_shape=shape, num_classes=classes)
    back = _differences(changed, fw.get_weights(loaded))
    if back:
        raise ContractError("framework", framework, contract, "save then load: " + "; ".join(back[:3]),
                            "save every weight and load them back exactly")


def check_framework_onnx_matches(registry: Any, framework: str, folder: Path) -> None:
    """The ONNX export gives the framework's own top-1 class on every sample."""
    import numpy as np
    import onnxruntime as ort

    from .interfaces import ArrayDataset

    fw, model, shape, classes, _ = _framework_model(registry, framework, folder)
    contract = "ONNX export matches the framework's outputs"
    path = fw.export_onnx(model, Path(folder) / "export.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ins, outs = [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]
    if ins[:1] != ["input"] or outs[:1] != ["logits"]:
        raise ContractError("framework", framework, contract, f"the export's input is {ins} and output {outs}",
                            "name the input 'input' and the output 'logits'")
    x = np.random.default_rng(0).standard_normal((12, *shape)).astype(np.float32)
    try:
        logits = np.concatenate([session.run(None, {"input": x[:5]})[0], session.run(None, {"input": x[5:]})[0]])
    except Exception as exc:
        raise ContractError("framework", framework, contract, f"the export does not run at batch 5 and 7: {exc}",
                            "make the batch axis dynamic") from None
    top = np.sort(logits, axis=1)
    clear = (top[:, -1] - top[:, -2]) > 1e-4 * (1 + np.abs(top[:, -1]))  # skip near ties
    if not clear.any():
        pytest.skip(f"framework '{framework}': its model gives tied outputs on random inputs")
    labels = np.argmax(logits, axis=1).astype(np.int64)[clear]
    data = ArrayDataset("conformance", x[clear], labels, x[clear], labels, num_classes=classes)
    acc = fw.evaluate(model, data, "test")
    if acc.top1 < 1.0:
        raise ContractError("framework", framework, contract,
                            f"the framework agrees with its ONNX export's top-1 class on {acc.top1:.0%} of "
                            f"{int(clear.sum())} samples",
                            "export the same computation the framework evaluates (eval mode, same preprocessing)")


class _RunsCode:
    """Unpickling this creates the folder ``marker``: a stand-in for code hidden in a model file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        import os

        return (os.makedirs, (self.marker,))


def check_framework_loading_runs_no_code(registry: Any, framework: str, folder: Path) -> None:
    """Loading a file holding a code-running pickle raises BadInputError and runs nothing."""
    import pickle

    fw = registry.framework(framework)
    suffixes = registry.get("framework", framework).suffixes
    contract = "loading never runs code from a file"
    if not suffixes:
        pytest.skip(f"framework '{framework}' reads no files")
    models = [m for m in registry.specs("model") if m.framework == framework]
    arch = min(models, key=lambda m: m.parameters) if models else None
    for i, suffix in enumerate(suffixes):
        marker = Path(folder) / f"code-ran-{i}"
        path = Path(folder) / f"hostile{suffix}"
        path.write_bytes(pickle.dumps(_RunsCode(marker), protocol=2))
        error: Exception | None = None
        try:
            fw.load(path, architecture=arch.name if arch else None,
                    input_shape=arch.input_shape if arch else None, num_classes=arch.num_classes if arch else None)
        except Exception as exc:
            error = exc
        if marker.exists():
            raise ContractError("framework", framework, contract, f"loading a {suffix} file ran code from it",
                                "never unpickle model files: load with a loader that cannot run code "
                                "(torch.load(weights_only=True), np.load(allow_pickle=False), Keras safe_mode)")
        if error is None:
            raise ContractError("framework", framework, contract, f"a pickle in a {suffix} file loaded as a model",
                                "check what the file holds and refuse anything that is not a model")
        if not isinstance(error, BadInputError):
            raise ContractError("framework", framework, contract,
                                f"loading a hostile {suffix} file raised {type(error).__name__}: {error}",
                                "catch the loader's errors and raise ModelFileError (or UnsafeFileError)")


def check_framework_distills(registry: Any, framework: str, folder: Path) -> None:
    """A framework that says it distils (``Framework.distills``) gives logits that rank as its
    evaluation does, and trains with a ``teacher``; one that does not has nothing to show."""
    import numpy as np

    from .interfaces import ArrayDataset, Teacher, TrainSettings

    if not registry.framework(framework).distills:
        return  # retraining uses the labels alone: the core never passes it a teacher
    fw, model, shape, classes, _ = _framework_model(registry, framework, folder)
    contract = "distillation: logits and a teacher"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, *shape)).astype(np.float32)
    y = rng.integers(0, classes, 16).astype(np.int64)
    data = ArrayDataset("conformance", x, y, x, y, num_classes=classes)
    logits = np.asarray(fw.logits(model, data, "train"))
    if logits.shape != (16, classes) or not np.isfinite(logits).all():
        raise ContractError("framework", framework, contract,
                            f"logits on 16 samples of {classes} classes have shape {logits.shape}",
                            "return one finite row of pre-softmax outputs per sample of the split")
    if not np.array_equal(logits.argmax(1) == y, np.asarray(fw.evaluate(model, data, "train").correct)):
        raise ContractError("framework", framework, contract, "the logits' top-1 is not what evaluate counts",
                            "compute logits and accuracy with the same forward pass (eval mode)")
    if fw.training_unavailable(model) is not None:
        return
    try:
        fw.train(model, data, TrainSettings(epochs=1, batch_size=8, lr=1e-3),
                 teacher=Teacher(logits=logits, weight=0.9, temperature=4.0))
    except TypeError as exc:
        raise ContractError("framework", framework, contract, f"train does not take a teacher: {exc}",
                            "accept train(..., teacher=Teacher) or set distills = False") from None


FRAMEWORK_CHECKS = (check_framework_weights_round_trip, check_framework_onnx_matches,
                    check_framework_loading_runs_no_code, check_framework_distills)


# --------------------------------------------------------------------------- test classes


class TargetContract:
    """The target/emulator contracts as tests. ``targets``: names to test (None: all installed);
    ``plugins``: plugin objects to register instead of the installed ones (None: installed)."""

    targets: Sequence[str] | None = None
    plugins: Sequence[object] | None = None

    def test_numbers_have_methods(self, sigdl_conformance_registry: Any, sigdl_conformance_target: str,
                                  tmp_path: Path) -> None:
        check_emulator_numbers_have_methods(sigdl_conformance_registry, sigdl_conformance_target, tmp_path)

    def test_analytical_numbers_deterministic(self, sigdl_conformance_registry: Any, sigdl_conformance_target: str,
                                              tmp_path: Path) -> None:
        check_emulator_analytical_deterministic(sigdl_conformance_registry, sigdl_conformance_target, tmp_path)

    def test_unknown_option_refused(self, sigdl_conformance_registry: Any, sigdl_conformance_target: str,
                                    tmp_path: Path) -> None:
        check_emulator_refuses_unknown_option(sigdl_conformance_registry, sigdl_conformance_target, tmp_path)

    def test_unsupported_operator_named(self, sigdl_conformance_registry: Any, sigdl_conformance_target: str,
                                        tmp_path: Path) -> None:
        check_emulator_unsupported_operator(sigdl_conformance_registry, sigdl_conformance_target, tmp_path)

    def test_memory_exceeded_does_not_fit(self, sigdl_conformance_registry: Any, sigdl_conformance_target: str,
                                          tmp_path: Path) -> None:
        check_emulator_memory_exceeded(sigdl_conformance_registry, sigdl_conformance_target, tmp_path)

    def test_export_target_model_loads(self, sigdl_conformance_registry: Any, sigdl_conformance_target: str,
                                       tmp_path: Path) -> None:
        check_emulator_export_target_model(sigdl_conformance_registry, sigdl_conformance_target, tmp_path)


class CompressorContract:
    """The compressor contracts as tests. ``compressors``: names (None: all installed);
    ``params``: compressor name → the parameters to test it with (default: none);
    ``plugins``: as for :class:`TargetContract`."""

    compressors: Sequence[str] | None = None
    params: Mapping[str, Mapping[str, Any]] = {}
    plugins: Sequence[object] | None = None

    def _params(self, name: str) -> Mapping[str, Any]:
        return dict(self.params.get(name, {}))

    def test_bad_params_refused_before_work(self, sigdl_conformance_registry: Any, sigdl_conformance_compressor: str,
                                            tmp_path: Path) -> None:
        check_compressor_refuses_bad_params(sigdl_conformance_registry, sigdl_conformance_compressor, tmp_path,
                                            self._params(sigdl_conformance_compressor))

    def test_projection_keeps_compressed_form(self, sigdl_conformance_registry: Any,
                                              sigdl_conformance_compressor: str, tmp_path: Path) -> None:
        check_compressor_projection(sigdl_conformance_registry, sigdl_conformance_compressor, tmp_path,
                                    self._params(sigdl_conformance_compressor))

    def test_encoded_size_matches_artifact(self, sigdl_conformance_registry: Any, sigdl_conformance_compressor: str,
                                           tmp_path: Path) -> None:
        check_compressor_encoded_size(sigdl_conformance_registry, sigdl_conformance_compressor, tmp_path,
                                      self._params(sigdl_conformance_compressor))

    def test_sigdl_round_trip(self, sigdl_conformance_registry: Any, sigdl_conformance_compressor: str,
                              tmp_path: Path) -> None:
        check_compressor_sigdl_round_trip(sigdl_conformance_registry, sigdl_conformance_compressor, tmp_path,
                                          self._params(sigdl_conformance_compressor))


class FrameworkContract:
    """The framework contracts as tests. ``frameworks``: names (None: all installed);
    ``plugins``: as for :class:`TargetContract`."""

    frameworks: Sequence[str] | None = None
    plugins: Sequence[object] | None = None

    def test_weights_round_trip(self, sigdl_conformance_registry: Any, sigdl_conformance_framework: str,
                                tmp_path: Path) -> None:
        check_framework_weights_round_trip(sigdl_conformance_registry, sigdl_conformance_framework, tmp_path)

    def test_onnx_export_matches(self, sigdl_conformance_registry: Any, sigdl_conformance_framework: str,
                                 tmp_path: Path) -> None:
        check_framework_onnx_matches(sigdl_conformance_registry, sigdl_conformance_framework, tmp_path)

    def test_loading_runs_no_code(self, sigdl_conformance_registry: Any, sigdl_conformance_framework: str,
                                  tmp_path: Path) -> None:
        check_framework_loading_runs_no_code(sigdl_conformance_registry, sigdl_conformance_framework, tmp_path)

    def test_distills(self, sigdl_conformance_registry: Any, sigdl_conformance_framework: str,
                      tmp_path: Path) -> None:
        check_framework_distills(sigdl_conformance_registry, sigdl_conformance_framework, tmp_path)


#: The fixture each contract class parametrises, the kind it names and the class attribute.
CONTRACT_FIXTURES: dict[str, tuple[str, str]] = {
    "sigdl_conformance_target": ("target", "targets"),
    "sigdl_conformance_compressor": ("compressor", "compressors"),
    "sigdl_conformance_framework": ("framework", "frameworks"),
}
