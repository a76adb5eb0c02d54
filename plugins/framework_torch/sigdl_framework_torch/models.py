"""The six model architectures of SigDL's PyTorch zoo, written out in plain ``torch.nn``.

Each builder takes ``(input_shape, num_classes)`` (``input_shape`` without the batch axis)
and returns a freshly initialised :class:`torch.nn.Module` that maps ``N×C×H×W`` float32 to
``N×num_classes`` logits.

* ``lenet300100`` — LeNet-300-100 (LeCun et al., "Gradient-based learning applied to document
  recognition", Proc. IEEE 1998), the fully connected net of Han et al., "Learning both
  weights and connections for efficient neural networks" (NIPS 2015) and "Deep Compression"
  (ICLR 2016): flatten, ``fc1`` 300, ReLU, ``fc2`` 100, ReLU, ``fc3`` classes. 266,610
  parameters at 1×28×28 → 10.
* ``lenet5`` — LeNet-5 in the form of Caffe's ``examples/mnist/lenet_train_test.prototxt``
  that Deep Compression prunes: ``conv1`` 20@5×5, max-pool 2, ``conv2`` 50@5×5, max-pool 2,
  ``fc1`` 500, ReLU, ``fc2`` classes (Caffe puts no non-linearity after the convolutions,
  and neither do we). Weights use Xavier initialisation and zero biases, as in the prototxt.
  431,080 parameters at 1×28×28 → 10.
* ``alexnet``, ``vgg16`` (configuration D, no batch norm), ``squeezenet`` (1.1) — exactly
  torchvision's module structure, parameter names and initialisation (torchvision 0.x
  ``models/alexnet.py``, ``vgg.py``, ``squeezenet.py``), so that a torchvision
  ``state_dict`` loads with ``strict=True``: AlexNet (Krizhevsky et al., NIPS 2012; the
  one-GPU variant of Krizhevsky, "One weird trick", 2014) 61,100,840 parameters; VGG-16
  (Simonyan & Zisserman, ICLR 2015) 138,357,544; SqueezeNet 1.1 (Iandola et al., 2016,
  and the 1.1 release notes of DeepScale/SqueezeNet) 1,235,496 — all at 3×224×224 → 1000.
* ``mobilenet`` — MobileNet v1, width 1.0 (Howard et al., "MobileNets", arXiv:1704.04861),
  which torchvision does not ship. Layout: a 3×3 stride-2 convolution with 32 filters,
  then 13 depthwise-separable blocks (3×3 depthwise conv, BN, ReLU, 1×1 pointwise conv,
  BN, ReLU), global average pooling and one fully connected layer; convolutions carry no
  bias (batch norm follows each). 4,231,976 trainable parameters at 3×224×224 → 1000.
  Parameter names: ``features.0.0.weight`` (stem conv), ``features.0.1.*`` (its BN);
  block ``i`` = 1…13 is ``features.i``, with ``features.i.0.weight`` (depthwise conv),
  ``features.i.1.*`` (BN), ``features.i.3.weight`` (pointwise conv), ``features.i.4.*``
  (BN); the classifier is ``classifier.weight`` / ``classifier.bias``. Pooling is adaptive
  (``AdaptiveAvgPool2d(1)``), so inputs other than 224×224 work.

The smallest input each convolutional model accepts is :data:`MIN_INPUT_SIZE`;
:func:`build_module` raises :class:`~sigdl_core.errors.UnsupportedModelError` below it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from sigdl_core.errors import InvalidValueError, UnknownNameError
from sigdl_core.interfaces import check_input_shape as check_shape

__all__ = [
    "ARCHITECTURES",
    "MIN_INPUT_SIZE",
    "AlexNet",
    "Fire",
    "LeNet300100",
    "LeNet5",
    "MobileNetV1",
    "SqueezeNet11",
    "VGG16",
    "build_module",
    "check_input_shape",
    "count_parameters",
]


# --------------------------------------------------------------------------- LeNets


class LeNet300100(nn.Module):
    """LeNet-300-100: flatten, 300, ReLU, 100, ReLU, classes (``fc1``/``fc2``/``fc3``)."""

    def __init__(self, input_shape: Sequence[int], num_classes: int = 10) -> None:
        super().__init__()
        in_features = int(math.prod(input_shape))
        self.fc1 = nn.Linear(in_features, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, num_classes)
        for layer in (self.fc1, self.fc2, self.fc3):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


class LeNet5(nn.Module):
    """LeNet-5 as in Caffe's MNIST example: conv 20@5×5, pool, conv 50@5×5, pool, 500, classes."""

    def __init__(self, input_shape: Sequence[int], num_classes: int = 10) -> None:
        super().__init__()
        channels, height, width = (int(d) for d in input_shape)
        self.conv1 = nn.Conv2d(channels, 20, kernel_size=5)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(20, 50, kernel_size=5)
        self.pool2 = nn.MaxPool2d(2, 2)
        h = ((height - 4) // 2 - 4) // 2
        w = ((width - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(50 * h * w, 500)
        self.fc2 = nn.Linear(500, num_classes)
        for layer in (self.conv1, self.conv2, self.fc1, self.fc2):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.conv1(x))
        x = self.pool2(self.conv2(x))
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        return self.fc2(x)


# --------------------------------------------------------------------------- torchvision's three


class AlexNet(nn.Module):
    """torchvision's ``AlexNet`` (same modules, names and default initialisation)."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5, in_channels: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


#: VGG configuration "D" (VGG-16): channel counts, "M" for a 2×2 max-pool.
VGG16_CONFIG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)


class VGG16(nn.Module):
    """torchvision's ``vgg16`` (configuration D, no batch norm), with its initialisation."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for v in VGG16_CONFIG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers.append(nn.Conv2d(channels, int(v), kernel_size=3, padding=1))
                layers.append(nn.ReLU(inplace=True))
                channels = int(v)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


class Fire(nn.Module):
    """SqueezeNet's Fire module: 1×1 squeeze, then 1×1 and 3×3 expands concatenated."""

    def __init__(self, inplanes: int, squeeze_planes: int, expand1x1_planes: int, expand3x3_planes: int) -> None:
        super().__init__()
        self.inplanes = inplanes
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat(
            [self.expand1x1_activation(self.expand1x1(x)), self.expand3x3_activation(self.expand3x3(x))], 1
        )


class SqueezeNet11(nn.Module):
    """torchvision's ``squeezenet1_1``, with its initialisation."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5, in_channels: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=3, stride=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(64, 16, 64, 64),
            Fire(128, 16, 64, 64),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(128, 32, 128, 128),
            Fire(256, 32, 128, 128),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(256, 48, 192, 192),
            Fire(384, 48, 192, 192),
            Fire(384, 64, 256, 256),
            Fire(512, 64, 256, 256),
        )
        final_conv = nn.Conv2d(512, num_classes, kernel_size=1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), final_conv, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1))
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, mean=0.0, std=0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.classifier(x)
        return torch.flatten(x, 1)


# --------------------------------------------------------------------------- MobileNet v1

#: MobileNet v1's 13 depthwise-separable blocks: (output channels of the pointwise conv, stride).
MOBILENET_V1_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)


def _conv_bn(inp: int, oup: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup), nn.ReLU(inplace=True)
    )


def _conv_dw(inp: int, oup: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
        nn.BatchNorm2d(inp),
        nn.ReLU(inplace=True),
        nn.Conv2d(inp, oup, 1, 1, 0, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU(inplace=True),
    )


class MobileNetV1(nn.Module):
    """MobileNet v1, width multiplier 1.0 (see the module docstring for parameter names)."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = [_conv_bn(in_channels, 32, 2)]
        channels = 32
        for out, stride in MOBILENET_V1_BLOCKS:
            blocks.append(_conv_dw(channels, out, stride))
            channels = out
        self.features = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        # The initialisation torchvision uses for its MobileNet v2 and v3.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


# --------------------------------------------------------------------------- registry


def _lenet300100(input_shape: Sequence[int], num_classes: int) -> nn.Module:
    return LeNet300100(input_shape, num_classes)


def _lenet5(input_shape: Sequence[int], num_classes: int) -> nn.Module:
    return LeNet5(input_shape, num_classes)


def _alexnet(input_shape: Sequence[int], num_classes: int) -> nn.Module:
    return AlexNet(num_classes, in_channels=int(input_shape[0]))


def _vgg16(input_shape: Sequence[int], num_classes: int) -> nn.Module:
    return VGG16(num_classes, in_channels=int(input_shape[0]))


def _squeezenet(input_shape: Sequence[int], num_classes: int) -> nn.Module:
    return SqueezeNet11(num_classes, in_channels=int(input_shape[0]))


def _mobilenet(input_shape: Sequence[int], num_classes: int) -> nn.Module:
    return MobileNetV1(num_classes, in_channels=int(input_shape[0]))


#: Architecture name → builder ``(input_shape, num_classes) -> nn.Module``.
ARCHITECTURES: dict[str, Callable[[Sequence[int], int], nn.Module]] = {
    "lenet300100": _lenet300100,
    "lenet5": _lenet5,
    "alexnet": _alexnet,
    "vgg16": _vgg16,
    "mobilenet": _mobilenet,
    "squeezenet": _squeezenet,
}

#: The smallest height and width each convolutional architecture accepts (found by
#: following the feature map through every convolution and pooling; the tests check both
#: this size and one pixel less). MobileNet's padded stride-2 convolutions take any size.
MIN_INPUT_SIZE: dict[str, int] = {
    "lenet5": 16,
    "alexnet": 63,
    "vgg16": 32,
    "squeezenet": 17,
    "mobilenet": 1,
}


def check_input_shape(architecture: str, input_shape: Sequence[int]) -> tuple[int, ...]:
    """Validates ``input_shape`` (no batch axis) for ``architecture`` and returns it as ints.

    Raises :class:`~sigdl_core.errors.InvalidValueError` for a malformed shape and
    :class:`~sigdl_core.errors.UnsupportedModelError` for one the architecture cannot take.
    """
    return check_shape(architecture, input_shape, MIN_INPUT_SIZE.get(architecture))


def build_module(
    architecture: str, input_shape: Sequence[int], num_classes: int, device: str | torch.device = "cpu"
) -> nn.Module:
    """Builds ``architecture`` for ``input_shape`` and ``num_classes`` on ``device``.

    ``device="meta"`` builds the structure without allocating or initialising any weights,
    which is how the tests count VGG-16's 138 million parameters cheaply.
    """
    if architecture not in ARCHITECTURES:
        raise UnknownNameError("model", architecture, ARCHITECTURES)
    shape = check_input_shape(architecture, input_shape)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InvalidValueError(f"number of classes {num_classes!r} must be a whole number >= 1")
    with torch.device(device):
        return ARCHITECTURES[architecture](shape, num_classes)


def count_parameters(module: nn.Module) -> int:
    """The number of trainable parameters of ``module`` (buffers not counted)."""
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))
