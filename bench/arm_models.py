"""ONNX graphs of the six networks of ncnn's benchmark that calibrate the ARM emulator.

ncnn's ``benchmark/models/*.param`` are the Caffe definitions of these networks (read at
Tencent/ncnn a4d2ea1, ``benchmark/models/{squeezenet,mobilenet,resnet18,alexnet,vgg16,
resnet50}.param``); each builder below follows that definition, layer for layer, with
synthetic weights (benchncnn itself times random weights: "the large model binary files
are not loaded but generated randomly"). Built with :class:`emulation_models.GraphBuilder`
(the graphs of the other calibration benches), batch norm folded away as ncnn does at
conversion (``bn=False`` plus a bias):

* ``squeezenet`` — SqueezeNet v1.1 (Caffe, 227²): conv1 64@3×3/2, max pools 3×3/2 after
  conv1, fire3 and fire5, eight fire modules, conv10 1000@1×1, global average pool.
* ``mobilenet`` — MobileNet v1 1.0 at 224² (1000 classes): :func:`emulation_models.mobilenet_v1`.
* ``resnet18`` — ResNet-18 (Caffe, 224²): basic blocks, projection shortcuts (1×1, stride 2)
  where the width changes.
* ``alexnet`` — BVLC AlexNet (Caffe, 227²): conv1 96@11×11/4, LRN, conv2 256@5×5 in 2
  groups, LRN, conv3 384@3×3, conv4 384@3×3 /2 groups, conv5 256@3×3 /2 groups, fc6/fc7
  4096, fc8 1000.
* ``vgg16`` — VGG-16 configuration D, 224²: :func:`emulation_models.vgg16`.
* ``resnet50`` — ResNet-50 (Kaiming He's Caffe model, 224²): bottlenecks with the stride on
  the first 1×1 convolution (the Caffe layout, unlike TF-slim's).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import onnx
from onnx import helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from emulation_models import GraphBuilder, mobilenet_v1, vgg16  # noqa: E402


def _conv(g: GraphBuilder, x: str, cout: int, k: int, stride: int = 1, pad: int | None = None,
          group: int = 1, relu: bool = True, name: str | None = None) -> str:
    p = (k - 1) // 2 if pad is None else pad
    return g.conv(x, cout, k, stride, pad=[p, p, p, p], group=group, bn=False,
                  relu="relu" if relu else None, name=name)


def _head(g: GraphBuilder, x: str) -> onnx.ModelProto:
    x = g.flatten(g.global_pool(x))
    g.fc(x, g.channels[x], 1000, out="logits", name="fc")
    return g.build("logits")


def squeezenet_v11(seed: int = 0) -> onnx.ModelProto:
    """SqueezeNet v1.1 (Caffe), 227²."""
    g = GraphBuilder("squeezenet_v1.1", (3, 227, 227), seed)
    x = _conv(g, "input", 64, 3, 2, pad=0, name="conv1")
    x = g.pool(x, "max", 3, 2, name="pool1")

    def fire(x: str, name: str, s: int, e: int) -> str:
        sq = _conv(g, x, s, 1, name=f"{name}/squeeze1x1")
        a = _conv(g, sq, e, 1, name=f"{name}/expand1x1")
        b = _conv(g, sq, e, 3, name=f"{name}/expand3x3")
        return g.concat([a, b], name=f"{name}/concat")

    x = fire(x, "fire2", 16, 64)
    x = fire(x, "fire3", 16, 64)
    x = g.pool(x, "max", 3, 2, name="pool3")
    x = fire(x, "fire4", 32, 128)
    x = fire(x, "fire5", 32, 128)
    x = g.pool(x, "max", 3, 2, name="pool5")
    x = fire(x, "fire6", 48, 192)
    x = fire(x, "fire7", 48, 192)
    x = fire(x, "fire8", 64, 256)
    x = fire(x, "fire9", 64, 256)
    x = _conv(g, x, 1000, 1, name="conv10")
    x = g.flatten(g.global_pool(x), name="flatten")
    # the graph's output must be called logits: an Identity keeps the FLOPs unchanged
    g.nodes.append(helper.make_node("Identity", [x], ["logits"], name="logits"))
    g.channels["logits"] = 1000
    return g.build("logits")


def resnet_caffe(depth: int = 18, seed: int = 0) -> onnx.ModelProto:
    """ResNet-18 (basic blocks) or ResNet-50 (bottlenecks, stride on the first 1×1), Caffe, 224²."""
    g = GraphBuilder(f"resnet{depth}", (3, 224, 224), seed)
    x = _conv(g, "input", 64, 7, 2, pad=3, name="conv1")
    x = g.pool(x, "max", 3, 2, pad=[0, 0, 1, 1], name="pool1")
    units = {18: (2, 2, 2, 2), 50: (3, 4, 6, 3)}[depth]
    for si, (n, width) in enumerate(zip(units, (64, 128, 256, 512), strict=True)):
        for ui in range(n):
            stride = 2 if (ui == 0 and si > 0) else 1
            name = f"res{si + 2}{chr(ord('a') + ui)}"
            out_ch = width if depth == 18 else width * 4
            short = x
            if ui == 0 and (g.channels[x] != out_ch or stride != 1):
                short = _conv(g, x, out_ch, 1, stride, relu=False, name=f"{name}_branch1")
            if depth == 18:
                r = _conv(g, x, width, 3, stride, name=f"{name}_branch2a")
                r = _conv(g, r, width, 3, relu=False, name=f"{name}_branch2b")
            else:
                r = _conv(g, x, width, 1, stride, name=f"{name}_branch2a")
                r = _conv(g, r, width, 3, name=f"{name}_branch2b")
                r = _conv(g, r, out_ch, 1, relu=False, name=f"{name}_branch2c")
            x = g.act(g.add(short, r, name=name), "relu", name=f"{name}_relu")
    return _head(g, x)


def alexnet_caffe(seed: int = 0) -> onnx.ModelProto:
    """BVLC AlexNet (Caffe), 227², with LRN and grouped conv2/4/5."""
    g = GraphBuilder("alexnet", (3, 227, 227), seed)
    x = _conv(g, "input", 96, 11, 4, pad=0, name="conv1")
    x = g.pool(g.lrn(x, "norm1"), "max", 3, 2, name="pool1")
    x = _conv(g, x, 256, 5, group=2, name="conv2")
    x = g.pool(g.lrn(x, "norm2"), "max", 3, 2, name="pool2")
    x = _conv(g, x, 384, 3, name="conv3")
    x = _conv(g, x, 384, 3, group=2, name="conv4")
    x = _conv(g, x, 256, 3, group=2, name="conv5")
    x = g.flatten(g.pool(x, "max", 3, 2, name="pool5"))
    x = g.act(g.fc(x, 256 * 6 * 6, 4096, name="fc6"), "relu")
    x = g.act(g.fc(x, 4096, 4096, name="fc7"), "relu")
    g.fc(x, 4096, 1000, out="logits", name="fc8")
    return g.build("logits")


#: ncnn benchmark name → (builder, description)
MODELS: dict[str, tuple[Callable[[], onnx.ModelProto], str]] = {
    "squeezenet": (squeezenet_v11, "SqueezeNet v1.1 (Caffe), 227²"),
    "mobilenet": (lambda: mobilenet_v1(1.0, 224), "MobileNet v1 1.0, 224²"),
    "resnet18": (lambda: resnet_caffe(18), "ResNet-18 (Caffe), 224²"),
    "alexnet": (alexnet_caffe, "AlexNet (BVLC Caffe), 227²"),
    "vgg16": (vgg16, "VGG-16, 224²"),
    "resnet50": (lambda: resnet_caffe(50), "ResNet-50 (Caffe), 224²"),
}
