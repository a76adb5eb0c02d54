"""Timing reused between models of one graph: a run times each graph signature once.

Unstructured pruning, quantization to a codebook and weight sharing change the *values* of
a model's weights, never its ONNX graph: the same operators on tensors of the same shapes and
types. The execution harness (:func:`~sigdl_core.emulation.harness.run_limited`) runs such a
model densely with onnxruntime, whose kernels do the same work whatever the values are, so
its timing, memory and profile are a property of the graph. Inside :func:`timing_reuse` the
harness keys what it measured by :func:`graph_signature` (operators, attributes, initializer
names, shapes and dtypes, inputs and outputs: no weight values) together with every argument
of the measurement, and a later model with the same key reuses it: only its accuracy is
computed, with onnxruntime in this process and the child's session settings. The result then
says so (``HarnessResult.timing_reused`` and a warning the emulator's report carries).

Outside a :func:`timing_reuse` block nothing is cached: ``sigdl test`` times every model.
The search enters one block per run (:class:`~sigdl_core.search.Workbench`).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np

from ..interfaces import Accuracy

#: The active cache: key -> (HarnessResult, the model path first timed), or None (no reuse).
_CACHE: ContextVar[dict[str, Any] | None] = ContextVar("sigdl_timing_reuse", default=None)
#: The cache's entry listing, in order, the measurement each reuse took (see :func:`reused_since`).
HITS = "reused"


@contextlib.contextmanager
def timing_reuse(cache: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Within the block, the harness times each graph signature (and measurement) once.

    ``cache`` carries the timings from one block to the next (a run keeps one dict for all
    its candidates); a new dict when None. Yields the cache.
    """
    cache = {} if cache is None else cache
    token = _CACHE.set(cache)
    try:
        yield cache
    finally:
        _CACHE.reset(token)


def graph_signature(path: Path | str) -> str:
    """A hash of the ONNX graph without its weight values: every node's operator, domain,
    inputs, outputs and attributes (a tensor attribute by its dtype and shape), every
    initializer's name, dtype and shape, and the graph's inputs and outputs with their types.

    Two models with one signature differ at most in the values of their weights.
    """
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return _graph_hash(model.graph, [(o.domain, o.version) for o in model.opset_import])


def _graph_hash(graph: Any, opsets: list | None = None) -> str:
    from google.protobuf.json_format import MessageToDict

    def attr(a: Any) -> Any:
        if a.HasField("t"):
            return ["tensor", a.t.data_type, list(a.t.dims)]
        if a.HasField("g"):
            return ["graph", _graph_hash(a.g)]
        if len(a.graphs):
            return ["graphs", [_graph_hash(g) for g in a.graphs]]
        if len(a.tensors):
            return ["tensors", [[t.data_type, list(t.dims)] for t in a.tensors]]
        return MessageToDict(a)

    desc = {
        "opsets": opsets or [],
        "nodes": [[n.op_type, n.domain, list(n.input), list(n.output),
                   sorted((a.name, json.dumps(attr(a), sort_keys=True, default=str)) for a in n.attribute)]
                  for n in graph.node],
        "initializers": [[t.name, t.data_type, list(t.dims)] for t in graph.initializer],
        "sparse": [[t.values.name, t.values.data_type, list(t.dims)] for t in graph.sparse_initializer],
        "inputs": [MessageToDict(v) for v in graph.input],
        "outputs": [MessageToDict(v) for v in graph.output],
    }
    return hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode()).hexdigest()


def reuse_key(path: Path, reference: Path | str | None, arguments: dict[str, Any]) -> str | None:
    """The cache key of one measurement (None outside a :func:`timing_reuse` block)."""
    if _CACHE.get() is None:
        return None
    parts = {"model": graph_signature(path),
             "reference": graph_signature(reference) if reference is not None else None,
             "arguments": arguments}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def lookup(key: str | None) -> tuple[Any, str] | None:
    """The measurement cached under ``key`` (a copy) and the model first timed, or None."""
    cache = _CACHE.get()
    if key is None or cache is None or key not in cache:
        return None
    result, first = cache[key]
    cache.setdefault(HITS, []).append(first)
    return copy.deepcopy(result), first


def remember(key: str | None, result: Any, path: Path) -> None:
    """Keeps a measurement that fits and produced a timing, for later models of the graph."""
    cache = _CACHE.get()
    if key is None or cache is None or not result.fits or result.error or result.latency_ms_p50 is None:
        return
    cache[key] = (copy.deepcopy(result), f"{Path(path).name} (measurement {key[:12]})")


def accuracy_in_process(path: Path, x: np.ndarray, y: np.ndarray, threads: int,
                        provider: str = "CPUExecutionProvider", batch: int = 32) -> Accuracy:
    """Top-1/top-5 (and per-sample hits) of the model on ``x``, ``y``, run with the harness
    child's session settings: all graph optimizations, sequential, ``threads`` intra-op
    threads, batches of 32."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, int(threads))
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=[provider])
    inp = sess.get_inputs()[0]
    dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
    from .onnx_tools import accuracy_from_logits

    x = np.ascontiguousarray(x, dtype=np.float32)
    outs = [np.asarray(sess.run(None, {inp.name: x[s:s + batch].astype(dtype, copy=False)})[0], dtype=np.float32)
            .reshape(len(x[s:s + batch]), -1) for s in range(0, len(x), batch)]
    return accuracy_from_logits(np.concatenate(outs) if outs else np.zeros((0, 1), np.float32),
                                np.asarray(y, dtype=np.int64))


def reused_since(cache: dict[str, Any], before: int) -> list[str]:
    """The measurements reused from ``cache`` since it listed ``before`` reuses."""
    return list(cache.get(HITS, [])[before:])


def mark_reused(report: Any, reused: list[str]) -> None:
    """Says in each executed figure's provenance of an emulation report (all but its
    accuracy, which is executed for the model itself) that its timing came from ``reused``."""
    from ..interfaces import Method, Provenance

    if not reused:
        return
    note = (f"; measured on an identical graph earlier in this run ({', '.join(dict.fromkeys(reused))}): "
            "the same operators, shapes and dtypes, other weight values")
    for name, prov in list(report.provenance.items()):
        if name != "accuracy" and prov.method is Method.EXECUTED:
            report.provenance[name] = Provenance(prov.method, prov.detail + note)
