"""The conformance suite fails a deliberately broken plugin, one per contract, saying what to fix.

Each broken plugin is a small real plugin (hook implementations registered through the
``sigdl_plugins`` fixture, the same loading path as installed plugins) that breaks exactly
one contract of sigdl_core.conformance; a correct sibling passes every contract, so each
failure is that contract's doing.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sigdl_core import hookimpl
from sigdl_core import conformance as c
from sigdl_core.conformance import ContractError
from sigdl_core.errors import InvalidValueError
from sigdl_core.interfaces import (
    CompressionResult,
    Compressor,
    CompressorSpec,
    Emulator,
    EmulatorOption,
    EmulatorSpec,
    FrameworkSpec,
    LayerEncoding,
    Method,
    ModelSpec,
    TargetSpec,
)

# --------------------------------------------------------------------------- targets

OPTIONS = (EmulatorOption("precision", str, "fp32", "number format", choices=("fp32",)),
           EmulatorOption("max_samples", int, 100, "test samples"))


class RooflineEmulator(Emulator):
    """A correct emulator: operator check, roofline latency, memory against the target's."""

    name = "board"

    def emulate(self, onnx_path: Path, target: TargetSpec, data: Any, options: Mapping[str, Any] | None = None):
        import onnx

        from sigdl_core.emulation import ReportBuilder, analyze_model, estimate_latency, machine_from_target
        from sigdl_core.targets import validate_options

        validate_options(OPTIONS, options, target)
        model = onnx.load(str(onnx_path))
        rb = ReportBuilder(target.name, self.name)
        unknown = sorted({n.op_type for n in model.graph.node if n.domain not in ("", "ai.onnx")})
        if unknown:
            rb.set("fits", False, Method.ANALYTICAL, "operator check")
            rb.warn("unsupported operator(s): " + ", ".join(unknown))
            return rb.finish()
        cost = analyze_model(model)
        est = estimate_latency(cost, machine_from_target(target))
        rb.set("latency_ms_p50", est.latency_ms, Method.ANALYTICAL, "roofline")
        rb.set("fps_batch1", est.fps, Method.ANALYTICAL, "1 / latency")
        peak = int(cost.weight_bytes + cost.peak_activation_bytes)
        rb.set("peak_memory_bytes", peak, Method.ANALYTICAL, "weights + live activations")
        rb.set("fits", peak <= target.memory_bytes, Method.ANALYTICAL, "peak memory against the target's")
        return rb.finish()


class NumberWithoutMethod(RooflineEmulator):
    def emulate(self, *args: Any, **kwargs: Any):
        report = super().emulate(*args, **kwargs)
        report.provenance.pop("latency_ms_p50", None)
        return report


class RandomAnalyticalLatency(RooflineEmulator):
    def emulate(self, *args: Any, **kwargs: Any):
        report = super().emulate(*args, **kwargs)
        if report.latency_ms_p50 is not None:
            report.latency_ms_p50 *= float(np.random.default_rng().uniform(1.0, 2.0))
        return report


class AcceptsAnyOption(RooflineEmulator):
    def emulate(self, onnx_path: Path, target: TargetSpec, data: Any, options: Mapping[str, Any] | None = None):
        return super().emulate(onnx_path, target, data, None)


class CrashesOnUnknownOperator(RooflineEmulator):
    def emulate(self, onnx_path: Path, target: TargetSpec, data: Any, options: Mapping[str, Any] | None = None):
        import onnx

        kernels = {"Conv": 1, "Relu": 1, "Flatten": 1, "Gemm": 1}
        for node in onnx.load(str(onnx_path)).graph.node:
            kernels[node.op_type]  # KeyError for an operator it has no kernel for
        return super().emulate(onnx_path, target, data, options)


class IgnoresMemory(RooflineEmulator):
    def emulate(self, *args: Any, **kwargs: Any):
        report = super().emulate(*args, **kwargs)
        if report.peak_memory_bytes is not None:
            report.fits = True  # whatever the memory says
        return report


class ExportsGarbage(RooflineEmulator):
    def export_target_model(self, onnx_path: Path, target: TargetSpec, data: Any, folder: Path) -> Path:
        out = Path(folder) / "model.board.onnx"
        out.write_bytes(b"not an onnx model")
        return out


class TargetPlugin:
    """A plugin registering the target ``board`` re-tested by ``emulator``."""

    def __init__(self, emulator: type[Emulator]) -> None:
        self.emulator = emulator

    @hookimpl
    def sigdl_targets(self) -> list[TargetSpec]:
        return [TargetSpec("board", "a test board", "board", cores=2, clock_hz=1e9, memory_bytes=1 << 30,
                           memory_bandwidth=10e9, peak_ops={"fp32": 20e9}, tdp_w=5.0, idle_w=1.0)]

    @hookimpl
    def sigdl_emulators(self) -> list[EmulatorSpec]:
        return [EmulatorSpec("board", "a test emulator", factory=self.emulator, options=OPTIONS)]


def test_a_correct_target_passes_every_contract(sigdl_plugins, tmp_path) -> None:
    registry = sigdl_plugins(("board", TargetPlugin(RooflineEmulator))).registry
    for check in c.TARGET_CHECKS:
        check(registry, "board", tmp_path)


@pytest.mark.parametrize("emulator, check, says", [
    (NumberWithoutMethod, c.check_emulator_numbers_have_methods,
     r"gives latency_ms_p50 without a method\. Fix: set report\.provenance"),
    (RandomAnalyticalLatency, c.check_emulator_analytical_deterministic,
     r"different analytical latency_ms_p50 .* Fix: compute analytical numbers from the model and the datasheet"),
    (AcceptsAnyOption, c.check_emulator_refuses_unknown_option,
     r"accepted the unknown option 'sigdl_conformance_no_such_name'\. Fix: declare every option"),
    (CrashesOnUnknownOperator, c.check_emulator_unsupported_operator,
     r"SigdlConformanceOp raised KeyError.* Fix: check the model's operators before running it"),
    (IgnoresMemory, c.check_emulator_memory_exceeded,
     r"'fits' in 1 KiB of memory\. Fix: set fits=False when weights \+ live activations exceed"),
    (ExportsGarbage, c.check_emulator_export_target_model,
     r"onnxruntime cannot load or run .*model\.board\.onnx.* Fix: write a valid ONNX model"),
])
def test_a_broken_target_fails_its_contract_saying_what_to_fix(sigdl_plugins, tmp_path, emulator, check,
                                                              says) -> None:
    registry = sigdl_plugins(("board", TargetPlugin(emulator))).registry
    with pytest.raises(ContractError, match=r"^target 'board' breaks the contract '.+': " + f".*{says}"):
        check(registry, "board", tmp_path)


# --------------------------------------------------------------------------- compressors


class MaskingCompressor(Compressor):
    """A correct compressor: zeroes weights below ``threshold``; masks, projection, true sizes."""

    name = "mask"
    known = ("threshold",)

    def check(self, params: Mapping[str, Any]) -> float:
        for key in params:
            if key not in self.known:
                raise InvalidValueError(f"unknown parameter '{key}'", "known: threshold")
        threshold = params.get("threshold", 0.1)
        if not isinstance(threshold, (int, float)):
            raise InvalidValueError(f"parameter threshold={threshold!r} must be a number")
        return float(threshold)

    def encode(self, weights: Mapping[str, np.ndarray], kinds: Mapping[str, str],
               masks: Mapping[str, np.ndarray]) -> dict[str, LayerEncoding]:
        from sigdl_core.artifact import encode_float_layer
        from sigdl_core.compression import DEFAULT_GAP_BITS

        out = {}
        for name, mask in masks.items():
            rep = encode_float_layer(name, weights[name], False, mask, DEFAULT_GAP_BITS[kinds[name]], "fixed").report()
            out[name] = LayerEncoding(name, weights[name].shape, int(mask.sum()), rep["weight_bits"], rep["index_bits"])
        return out

    def project(self, masks: Mapping[str, np.ndarray]):
        def keep_zeros(arrays: dict[str, np.ndarray]) -> None:
            for name, mask in masks.items():
                arrays[name][~mask] = 0.0
        return keep_zeros

    def compress(self, weights, kinds, params, previous=None) -> CompressionResult:
        threshold = self.check(params)
        out = {n: np.array(weights[n], np.float32) for n in weights}
        masks = {n: np.abs(w) >= threshold for n, w in out.items() if kinds.get(n) in ("conv", "fc")}
        for n, m in masks.items():
            out[n][~m] = 0.0
        return CompressionResult(out, self.project(masks), self.encode(out, kinds, masks), {"masks": masks})


class AcceptsAnyParameter(MaskingCompressor):
    def check(self, params: Mapping[str, Any]) -> float:
        return float(params.get("threshold", 0.1))


class ReadsWeightsFirst(MaskingCompressor):
    def compress(self, weights, kinds, params, previous=None) -> CompressionResult:
        scale = max(float(np.abs(weights[n]).max()) for n in weights)  # work before the check
        assert scale > 0
        return super().compress(weights, kinds, params, previous)


class ChecksValuesLate(MaskingCompressor):
    def check(self, params: Mapping[str, Any]) -> float:
        for key in params:
            if key not in self.known:
                raise InvalidValueError(f"unknown parameter '{key}'", "known: threshold")
        return 0.1

    def compress(self, weights, kinds, params, previous=None) -> CompressionResult:
        result = super().compress(weights, kinds, params, previous)  # reads every weight
        if not isinstance(params.get("threshold", 0.1), (int, float)):
            raise InvalidValueError(f"parameter threshold={params['threshold']!r} must be a number")
        return result


class NoProjection(MaskingCompressor):
    def compress(self, *args: Any, **kwargs: Any) -> CompressionResult:
        result = super().compress(*args, **kwargs)
        result.projection = None
        return result


class ProjectionForgetsMasks(MaskingCompressor):
    def project(self, masks: Mapping[str, np.ndarray]):
        return lambda arrays: None


class UndercountsBits(MaskingCompressor):
    def encode(self, weights, kinds, masks) -> dict[str, LayerEncoding]:
        return {n: LayerEncoding(n, weights[n].shape, int(m.sum()), 32 * int(m.sum()), 0) for n, m in masks.items()}


class ClaimsFloat16(MaskingCompressor):
    def compress(self, *args: Any, **kwargs: Any) -> CompressionResult:
        result = super().compress(*args, **kwargs)
        result.state["representation"] = {n: "fp16" for n in result.state["masks"]}  # the values are float32
        return result


class CompressorPlugin:
    def __init__(self, compressor: type[Compressor]) -> None:
        self.compressor = compressor

    @hookimpl
    def sigdl_compressors(self) -> list[CompressorSpec]:
        return [CompressorSpec("mask", "a test compressor", factory=self.compressor, params={"threshold": "t"})]


def test_a_correct_compressor_passes_every_contract(sigdl_plugins, tmp_path) -> None:
    registry = sigdl_plugins(("mask", CompressorPlugin(MaskingCompressor))).registry
    for check in c.COMPRESSOR_CHECKS:
        check(registry, "mask", tmp_path)


@pytest.mark.parametrize("compressor, check, says", [
    (AcceptsAnyParameter, c.check_compressor_refuses_bad_params,
     r"accepted the unknown parameter 'sigdl_conformance_no_such_name'\. Fix: refuse parameters"),
    (ReadsWeightsFirst, c.check_compressor_refuses_bad_params,
     r"read the weight array 'conv1\.weight' before refusing the unknown parameter .* Fix: check every parameter first"),
    (ChecksValuesLate, c.check_compressor_refuses_bad_params,
     r"read the weight array 'conv1\.weight' before refusing the parameter threshold=<not a value>\. Fix: check"),
    (NoProjection, c.check_compressor_projection,
     r"changed the weights .* but returned no projection, so retraining undoes it\. Fix: return CompressionResult"),
    (ProjectionForgetsMasks, c.check_compressor_projection,
     r"no longer fit the compressed form: .*non-zero where its pruning mask removed it.* Fix: make the projection"),
    (UndercountsBits, c.check_compressor_encoded_size,
     r"'conv1\.weight' reports [\d,]+ bits \([\d,]+ weight \+ 0 index\) but its \.sigdl layer takes .* Fix: report"),
    (ClaimsFloat16, c.check_compressor_sigdl_round_trip,
     r"decoded weights differ: 'conv1\.weight' differs in \d+ elements.* Fix: describe the weights' form"),
])
def test_a_broken_compressor_fails_its_contract_saying_what_to_fix(sigdl_plugins, tmp_path, compressor, check,
                                                                  says) -> None:
    registry = sigdl_plugins(("mask", CompressorPlugin(compressor))).registry
    with pytest.raises(ContractError, match=r"^compressor 'mask' breaks the contract '.+': " + f".*{says}"):
        check(registry, "mask", tmp_path)


# --------------------------------------------------------------------------- frameworks


def _framework_plugin(numpy_plugin: Any, override: str | None) -> Any:
    """The core tests' NumPy framework as 'flat', with one method broken (or none)."""
    base = numpy_plugin.NumpyFramework

    class Broken(base):
        name = "flat"

        def set_weights(self, model, weights):
            if override == "set_weights":
                weights = {k: v for k, v in weights.items() if k != "fc.bias"}  # forgets the bias
            super().set_weights(model, weights)

        def export_onnx(self, model, path, batch_size=1):
            if override != "export_onnx":
                return super().export_onnx(model, path, batch_size)
            flipped = type(model)(model.framework, model.architecture, model.input_shape, model.num_classes,
                                  {k: -v for k, v in model.native.items()})  # exports other weights
            return super().export_onnx(flipped, path, batch_size)

        def load(self, path, architecture=None, input_shape=None, num_classes=None):
            if override == "load":
                with open(path, "rb") as fh:
                    pickle.load(fh)  # runs whatever the file holds
            return super().load(path, architecture, input_shape, num_classes)

    class Plugin:
        @hookimpl
        def sigdl_frameworks(self) -> list[FrameworkSpec]:
            return [FrameworkSpec("flat", "a test framework", factory=Broken, suffixes=(".flat.npz",))]

        @hookimpl
        def sigdl_models(self) -> list[ModelSpec]:
            return [ModelSpec("flat-softmax", "flat", "softmax regression", (64,), 10, 650)]

    return ("flat", Plugin())


def test_a_correct_framework_passes_every_contract(sigdl_plugins, numpy_plugin, tmp_path) -> None:
    registry = sigdl_plugins(_framework_plugin(numpy_plugin, None)).registry
    for check in c.FRAMEWORK_CHECKS:
        check(registry, "flat", tmp_path)


@pytest.mark.parametrize("override, check, says", [
    ("set_weights", c.check_framework_weights_round_trip,
     r"set_weights then get_weights: 'fc\.bias' differs .* Fix: write every named array into the model"),
    ("export_onnx", c.check_framework_onnx_matches,
     r"agrees with its ONNX export's top-1 class on \d+% of \d+ samples\. Fix: export the same computation"),
    ("load", c.check_framework_loading_runs_no_code,
     r"loading a \.flat\.npz file ran code from it\. Fix: never unpickle model files"),
])
def test_a_broken_framework_fails_its_contract_saying_what_to_fix(sigdl_plugins, numpy_plugin, tmp_path, override,
                                                                 check, says) -> None:
    registry = sigdl_plugins(_framework_plugin(numpy_plugin, override)).registry
    with pytest.raises(ContractError, match=r"^framework 'flat' breaks the contract '.+': " + f".*{says}"):
        check(registry, "flat", tmp_path)


# --------------------------------------------------------------------------- the one-line form


def test_the_one_line_contract_class_reports_the_broken_plugin(tmp_path) -> None:
    (tmp_path / "test_board.py").write_text(
        "from sigdl_core.testing import TargetContract\n"
        "from test_conformance_contracts import IgnoresMemory, TargetPlugin\n\n"
        "class TestBoard(TargetContract): targets = ['board']; plugins = [('board', TargetPlugin(IgnoresMemory))]\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                          str(tmp_path / "test_board.py")], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=120)
    assert out.stdout.strip().splitlines()[-1].startswith("1 failed, 5 passed"), out.stdout[-3000:]
    assert "FAILED test_board.py::TestBoard::test_memory_exceeded_does_not_fit[board]" in out.stdout
    assert "breaks the contract 'fits is false, not a crash, when memory is exceeded'" in out.stdout
