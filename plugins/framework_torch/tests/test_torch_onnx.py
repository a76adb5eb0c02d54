"""ONNX export: checked by onnx.checker, and onnxruntime gives torch's logits."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from sigdl_core.errors import InvalidValueError, UnsupportedModelError


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _randomise_batchnorm(fw, model, rng):
    """Non-trivial running statistics, so that the exported BN folding is really tested."""
    update = {}
    for name, w in fw.get_weights(model).items():
        if name.endswith("running_mean") or name.endswith(".bias"):
            update[name] = rng.normal(0, 0.1, w.shape).astype(np.float32)
        elif name.endswith("running_var"):
            update[name] = rng.uniform(0.5, 2.0, w.shape).astype(np.float32)
    fw.set_weights(model, update)


@pytest.mark.parametrize(
    "arch, shape, classes",
    [
        ("lenet300100", (1, 28, 28), 10),
        ("lenet5", (1, 28, 28), 10),
        ("mobilenet", (3, 64, 64), 10),
        ("squeezenet", (3, 64, 64), 10),
    ],
)
def test_torch_onnx_matches_onnxruntime(fw, tmp_path, arch, shape, classes):
    rng = np.random.default_rng(0)
    model = fw.build(arch, shape, classes, seed=0)
    _randomise_batchnorm(fw, model, rng)
    path = fw.export_onnx(model, tmp_path / f"{arch}.onnx")
    assert [p.name for p in tmp_path.iterdir()] == [f"{arch}.onnx"]  # written atomically, no leftovers

    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    assert {o.domain or "ai.onnx": o.version for o in proto.opset_import}["ai.onnx"] == 17
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == list(shape)

    x = rng.standard_normal((3, *shape)).astype(np.float32)  # batch 3: the batch axis is dynamic
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"input": x})
    with torch.no_grad():
        expected = model.native(torch.from_numpy(x)).numpy()
    assert logits.shape == (3, classes)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    assert not model.native.training


def test_torch_onnx_export_failure_is_clean(fw, tmp_path, capfd):
    model = fw.build("alexnet", (3, 64, 64), 10)  # 1×1 features cannot be pooled to 6×6 in ONNX
    (tmp_path / "keep.onnx").write_bytes(b"previous")
    with pytest.raises(UnsupportedModelError, match="cannot export 'alexnet'") as info:
        fw.export_onnx(model, tmp_path / "keep.onnx")
    assert "\n" not in info.value.one_line()
    assert (tmp_path / "keep.onnx").read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.onnx"]
    out, _ = capfd.readouterr()
    assert "graph" not in out  # torch's C++ graph dump is kept off stdout
    with pytest.raises(InvalidValueError):
        fw.export_onnx(fw.build("lenet300100", (1, 8, 8), 10), tmp_path / "x.onnx", batch_size=0)
