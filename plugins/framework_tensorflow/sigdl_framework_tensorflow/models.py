"""The six architectures of SigDL's zoo as Keras 3 functional models (N×H×W×C in, logits out).

Each builder takes ``(input_shape, num_classes)`` with ``input_shape`` in SigDL's C×H×W
convention (the layout of the core's datasets) and returns a freshly initialised
``keras.Model`` that takes N×H×W×C float32 (TensorFlow's layout) and returns
N×``num_classes`` logits. Only Keras' built-in layers are used, so that a saved ``.keras``
file loads with ``safe_mode=True`` and no custom objects.

* ``lenet300100``, ``lenet5``, ``alexnet``, ``squeezenet`` are written out with the torch zoo's
  layer names (``conv1``, ``fc1``; torchvision's ``features.0``, ``classifier.1``,
  ``features.3.squeeze`` …) and the same initialisation where Keras has it (Glorot-uniform
  weights and zero biases for the LeNets). Before their ``Flatten`` they ``Permute`` to
  channels first, so that the fully connected layer after a convolution reads its features in
  torch's C×H×W order: the named weights then equal the torch model's, and torch weights copy
  across unchanged (the cross-framework test does this).
* ``vgg16`` and ``mobilenet`` are ``keras.applications.VGG16`` and ``keras.applications.MobileNet``
  (``weights=None``, ``classifier_activation=None``), so that their layer names and weight
  layout are Keras' own and a user's ImageNet ``.weights.h5`` loads. They differ from the
  torch zoo's in ways Keras chose: VGG-16 has no dropout and flattens N×H×W×C (its ``fc1``
  reads features in H×W×C order); MobileNet's classifier is a 1×1 convolution
  (``conv_preds``) after dropout, and its stride-2 convolutions pad only bottom and right.
  Their trainable parameter counts equal the torch zoo's at 3×224×224 → 1000
  (138,357,544 and 4,231,976).

Pooling that torch does with ``ceil_mode=True`` (SqueezeNet) is a one-pixel bottom/right
zero padding before a ``valid`` max-pool where the ceiling adds a window; it follows a ReLU,
so zero padding picks the same maxima as torch's. torch's ``AdaptiveAvgPool2d`` (AlexNet)
becomes nothing where the map already has the output size, an average pool where the size
divides evenly, and :class:`~sigdl_core.errors.UnsupportedModelError` otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import keras
from keras import layers

from sigdl_core.errors import InvalidValueError, UnknownNameError, UnsupportedModelError
from sigdl_core.interfaces import check_input_shape

__all__ = ["ARCHITECTURES", "MIN_INPUT_SIZE", "build_keras_model", "count_parameters"]

#: The smallest height and width each convolutional architecture accepts at build time
#: (keras.applications refuses VGG-16 and MobileNet below 32×32).
MIN_INPUT_SIZE: dict[str, int] = {"lenet5": 16, "alexnet": 63, "vgg16": 32, "squeezenet": 17, "mobilenet": 32}


def _nhwc(shape: Sequence[int]) -> tuple[int, ...]:
    """SigDL's C×H×W as Keras' H×W×C; other ranks stay as they are."""
    return (shape[1], shape[2], shape[0]) if len(shape) == 3 else tuple(shape)


def _channels_first_flatten(x: keras.KerasTensor, name: str = "flatten") -> keras.KerasTensor:
    """Flattens an N×H×W×C map in torch's C×H×W order (a Permute, then Flatten)."""
    if len(x.shape) == 4:
        x = layers.Permute((3, 1, 2), name=f"{name}_to_chw")(x)
    return layers.Flatten(name=name)(x)


def _lenet300100(shape: Sequence[int], classes: int) -> keras.Model:
    inputs = keras.Input(_nhwc(shape), name="input")
    x = _channels_first_flatten(inputs) if len(shape) > 1 else inputs
    x = layers.Dense(300, activation="relu", name="fc1")(x)
    x = layers.Dense(100, activation="relu", name="fc2")(x)
    return keras.Model(inputs, layers.Dense(classes, name="fc3")(x), name="lenet300100")


def _lenet5(shape: Sequence[int], classes: int) -> keras.Model:
    inputs = keras.Input(_nhwc(shape), name="input")
    x = layers.Conv2D(20, 5, name="conv1")(inputs)
    x = layers.MaxPooling2D(2, 2, name="pool1")(x)
    x = layers.Conv2D(50, 5, name="conv2")(x)
    x = layers.MaxPooling2D(2, 2, name="pool2")(x)
    x = _channels_first_flatten(x)
    x = layers.Dense(500, activation="relu", name="fc1")(x)
    return keras.Model(inputs, layers.Dense(classes, name="fc2")(x), name="lenet5")


def _adaptive_avg_pool(x: keras.KerasTensor, size: int, name: str) -> keras.KerasTensor:
    h, w = int(x.shape[1]), int(x.shape[2])
    if (h, w) == (size, size):
        return x
    if h % size or w % size:
        raise UnsupportedModelError(
            f"the feature map is {h}×{w}, which Keras cannot pool adaptively to {size}×{size}",
            "use the canonical 224×224 input (or a size whose map divides evenly)",
        )
    return layers.AveragePooling2D((h // size, w // size), name=name)(x)


def _alexnet(shape: Sequence[int], classes: int) -> keras.Model:
    inputs = keras.Input(_nhwc(shape), name="input")
    x = layers.ZeroPadding2D(2, name="features.0.pad")(inputs)
    x = layers.Conv2D(64, 11, strides=4, activation="relu", name="features.0")(x)
    x = layers.MaxPooling2D(3, 2, name="features.2")(x)
    x = layers.Conv2D(192, 5, padding="same", activation="relu", name="features.3")(x)
    x = layers.MaxPooling2D(3, 2, name="features.5")(x)
    x = layers.Conv2D(384, 3, padding="same", activation="relu", name="features.6")(x)
    x = layers.Conv2D(256, 3, padding="same", activation="relu", name="features.8")(x)
    x = layers.Conv2D(256, 3, padding="same", activation="relu", name="features.10")(x)
    x = layers.MaxPooling2D(3, 2, name="features.12")(x)
    x = _adaptive_avg_pool(x, 6, "avgpool")
    x = _channels_first_flatten(x)
    x = layers.Dropout(0.5, name="classifier.0")(x)
    x = layers.Dense(4096, activation="relu", name="classifier.1")(x)
    x = layers.Dropout(0.5, name="classifier.3")(x)
    x = layers.Dense(4096, activation="relu", name="classifier.4")(x)
    return keras.Model(inputs, layers.Dense(classes, name="classifier.6")(x), name="alexnet")


def _ceil_max_pool(x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    """torch's ``MaxPool2d(3, 2, ceil_mode=True)`` on a non-negative (post-ReLU) map."""
    pad = [(int(d) - 3) % 2 for d in x.shape[1:3]]
    if any(pad):
        x = layers.ZeroPadding2D(((0, pad[0]), (0, pad[1])), name=f"{name}.pad")(x)
    return layers.MaxPooling2D(3, 2, name=name)(x)


def _fire(x: keras.KerasTensor, prefix: str, squeeze: int, expand: int) -> keras.KerasTensor:
    s = layers.Conv2D(squeeze, 1, activation="relu", kernel_initializer="he_uniform",
                      name=f"{prefix}.squeeze")(x)
    e1 = layers.Conv2D(expand, 1, activation="relu", kernel_initializer="he_uniform",
                       name=f"{prefix}.expand1x1")(s)
    e3 = layers.Conv2D(expand, 3, padding="same", activation="relu", kernel_initializer="he_uniform",
                       name=f"{prefix}.expand3x3")(s)
    return layers.Concatenate(name=f"{prefix}.cat")([e1, e3])


def _squeezenet(shape: Sequence[int], classes: int) -> keras.Model:
    inputs = keras.Input(_nhwc(shape), name="input")
    x = layers.Conv2D(64, 3, strides=2, activation="relu", kernel_initializer="he_uniform",
                      name="features.0")(inputs)
    x = _ceil_max_pool(x, "features.2")
    x = _fire(x, "features.3", 16, 64)
    x = _fire(x, "features.4", 16, 64)
    x = _ceil_max_pool(x, "features.5")
    x = _fire(x, "features.6", 32, 128)
    x = _fire(x, "features.7", 32, 128)
    x = _ceil_max_pool(x, "features.8")
    x = _fire(x, "features.9", 48, 192)
    x = _fire(x, "features.10", 48, 192)
    x = _fire(x, "features.11", 64, 256)
    x = _fire(x, "features.12", 64, 256)
    x = layers.Dropout(0.5, name="classifier.0")(x)
    x = layers.Conv2D(classes, 1, activation="relu",
                      kernel_initializer=keras.initializers.RandomNormal(0.0, 0.01), name="classifier.1")(x)
    x = layers.GlobalAveragePooling2D(name="classifier.3")(x)
    return keras.Model(inputs, x, name="squeezenet")


def _vgg16(shape: Sequence[int], classes: int) -> keras.Model:
    return keras.applications.VGG16(include_top=True, weights=None, input_shape=_nhwc(shape), classes=classes,
                                    classifier_activation=None, name="vgg16")


def _mobilenet(shape: Sequence[int], classes: int) -> keras.Model:
    return keras.applications.MobileNet(include_top=True, weights=None, input_shape=_nhwc(shape), alpha=1.0,
                                        classes=classes, classifier_activation=None, name="mobilenet")


#: Architecture name → builder ``(input_shape C×H×W, num_classes) -> keras.Model``.
ARCHITECTURES: dict[str, Callable[[Sequence[int], int], keras.Model]] = {
    "lenet300100": _lenet300100,
    "lenet5": _lenet5,
    "alexnet": _alexnet,
    "vgg16": _vgg16,
    "mobilenet": _mobilenet,
    "squeezenet": _squeezenet,
}


def build_keras_model(architecture: str, input_shape: Sequence[int], num_classes: int) -> keras.Model:
    """Builds ``architecture`` for ``input_shape`` (C×H×W) and ``num_classes``."""
    if architecture not in ARCHITECTURES:
        raise UnknownNameError("model", architecture, ARCHITECTURES)
    shape = check_input_shape(architecture, input_shape, MIN_INPUT_SIZE.get(architecture))
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InvalidValueError(f"number of classes {num_classes!r} must be a whole number >= 1")
    return ARCHITECTURES[architecture](shape, num_classes)


def count_parameters(model: keras.Model) -> int:
    """The number of trainable parameters (batch-norm moving statistics not counted)."""
    return int(sum(math.prod(v.shape) for v in model.trainable_weights))
