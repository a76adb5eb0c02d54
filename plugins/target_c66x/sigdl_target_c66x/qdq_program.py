"""A QDQ int8 ONNX model read into integer layers and run bit-exactly (:func:`emulate_fixed_point`).

onnxruntime's static quantizer (``quantize_static(..., quant_format=QuantFormat.QDQ)``)
writes a quantized model as the float graph with ``QuantizeLinear → DequantizeLinear``
pairs around every tensor, weights stored as int8 initializers behind a
``DequantizeLinear`` and biases as int32. An integer runtime (TIDL on the C66x, onnxruntime's
QLinear kernels) reads each ``DQ → op → Q`` group as one integer layer. So does
:class:`IntegerProgram`:

* ``DequantizeLinear`` of an initializer gives a constant quantized tensor (codes, scale,
  zero point, per-channel axis); of an activation, the activation's codes themselves.
* A compute node (Conv, Gemm, MatMul, AveragePool, GlobalAveragePool, Add, Relu, Clip,
  Concat, MaxPool) whose output feeds exactly one ``QuantizeLinear`` becomes one integer
  layer that writes that ``QuantizeLinear``'s codes (:mod:`.fixed_point` does the
  arithmetic); the ``QuantizeLinear`` is absorbed.
* Views (Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Identity, Dropout) move codes.
* The graph input is quantized on the host (``QuantizeLinear``), and graph outputs are
  dequantized (``DequantizeLinear``), exactly as onnxruntime does.
* Small integer shape arithmetic (Shape, Gather, Concat, Unsqueeze, Slice, Cast, Constant)
  is evaluated as it is: it is not part of the DSP's work.
* A compute node left in float by the quantizer (no ``QuantizeLinear`` after it, e.g. a
  final Softmax) runs in float32 on the dequantized values, as host post-processing, and
  the program says so in :attr:`IntegerProgram.float_nodes`.

Anything else raises :class:`~sigdl_core.errors.UnsupportedModelError` naming the node.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from sigdl_core.errors import ModelFileError, UnsupportedModelError

from .fixed_point import (
    KernelStats,
    QuantParams,
    RoundingMode,
    add_requantize,
    avg_pool_integer,
    clip_requantize,
    conv2d_accumulate,
    dequantize,
    dtype_range,
    fc_accumulate,
    global_avg_pool_integer,
    im2col,
    max_pool_integer,
    quantize_float,
    requantize,
    requantize_codes,
)

__all__ = ["IntegerLayer", "IntegerProgram", "QTensor", "emulate_fixed_point", "is_qdq_model",
           "unsupported_float_nodes"]

_VIEW_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Identity", "Dropout"}
_SHAPE_OPS = {"Shape", "Gather", "Concat", "Unsqueeze", "Squeeze", "Slice", "Cast", "Constant",
              "Mul", "Add", "Sub", "Div", "ConstantOfShape", "Range", "Reshape", "Identity"}
#: Compute ops with an integer kernel here.
INTEGER_OPS = ("Conv", "Gemm", "MatMul", "MaxPool", "AveragePool", "GlobalAveragePool", "Add",
               "Relu", "Clip", "Concat")


@dataclass
class QTensor:
    """Integer codes with their quantization parameters."""

    codes: np.ndarray
    params: QuantParams
    constant: bool = False

    def real(self) -> np.ndarray:
        return dequantize(self.codes, self.params)


@dataclass
class IntegerLayer:
    """One integer layer as the program runs it (for reports and the latency model)."""

    name: str
    op_type: str
    output: str
    macs_per_sample: int = 0
    output_shape: tuple[int, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)


def is_qdq_model(model: onnx.ModelProto) -> bool:
    """True when the graph holds QuantizeLinear/DequantizeLinear nodes (a QDQ model)."""
    ops = {n.op_type for n in model.graph.node}
    return "QuantizeLinear" in ops and "DequantizeLinear" in ops


#: Float-model operators the preparation step folds away before quantization.
_FOLDED_BEFORE_QUANTIZATION = {"BatchNormalization"}


def unsupported_float_nodes(model: onnx.ModelProto) -> list[tuple[str, str]]:
    """``(node, op_type)`` of every node of a *float* model that has no C66x integer kernel
    (nor is a view, shape arithmetic, a host-side softmax, or batch norm that folds into its
    convolution). Empty for a model the pipeline can run."""
    known = (set(INTEGER_OPS) | _VIEW_OPS | _SHAPE_OPS | _FOLDED_BEFORE_QUANTIZATION
             | {"QuantizeLinear", "DequantizeLinear", "Softmax", "LogSoftmax"})
    return [(n.name or n.output[0], n.op_type) for n in model.graph.node if n.op_type not in known]


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _pads2d(attrs: Mapping[str, Any], in_hw: tuple[int, int], kernel: tuple[int, int],
            strides: tuple[int, int], dilations: tuple[int, int], node: str) -> tuple[int, int, int, int]:
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto in ("NOTSET", ""):
        p = list(attrs.get("pads", [0, 0, 0, 0]))
        if len(p) != 4:
            raise UnsupportedModelError(f"node '{node}': only 2-D pads are supported", "use a 2-D operator")
        return p[0], p[1], p[2], p[3]
    if auto == "VALID":
        return 0, 0, 0, 0
    out = []
    for size, k, s, d in zip(in_hw, kernel, strides, dilations):
        o = -(-size // s)
        total = max(0, (o - 1) * s + (k - 1) * d + 1 - size)
        small, large = total // 2, total - total // 2
        out.append((large, small) if auto == "SAME_LOWER" else (small, large))
    return out[0][0], out[1][0], out[0][1], out[1][1]


def _ceil_extra(size: int, k: int, s: int, p0: int, p1: int, d: int) -> int:
    """Extra end padding that makes floor-mode output sizes equal ceil mode's."""
    eff = (k - 1) * d + 1
    out = -(-(size + p0 + p1 - eff) // s) + 1
    if (out - 1) * s >= size + p0:  # the last window may not start in the padding
        out -= 1
    need = (out - 1) * s + eff - (size + p0 + p1)
    return max(0, need)


class IntegerProgram:
    """A QDQ ONNX model prepared for integer execution; see the module docstring.

    :param model: a QDQ ONNX model (``onnx.ModelProto``) or a path to one.
    """

    def __init__(self, model: onnx.ModelProto | os.PathLike[str] | str) -> None:
        if not isinstance(model, onnx.ModelProto):
            try:
                model = onnx.load(os.fspath(model))
            except Exception as exc:
                raise ModelFileError(f"cannot read ONNX model '{model}': {exc}",
                                     "check the path, or export the model again") from None
        if not is_qdq_model(model):
            raise UnsupportedModelError(
                "the model has no QuantizeLinear/DequantizeLinear nodes: it is not a QDQ int8 model",
                "quantize it first (sigdl_target_c66x.quantize_for_c66x, or onnxruntime's quantize_static with QuantFormat.QDQ)",
            )
        self.model = model
        graph = model.graph
        self.initializers: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        self.inputs = [i.name for i in graph.input if i.name not in self.initializers]
        self.outputs = [o.name for o in graph.output]
        self.nodes = list(graph.node)
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in self.nodes:
            for i in n.input:
                if i:
                    self.consumers.setdefault(i, []).append(n)
        for o in self.outputs:
            self.consumers.setdefault(o, [])
        self.float_nodes: list[str] = []
        self.layers: list[IntegerLayer] = []
        self._absorbed: set[str] = set()
        self._check_ops()

    # ------------------------------------------------------------------ checks
    def _check_ops(self) -> None:
        known = set(INTEGER_OPS) | _VIEW_OPS | _SHAPE_OPS | {"QuantizeLinear", "DequantizeLinear", "Softmax",
                                                             "LogSoftmax"}
        bad = [f"'{n.name or n.output[0]}' ({n.op_type})" for n in self.nodes if n.op_type not in known]
        if bad:
            raise UnsupportedModelError(
                "the C66x integer emulation has no kernel for node(s) " + ", ".join(bad),
                "supported: " + ", ".join(INTEGER_OPS) + ", views, Softmax (host); "
                "replace or remove those layers",
            )

    # ------------------------------------------------------------------ helpers
    def _q_consumer(self, tensor: str) -> onnx.NodeProto | None:
        users = self.consumers.get(tensor, [])
        if len(users) == 1 and users[0].op_type == "QuantizeLinear" and tensor not in self.outputs:
            return users[0]
        return None

    def _const(self, name: str, env: Mapping[str, Any]) -> np.ndarray:
        if name in self.initializers:
            return self.initializers[name]
        value = env.get(name)
        if isinstance(value, np.ndarray):
            return value
        if isinstance(value, QTensor) and value.constant:
            return value.real()
        raise UnsupportedModelError(f"tensor '{name}' must be a constant", "fold it into an initializer")

    def _qparams_of(self, node: onnx.NodeProto, env: Mapping[str, Any], dtype_hint: Any = None) -> QuantParams:
        scale = np.asarray(self._const(node.input[1], env), dtype=np.float32)
        if len(node.input) > 2 and node.input[2]:
            zp_arr = np.asarray(self._const(node.input[2], env))
            dtype = zp_arr.dtype
            zp = zp_arr.astype(np.int64)
        else:
            dtype = dtype_hint if dtype_hint is not None else np.uint8
            zp = np.zeros(scale.shape, np.int64)
        axis = _attrs(node).get("axis", 1)
        return QuantParams.make(scale, zp, dtype, axis if scale.ndim else None)

    # ------------------------------------------------------------------ running
    def run(
        self,
        inputs: np.ndarray | Mapping[str, np.ndarray],
        rounding: RoundingMode = "half-up",
        stats: KernelStats | None = None,
        batch_size: int = 256,
    ) -> dict[str, Any]:
        """Runs the integer pipeline on float inputs (quantized on entry, as onnxruntime does).

        :param inputs: the float32 input array (one graph input) or a name → array mapping.
        :param rounding: ``"half-up"`` (the DSP) or ``"onnxruntime"``; see :mod:`.fixed_point`.
        :param stats: collects accumulator overflows and saturations per layer.
        :param batch_size: samples per chunk (bounds the im2col memory).
        :return: ``{"outputs": {name: float32 array}, "codes": {name: int32 codes or None}}``.
        """
        if isinstance(inputs, np.ndarray):
            if len(self.inputs) != 1:
                raise UnsupportedModelError("the model has several inputs", "pass a mapping of input arrays")
            inputs = {self.inputs[0]: inputs}
        n = len(next(iter(inputs.values())))
        outs: dict[str, list[np.ndarray]] = {o: [] for o in self.outputs}
        codes: dict[str, list[np.ndarray] | None] = {o: [] for o in self.outputs}
        self.layers = []
        stats = stats if stats is not None else KernelStats()
        for start in range(0, n, max(1, batch_size)):
            chunk = {k: np.asarray(v[start:start + batch_size], dtype=np.float32) for k, v in inputs.items()}
            env = self._run_chunk(chunk, rounding, stats, record=(start == 0))
            for o in self.outputs:
                value = env[o]
                if isinstance(value, QTensor):
                    outs[o].append(value.real())
                    if codes[o] is not None:
                        codes[o].append(value.codes)
                else:
                    outs[o].append(np.asarray(value, dtype=np.float32))
                    codes[o] = None
        return {
            "outputs": {o: np.concatenate(v) for o, v in outs.items()},
            "codes": {o: (np.concatenate(v) if v is not None else None) for o, v in codes.items()},
        }

    def _run_chunk(self, feeds: Mapping[str, np.ndarray], rounding: RoundingMode, stats: KernelStats,
                   record: bool) -> dict[str, Any]:
        env: dict[str, Any] = dict(feeds)
        absorbed: set[str] = set()
        for node in self.nodes:
            key = node.name or node.output[0]
            if key in absorbed:
                continue
            op = node.op_type
            if op == "QuantizeLinear":
                self._quantize_node(node, env, rounding, stats)
            elif op == "DequantizeLinear":
                self._dequantize_node(node, env)
            elif op in _VIEW_OPS and self._is_quantized(node.input[0], env):
                self._view_node(node, env, rounding, absorbed, stats)
            elif op in INTEGER_OPS and self._has_quantized_input(node, env):
                self._integer_node(node, env, rounding, absorbed, stats, record)
            else:
                self._plain_node(node, env, record)
        return env

    def _is_quantized(self, name: str, env: Mapping[str, Any]) -> bool:
        return isinstance(env.get(name), QTensor)

    def _has_quantized_input(self, node: onnx.NodeProto, env: Mapping[str, Any]) -> bool:
        return any(isinstance(env.get(i), QTensor) and not env[i].constant for i in node.input if i)

    # ------------------------------------------------------------------ Q / DQ
    def _quantize_node(self, node: onnx.NodeProto, env: dict[str, Any], rounding: RoundingMode,
                       stats: KernelStats) -> None:
        src = env.get(node.input[0])
        if src is None and node.input[0] in self.initializers:
            src = self.initializers[node.input[0]]
        params = self._qparams_of(node, env)
        if isinstance(src, QTensor):
            codes, sat = requantize_codes(src.codes, src.params, params, rounding)
            env[node.output[0]] = QTensor(codes, params, src.constant)
            return
        real = np.asarray(src, dtype=np.float32)
        if params.per_channel:  # a float weight quantized in the graph
            axis = params.axis if params.axis is not None else 1
            shape = [1] * real.ndim
            shape[axis] = -1
            y = np.rint(real / params.scale.reshape(shape)).astype(np.int64) + params.zero_point.reshape(shape)
            env[node.output[0]] = QTensor(np.clip(y, params.qmin, params.qmax).astype(np.int32), params, True)
            return
        env[node.output[0]] = QTensor(quantize_float(real, params), params,
                                      constant=node.input[0] in self.initializers)

    def _dequantize_node(self, node: onnx.NodeProto, env: dict[str, Any]) -> None:
        name = node.input[0]
        if name in self.initializers:
            codes = self.initializers[name]
            params = self._qparams_of(node, env, dtype_hint=codes.dtype)
            params = QuantParams(params.scale, params.zero_point, *dtype_range(codes.dtype), params.axis)
            env[node.output[0]] = QTensor(codes.astype(np.int32), params, constant=True)
            return
        src = env[name]
        if not isinstance(src, QTensor):
            raise UnsupportedModelError(f"DequantizeLinear '{node.name}' reads a float tensor", "check the QDQ model")
        params = self._qparams_of(node, env, dtype_hint=np.int8 if src.params.qmin < 0 else np.uint8)
        params = QuantParams(params.scale, params.zero_point, src.params.qmin, src.params.qmax, params.axis)
        env[node.output[0]] = QTensor(src.codes, params, src.constant)

    # ------------------------------------------------------------------ views
    def _view_node(self, node: onnx.NodeProto, env: dict[str, Any], rounding: RoundingMode,
                   absorbed: set[str], stats: KernelStats) -> None:
        src: QTensor = env[node.input[0]]
        moved = _apply_view(node, src.codes, env, self)
        q = self._q_consumer(node.output[0])
        if q is not None:
            params = self._qparams_of(q, env)
            codes, sat = requantize_codes(moved, src.params, params, rounding)
            env[q.output[0]] = QTensor(codes, params, src.constant)
            env[node.output[0]] = QTensor(moved, src.params, src.constant)
            absorbed.add(q.name or q.output[0])
            return
        env[node.output[0]] = QTensor(moved, src.params, src.constant)

    # ------------------------------------------------------------------ integer layers
    def _integer_node(self, node: onnx.NodeProto, env: dict[str, Any], rounding: RoundingMode,
                      absorbed: set[str], stats: KernelStats, record: bool) -> None:
        q = self._q_consumer(node.output[0])
        if q is None and node.op_type not in ("MaxPool", "Relu", "Clip", "Concat"):
            # not quantized after: the quantizer left this node in float; run it so on the host
            self._float_node(node, env, record)
            return
        out_params = self._qparams_of(q, env) if q is not None else None
        key = node.name or node.output[0]
        op = node.op_type
        attrs = _attrs(node)
        x = env[node.input[0]]
        macs = 0
        if op == "Conv":
            codes, sat, overflow, macs = self._conv(node, attrs, env, out_params, rounding)
            stats.record(key, overflows=overflow, saturated=sat, outputs=codes.size)
        elif op in ("Gemm", "MatMul"):
            codes, sat, overflow, macs = self._fc(node, attrs, env, out_params, rounding)
            stats.record(key, overflows=overflow, saturated=sat, outputs=codes.size)
        elif op == "MaxPool":
            kernel = tuple(attrs["kernel_shape"])
            strides = tuple(attrs.get("strides", [1, 1]))
            dil = tuple(attrs.get("dilations", [1, 1]))
            pads = list(_pads2d(attrs, x.codes.shape[2:], kernel, strides, dil, key))
            if attrs.get("ceil_mode", 0):
                pads[2] += _ceil_extra(x.codes.shape[2], kernel[0], strides[0], pads[0], pads[2], dil[0])
                pads[3] += _ceil_extra(x.codes.shape[3], kernel[1], strides[1], pads[1], pads[3], dil[1])
            pooled = max_pool_integer(x.codes, kernel, strides, tuple(pads), dil, x.params.qmin)
            if out_params is None:
                codes, sat, out_params = pooled, 0, x.params
            else:
                codes, sat = requantize_codes(pooled, x.params, out_params, rounding)
            stats.record(key, saturated=sat, outputs=codes.size)
        elif op == "AveragePool":
            kernel = tuple(attrs["kernel_shape"])
            strides = tuple(attrs.get("strides", [1, 1]))
            pads = list(_pads2d(attrs, x.codes.shape[2:], kernel, strides, (1, 1), key))
            if attrs.get("ceil_mode", 0):
                pads[2] += _ceil_extra(x.codes.shape[2], kernel[0], strides[0], pads[0], pads[2], 1)
                pads[3] += _ceil_extra(x.codes.shape[3], kernel[1], strides[1], pads[1], pads[3], 1)
            codes, sat = avg_pool_integer(x.codes, x.params, out_params, kernel, strides, tuple(pads),
                                          bool(attrs.get("count_include_pad", 0)), rounding)
            stats.record(key, saturated=sat, outputs=codes.size)
        elif op == "GlobalAveragePool":
            codes, sat = global_avg_pool_integer(x.codes, x.params, out_params, rounding)
            stats.record(key, saturated=sat, outputs=codes.size)
        elif op == "Add":
            a, b = env[node.input[0]], env[node.input[1]]
            a, b = _as_qtensor(a, node, self), _as_qtensor(b, node, self)
            codes, sat = add_requantize(a.codes, a.params, b.codes, b.params, out_params, rounding)
            stats.record(key, saturated=sat, outputs=codes.size)
        elif op in ("Relu", "Clip"):
            lo, hi = 0.0, None
            if op == "Clip":
                lo, hi = _clip_bounds(node, attrs, env, self)
            target = out_params or x.params
            codes, sat = clip_requantize(x.codes, x.params, target, lo, hi, rounding)
            out_params = target
            stats.record(key, saturated=sat, outputs=codes.size)
        elif op == "Concat":
            parts = [_as_qtensor(env[i], node, self) for i in node.input]
            target = out_params or parts[0].params
            pieces = []
            sat = 0
            for p in parts:
                c, s = requantize_codes(p.codes, p.params, target, rounding)
                pieces.append(c)
                sat += s
            codes = np.concatenate(pieces, axis=int(attrs.get("axis", 1)))
            out_params = target
            stats.record(key, saturated=sat, outputs=codes.size)
        else:  # pragma: no cover - _check_ops guards
            raise UnsupportedModelError(f"node '{key}' ({op}) has no integer kernel")
        out_name = q.output[0] if q is not None else node.output[0]
        env[out_name] = QTensor(codes, out_params)
        if q is not None:
            absorbed.add(q.name or q.output[0])
        if record:
            self.layers.append(IntegerLayer(key, op, out_name, int(macs // max(1, codes.shape[0])),
                                            tuple(int(d) for d in codes.shape[1:]),
                                            {k: v for k, v in attrs.items() if not isinstance(v, bytes)}))

    def _bias_codes(self, node: onnx.NodeProto, index: int, env: Mapping[str, Any], acc_scale: np.ndarray,
                    m: int) -> np.ndarray | None:
        if len(node.input) <= index or not node.input[index]:
            return None
        b = env.get(node.input[index])
        if isinstance(b, QTensor):
            same = (b.params.scale.size in (1, acc_scale.size)
                    and np.allclose(b.params.scale.astype(np.float64), acc_scale.astype(np.float64),
                                    rtol=1e-6, atol=0)
                    and not np.any(b.params.zero_point))
            if same:
                return np.asarray(b.codes, dtype=np.int64).reshape(m)
            real = b.real().astype(np.float64).reshape(m)
        else:
            real = np.asarray(self._const(node.input[index], env), dtype=np.float64).reshape(m)
        return np.rint(real / np.broadcast_to(acc_scale.astype(np.float64), (m,))).astype(np.int64)

    def _conv(self, node: onnx.NodeProto, attrs: Mapping[str, Any], env: Mapping[str, Any],
              out: QuantParams, rounding: RoundingMode) -> tuple[np.ndarray, int, int, int]:
        key = node.name or node.output[0]
        x = env[node.input[0]]
        w = env.get(node.input[1])
        if not isinstance(w, QTensor) or not w.constant:
            raise UnsupportedModelError(f"Conv '{key}' has non-quantized or non-constant weights",
                                        "quantize the weights (QDQ) or fold them into an initializer")
        if x.codes.ndim != 4:
            raise UnsupportedModelError(f"Conv '{key}' is not 2-D", "only NCHW convolutions are emulated")
        m, cg, kh, kw = w.codes.shape
        group = int(attrs.get("group", 1))
        strides = tuple(attrs.get("strides", [1, 1]))
        dil = tuple(attrs.get("dilations", [1, 1]))
        pads = _pads2d(attrs, x.codes.shape[2:], (kh, kw), strides, dil, key)
        w_scale = w.params.scale if w.params.per_channel else w.params.scale.reshape(())
        acc_scale = (np.float32(x.params.scale.reshape(())) * w_scale).astype(np.float32)
        bias = self._bias_codes(node, 2, env, np.atleast_1d(acc_scale), m)
        acc, overflow = conv2d_accumulate(
            x.codes, int(x.params.zero_point.reshape(())), (x.params.qmin, x.params.qmax),
            w.codes, w.params.zero_point, (w.params.qmin, w.params.qmax), bias, strides, pads, dil, group)
        ratio = (acc_scale / np.float32(out.scale.reshape(()))).astype(np.float32)
        codes, sat = requantize(acc, ratio, out, rounding, channel_axis=1)
        macs = acc.size * cg * kh * kw
        return codes, sat, overflow, macs

    def _fc(self, node: onnx.NodeProto, attrs: Mapping[str, Any], env: Mapping[str, Any],
            out: QuantParams, rounding: RoundingMode) -> tuple[np.ndarray, int, int, int]:
        key = node.name or node.output[0]
        x = env[node.input[0]]
        w = env.get(node.input[1])
        if not isinstance(w, QTensor) or not w.constant:
            raise UnsupportedModelError(f"{node.op_type} '{key}' multiplies two activations",
                                        "the C66x emulation takes constant (weight) right-hand sides only")
        wc = w.codes
        wz = w.params.zero_point
        ws = w.params.scale
        if node.op_type == "Gemm":
            if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
                raise UnsupportedModelError(f"Gemm '{key}' uses transA/alpha/beta",
                                            "export the layer as a plain fully connected layer")
            if not attrs.get("transB", 0):
                wc = wc.T
        else:
            wc = wc.T  # MatMul: (K, M) → (M, K)
        lead = x.codes.shape[:-1]
        xk = x.codes.reshape(-1, x.codes.shape[-1])
        mo = wc.shape[0]
        w_scale = ws if ws.size > 1 else ws.reshape(())
        acc_scale = (np.float32(x.params.scale.reshape(())) * w_scale).astype(np.float32)
        bias = None
        if node.op_type == "Gemm":
            bias = self._bias_codes(node, 2, env, np.atleast_1d(acc_scale), mo)
        acc, overflow = fc_accumulate(xk, int(x.params.zero_point.reshape(())), (x.params.qmin, x.params.qmax),
                                      wc, wz, bias)
        ratio = (acc_scale / np.float32(out.scale.reshape(()))).astype(np.float32)
        codes, sat = requantize(acc, ratio, out, rounding, channel_axis=1)
        macs = acc.size * wc.shape[1]
        return codes.reshape(*lead, mo), sat, overflow, macs

    # ------------------------------------------------------------------ float and shape nodes
    def _float_node(self, node: onnx.NodeProto, env: dict[str, Any], record: bool) -> None:
        """A compute node the quantizer left in float: run it in float32 (host side)."""
        key = node.name or node.output[0]
        if key not in self.float_nodes:
            self.float_nodes.append(key)
        vals = [None if not i else _real(env.get(i, self.initializers.get(i))) for i in node.input]
        env[node.output[0]] = _float_op(node, vals)

    def _plain_node(self, node: onnx.NodeProto, env: dict[str, Any], record: bool) -> None:
        op = node.op_type
        if op in ("Softmax", "LogSoftmax") or op in INTEGER_OPS:
            self._float_node(node, env, record)
            return
        vals = [None if not i else env.get(i, self.initializers.get(i)) for i in node.input]
        vals = [v.real() if isinstance(v, QTensor) else v for v in vals]
        outs = _shape_op(node, vals)
        for name, value in zip(node.output, outs):
            env[name] = value


# --------------------------------------------------------------------------- small evaluators


def _real(v: Any) -> Any:
    if isinstance(v, QTensor):
        return v.real()
    return v


def _as_qtensor(v: Any, node: onnx.NodeProto, program: IntegerProgram) -> QTensor:
    if isinstance(v, QTensor):
        return v
    raise UnsupportedModelError(
        f"node '{node.name}' ({node.op_type}) mixes a float tensor into an integer layer",
        "quantize every input of the layer (QDQ)",
    )


def _clip_bounds(node: onnx.NodeProto, attrs: Mapping[str, Any], env: Mapping[str, Any],
                 program: IntegerProgram) -> tuple[float | None, float | None]:
    lo = attrs.get("min")
    hi = attrs.get("max")
    if len(node.input) > 1 and node.input[1]:
        lo = float(np.asarray(program._const(node.input[1], env)).reshape(()))
    if len(node.input) > 2 and node.input[2]:
        hi = float(np.asarray(program._const(node.input[2], env)).reshape(()))
    return lo, hi


def _apply_view(node: onnx.NodeProto, x: np.ndarray, env: Mapping[str, Any], program: IntegerProgram) -> np.ndarray:
    op = node.op_type
    attrs = _attrs(node)
    if op in ("Identity", "Dropout"):
        return x
    if op == "Flatten":
        axis = int(attrs.get("axis", 1))
        axis = axis if axis >= 0 else x.ndim + axis
        return x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)
    if op == "Transpose":
        perm = attrs.get("perm")
        return np.transpose(x, perm)
    if op == "Reshape":
        shape = [int(s) for s in np.asarray(program._const(node.input[1], env)).reshape(-1)]
        shape = [x.shape[i] if s == 0 and not attrs.get("allowzero", 0) else s for i, s in enumerate(shape)]
        if shape and shape[0] == 1 and x.shape[0] != 1 and -1 not in shape:
            shape[0] = -1  # exported at batch 1: the batch axis was fixed by tracing
        return x.reshape(shape)
    if op in ("Squeeze", "Unsqueeze"):
        axes = attrs.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = [int(a) for a in np.asarray(program._const(node.input[1], env)).reshape(-1)]
        if op == "Squeeze":
            return np.squeeze(x, axis=tuple(axes) if axes is not None else None)
        out = x
        for a in sorted(int(a) if a >= 0 else int(a) + x.ndim + len(axes) for a in axes):
            out = np.expand_dims(out, a)
        return out
    raise UnsupportedModelError(f"view '{node.name}' ({op}) is not supported")


def _float_op(node: onnx.NodeProto, vals: Sequence[Any]) -> np.ndarray:
    """A float32 reference of the compute ops (host-side fallback)."""
    op = node.op_type
    attrs = _attrs(node)
    x = np.asarray(vals[0], dtype=np.float32)
    if op in ("Softmax", "LogSoftmax"):
        axis = int(attrs.get("axis", -1))
        z = x - x.max(axis=axis, keepdims=True)
        e = np.exp(z)
        s = e / e.sum(axis=axis, keepdims=True)
        return (np.log(s) if op == "LogSoftmax" else s).astype(np.float32)
    if op == "Relu":
        return np.maximum(x, 0).astype(np.float32)
    if op == "Clip":
        lo = attrs.get("min", vals[1] if len(vals) > 1 and vals[1] is not None else None)
        hi = attrs.get("max", vals[2] if len(vals) > 2 and vals[2] is not None else None)
        return np.clip(x, lo if lo is not None else -np.inf, hi if hi is not None else np.inf).astype(np.float32)
    if op == "Add":
        return (x + np.asarray(vals[1], np.float32)).astype(np.float32)
    if op in ("Gemm", "MatMul"):
        w = np.asarray(vals[1], np.float32)
        if op == "Gemm":
            if attrs.get("transA", 0):
                x = x.T
            if attrs.get("transB", 0):
                w = w.T
            y = float(attrs.get("alpha", 1.0)) * (x @ w)
            if len(vals) > 2 and vals[2] is not None:
                y = y + float(attrs.get("beta", 1.0)) * np.asarray(vals[2], np.float32)
            return y.astype(np.float32)
        return (x @ w).astype(np.float32)
    if op == "Conv":
        w = np.asarray(vals[1], np.float32)
        m, cg, kh, kw = w.shape
        group = int(attrs.get("group", 1))
        strides = tuple(attrs.get("strides", [1, 1]))
        dil = tuple(attrs.get("dilations", [1, 1]))
        pads = _pads2d(attrs, x.shape[2:], (kh, kw), strides, dil, node.name)
        cols, ho, wo = im2col(x, (kh, kw), strides, pads, dil, np.float32(0))
        n = x.shape[0]
        cols = cols.reshape(n, group, cg * kh * kw, ho * wo)
        y = np.matmul(w.reshape(group, m // group, -1)[None], cols).reshape(n, m, ho, wo)
        if len(vals) > 2 and vals[2] is not None:
            y = y + np.asarray(vals[2], np.float32).reshape(1, m, 1, 1)
        return y.astype(np.float32)
    if op == "GlobalAveragePool":
        return x.mean(axis=(2, 3), keepdims=True).astype(np.float32)
    if op in ("MaxPool", "AveragePool"):
        kernel = tuple(attrs["kernel_shape"])
        strides = tuple(attrs.get("strides", [1, 1]))
        pads = _pads2d(attrs, x.shape[2:], kernel, strides, (1, 1), node.name)
        fill = -np.inf if op == "MaxPool" else 0.0
        cols, _, _ = im2col(x, kernel, strides, pads, (1, 1), np.float32(fill))
        return (cols.max(axis=(2, 3)) if op == "MaxPool" else cols.mean(axis=(2, 3))).astype(np.float32)
    if op == "Concat":
        return np.concatenate([np.asarray(v, np.float32) for v in vals], axis=int(attrs.get("axis", 1)))
    raise UnsupportedModelError(f"node '{node.name}' ({op}) cannot run in float here")


def _shape_op(node: onnx.NodeProto, vals: Sequence[Any]) -> list[Any]:
    """Integer shape arithmetic and views of plain (float or int) arrays."""
    op = node.op_type
    attrs = _attrs(node)
    if op == "Constant":
        if "value" in attrs:
            return [numpy_helper.to_array(attrs["value"])]
        for k in ("value_float", "value_int"):
            if k in attrs:
                return [np.asarray(attrs[k])]
        for k in ("value_floats", "value_ints"):
            if k in attrs:
                return [np.asarray(attrs[k])]
        raise UnsupportedModelError(f"Constant '{node.name}' has an unsupported value")
    x = vals[0]
    if op == "Shape":
        shape = np.asarray(np.shape(x), dtype=np.int64)
        start = int(attrs.get("start", 0))
        end = attrs.get("end")
        return [shape[start:end]]
    if op == "Gather":
        return [np.take(np.asarray(x), np.asarray(vals[1]), axis=int(attrs.get("axis", 0)))]
    if op == "Concat":
        return [np.concatenate([np.atleast_1d(np.asarray(v)) for v in vals], axis=int(attrs.get("axis", 0)))]
    if op == "Cast":
        return [np.asarray(x).astype(onnx.helper.tensor_dtype_to_np_dtype(int(attrs["to"])))]
    if op in ("Mul", "Add", "Sub", "Div"):
        a, b = np.asarray(vals[0]), np.asarray(vals[1])
        if op == "Div" and a.dtype.kind in "iu":
            return [a // b]
        return [{"Mul": a * b, "Add": a + b, "Sub": a - b, "Div": a / b if op == "Div" else None}[op]]
    if op == "Slice":
        data = np.asarray(x)
        starts = np.asarray(vals[1]).reshape(-1)
        ends = np.asarray(vals[2]).reshape(-1)
        axes = np.asarray(vals[3]).reshape(-1) if len(vals) > 3 and vals[3] is not None else np.arange(len(starts))
        steps = np.asarray(vals[4]).reshape(-1) if len(vals) > 4 and vals[4] is not None else np.ones(len(starts), int)
        idx = [slice(None)] * data.ndim
        for s, e, a, st in zip(starts, ends, axes, steps):
            idx[int(a)] = slice(int(s), int(e) if abs(int(e)) < 2**62 else None, int(st))
        return [data[tuple(idx)]]
    if op == "ConstantOfShape":
        value = numpy_helper.to_array(attrs["value"]) if "value" in attrs else np.zeros(1, np.float32)
        return [np.full(tuple(int(d) for d in np.asarray(x).reshape(-1)), value.reshape(-1)[0], dtype=value.dtype)]
    if op == "Range":
        return [np.arange(np.asarray(vals[0]).reshape(()), np.asarray(vals[1]).reshape(()), np.asarray(vals[2]).reshape(()))]
    if op in _VIEW_OPS or op == "Unsqueeze" or op == "Squeeze":
        fake = IntegerProgram.__new__(IntegerProgram)
        fake.initializers = {}
        env = {name: v for name, v in zip(node.input, vals) if name}
        return [_apply_view(node, np.asarray(x), env, fake)]
    raise UnsupportedModelError(f"node '{node.name}' ({op}) is not supported by the C66x emulation")


# --------------------------------------------------------------------------- entry point


def emulate_fixed_point(
    model: onnx.ModelProto | os.PathLike[str] | str | IntegerProgram,
    x: np.ndarray,
    rounding: RoundingMode = "half-up",
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray | None, KernelStats]:
    """Runs a QDQ int8 (or int16) ONNX model through the C66x integer pipeline.

    :param model: the QDQ model (path, ModelProto) or an :class:`IntegerProgram`.
    :param x: float32 input samples (quantized on entry with the model's input scale).
    :param rounding: ``"half-up"`` (the DSP's multiply-shift-round) or ``"onnxruntime"``.
    :return: ``(outputs, codes, stats)``: the first graph output dequantized to float32, its
        integer codes (``None`` when the last layer ran in float on the host) and the
        overflow/saturation statistics.
    """
    program = model if isinstance(model, IntegerProgram) else IntegerProgram(model)
    stats = KernelStats()
    result = program.run(x, rounding=rounding, stats=stats, batch_size=batch_size)
    first = program.outputs[0]
    return result["outputs"][first], result["codes"][first], stats
