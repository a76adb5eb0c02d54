"""The C66x latency model: sanity of its scaling, and the published TIDL calibration point.

TI's TIDL API documentation (``docs/source/example.rst``, Imagenet table) gives 117.9 ms of
device processing time for JacintoNet11 v2 at 224² on one C66x of an AM5749 at 750 MHz.
The graph below is TI's ``jacintonet11`` (caffe-jacinto-models, ``jacintonet_v2.py``) with
stride list [2,2,2,2,2]; see ``bench/emulation_models.py`` for the reconstruction.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sigdl_core.emulation import analyze_model

from sigdl_target_c66x.datasheet import c66x_targets
from sigdl_target_c66x.latency import C66xTiming, estimate_c66x_latency

TARGETS = {t.name: t for t in c66x_targets()}


class _Graph:
    def __init__(self, c: int, hw: int) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.c, self.hw, self.n = c, hw, 0
        self.x = "input"
        self.in_shape = (c, hw, hw)

    def conv(self, out: int, k: int, stride: int = 1, group: int = 1) -> None:
        self.n += 1
        w = np.full((out, self.c // group, k, k), 0.01, np.float32)
        self.inits.append(numpy_helper.from_array(w, f"w{self.n}"))
        y = f"c{self.n}"
        self.nodes.append(helper.make_node("Conv", [self.x, f"w{self.n}"], [y], pads=[k // 2] * 4,
                                           strides=[stride] * 2, group=group))
        self.nodes.append(helper.make_node("Relu", [y], [y + "r"]))
        self.x, self.c, self.hw = y + "r", out, (self.hw + 2 * (k // 2) - k) // stride + 1

    def pool(self) -> None:
        self.n += 1
        y = f"p{self.n}"
        self.nodes.append(helper.make_node("MaxPool", [self.x], [y], kernel_shape=[2, 2], strides=[2, 2]))
        self.x, self.hw = y, self.hw // 2

    def head(self, classes: int) -> onnx.ModelProto:
        self.nodes.append(helper.make_node("GlobalAveragePool", [self.x], ["g"]))
        self.nodes.append(helper.make_node("Flatten", ["g"], ["f"]))
        self.inits.append(numpy_helper.from_array(np.zeros((classes, self.c), np.float32), "fcw"))
        self.nodes.append(helper.make_node("Gemm", ["f", "fcw"], ["logits"], transB=1))
        graph = helper.make_graph(
            self.nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, *self.in_shape])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])], self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def jacintonet11_v2() -> onnx.ModelProto:
    g = _Graph(3, 224)
    g.conv(32, 5, stride=2)
    g.conv(32, 3, group=4)
    for width in (64, 128, 256, 512):
        g.pool()
        g.conv(width, 3)
        g.conv(width, 3, group=4)
    return g.head(1000)


@pytest.fixture(scope="module")
def jacinto_cost():
    return analyze_model(jacintonet11_v2(), batch_size=1).in_format("int8")


def test_c66x_jacintonet11_has_the_macs_of_its_definition(jacinto_cost) -> None:
    def conv(h, cin, cout, k, g=1):
        return h * h * cout * (cin // g) * k * k
    expect = (conv(112, 3, 32, 5) + conv(112, 32, 32, 3, 4) + conv(56, 32, 64, 3) + conv(56, 64, 64, 3, 4)
              + conv(28, 64, 128, 3) + conv(28, 128, 128, 3, 4) + conv(14, 128, 256, 3)
              + conv(14, 256, 256, 3, 4) + conv(7, 256, 512, 3) + conv(7, 512, 512, 3, 4) + 512 * 1000)
    assert jacinto_cost.macs == expect  # 406.3 M


def test_c66x_latency_matches_tidl_on_one_am5749_dsp(jacinto_cost) -> None:
    est = estimate_c66x_latency(jacinto_cost, TARGETS["c66x-am5749"], cores=1)
    published_ms = 117.9
    assert est.cores == 1
    assert abs(est.latency_s * 1e3 - published_ms) / published_ms <= 0.25, est.latency_s * 1e3


def test_c66x_latency_scales_with_cores_clock_and_work(jacinto_cost) -> None:
    c6678 = TARGETS["c66x-c6678"]
    one = estimate_c66x_latency(jacinto_cost, c6678, cores=1)
    eight = estimate_c66x_latency(jacinto_cost, c6678, cores=8)
    speedup = one.latency_s / eight.latency_s
    assert 4.0 < speedup < 8.0  # sub-linear: channel imbalance, contention, barriers
    am = estimate_c66x_latency(jacinto_cost, TARGETS["c66x-am5749"], cores=1)
    # compute bound: the clock ratio 1.25 GHz / 750 MHz, give or take memory and overheads
    assert am.latency_s / one.latency_s == pytest.approx(1.25e9 / 750e6, rel=0.1)
    # the AM5749's two DSPs never split one image (TIDL runs a network per DSP)
    assert estimate_c66x_latency(jacinto_cost, TARGETS["c66x-am5749"], cores=2).cores == 1
    card = estimate_c66x_latency(jacinto_cost, TARGETS["c66x-pcie-64"])
    assert card.latency_s == pytest.approx(eight.latency_s)
    assert card.throughput_fps == pytest.approx(8 * eight.throughput_fps, rel=1e-6)
    assert card.throughput_batch == 64
    half = estimate_c66x_latency(analyze_model(_half_width(), batch_size=1).in_format("int8"), c6678, cores=1)
    assert half.macs < one.macs and half.latency_s < one.latency_s


def _half_width() -> onnx.ModelProto:
    g = _Graph(3, 224)
    g.conv(16, 5, stride=2)
    g.conv(16, 3, group=4)
    for width in (32, 64, 128, 256):
        g.pool()
        g.conv(width, 3)
        g.conv(width, 3, group=4)
    return g.head(1000)


def test_c66x_int8_and_int16_compute_at_the_same_rate(jacinto_cost) -> None:
    c6678 = TARGETS["c66x-c6678"]
    cost16 = analyze_model(jacintonet11_v2(), batch_size=1).in_format("int16")
    e8 = estimate_c66x_latency(jacinto_cost, c6678, cores=1)
    e16 = estimate_c66x_latency(cost16, c6678, cores=1)
    assert e16.compute_s == pytest.approx(e8.compute_s)
    assert e16.memory_s == pytest.approx(2 * e8.memory_s, rel=0.01)


def test_c66x_depthwise_costs_more_per_mac_than_dense() -> None:
    dense, dw = _Graph(64, 28), _Graph(64, 28)
    dense.conv(64, 3)
    dw.conv(64, 3, group=64)
    c6678 = TARGETS["c66x-c6678"]
    e_dense = estimate_c66x_latency(analyze_model(dense.head(10)).in_format("int8"), c6678, cores=1)
    e_dw = estimate_c66x_latency(analyze_model(dw.head(10)).in_format("int8"), c6678, cores=1)
    per_mac = lambda e: e.layers[0].compute_s / e.layers[0].macs  # noqa: E731
    timing = C66xTiming()
    assert per_mac(e_dw) / per_mac(e_dense) == pytest.approx(
        timing.efficiency["conv"] / timing.efficiency["depthwise"], rel=0.1)
    assert not math.isnan(e_dw.latency_s)
