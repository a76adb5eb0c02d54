"""The six zoo models: canonical parameter counts, torchvision's names, forward shapes, limits."""

from __future__ import annotations

import pytest
import torch

from sigdl_core.errors import InvalidValueError, UnknownNameError, UnsupportedModelError
from sigdl_framework_torch.models import MIN_INPUT_SIZE, build_module, count_parameters
from sigdl_framework_torch.plugin import MODEL_CATALOG


pytestmark = pytest.mark.usefixtures("one_torch_thread")


CANONICAL = {
    "lenet300100": ((1, 28, 28), 10, 266_610),
    "lenet5": ((1, 28, 28), 10, 431_080),
    "alexnet": ((3, 224, 224), 1000, 61_100_840),
    "vgg16": ((3, 224, 224), 1000, 138_357_544),
    "mobilenet": ((3, 224, 224), 1000, 4_231_976),
    "squeezenet": ((3, 224, 224), 1000, 1_235_496),
}


@pytest.mark.parametrize("arch", sorted(CANONICAL))
def test_torch_canonical_parameter_counts(arch):
    shape, classes, expected = CANONICAL[arch]
    module = build_module(arch, shape, classes, device="meta")  # no memory, no init
    assert count_parameters(module) == expected
    # the plugin's registered ModelSpec says the same
    _, spec_shape, spec_classes, spec_params, _ = MODEL_CATALOG[arch]
    assert (spec_shape, spec_classes, spec_params) == (shape, classes, expected)
    out = module(torch.empty(2, *shape, device="meta"))
    assert tuple(out.shape) == (2, classes)


def test_torch_lenet_layer_sizes():
    lenet = build_module("lenet300100", (1, 28, 28), 10, device="meta")
    assert [tuple(lenet.get_parameter(f"fc{i}.weight").shape) for i in (1, 2, 3)] == [(300, 784), (100, 300), (10, 100)]
    lenet5 = build_module("lenet5", (1, 28, 28), 10, device="meta")
    shapes = {k: tuple(v.shape) for k, v in lenet5.state_dict().items()}
    assert shapes == {
        "conv1.weight": (20, 1, 5, 5), "conv1.bias": (20,),
        "conv2.weight": (50, 20, 5, 5), "conv2.bias": (50,),
        "fc1.weight": (500, 800), "fc1.bias": (500,),
        "fc2.weight": (10, 500), "fc2.bias": (10,),
    }


def _keys(module):
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_torch_alexnet_has_torchvision_names():
    keys = _keys(build_module("alexnet", (3, 224, 224), 1000, device="meta"))
    expected = {
        "features.0.weight": (64, 3, 11, 11), "features.0.bias": (64,),
        "features.3.weight": (192, 64, 5, 5), "features.3.bias": (192,),
        "features.6.weight": (384, 192, 3, 3), "features.6.bias": (384,),
        "features.8.weight": (256, 384, 3, 3), "features.8.bias": (256,),
        "features.10.weight": (256, 256, 3, 3), "features.10.bias": (256,),
        "classifier.1.weight": (4096, 9216), "classifier.1.bias": (4096,),
        "classifier.4.weight": (4096, 4096), "classifier.4.bias": (4096,),
        "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,),
    }
    assert keys == expected


def test_torch_vgg16_has_torchvision_names():
    keys = _keys(build_module("vgg16", (3, 224, 224), 1000, device="meta"))
    convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    channels = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    expected = {}
    previous = 3
    for index, out in zip(convs, channels):
        expected[f"features.{index}.weight"] = (out, previous, 3, 3)
        expected[f"features.{index}.bias"] = (out,)
        previous = out
    expected.update({
        "classifier.0.weight": (4096, 25088), "classifier.0.bias": (4096,),
        "classifier.3.weight": (4096, 4096), "classifier.3.bias": (4096,),
        "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,),
    })
    assert keys == expected


def test_torch_squeezenet_has_torchvision_names():
    keys = _keys(build_module("squeezenet", (3, 224, 224), 1000, device="meta"))
    fires = {3: (64, 16, 64), 4: (128, 16, 64), 6: (128, 32, 128), 7: (256, 32, 128),
             9: (256, 48, 192), 10: (384, 48, 192), 11: (384, 64, 256), 12: (512, 64, 256)}
    expected = {"features.0.weight": (64, 3, 3, 3), "features.0.bias": (64,)}
    for index, (inplanes, squeeze, expand) in fires.items():
        expected[f"features.{index}.squeeze.weight"] = (squeeze, inplanes, 1, 1)
        expected[f"features.{index}.squeeze.bias"] = (squeeze,)
        expected[f"features.{index}.expand1x1.weight"] = (expand, squeeze, 1, 1)
        expected[f"features.{index}.expand1x1.bias"] = (expand,)
        expected[f"features.{index}.expand3x3.weight"] = (expand, squeeze, 3, 3)
        expected[f"features.{index}.expand3x3.bias"] = (expand,)
    expected["classifier.1.weight"] = (1000, 512, 1, 1)
    expected["classifier.1.bias"] = (1000,)
    assert keys == expected
    module = build_module("squeezenet", (3, 224, 224), 1000, device="meta")
    fire = module.features[3]
    assert {n for n, _ in fire.named_children()} == {
        "squeeze", "squeeze_activation", "expand1x1", "expand1x1_activation", "expand3x3", "expand3x3_activation",
    }
    assert isinstance(module.classifier[3], torch.nn.AdaptiveAvgPool2d)


def test_torch_mobilenet_layout_and_names():
    module = build_module("mobilenet", (3, 224, 224), 1000, device="meta")
    keys = _keys(module)
    assert keys["features.0.0.weight"] == (32, 3, 3, 3)
    assert keys["features.1.0.weight"] == (32, 1, 3, 3)  # depthwise
    assert keys["features.1.3.weight"] == (64, 32, 1, 1)  # pointwise
    assert keys["features.13.3.weight"] == (1024, 1024, 1, 1)
    assert keys["classifier.weight"] == (1000, 1024)
    assert "features.14.0.weight" not in keys
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 27 and all(c.bias is None for c in convs)
    assert sum(1 for c in convs if c.groups > 1 and c.groups == c.in_channels == c.out_channels) == 13
    strides = [c.stride[0] for c in convs if c.kernel_size == (3, 3)]
    assert strides == [2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    # batch-norm running statistics are buffers, not parameters
    assert "features.0.1.running_mean" in keys and "features.0.1.num_batches_tracked" in keys


@pytest.mark.parametrize(
    "arch, shape",
    [
        ("lenet300100", (1, 28, 28)),
        ("lenet300100", (1, 8, 8)),
        ("lenet5", (1, 28, 28)),
        ("lenet5", (3, 32, 32)),
        ("mobilenet", (3, 32, 32)),
        ("squeezenet", (3, 32, 32)),
    ],
)
def test_torch_small_variants_run_forward(arch, shape):
    torch.manual_seed(0)
    module = build_module(arch, shape, 10).eval()
    with torch.no_grad():
        out = module(torch.randn(3, *shape))
    assert tuple(out.shape) == (3, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch, shape", [("alexnet", (3, 64, 64)), ("vgg16", (3, 32, 32)), ("alexnet", (1, 100, 80))])
def test_torch_large_models_take_small_inputs(arch, shape):
    # Their classifiers hold 50-120 million weights whatever the input size: shapes are
    # checked on the meta device, which allocates and initialises nothing.
    module = build_module(arch, shape, 10, device="meta").eval()
    assert tuple(module(torch.empty(3, *shape, device="meta")).shape) == (3, 10)


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
@pytest.mark.parametrize("arch", sorted(MIN_INPUT_SIZE))
def test_torch_minimum_input_size_is_exact(arch):
    least = MIN_INPUT_SIZE[arch]
    channels = 1 if arch == "lenet5" else 3
    module = build_module(arch, (channels, least, least), 10, device="meta").eval()
    assert tuple(module(torch.empty(2, channels, least, least, device="meta")).shape) == (2, 10)
    if least > 1:
        with pytest.raises(UnsupportedModelError, match=f"at least {least}×{least}"):
            build_module(arch, (channels, least - 1, least), 10, device="meta")
        # and the architecture really cannot run one pixel smaller
        from sigdl_framework_torch.models import ARCHITECTURES

        with torch.device("meta"), pytest.raises(RuntimeError):
            ARCHITECTURES[arch]((channels, least - 1, least - 1), 10)(
                torch.empty(2, channels, least - 1, least - 1)
            )


def test_torch_lenet5_on_digits_says_the_minimum():
    with pytest.raises(UnsupportedModelError) as info:
        build_module("lenet5", (1, 8, 8), 10)
    assert "at least 16×16" in info.value.one_line() and "8×8" in info.value.one_line()


def test_torch_bad_model_requests():
    with pytest.raises(UnknownNameError, match="unknown model 'lenet'"):
        build_module("lenet", (1, 28, 28), 10)
    with pytest.raises(InvalidValueError):
        build_module("lenet300100", (1, 0, 28), 10)
    with pytest.raises(InvalidValueError):
        build_module("lenet300100", (1, 28, 28), 0)
    with pytest.raises(UnsupportedModelError, match="C×H×W"):
        build_module("mobilenet", (784,), 10)
