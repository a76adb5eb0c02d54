"""ONNX files the torch plugin exports, and retraining through the torch framework.

Skipped where sigdl-framework-torch is not installed (the plugin's ``[torch]`` extra).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sigdl_framework_torch")

from sigdl_core.interfaces import TrainSettings  # noqa: E402
from sigdl_framework_onnx.framework import OnnxFramework  # noqa: E402
from sigdl_framework_onnx.to_torch import OnnxModule  # noqa: E402
from sigdl_framework_torch.framework import TorchFramework  # noqa: E402


@pytest.mark.parametrize("arch, shape", [("lenet5", (1, 28, 28)), ("lenet300100", (1, 28, 28)),
                                         ("squeezenet", (3, 64, 64))])
def test_torch_exports_load_with_the_same_weights_kinds_and_outputs(arch, shape, tmp_path):
    tfw, ofw = TorchFramework(), OnnxFramework()
    tmodel = tfw.build(arch, shape, 10, seed=1)
    rng = np.random.default_rng(1)
    # zero-initialised biases would be shared by the exporter (one initializer for equal constants)
    tfw.set_weights(tmodel, {n: rng.standard_normal(w.shape).astype(np.float32) * 0.1
                             for n, w in tfw.get_weights(tmodel).items() if tfw.layer_kinds(tmodel)[n] == "bias"})
    model = ofw.load(tfw.export_onnx(tmodel, tmp_path / f"{arch}.onnx"))
    tw, ow = tfw.get_weights(tmodel), ofw.get_weights(model)
    assert set(ow) == set(tw)  # the exporter keeps parameter names; shapes in torch's out×in layout
    for name in ow:
        np.testing.assert_array_equal(ow[name], tw[name])
    assert ofw.layer_kinds(model) == tfw.layer_kinds(tmodel)
    assert ofw.parameter_count(model) == tfw.parameter_count(tmodel)
    x = np.random.default_rng(0).standard_normal((3, *shape)).astype(np.float32)
    with torch.no_grad():
        expected = tmodel.native(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.native.logits(x), expected, rtol=1e-4, atol=1e-4)
    # the converted module computes the same (the retraining route)
    twin = OnnxModule(model.native).eval()
    assert set(twin.state_dict()) == set(ow)  # initializer names kept as state names
    with torch.no_grad():
        np.testing.assert_allclose(twin(torch.from_numpy(x)).numpy(), expected, rtol=1e-4, atol=1e-4)


def test_retraining_keeps_a_pruning_mask_and_the_weights_go_back_to_onnx(mlp_onnx, digits, tmp_path):
    fw = OnnxFramework()
    model = fw.load(mlp_onnx)
    assert fw.training_unavailable(model) is None
    w = fw.get_weights(model)
    mask = np.abs(w["hidden/W"]) >= np.quantile(np.abs(w["hidden/W"]), 0.8)
    fw.set_weights(model, {"hidden/W": w["hidden/W"] * mask})
    before = fw.evaluate(model, digits, "test").top1
    seen: list[tuple[int, ...]] = []

    def projection(views: dict[str, np.ndarray]) -> None:
        seen.append(views["hidden/W"].shape)
        views["hidden/W"] *= mask

    history = fw.train(model, digits, TrainSettings(epochs=2, lr=0.05, batch_size=32, seed=0), projection=projection)
    assert len(history.loss) == 2 and seen and set(seen) == {(32, 64)}
    after = fw.get_weights(model)
    assert np.all(after["hidden/W"][~mask] == 0.0)
    assert not np.array_equal(after["hidden/W"], w["hidden/W"] * mask)  # it did train
    acc = fw.evaluate(model, digits, "test").top1
    assert acc >= before - 0.02 and acc > 0.85
    # the exported file holds the retrained weights (in the file's K×N layout)
    again = fw.load(fw.export_onnx(model, tmp_path / "retrained.onnx"))
    np.testing.assert_array_equal(fw.get_weights(again)["hidden/W"], after["hidden/W"])
    assert fw.evaluate(again, digits, "test").top1 == pytest.approx(acc)


def test_retraining_is_deterministic_under_a_seed(mlp_onnx, digits):
    runs = []
    for _ in range(2):
        fw = OnnxFramework()
        model = fw.load(mlp_onnx)
        fw.train(model, digits, TrainSettings(epochs=1, lr=0.05, batch_size=64, seed=3))
        runs.append(fw.get_weights(model))
    for name in runs[0]:
        np.testing.assert_array_equal(runs[0][name], runs[1][name])
