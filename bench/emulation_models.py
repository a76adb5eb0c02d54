"""ONNX graphs of the networks behind the published latencies the emulators are calibrated on.

Built with ``onnx.helper`` and synthetic (He-initialised, seeded) weights: timing does not
depend on the weights' values, and nothing is downloaded. Each builder follows the
definition that was *measured*, not a look-alike:

* ``inception_v1`` — TF-slim's ``inception_v1`` (the NVIDIA-AI-IOT/tf_to_trt_image_classification
  table measured the TF-slim zoo models). It differs from Caffe's GoogLeNet (Szegedy et al.
  2015) in using a 3×3 convolution on the "5×5" branch and batch norm instead of LRN;
  auxiliary heads are absent (inference graph).
* ``resnet_v1`` — TF-slim's ``resnet_v1_{50,101,152}`` (He et al. 2016): bottleneck units
  with the stride on the 3×3 convolution of the *last* unit of blocks 1–3 (slim's layout),
  identity shortcuts subsampled by a 1×1 max pool there, projection shortcuts where the
  depth changes; batch norm after every convolution.
* ``inception_v3`` — TF-slim's ``inception_v3`` at 299² (Szegedy et al. 2016), Mixed_5b …
  Mixed_7c, no auxiliary head.
* ``mobilenet_v1`` — Howard et al. 2017, with a depth multiplier and input resolution.
* ``vgg16`` — Simonyan & Zisserman 2015, configuration D, fully connected layers as Gemm.
* ``jacintonet11_v2`` — TI's JacintoNet11 (v2) from caffe-jacinto-models
  (``scripts/models/jacintonet_v2.py``, ``jacintonet11``): conv1a 32@5×5/2, conv1b 32@3×3
  in 4 groups, then four stages of [max-pool 2×2/2, conv 3×3 (64, 128, 256, 512), conv 3×3
  of the same width in 4 groups], each conv with BN and ReLU, global average pool and a
  1000-way fully connected layer. Despite its ``res*`` layer names it has no shortcuts.

Every graph has one input ``input`` (N×3×H×W, dynamic batch) and one output ``logits``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class GraphBuilder:
    """Appends layers to an ONNX graph in NCHW, tracking channel counts."""

    def __init__(self, name: str, input_shape: Sequence[int], seed: int = 0,
                 weights: str = "random") -> None:
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.rng = np.random.default_rng(seed)
        self.weights = weights
        self.input_shape = tuple(input_shape)
        self.channels: dict[str, int] = {"input": int(input_shape[0])}
        self._n = 0

    def _uid(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n}"

    def _param(self, name: str, shape: Sequence[int], fan_in: int, kind: str = "w") -> str:
        if kind == "w":
            arr = (self.rng.standard_normal(shape) * math.sqrt(2.0 / max(1, fan_in))).astype(np.float32)
        elif kind == "zeros":
            arr = np.zeros(shape, np.float32)
        elif kind == "ones":
            arr = np.ones(shape, np.float32)
        else:  # small positive (BN variance)
            arr = (1.0 + 0.1 * self.rng.random(shape)).astype(np.float32)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def conv(self, x: str, cout: int, k: int | tuple[int, int], stride: int = 1,
             pad: str | Sequence[int] = "same", group: int = 1, bn: bool = True,
             relu: str | None = "relu", name: str | None = None) -> str:
        """Conv (+ BatchNorm) (+ ReLU/ReLU6). ``pad='same'`` pads (k-1)/2 (TF 'SAME' for
        stride 1; for stride 2 TF-slim's asymmetric SAME is used); 'valid' pads nothing."""
        name = name or self._uid("conv")
        cin = self.channels[x]
        kh, kw = (k, k) if isinstance(k, int) else k
        if isinstance(pad, str):
            if pad == "valid":
                pads = [0, 0, 0, 0]
            elif stride == 1:
                pads = [(kh - 1) // 2, (kw - 1) // 2, kh // 2, kw // 2]
            else:  # TF SAME with stride: total pad k - s (for even inputs), extra at the end
                th, tw = max(kh - stride, 0), max(kw - stride, 0)
                pads = [th // 2, tw // 2, th - th // 2, tw - tw // 2]
        else:
            pads = list(pad)
        w = self._param(f"{name}.weight", (cout, cin // group, kh, kw), cin // group * kh * kw)
        inputs = [x, w]
        if not bn:
            inputs.append(self._param(f"{name}.bias", (cout,), 1, "zeros"))
        out = f"{name}.out"
        self.nodes.append(helper.make_node(
            "Conv", inputs, [out], name=name, kernel_shape=[kh, kw], strides=[stride, stride],
            pads=pads, group=group))
        self.channels[out] = cout
        if bn:
            out = self.bn(out, name + ".bn")
        if relu:
            out = self.act(out, relu, name + "." + relu)
        return out

    def bn(self, x: str, name: str) -> str:
        c = self.channels[x]
        params = [self._param(f"{name}.{p}", (c,), 1, k) for p, k in
                  (("scale", "ones"), ("shift", "zeros"), ("mean", "zeros"), ("var", "var"))]
        out = f"{name}.out"
        self.nodes.append(helper.make_node("BatchNormalization", [x, *params], [out], name=name,
                                           epsilon=1e-3))
        self.channels[out] = c
        return out

    def act(self, x: str, kind: str = "relu", name: str | None = None) -> str:
        name = name or self._uid(kind)
        out = f"{name}.out"
        if kind == "leaky":
            self.nodes.append(helper.make_node("LeakyRelu", [x], [out], name=name, alpha=0.1))
        elif kind == "relu6":
            lo = self._const(name + ".min", 0.0)
            hi = self._const(name + ".max", 6.0)
            self.nodes.append(helper.make_node("Clip", [x, lo, hi], [out], name=name))
        else:
            self.nodes.append(helper.make_node("Relu", [x], [out], name=name))
        self.channels[out] = self.channels[x]
        return out

    def lrn(self, x: str, name: str | None = None) -> str:
        """Caffe's LRN across channels (local_size 5, alpha 1e-4, beta 0.75)."""
        name = name or self._uid("lrn")
        out = f"{name}.out"
        self.nodes.append(helper.make_node("LRN", [x], [out], name=name, size=5, alpha=1e-4,
                                           beta=0.75, bias=1.0))
        self.channels[out] = self.channels[x]
        return out

    def scale(self, x: str, factor: float, name: str | None = None) -> str:
        """``x × factor`` (the residual scaling of Inception-ResNet)."""
        name = name or self._uid("scale")
        out = f"{name}.out"
        self.nodes.append(helper.make_node("Mul", [x, self._const(name + ".k", factor)], [out], name=name))
        self.channels[out] = self.channels[x]
        return out

    def upsample2(self, x: str, name: str | None = None) -> str:
        """Nearest-neighbour ×2 upsampling (``Resize``)."""
        name = name or self._uid("upsample")
        out = f"{name}.out"
        scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), name + ".scales")
        self.inits.append(scales)
        self.nodes.append(helper.make_node("Resize", [x, "", scales.name], [out], name=name, mode="nearest"))
        self.channels[out] = self.channels[x]
        return out

    def flat_concat(self, xs: Sequence[str], out: str, sizes: Sequence[int]) -> str:
        """Flattens each of ``xs`` (N × C × H × W, ``sizes`` = C·H·W) and concatenates them:
        the single output of a detector's heads."""
        flats = [self.flatten(x) for x in xs]
        self.nodes.append(helper.make_node("Concat", flats, [out], name=out, axis=1))
        self.channels[out] = int(sum(sizes))
        return out

    def _const(self, name: str, value: float) -> str:
        self.inits.append(numpy_helper.from_array(np.array(value, np.float32), name))
        return name

    def pool(self, x: str, kind: str, k: int, stride: int, pad: str | Sequence[int] = "valid",
             name: str | None = None) -> str:
        name = name or self._uid(kind + "pool")
        if isinstance(pad, str):
            if pad == "valid":
                pads = [0, 0, 0, 0]
            elif stride == 1:
                pads = [(k - 1) // 2, (k - 1) // 2, k // 2, k // 2]
            else:
                t = max(k - stride, 0)
                pads = [t // 2, t // 2, t - t // 2, t - t // 2]
        else:
            pads = list(pad)
        out = f"{name}.out"
        op = "MaxPool" if kind == "max" else "AveragePool"
        attrs = dict(kernel_shape=[k, k], strides=[stride, stride], pads=pads)
        if op == "AveragePool":
            attrs["count_include_pad"] = 0
        self.nodes.append(helper.make_node(op, [x], [out], name=name, **attrs))
        self.channels[out] = self.channels[x]
        return out

    def global_pool(self, x: str, name: str | None = None) -> str:
        name = name or self._uid("gap")
        out = f"{name}.out"
        self.nodes.append(helper.make_node("GlobalAveragePool", [x], [out], name=name))
        self.channels[out] = self.channels[x]
        return out

    def concat(self, xs: Sequence[str], name: str | None = None) -> str:
        name = name or self._uid("concat")
        out = f"{name}.out"
        self.nodes.append(helper.make_node("Concat", list(xs), [out], name=name, axis=1))
        self.channels[out] = sum(self.channels[x] for x in xs)
        return out

    def add(self, a: str, b: str, name: str | None = None) -> str:
        name = name or self._uid("add")
        out = f"{name}.out"
        self.nodes.append(helper.make_node("Add", [a, b], [out], name=name))
        self.channels[out] = self.channels[a]
        return out

    def flatten(self, x: str, name: str | None = None) -> str:
        name = name or self._uid("flatten")
        out = f"{name}.out"
        self.nodes.append(helper.make_node("Flatten", [x], [out], name=name, axis=1))
        self.channels[out] = self.channels[x]
        return out

    def fc(self, x: str, n_in: int, n_out: int, out: str | None = None, name: str | None = None) -> str:
        name = name or self._uid("fc")
        w = self._param(f"{name}.weight", (n_out, n_in), n_in)
        b = self._param(f"{name}.bias", (n_out,), 1, "zeros")
        out = out or f"{name}.out"
        self.nodes.append(helper.make_node("Gemm", [x, w, b], [out], name=name, transB=1))
        self.channels[out] = n_out
        return out

    def build(self, output: str) -> onnx.ModelProto:
        c, h, w = self.input_shape
        graph = helper.make_graph(
            self.nodes, self.name,
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", c, h, w])],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", self.channels[output]])],
            self.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                  producer_name="sigdl-bench")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def _classifier(g: GraphBuilder, x: str, classes: int = 1000) -> onnx.ModelProto:
    x = g.global_pool(x)
    x = g.flatten(x)
    g.fc(x, g.channels[x], classes, out="logits", name="logits_fc")
    return g.build("logits")


# --------------------------------------------------------------------------- networks


def inception_v1(seed: int = 0) -> onnx.ModelProto:
    """TF-slim inception_v1 at 224² (1001 classes, as in the slim zoo)."""
    g = GraphBuilder("inception_v1", (3, 224, 224), seed)
    x = g.conv("input", 64, 7, 2, name="Conv2d_1a_7x7")
    x = g.pool(x, "max", 3, 2, "same", name="MaxPool_2a_3x3")
    x = g.conv(x, 64, 1, name="Conv2d_2b_1x1")
    x = g.conv(x, 192, 3, name="Conv2d_2c_3x3")
    x = g.pool(x, "max", 3, 2, "same", name="MaxPool_3a_3x3")

    def mixed(x: str, name: str, b0: int, b1: tuple[int, int], b2: tuple[int, int], b3: int) -> str:
        a = g.conv(x, b0, 1, name=f"{name}/b0")
        b = g.conv(g.conv(x, b1[0], 1, name=f"{name}/b1a"), b1[1], 3, name=f"{name}/b1b")
        c = g.conv(g.conv(x, b2[0], 1, name=f"{name}/b2a"), b2[1], 3, name=f"{name}/b2b")
        d = g.conv(g.pool(x, "max", 3, 1, "same", name=f"{name}/b3pool"), b3, 1, name=f"{name}/b3")
        return g.concat([a, b, c, d], name=f"{name}/concat")

    x = mixed(x, "Mixed_3b", 64, (96, 128), (16, 32), 32)
    x = mixed(x, "Mixed_3c", 128, (128, 192), (32, 96), 64)
    x = g.pool(x, "max", 3, 2, "same", name="MaxPool_4a_3x3")
    x = mixed(x, "Mixed_4b", 192, (96, 208), (16, 48), 64)
    x = mixed(x, "Mixed_4c", 160, (112, 224), (24, 64), 64)
    x = mixed(x, "Mixed_4d", 128, (128, 256), (24, 64), 64)
    x = mixed(x, "Mixed_4e", 112, (144, 288), (32, 64), 64)
    x = mixed(x, "Mixed_4f", 256, (160, 320), (32, 128), 128)
    x = g.pool(x, "max", 2, 2, "same", name="MaxPool_5a_2x2")
    x = mixed(x, "Mixed_5b", 256, (160, 320), (32, 128), 128)
    x = mixed(x, "Mixed_5c", 384, (192, 384), (48, 128), 128)
    return _classifier(g, x, 1001)


def resnet_v1(depth: int = 50, seed: int = 0) -> onnx.ModelProto:
    """TF-slim resnet_v1_{50,101,152} at 224² (1000 classes)."""
    units = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}[depth]
    g = GraphBuilder(f"resnet_v1_{depth}", (3, 224, 224), seed)
    x = g.conv("input", 64, 7, 2, pad=[3, 3, 3, 3], name="conv1")
    x = g.pool(x, "max", 3, 2, "same", name="pool1")
    for bi, (n, base) in enumerate(zip(units, (64, 128, 256, 512), strict=True)):
        for ui in range(n):
            stride = 2 if (ui == n - 1 and bi < 3) else 1
            name = f"block{bi + 1}/unit_{ui + 1}"
            depth_out = base * 4
            if g.channels[x] == depth_out:
                short = x if stride == 1 else g.pool(x, "max", 1, stride, name=f"{name}/subsample")
            else:
                short = g.conv(x, depth_out, 1, stride, relu=None, name=f"{name}/shortcut")
            r = g.conv(x, base, 1, name=f"{name}/conv1")
            pad = "same" if stride == 1 else [1, 1, 1, 1]  # slim conv2d_same: explicit pad then VALID
            r = g.conv(r, base, 3, stride, pad=pad, name=f"{name}/conv2")
            r = g.conv(r, depth_out, 1, relu=None, name=f"{name}/conv3")
            x = g.act(g.add(short, r, name=f"{name}/add"), "relu", name=f"{name}/relu")
    return _classifier(g, x, 1000)


def _inception_stem(g: GraphBuilder) -> str:
    """The stem Inception v3 and Inception-ResNet v2 share (299² → 35² × 192)."""
    c = g.conv
    x = c("input", 32, 3, 2, "valid", name="Conv2d_1a_3x3")
    x = c(x, 32, 3, 1, "valid", name="Conv2d_2a_3x3")
    x = c(x, 64, 3, name="Conv2d_2b_3x3")
    x = g.pool(x, "max", 3, 2, name="MaxPool_3a_3x3")
    x = c(x, 80, 1, 1, "valid", name="Conv2d_3b_1x1")
    x = c(x, 192, 3, 1, "valid", name="Conv2d_4a_3x3")
    x = g.pool(x, "max", 3, 2, name="MaxPool_5a_3x3")
    return x


def inception_v3(seed: int = 0) -> onnx.ModelProto:
    """TF-slim inception_v3 at 299² (1001 classes), no auxiliary head."""
    g = GraphBuilder("inception_v3", (3, 299, 299), seed)
    c = g.conv
    x = _inception_stem(g)

    def block_a(x: str, name: str, pool_ch: int) -> str:
        b0 = c(x, 64, 1, name=f"{name}/b0")
        b1 = c(c(x, 48, 1, name=f"{name}/b1a"), 64, 5, name=f"{name}/b1b")
        b2 = c(c(c(x, 64, 1, name=f"{name}/b2a"), 96, 3, name=f"{name}/b2b"), 96, 3, name=f"{name}/b2c")
        b3 = c(g.pool(x, "avg", 3, 1, "same", name=f"{name}/b3pool"), pool_ch, 1, name=f"{name}/b3")
        return g.concat([b0, b1, b2, b3], name=f"{name}/concat")

    x = block_a(x, "Mixed_5b", 32)
    x = block_a(x, "Mixed_5c", 64)
    x = block_a(x, "Mixed_5d", 64)
    # Mixed_6a (reduction)
    b0 = c(x, 384, 3, 2, "valid", name="Mixed_6a/b0")
    b1 = c(c(c(x, 64, 1, name="Mixed_6a/b1a"), 96, 3, name="Mixed_6a/b1b"), 96, 3, 2, "valid",
           name="Mixed_6a/b1c")
    b2 = g.pool(x, "max", 3, 2, name="Mixed_6a/b2pool")
    x = g.concat([b0, b1, b2], name="Mixed_6a/concat")

    def block_b(x: str, name: str, mid: int) -> str:
        b0 = c(x, 192, 1, name=f"{name}/b0")
        b1 = c(x, mid, 1, name=f"{name}/b1a")
        b1 = c(b1, mid, (1, 7), name=f"{name}/b1b")
        b1 = c(b1, 192, (7, 1), name=f"{name}/b1c")
        b2 = c(x, mid, 1, name=f"{name}/b2a")
        b2 = c(b2, mid, (7, 1), name=f"{name}/b2b")
        b2 = c(b2, mid, (1, 7), name=f"{name}/b2c")
        b2 = c(b2, mid, (7, 1), name=f"{name}/b2d")
        b2 = c(b2, 192, (1, 7), name=f"{name}/b2e")
        b3 = c(g.pool(x, "avg", 3, 1, "same", name=f"{name}/b3pool"), 192, 1, name=f"{name}/b3")
        return g.concat([b0, b1, b2, b3], name=f"{name}/concat")

    x = block_b(x, "Mixed_6b", 128)
    x = block_b(x, "Mixed_6c", 160)
    x = block_b(x, "Mixed_6d", 160)
    x = block_b(x, "Mixed_6e", 192)
    # Mixed_7a (reduction)
    b0 = c(c(x, 192, 1, name="Mixed_7a/b0a"), 320, 3, 2, "valid", name="Mixed_7a/b0b")
    b1 = c(x, 192, 1, name="Mixed_7a/b1a")
    b1 = c(b1, 192, (1, 7), name="Mixed_7a/b1b")
    b1 = c(b1, 192, (7, 1), name="Mixed_7a/b1c")
    b1 = c(b1, 192, 3, 2, "valid", name="Mixed_7a/b1d")
    b2 = g.pool(x, "max", 3, 2, name="Mixed_7a/b2pool")
    x = g.concat([b0, b1, b2], name="Mixed_7a/concat")

    def block_c(x: str, name: str) -> str:
        b0 = c(x, 320, 1, name=f"{name}/b0")
        b1 = c(x, 384, 1, name=f"{name}/b1a")
        b1 = g.concat([c(b1, 384, (1, 3), name=f"{name}/b1b"), c(b1, 384, (3, 1), name=f"{name}/b1c")],
                      name=f"{name}/b1concat")
        b2 = c(c(x, 448, 1, name=f"{name}/b2a"), 384, 3, name=f"{name}/b2b")
        b2 = g.concat([c(b2, 384, (1, 3), name=f"{name}/b2c"), c(b2, 384, (3, 1), name=f"{name}/b2d")],
                      name=f"{name}/b2concat")
        b3 = c(g.pool(x, "avg", 3, 1, "same", name=f"{name}/b3pool"), 192, 1, name=f"{name}/b3")
        return g.concat([b0, b1, b2, b3], name=f"{name}/concat")

    x = block_c(x, "Mixed_7b")
    x = block_c(x, "Mixed_7c")
    return _classifier(g, x, 1001)


def mobilenet_v1(multiplier: float = 1.0, resolution: int = 224, seed: int = 0) -> onnx.ModelProto:
    """MobileNet v1 (Howard et al. 2017) with ReLU6, at a depth multiplier and resolution."""
    g = GraphBuilder(f"mobilenet_v1_{multiplier}_{resolution}", (3, resolution, resolution), seed)

    def d(ch: int) -> int:
        return max(8, int(ch * multiplier))

    x = g.conv("input", d(32), 3, 2, name="Conv2d_0", relu="relu6")
    spec = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
            (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]
    for i, (ch, s) in enumerate(spec, start=1):
        cin = g.channels[x]
        x = g.conv(x, cin, 3, s, group=cin, relu="relu6", name=f"Conv2d_{i}_depthwise")
        x = g.conv(x, d(ch), 1, relu="relu6", name=f"Conv2d_{i}_pointwise")
    return _classifier(g, x, 1001)


def vgg16(seed: int = 0) -> onnx.ModelProto:
    """VGG-16 (configuration D) at 224²."""
    g = GraphBuilder("vgg16", (3, 224, 224), seed)
    x = "input"
    for stage, (ch, n) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)), start=1):
        for i in range(n):
            x = g.conv(x, ch, 3, bn=False, name=f"conv{stage}_{i + 1}")
        x = g.pool(x, "max", 2, 2, name=f"pool{stage}")
    x = g.flatten(x)
    x = g.act(g.fc(x, 512 * 7 * 7, 4096, name="fc6"), "relu")
    x = g.act(g.fc(x, 4096, 4096, name="fc7"), "relu")
    g.fc(x, 4096, 1000, out="logits", name="fc8")
    return g.build("logits")


def jacintonet11_v2(seed: int = 0) -> onnx.ModelProto:
    """TI JacintoNet11 v2 at 224² (see the module docstring for the reconstruction)."""
    g = GraphBuilder("jacintonet11_v2", (3, 224, 224), seed)
    x = g.conv("input", 32, 5, 2, pad=[2, 2, 2, 2], name="conv1a")
    x = g.conv(x, 32, 3, group=4, name="conv1b")
    for stage, ch in zip((2, 3, 4, 5), (64, 128, 256, 512), strict=True):
        x = g.pool(x, "max", 2, 2, name=f"pool{stage - 1}")
        x = g.conv(x, ch, 3, name=f"res{stage}a_branch2a")
        x = g.conv(x, ch, 3, group=4, name=f"res{stage}a_branch2b")
    return _classifier(g, x, 1000)


def googlenet_caffe(seed: int = 0) -> onnx.ModelProto:
    """BVLC GoogLeNet (Caffe, Szegedy et al. 2015) at 224²: LRN, 5×5 branches, no BN."""
    g = GraphBuilder("googlenet_caffe", (3, 224, 224), seed)
    x = g.conv("input", 64, 7, 2, pad=[3, 3, 3, 3], bn=False, name="conv1/7x7_s2")
    x = g.lrn(g.pool(x, "max", 3, 2, [0, 0, 1, 1], name="pool1/3x3_s2"), name="pool1/norm1")
    x = g.conv(x, 64, 1, bn=False, name="conv2/3x3_reduce")
    x = g.conv(x, 192, 3, bn=False, name="conv2/3x3")
    x = g.pool(g.lrn(x, name="conv2/norm2"), "max", 3, 2, [0, 0, 1, 1], name="pool2/3x3_s2")

    def inception(x: str, name: str, b0: int, b1: tuple[int, int], b2: tuple[int, int], b3: int) -> str:
        a = g.conv(x, b0, 1, bn=False, name=f"{name}/1x1")
        b = g.conv(g.conv(x, b1[0], 1, bn=False, name=f"{name}/3x3_reduce"), b1[1], 3, bn=False,
                   name=f"{name}/3x3")
        c = g.conv(g.conv(x, b2[0], 1, bn=False, name=f"{name}/5x5_reduce"), b2[1], 5, bn=False,
                   name=f"{name}/5x5")
        d = g.conv(g.pool(x, "max", 3, 1, [1, 1, 1, 1], name=f"{name}/pool"), b3, 1, bn=False,
                   name=f"{name}/pool_proj")
        return g.concat([a, b, c, d], name=f"{name}/output")

    x = inception(x, "inception_3a", 64, (96, 128), (16, 32), 32)
    x = inception(x, "inception_3b", 128, (128, 192), (32, 96), 64)
    x = g.pool(x, "max", 3, 2, [0, 0, 1, 1], name="pool3/3x3_s2")
    x = inception(x, "inception_4a", 192, (96, 208), (16, 48), 64)
    x = inception(x, "inception_4b", 160, (112, 224), (24, 64), 64)
    x = inception(x, "inception_4c", 128, (128, 256), (24, 64), 64)
    x = inception(x, "inception_4d", 112, (144, 288), (32, 64), 64)
    x = inception(x, "inception_4e", 256, (160, 320), (32, 128), 128)
    x = g.pool(x, "max", 3, 2, [0, 0, 1, 1], name="pool4/3x3_s2")
    x = inception(x, "inception_5a", 256, (160, 320), (32, 128), 128)
    x = inception(x, "inception_5b", 384, (192, 384), (48, 128), 128)
    x = g.pool(x, "avg", 7, 1, name="pool5/7x7_s1")
    x = g.flatten(x)
    g.fc(x, 1024, 1000, out="logits", name="loss3/classifier")
    return g.build("logits")


def inception_v4(seed: int = 0) -> onnx.ModelProto:
    """Inception v4 (Szegedy et al. 2017; TF-slim ``inception_v4``) at 299², 1001 classes."""
    g = GraphBuilder("inception_v4", (3, 299, 299), seed)
    c = g.conv
    x = c("input", 32, 3, 2, "valid", name="Conv2d_1a_3x3")
    x = c(x, 32, 3, 1, "valid", name="Conv2d_2a_3x3")
    x = c(x, 64, 3, name="Conv2d_2b_3x3")
    x = g.concat([g.pool(x, "max", 3, 2, name="Mixed_3a/pool"), c(x, 96, 3, 2, "valid", name="Mixed_3a/conv")],
                 name="Mixed_3a")
    a = c(c(x, 64, 1, name="Mixed_4a/b0a"), 96, 3, 1, "valid", name="Mixed_4a/b0b")
    b = c(x, 64, 1, name="Mixed_4a/b1a")
    b = c(c(b, 64, (1, 7), name="Mixed_4a/b1b"), 64, (7, 1), name="Mixed_4a/b1c")
    b = c(b, 96, 3, 1, "valid", name="Mixed_4a/b1d")
    x = g.concat([a, b], name="Mixed_4a")
    x = g.concat([c(x, 192, 3, 2, "valid", name="Mixed_5a/conv"), g.pool(x, "max", 3, 2, name="Mixed_5a/pool")],
                 name="Mixed_5a")

    def block_a(x: str, n: str) -> str:
        b0 = c(x, 96, 1, name=f"{n}/b0")
        b1 = c(c(x, 64, 1, name=f"{n}/b1a"), 96, 3, name=f"{n}/b1b")
        b2 = c(c(c(x, 64, 1, name=f"{n}/b2a"), 96, 3, name=f"{n}/b2b"), 96, 3, name=f"{n}/b2c")
        b3 = c(g.pool(x, "avg", 3, 1, "same", name=f"{n}/b3pool"), 96, 1, name=f"{n}/b3")
        return g.concat([b0, b1, b2, b3], name=f"{n}/concat")

    def block_b(x: str, n: str) -> str:
        b0 = c(x, 384, 1, name=f"{n}/b0")
        b1 = c(c(c(x, 192, 1, name=f"{n}/b1a"), 224, (1, 7), name=f"{n}/b1b"), 256, (7, 1), name=f"{n}/b1c")
        b2 = c(x, 192, 1, name=f"{n}/b2a")
        b2 = c(c(b2, 192, (7, 1), name=f"{n}/b2b"), 224, (1, 7), name=f"{n}/b2c")
        b2 = c(c(b2, 224, (7, 1), name=f"{n}/b2d"), 256, (1, 7), name=f"{n}/b2e")
        b3 = c(g.pool(x, "avg", 3, 1, "same", name=f"{n}/b3pool"), 128, 1, name=f"{n}/b3")
        return g.concat([b0, b1, b2, b3], name=f"{n}/concat")

    def block_c(x: str, n: str) -> str:
        b0 = c(x, 256, 1, name=f"{n}/b0")
        b1 = c(x, 384, 1, name=f"{n}/b1a")
        b1 = g.concat([c(b1, 256, (1, 3), name=f"{n}/b1b"), c(b1, 256, (3, 1), name=f"{n}/b1c")], name=f"{n}/b1")
        b2 = c(c(c(x, 384, 1, name=f"{n}/b2a"), 448, (3, 1), name=f"{n}/b2b"), 512, (1, 3), name=f"{n}/b2c")
        b2 = g.concat([c(b2, 256, (1, 3), name=f"{n}/b2d"), c(b2, 256, (3, 1), name=f"{n}/b2e")], name=f"{n}/b2")
        b3 = c(g.pool(x, "avg", 3, 1, "same", name=f"{n}/b3pool"), 256, 1, name=f"{n}/b3")
        return g.concat([b0, b1, b2, b3], name=f"{n}/concat")

    for i in range(4):
        x = block_a(x, f"Mixed_5{'bcde'[i]}")
    b0 = c(x, 384, 3, 2, "valid", name="Mixed_6a/b0")
    b1 = c(c(c(x, 192, 1, name="Mixed_6a/b1a"), 224, 3, name="Mixed_6a/b1b"), 256, 3, 2, "valid", name="Mixed_6a/b1c")
    x = g.concat([b0, b1, g.pool(x, "max", 3, 2, name="Mixed_6a/pool")], name="Mixed_6a")
    for i in range(7):
        x = block_b(x, f"Mixed_6{'bcdefgh'[i]}")
    b0 = c(c(x, 192, 1, name="Mixed_7a/b0a"), 192, 3, 2, "valid", name="Mixed_7a/b0b")
    b1 = c(c(c(x, 256, 1, name="Mixed_7a/b1a"), 256, (1, 7), name="Mixed_7a/b1b"), 320, (7, 1), name="Mixed_7a/b1c")
    b1 = c(b1, 320, 3, 2, "valid", name="Mixed_7a/b1d")
    x = g.concat([b0, b1, g.pool(x, "max", 3, 2, name="Mixed_7a/pool")], name="Mixed_7a")
    for i in range(3):
        x = block_c(x, f"Mixed_7{'bcd'[i]}")
    return _classifier(g, x, 1001)


def inception_resnet_v2(seed: int = 0) -> onnx.ModelProto:
    """Inception-ResNet v2 (TF-slim ``inception_resnet_v2``) at 299², 1001 classes."""
    g = GraphBuilder("inception_resnet_v2", (3, 299, 299), seed)
    c = g.conv
    x = _inception_stem(g)
    b0 = c(x, 96, 1, name="Mixed_5b/b0")
    b1 = c(c(x, 48, 1, name="Mixed_5b/b1a"), 64, 5, name="Mixed_5b/b1b")
    b2 = c(c(c(x, 64, 1, name="Mixed_5b/b2a"), 96, 3, name="Mixed_5b/b2b"), 96, 3, name="Mixed_5b/b2c")
    b3 = c(g.pool(x, "avg", 3, 1, "same", name="Mixed_5b/b3pool"), 64, 1, name="Mixed_5b/b3")
    x = g.concat([b0, b1, b2, b3], name="Mixed_5b")

    def residual(x: str, n: str, branches: list[str], scale: float, relu: bool = True) -> str:
        up = c(g.concat(branches, name=f"{n}/concat"), g.channels[x], 1, bn=False, relu=None, name=f"{n}/up")
        y = g.add(x, g.scale(up, scale, name=f"{n}/scale"), name=f"{n}/add")
        return g.act(y, "relu", name=f"{n}/relu") if relu else y

    for i in range(10):
        n = f"block35_{i + 1}"
        b0 = c(x, 32, 1, name=f"{n}/b0")
        b1 = c(c(x, 32, 1, name=f"{n}/b1a"), 32, 3, name=f"{n}/b1b")
        b2 = c(c(c(x, 32, 1, name=f"{n}/b2a"), 48, 3, name=f"{n}/b2b"), 64, 3, name=f"{n}/b2c")
        x = residual(x, n, [b0, b1, b2], 0.17)
    b0 = c(x, 384, 3, 2, "valid", name="Mixed_6a/b0")
    b1 = c(c(c(x, 256, 1, name="Mixed_6a/b1a"), 256, 3, name="Mixed_6a/b1b"), 384, 3, 2, "valid", name="Mixed_6a/b1c")
    x = g.concat([b0, b1, g.pool(x, "max", 3, 2, name="Mixed_6a/pool")], name="Mixed_6a")
    for i in range(20):
        n = f"block17_{i + 1}"
        b0 = c(x, 192, 1, name=f"{n}/b0")
        b1 = c(c(c(x, 128, 1, name=f"{n}/b1a"), 160, (1, 7), name=f"{n}/b1b"), 192, (7, 1), name=f"{n}/b1c")
        x = residual(x, n, [b0, b1], 0.10)
    b0 = c(c(x, 256, 1, name="Mixed_7a/b0a"), 384, 3, 2, "valid", name="Mixed_7a/b0b")
    b1 = c(c(x, 256, 1, name="Mixed_7a/b1a"), 288, 3, 2, "valid", name="Mixed_7a/b1b")
    b2 = c(c(c(x, 256, 1, name="Mixed_7a/b2a"), 288, 3, name="Mixed_7a/b2b"), 320, 3, 2, "valid", name="Mixed_7a/b2c")
    x = g.concat([b0, b1, b2, g.pool(x, "max", 3, 2, name="Mixed_7a/pool")], name="Mixed_7a")
    for i in range(10):
        n = f"block8_{i + 1}"
        b0 = c(x, 192, 1, name=f"{n}/b0")
        b1 = c(c(c(x, 192, 1, name=f"{n}/b1a"), 224, (1, 3), name=f"{n}/b1b"), 256, (3, 1), name=f"{n}/b1c")
        x = residual(x, n, [b0, b1], 0.20, relu=i < 9)
    x = c(x, 1536, 1, name="Conv2d_7b_1x1")
    return _classifier(g, x, 1001)


def mobilenet_ssd(seed: int = 0) -> onnx.ModelProto:
    """MobileNet-SSD (chuanqi305's Caffe model, VOC, 21 classes) at 300²: MobileNet v1
    (ReLU, BN) to conv13, four extra stages, and 1×1 box/class heads on six feature maps
    (3 priors on conv11, 6 elsewhere). The heads' outputs are flattened and concatenated;
    prior boxes and DetectionOutput (NMS, on the host with the NCSDK) are not in the graph."""
    g = GraphBuilder("mobilenet_ssd", (3, 300, 300), seed)
    x = g.conv("input", 32, 3, 2, pad=[1, 1, 1, 1], name="conv0")
    spec = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
            (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]
    feats = []
    for i, (ch, s) in enumerate(spec, start=1):
        cin = g.channels[x]
        x = g.conv(x, cin, 3, s, pad=[1, 1, 1, 1], group=cin, name=f"conv{i}/dw")
        x = g.conv(x, ch, 1, name=f"conv{i}")
        if i in (11, 13):
            feats.append(x)
    for i, (mid, out) in enumerate(((256, 512), (128, 256), (128, 256), (64, 128)), start=14):
        x = g.conv(g.conv(x, mid, 1, name=f"conv{i}_1"), out, 3, 2, pad=[1, 1, 1, 1], name=f"conv{i}_2")
        feats.append(x)
    heads, sizes = [], []
    hw = {0: 19, 1: 10, 2: 5, 3: 3, 4: 2, 5: 1}
    for k, f in enumerate(feats):
        priors = 3 if k == 0 else 6
        for kind, per in (("loc", 4), ("conf", 21)):
            heads.append(g.conv(f, priors * per, 1, bn=False, relu=None, name=f"head{k}_mbox_{kind}"))
            sizes.append(priors * per * hw[k] ** 2)
    g.flat_concat(heads, "logits", sizes)
    return g.build("logits")


def squeezenet_v1_0(seed: int = 0) -> onnx.ModelProto:
    """SqueezeNet v1.0 (Iandola et al. 2016, the Caffe model) at 227²."""
    g = GraphBuilder("squeezenet_v1_0", (3, 227, 227), seed)
    x = g.conv("input", 96, 7, 2, "valid", bn=False, name="conv1")
    x = g.pool(x, "max", 3, 2, name="pool1")

    def fire(x: str, n: str, s: int, e: int) -> str:
        sq = g.conv(x, s, 1, bn=False, name=f"{n}/squeeze1x1")
        return g.concat([g.conv(sq, e, 1, bn=False, name=f"{n}/expand1x1"),
                         g.conv(sq, e, 3, bn=False, name=f"{n}/expand3x3")], name=f"{n}/concat")

    x = fire(x, "fire2", 16, 64)
    x = fire(x, "fire3", 16, 64)
    x = fire(x, "fire4", 32, 128)
    x = g.pool(x, "max", 3, 2, name="pool4")
    x = fire(x, "fire5", 32, 128)
    x = fire(x, "fire6", 48, 192)
    x = fire(x, "fire7", 48, 192)
    x = fire(x, "fire8", 64, 256)
    x = g.pool(x, "max", 3, 2, name="pool8")
    x = fire(x, "fire9", 64, 256)
    x = g.conv(x, 1000, 1, bn=False, name="conv10")
    x = g.flatten(g.global_pool(x, name="pool10"), name="logits_flat")
    g.channels["logits_flat.out"] = 1000
    g.nodes.append(helper.make_node("Softmax", ["logits_flat.out"], ["logits"], name="prob", axis=1))
    g.channels["logits"] = 1000
    return g.build("logits")


def densenet121(seed: int = 0) -> onnx.ModelProto:
    """DenseNet-121 (Huang et al. 2017) at 224²: blocks of 6, 12, 24, 16 layers, growth 32,
    bottleneck 4×32, pre-activation (BN, ReLU, conv), transitions halving the channels."""
    g = GraphBuilder("densenet121", (3, 224, 224), seed)
    x = g.conv("input", 64, 7, 2, pad=[3, 3, 3, 3], name="conv0")
    x = g.pool(x, "max", 3, 2, [1, 1, 1, 1], name="pool0")
    for bi, n in enumerate((6, 12, 24, 16), start=1):
        feats = [x]
        for li in range(n):
            name = f"denseblock{bi}/layer{li + 1}"
            h = x if len(feats) == 1 else g.concat(feats, name=f"{name}/concat")
            h = g.act(g.bn(h, f"{name}/norm1"), "relu", name=f"{name}/relu1")
            h = g.conv(h, 128, 1, bn=False, relu=None, name=f"{name}/conv1")
            h = g.act(g.bn(h, f"{name}/norm2"), "relu", name=f"{name}/relu2")
            feats.append(g.conv(h, 32, 3, bn=False, relu=None, name=f"{name}/conv2"))
        x = g.concat(feats, name=f"denseblock{bi}/out")
        if bi < 4:
            name = f"transition{bi}"
            h = g.act(g.bn(x, f"{name}/norm"), "relu", name=f"{name}/relu")
            h = g.conv(h, g.channels[x] // 2, 1, bn=False, relu=None, name=f"{name}/conv")
            x = g.pool(h, "avg", 2, 2, name=f"{name}/pool")
    x = g.act(g.bn(x, "norm5"), "relu", name="relu5")
    return _classifier(g, x, 1000)


def yolov3_tiny(seed: int = 0) -> onnx.ModelProto:
    """YOLOv3-tiny (darknet ``yolov3-tiny.cfg``, 80 classes) at 416²: conv+BN+leaky ReLU,
    two detection heads (13² and 26², 255 channels each), flattened and concatenated; the
    YOLO decoding and NMS are not in the graph."""
    g = GraphBuilder("yolov3_tiny", (3, 416, 416), seed)
    x = "input"
    route8 = None
    for i, ch in enumerate((16, 32, 64, 128, 256)):
        x = g.conv(x, ch, 3, relu="leaky", name=f"conv{i}")
        if ch == 256:
            route8 = x
        x = g.pool(x, "max", 2, 2, name=f"pool{i}")
    x = g.conv(x, 512, 3, relu="leaky", name="conv5")
    x = g.pool(x, "max", 2, 1, [0, 0, 1, 1], name="pool5")
    x = g.conv(x, 1024, 3, relu="leaky", name="conv6")
    a = g.conv(x, 256, 1, relu="leaky", name="conv7")
    h1 = g.conv(g.conv(a, 512, 3, relu="leaky", name="conv8"), 255, 1, bn=False, relu=None, name="yolo1")
    u = g.upsample2(g.conv(a, 128, 1, relu="leaky", name="conv9"), name="upsample")
    x = g.concat([u, route8], name="route")
    h2 = g.conv(g.conv(x, 256, 3, relu="leaky", name="conv10"), 255, 1, bn=False, relu=None, name="yolo2")
    g.flat_concat([h1, h2], "logits", [255 * 13 * 13, 255 * 26 * 26])
    return g.build("logits")


#: name → (builder, description)
MODELS: dict[str, tuple[Callable[[], onnx.ModelProto], str]] = {
    "inception_v1": (inception_v1, "GoogLeNet (TF-slim inception_v1), 224²"),
    "resnet_v1_50": (lambda: resnet_v1(50), "ResNet-50 v1 (TF-slim), 224²"),
    "resnet_v1_101": (lambda: resnet_v1(101), "ResNet-101 v1 (TF-slim), 224²"),
    "resnet_v1_152": (lambda: resnet_v1(152), "ResNet-152 v1 (TF-slim), 224²"),
    "inception_v3": (inception_v3, "Inception v3 (TF-slim), 299²"),
    "mobilenet_v1_1p0_224": (lambda: mobilenet_v1(1.0, 224), "MobileNet v1 1.0, 224²"),
    "mobilenet_v1_0p5_160": (lambda: mobilenet_v1(0.5, 160), "MobileNet v1 0.5, 160²"),
    "mobilenet_v1_0p25_128": (lambda: mobilenet_v1(0.25, 128), "MobileNet v1 0.25, 128²"),
    "vgg16": (vgg16, "VGG-16, 224²"),
    "jacintonet11_v2": (jacintonet11_v2, "TI JacintoNet11 v2, 224²"),
    "googlenet_caffe": (googlenet_caffe, "GoogLeNet (BVLC Caffe), 224²"),
    "inception_v4": (inception_v4, "Inception v4, 299²"),
    "inception_resnet_v2": (inception_resnet_v2, "Inception-ResNet v2, 299²"),
    "mobilenet_ssd": (mobilenet_ssd, "MobileNet-SSD (Caffe, VOC), 300²"),
    "squeezenet_v1_0": (squeezenet_v1_0, "SqueezeNet v1.0 (Caffe), 227²"),
    "densenet121": (densenet121, "DenseNet-121, 224²"),
    "yolov3_tiny": (yolov3_tiny, "YOLOv3-tiny (darknet), 416²"),
}
