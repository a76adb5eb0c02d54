"""A Caffe net (``.prototxt`` + ``.caffemodel``) as an ONNX model, with Caffe's semantics.

:func:`read_caffe` parses both files with the protobuf runtime and :mod:`.schema`
(``text_format`` for the net, the binary wire format for the weights), and
:func:`caffe_to_onnx` converts the TEST-phase net to an opset-13 ONNX graph whose
initializers are named ``<layer>.weight`` / ``<layer>.bias`` (batch norm:
``<layer>.running_mean`` / ``.running_var``), with a dynamic batch axis.

Where Caffe differs from ONNX defaults, the graph says so explicitly:

* **Pooling** rounds the output size up (``round_mode: CEIL``, Caffe's default) and drops a
  last window that would start in the padding. The output size is computed as Caffe does
  and the ONNX pool gets explicit, possibly asymmetric, end pads that give exactly that
  size (``ceil_mode`` stays 0). Max pooling ignores pads, as Caffe's clipped windows do.
  Average pooling divides by the window clipped to the padded image (not to the pads the
  end rounding adds): where that differs from the kernel area, the ONNX average is
  multiplied by a constant map ``<layer>.divisor_correction``.
* **BatchNorm** stores running sums and a scale factor: mean and variance are divided by it.
  A ``Scale`` layer right after a ``BatchNorm`` becomes that BatchNormalization's scale and
  bias (``<scale layer>.weight`` / ``.bias``), as Caffe's BatchNorm + Scale pair means.
* **InnerProduct** flattens everything after the batch axis (``axis: 1``); its weight is
  ``num_output × K`` (``transpose: true``: ``K × num_output``).
* **Dropout** stays in the graph (identity at inference; it drops in retraining).

Layers: Input (and the legacy ``input``/``input_dim``/``input_shape`` fields), Convolution
(groups, dilation), InnerProduct, Pooling (MAX, AVE, global), ReLU (leaky), LRN (across
channels), Dropout, Concat, BatchNorm, Scale, Softmax, Flatten, Eltwise, Split; Data,
Accuracy, loss and Silence layers are left out. Both the ``layer`` and the legacy V1
``layers`` form are read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sigdl_core.errors import ModelFileError, UnsupportedModelError

from . import schema

#: V1 layer types by enum number → the type strings of ``LayerParameter``.
_V1_NAMES = {
    "CONVOLUTION": "Convolution", "INNER_PRODUCT": "InnerProduct", "POOLING": "Pooling", "RELU": "ReLU",
    "LRN": "LRN", "DROPOUT": "Dropout", "CONCAT": "Concat", "SOFTMAX": "Softmax", "ELTWISE": "Eltwise",
    "FLATTEN": "Flatten", "SPLIT": "Split", "DATA": "Data", "IMAGE_DATA": "ImageData", "HDF5_DATA": "HDF5Data",
    "MEMORY_DATA": "MemoryData", "DUMMY_DATA": "DummyData", "WINDOW_DATA": "WindowData", "ACCURACY": "Accuracy",
    "SOFTMAX_LOSS": "SoftmaxWithLoss", "SILENCE": "Silence", "SIGMOID": "Sigmoid", "TANH": "TanH",
}
#: Layers that compute nothing at deployment.
_SKIPPED = frozenset({"Data", "ImageData", "HDF5Data", "MemoryData", "DummyData", "WindowData", "Input",
                      "Accuracy", "SoftmaxWithLoss", "EuclideanLoss", "SigmoidCrossEntropyLoss", "Silence",
                      "HingeLoss", "InfogainLoss", "MultinomialLogisticLoss", "ContrastiveLoss"})
OPSET = 13


@dataclass
class CaffeNet:
    """Both files as parsed: the net definition, its text, and the weights."""

    net: Any
    text: str
    weights: Any
    prototxt: Path
    caffemodel: Path


@dataclass
class BlobRef:
    """Where an ONNX weight lives in the ``.caffemodel``: layer, blob index, how it maps."""

    layer: str
    index: int
    shape: tuple[int, ...]
    role: str = "plain"  # plain | bn_mean | bn_var


@dataclass
class Converted:
    """The ONNX model and where each of its weights came from in the ``.caffemodel``."""

    model: Any
    blobs: dict[str, BlobRef] = field(default_factory=dict)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def partner_files(path: Path) -> tuple[Path, Path]:
    """``(prototxt, caffemodel)`` for either of them: the same stem with the other ending,
    else the folder's only ``.prototxt`` (or ``deploy.prototxt``) / only ``.caffemodel``."""
    path = Path(path)
    want = ".caffemodel" if path.suffix.lower() == ".prototxt" else ".prototxt"
    other = path.with_suffix(want)
    if not other.is_file():
        candidates = sorted(path.parent.glob(f"*{want}"))
        deploy = path.parent / "deploy.prototxt"
        if want == ".prototxt" and deploy.is_file():
            other = deploy
        elif len(candidates) == 1:
            other = candidates[0]
        else:
            raise ModelFileError(
                f"Caffe model '{path}' needs its {want} file beside it",
                f"put '{path.with_suffix(want).name}' next to it (a Caffe model is a .prototxt plus a .caffemodel)")
    return (path, other) if want == ".caffemodel" else (other, path)


def read_caffe(path: Path) -> CaffeNet:
    """Parses the ``.prototxt`` and ``.caffemodel`` of ``path`` (either one may be given)."""
    from google.protobuf import message as pb_message
    from google.protobuf import text_format

    from sigdl_core.files import read_regular_file

    prototxt, caffemodel = partner_files(Path(path))
    read_regular_file(prototxt, "Caffe net definition")
    read_regular_file(caffemodel, "Caffe weights")
    text = prototxt.read_text(encoding="utf-8", errors="replace")
    net = schema.NetParameter()
    try:
        text_format.Parse(text, net, allow_unknown_field=True)
    except text_format.ParseError as exc:
        raise ModelFileError(f"Caffe net '{prototxt}' is not a valid prototxt: {_one_line(exc)}",
                             "check the file against Caffe's NetParameter text format") from None
    data = caffemodel.read_bytes()
    hint = "the file is damaged or not a .caffemodel; copy or save it again"
    if not data:
        raise ModelFileError(f"Caffe weights '{caffemodel}' are empty", hint)
    weights = schema.NetParameter()
    try:
        weights.ParseFromString(data)
    except (pb_message.DecodeError, RuntimeError, ValueError) as exc:
        raise ModelFileError(f"Caffe weights '{caffemodel}' are corrupt or truncated ({_one_line(exc)})", hint) from None
    return CaffeNet(net, text, weights, prototxt, caffemodel)


@dataclass
class _Layer:
    name: str
    type: str
    bottom: list[str]
    top: list[str]
    msg: Any


def _layers(net: Any) -> list[_Layer]:
    """The TEST-phase layers of ``net``, ``layer`` or V1 ``layers`` alike."""
    v1_names = {v: k for k, v in schema.V1_TYPES.items()}
    out = []
    if net.layer and net.layers:
        raise UnsupportedModelError("the net mixes 'layer' and legacy 'layers' entries", "use one form")
    for msg in net.layer:
        out.append(_Layer(msg.name, msg.type, list(msg.bottom), list(msg.top), msg))
    for msg in net.layers:
        kind = v1_names.get(msg.type, "NONE")
        out.append(_Layer(msg.name, _V1_NAMES.get(kind, kind), list(msg.bottom), list(msg.top), msg))
    return [layer for layer in out if _in_test_phase(layer.msg)]


def _rule_met(rule: Any) -> bool:
    if rule.HasField("phase") and rule.phase != 1:  # TEST
        return False
    if rule.HasField("min_level") and rule.min_level > 0:
        return False
    if rule.HasField("max_level") and rule.max_level < 0:
        return False
    return not rule.stage  # the TEST state has no stages


def _in_test_phase(msg: Any) -> bool:
    if msg.include:
        return any(_rule_met(r) for r in msg.include)
    return not any(_rule_met(r) for r in msg.exclude)


def _blob_array(blob: Any) -> tuple[np.ndarray, tuple[int, ...]]:
    shape = tuple(int(d) for d in blob.shape.dim) if blob.HasField("shape") else tuple(
        int(d) for d in (blob.num, blob.channels, blob.height, blob.width))
    values = np.asarray(blob.data if len(blob.data) else blob.double_data, dtype=np.float32)
    return values, shape


def _pair(msg: Any, single: str, h: str, w: str, default: int | None) -> tuple[int, int]:
    """A (height, width) setting: ``h``/``w`` where either is set, else ``single`` (an
    optional scalar in PoolingParameter, a repeated field of 1 or 2 values in
    ConvolutionParameter), else ``default`` (None: the setting is required)."""
    if h and (msg.HasField(h) or msg.HasField(w)):
        return int(getattr(msg, h)), int(getattr(msg, w))
    value = getattr(msg, single)
    if isinstance(value, int):
        if not msg.HasField(single) and default is None:
            raise UnsupportedModelError(f"'{single}' is not set", "set it in the prototxt")
        return int(value), int(value)
    values = [int(v) for v in value]
    if not values:
        if default is None:
            raise UnsupportedModelError(f"'{single}' is not set", "set it in the prototxt")
        return default, default
    if len(values) <= 2:
        return values[0], values[-1]
    raise UnsupportedModelError(f"'{single}' has {len(values)} values; only 2-D layers are supported",
                                "use 2-D convolution and pooling")


class _Builder:
    def __init__(self, caffe: CaffeNet) -> None:
        import onnx

        self.onnx = onnx
        self.caffe = caffe
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.blobs: dict[str, BlobRef] = {}
        self.values: dict[str, tuple[str, tuple[int, ...]]] = {}  # caffe blob -> (onnx value, per-sample shape)
        self.names: set[str] = set()
        self.weights = {}
        for msg in (*caffe.weights.layer, *caffe.weights.layers):
            self.weights.setdefault(msg.name, msg)

    # helpers
    def fresh(self, base: str) -> str:
        name, n = base, 1
        while name in self.names:
            n += 1
            name = f"{base}_{n}"
        self.names.add(name)
        return name

    def init(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        self.names.add(name)
        self.inits.append(numpy_helper.from_array(np.array(array, dtype=np.float32, order="C"), name))
        return name

    def node(self, op: str, inputs: Sequence[str], base: str, **attrs: Any) -> str:
        out = self.fresh(base)
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), [out], name=self.fresh(base + "/" + op), **attrs))
        return out

    def blob(self, layer: _Layer, index: int, shape: tuple[int, ...], name: str, role: str = "plain") -> np.ndarray:
        msg = self.weights.get(layer.name)
        if msg is None or len(msg.blobs) <= index:
            have = 0 if msg is None else len(msg.blobs)
            raise ModelFileError(
                f"Caffe weights '{self.caffe.caffemodel.name}' have {have} blob(s) for layer '{layer.name}', "
                f"which needs blob {index + 1}", "use the .caffemodel trained with this prototxt")
        values, stored = _blob_array(msg.blobs[index])
        if values.size != math.prod(shape):
            raise ModelFileError(
                f"Caffe weights '{self.caffe.caffemodel.name}': layer '{layer.name}' blob {index} holds "
                f"{values.size} values, the prototxt's layer needs {math.prod(shape)} {tuple(shape)}",
                "use the .caffemodel trained with this prototxt (or the file is truncated)")
        self.blobs[name] = BlobRef(layer.name, index, stored, role)
        return values.reshape(shape)

    def bottom(self, layer: _Layer, i: int = 0) -> tuple[str, tuple[int, ...]]:
        if len(layer.bottom) <= i:
            raise UnsupportedModelError(f"layer '{layer.name}' ({layer.type}) has no bottom {i}", "fix the prototxt")
        name = layer.bottom[i]
        if name not in self.values:
            raise UnsupportedModelError(f"layer '{layer.name}' reads blob '{name}', which no earlier layer makes",
                                        "give the net an input (input/input_dim or an Input layer) and order its layers")
        return self.values[name]

    def set_top(self, layer: _Layer, value: str, shape: tuple[int, ...], i: int = 0) -> None:
        self.values[layer.top[i]] = (value, tuple(int(d) for d in shape))


def _input(b: _Builder, layers: list[_Layer]) -> tuple[str, tuple[int, ...]]:
    net = b.caffe.net
    name, dims = None, None
    if net.input:
        if len(net.input) != 1:
            raise UnsupportedModelError(f"the net has {len(net.input)} inputs; SigDL takes nets with one", "")
        name = net.input[0]
        if net.input_shape:
            dims = [int(d) for d in net.input_shape[0].dim]
        elif net.input_dim:
            dims = [int(d) for d in net.input_dim[:4]]
    for layer in layers:
        if layer.type == "Input" and name is None:
            name = layer.top[0]
            shapes = layer.msg.input_param.shape
            dims = [int(d) for d in shapes[0].dim] if shapes else None
    if name is None or not dims or len(dims) < 2:
        raise UnsupportedModelError(
            f"Caffe net '{b.caffe.prototxt.name}' defines no input shape",
            "use a deploy prototxt: input + input_dim (or input_shape), or an Input layer with a shape")
    shape = tuple(dims[1:])
    b.values[name] = ("data" if name == "data" else b.fresh(name), shape)
    b.names.add(b.values[name][0])
    return b.values[name][0], shape


def _pool_size(size: int, kernel: int, stride: int, pad: int, ceil: bool) -> int:
    """Caffe's pooled size (``PoolingLayer::Reshape``): rounded up or down, and never a last
    window that starts in the padding."""
    span = size + 2 * pad - kernel
    out = (math.ceil(span / stride) if ceil else span // stride) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def caffe_to_onnx(caffe: CaffeNet) -> Converted:
    """The TEST-phase net as a checked ONNX model (see the module docstring)."""
    import onnx
    from onnx import TensorProto, helper

    b = _Builder(caffe)
    layers = _layers(caffe.net)
    if not layers:
        raise UnsupportedModelError(f"Caffe net '{caffe.prototxt.name}' has no layers in the TEST phase",
                                    "give the deploy prototxt")
    input_name, input_shape = _input(b, layers)
    produced: list[str] = []
    consumed: set[str] = set()
    skip_next = False
    for i, layer in enumerate(layers):
        if skip_next:
            skip_next = False
            continue
        if layer.type in _SKIPPED:
            continue
        consumed.update(layer.bottom)
        kind = layer.type
        try:
            handler = _HANDLERS[kind]
        except KeyError:
            raise UnsupportedModelError(f"Caffe layer '{layer.name}' has type '{kind}', which SigDL does not convert",
                                        "supported: " + ", ".join(sorted(_HANDLERS))) from None
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        skip_next = bool(handler(b, layer, nxt))
        produced.extend(layer.top if not skip_next else nxt.top)
    outputs = [t for t in produced if t not in consumed] or produced[-1:]
    out_caffe = outputs[-1]
    out_value, out_shape = b.values[out_caffe]
    graph = helper.make_graph(
        b.nodes, caffe.net.name or caffe.prototxt.stem,
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", *input_shape])],
        [helper.make_tensor_value_info(out_value, TensorProto.FLOAT, ["batch", *out_shape])], b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="sigdl-framework-caffe")
    model.ir_version = 8
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise UnsupportedModelError(f"the ONNX model converted from '{caffe.prototxt.name}' does not check: "
                                    f"{_one_line(exc)}", "report this as a bug") from None
    return Converted(model, b.blobs)


# --------------------------------------------------------------------------- layers


def _convolution(b: _Builder, layer: _Layer, nxt: _Layer | None) -> None:
    p = layer.msg.convolution_param
    x, (c, h, w) = _chw(b, layer)
    if p.axis != 1:
        raise UnsupportedModelError(f"Convolution '{layer.name}' has axis {p.axis}", "only axis 1 is supported")
    kh, kw = _pair(p, "kernel_size", "kernel_h", "kernel_w", None)
    sh, sw = _pair(p, "stride", "stride_h", "stride_w", 1)
    ph, pw = _pair(p, "pad", "pad_h", "pad_w", 0)
    dh, dw = _pair(p, "dilation", "", "", 1)
    group, out = int(p.group), int(p.num_output)
    if c % group or out % group:
        raise UnsupportedModelError(f"Convolution '{layer.name}': {c} inputs and {out} outputs are not "
                                    f"divisible by group {group}", "fix the prototxt")
    weight = b.blob(layer, 0, (out, c // group, kh, kw), f"{layer.name}.weight")
    inputs = [x, b.init(f"{layer.name}.weight", weight)]
    if p.bias_term:
        inputs.append(b.init(f"{layer.name}.bias", b.blob(layer, 1, (out,), f"{layer.name}.bias")))
    y = b.node("Conv", inputs, layer.top[0], kernel_shape=[kh, kw], strides=[sh, sw], pads=[ph, pw, ph, pw],
               dilations=[dh, dw], group=group)
    oh = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    ow = (w + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    b.set_top(layer, y, (out, oh, ow))


def _chw(b: _Builder, layer: _Layer) -> tuple[str, tuple[int, int, int]]:
    x, shape = b.bottom(layer)
    if len(shape) != 3:
        raise UnsupportedModelError(f"layer '{layer.name}' ({layer.type}) needs a C×H×W input, not {shape}",
                                    "check the net's input shape")
    return x, shape  # type: ignore[return-value]


def _inner_product(b: _Builder, layer: _Layer, nxt: _Layer | None) -> None:
    p = layer.msg.inner_product_param
    x, shape = b.bottom(layer)
    if p.axis != 1:
        raise UnsupportedModelError(f"InnerProduct '{layer.name}' has axis {p.axis}", "only axis 1 is supported")
    k, n = math.prod(shape), int(p.num_output)
    if len(shape) > 1:
        x = b.node("Flatten", [x], layer.name + "_flat", axis=1)
    wshape = (k, n) if p.transpose else (n, k)
    inputs = [x, b.init(f"{layer.name}.weight", b.blob(layer, 0, wshape, f"{layer.name}.weight"))]
    if p.bias_term:
        inputs.append(b.init(f"{layer.name}.bias", b.blob(layer, 1, (n,), f"{layer.name}.bias")))
    y = b.node("Gemm", inputs, layer.top[0], transB=0 if p.transpose else 1)
    b.set_top(layer, y, (n,))


def _pooling(b: _Builder, layer: _Layer, nxt: _Layer | None) -> None:
    p = layer.msg.pooling_param
    x, (c, h, w) = _chw(b, layer)
    method = {0: "MAX", 1: "AVE", 2: "STOCHASTIC"}[p.pool]
    if method == "STOCHASTIC":
        raise UnsupportedModelError(f"Pooling '{layer.name}' is STOCHASTIC", "use MAX or AVE pooling")
    if p.global_pooling:
        y = b.node("GlobalMaxPool" if method == "MAX" else "GlobalAveragePool", [x], layer.top[0])
        b.set_top(layer, y, (c, 1, 1))
        return
    kh, kw = _pair(p, "kernel_size", "kernel_h", "kernel_w", None)
    sh, sw = _pair(p, "stride", "stride_h", "stride_w", 1)
    ph, pw = _pair(p, "pad", "pad_h", "pad_w", 0)
    ceil = p.round_mode == 0
    oh, ow = _pool_size(h, kh, sh, ph, ceil), _pool_size(w, kw, sw, pw, ceil)
    eh = max(0, (oh - 1) * sh + kh - h - ph)  # end pads that give Caffe's size with floor rounding
    ew = max(0, (ow - 1) * sw + kw - w - pw)
    pads = [ph, pw, eh, ew]
    if method == "MAX":
        y = b.node("MaxPool", [x], layer.top[0], kernel_shape=[kh, kw], strides=[sh, sw], pads=pads)
    else:
        y = b.node("AveragePool", [x], layer.top[0], kernel_shape=[kh, kw],
                   strides=[sh, sw], pads=pads, count_include_pad=1)
        # Caffe divides by the window clipped to the padded image [-pad, size + pad)
        rows = np.array([min(i * sh - ph + kh, h + ph) - (i * sh - ph) for i in range(oh)], np.float32)
        cols = np.array([min(j * sw - pw + kw, w + pw) - (j * sw - pw) for j in range(ow)], np.float32)
        divisor = np.outer(rows, cols)
        if not np.all(divisor == kh * kw):
            correction = (kh * kw / divisor).astype(np.float32).reshape(1, 1, oh, ow)
            y = b.node("Mul", [y, b.init(f"{layer.name}.divisor_correction", correction)], layer.top[0])
    b.set_top(layer, y, (c, oh, ow))


def _relu(b: _Builder, layer: _Layer, nxt: _Layer | None) -> None:
    x, shape = b.bottom(layer)
    slope = float(layer.msg.relu_param.negative_slope)
    y = b.node("LeakyRelu", [x], layer.top[0], alpha=slope) if slope else b.node("Relu", [x], layer.top[0])
    b.set_top(layer, y, shape)


def _lrn(b: _Builder, layer: _Layer, nxt: _Layer | None) -> None:
    p = layer.msg.lrn_param
    x, shape = _chw(b, layer)
    if p.norm_region != 0:
        raise UnsupportedModelError(f"LRN '{layer.name}' normalises WITHIN_CHANNEL", "only ACROSS_CHANNELS is supported")
    y = b.node("LRN", [x], layer.top[0], size=int(p.local_size), alpha=float(p.alpha), beta=float(p.beta),
               bias=float(p.k))
    b.set_top(layer, y, shape)


def _dropout(b: _Builder, layer: _Layer, nxt: _Layer | None) -> None:
    x, shape = b.bottom(layer)
    ratio = b.init(b.fresh(f"{layer.name}.ratio"), np.array(layer.msg.dropout_param.dropout_ratio, np.float32))
    y = b.node("Dropout", [x, ratio], layer.top[0])
    b.set_top(layer, y, shape)


def _concat(b: _Builder, layer: _Layer, nxt: _Layer | None) -> None:
    p = layer.msg.concat_param
    axis = int(p.axis) if p.HasField("axis") or not p.HasField("concat_dim") else int(p.concat_dim)
    ins = [b.bottom(layer, i) for i in range(len(layer.bottom))]
    rank = len(ins[0][1]) + 1
    axis = axis % rank
    if axis == 0:
        raise UnsupportedModelError(f"Concat '{layer.name}' joins along the batch axis", "concatenate channels")
    shape = list(ins[0][1])
    shape[axis - 1] = sum(s[axis - 1] for _, s in ins)
    y = b.node("Concat", [v for v, _ in ins], layer.top[0], axis=axis)
    b.set_top(layer, y, tuple(shape))


def _batch_norm(b: _Builder, layer: _Layer, nxt: _Layer | None) -> bool:
    x, shape = b.bottom(layer)
    c = shape[0]
    msg = b.weights.get(layer.name)
    factor_values = _blob_array(msg.blobs[2])[0] if msg is not None and len(msg.blobs) > 2 else np.ones(1, np.float32)
    if factor_values.size != 1:
        raise ModelFileError(f"BatchNorm '{layer.name}' has a scale-factor blob of {factor_values.size} values",
                             "use the .caffemodel trained with this prototxt")
    s = float(factor_values[0])
    factor = 0.0 if s == 0 else 1.0 / s
    mean = b.blob(layer, 0, (c,), f"{layer.name}.running_mean", "bn_mean") * factor
    var = b.blob(layer, 1, (c,), f"{layer.name}.running_var", "bn_var") * factor
    fused = (nxt is not None and nxt.type == "Scale" and len(nxt.bottom) == 1 and nxt.bottom[0] == layer.top[0]
             and nxt.msg.scale_param.axis == 1 and nxt.msg.scale_param.num_axes == 1)
    if fused:
        gamma = b.blob(nxt, 0, (c,), f"{nxt.name}.weight")
        beta = (b.blob(nxt, 1, (c,), f"{nxt.name}.bias") if nxt.msg.scale_param.bias_term
                else np.zeros(c, np.float32))
        names = (f"{nxt.name}.weight", f"{nxt.name}.bias")
    else:
        gamma, beta = np.ones(c, np.float32), np.zeros(c, np.float32)
        names = (f"{layer.name}.weight", f"{layer.name}.bias")
    inputs = [x, b.init(names[0], gamma), b.init(names[1], beta), b.init(f"{layer.name}.running_mean", mean),
              b.init(f"{layer.name}.running_var", var)]
    top = (nxt if fused else layer).top[0]
    y = b.node("BatchNormalization", inputs, top, epsilon=float(layer.msg.batch_norm_param.eps),
               momentum=float(layer.msg.batch_norm_param.moving_average_fraction))
    b.set_top(nxt if fused else layer, y, shape)
    return fused


def _scale(b: _Builder, layer: _Layer, nxt: _Layer | None) -> None:
    p = layer.msg.scale_param
    x, shape = b.bottom(layer)
    if len(layer.bottom) != 1 or p.axis != 1 or p.num_axes != 1:
        raise UnsupportedModelError(f"Scale '{layer.name}' is not a per-channel scale of one input",
                                    "use Scale with one bottom, axis 1, num_axes 1")
    c = shape[0]
    bshape = (c, *([1] * (len(shape) - 1)))
    y = b.node("Mul", [x, b.init(f"{layer.name}.weight", b.blob(layer, 0, (c,), f"{layer.name}.weight").reshape(bshape))],
               layer.top[0])
    if p.bias_term:
        y = b.node("Add", [y, b.init(f"{layer.name}.bias", b.blob(layer, 1, (c,), f"{layer.name}.bias").reshape(bshape))],
                   layer.top[0])
    b.set_top(layer, y, shape)


def _softmax(b: _Builder, layer: _Layer, nxt: _Layer | None) -> None:
    x, shape = b.bottom(layer)
    axis = int(layer.msg.softmax_param.axis) if hasattr(layer.msg, "softmax_param") else 1
    b.set_top(layer, b.node("Softmax", [x], layer.top[0], axis=axis), shape)


def _flatten(b: _Builder, layer: _Layer, nxt: _Layer | None) -> None:
    x, shape = b.bottom(layer)
    p = layer.msg.flatten_param if hasattr(layer.msg, "flatten_param") else None
    if p is not None and (p.axis != 1 or p.end_axis != -1):
        raise UnsupportedModelError(f"Flatten '{layer.name}' has axis {p.axis}..{p.end_axis}",
                                    "only axis 1 to -1 is supported")
    b.set_top(layer, b.node("Flatten", [x], layer.top[0], axis=1), (math.prod(shape),))


def _eltwise(b: _Builder, layer: _Layer, nxt: _Layer | None) -> None:
    p = layer.msg.eltwise_param
    ins = [b.bottom(layer, i) for i in range(len(layer.bottom))]
    if any(c != 1.0 for c in p.coeff):
        raise UnsupportedModelError(f"Eltwise '{layer.name}' has coefficients", "use plain SUM, PROD or MAX")
    op = {0: "Mul", 1: "Add", 2: "Max"}[p.operation]
    y = ins[0][0]
    for value, _ in ins[1:]:
        y = b.node(op, [y, value], layer.top[0])
    b.set_top(layer, y, ins[0][1])


def _split(b: _Builder, layer: _Layer, nxt: _Layer | None) -> None:
    value = b.bottom(layer)
    for top in layer.top:
        b.values[top] = value


def _unary(op: str) -> Any:
    def run(b: _Builder, layer: _Layer, nxt: _Layer | None) -> None:
        x, shape = b.bottom(layer)
        b.set_top(layer, b.node(op, [x], layer.top[0]), shape)

    return run


_HANDLERS = {
    "Convolution": _convolution, "InnerProduct": _inner_product, "Pooling": _pooling, "ReLU": _relu,
    "LRN": _lrn, "Dropout": _dropout, "Concat": _concat, "BatchNorm": _batch_norm, "Scale": _scale,
    "Softmax": _softmax, "Flatten": _flatten, "Eltwise": _eltwise, "Split": _split,
    "Sigmoid": _unary("Sigmoid"), "TanH": _unary("Tanh"),
}
