"""The TensorFlow framework through the `sigdl` command, and the same chain in torch and TensorFlow.

The datasets come from sigdl-datasets, a dependency. The loop and compress tests need the
compressor plugins, and the cross-framework test sigdl-framework-torch: alone, this plugin
skips those.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")


def needs_compressors() -> None:
    pytest.importorskip("sigdl_compress_prune")
    pytest.importorskip("sigdl_compress_quant")


def one_line(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_a_keras_file_with_code_is_exit_2_and_never_runs(sigdl_cli, tmp_path):
    marker = tmp_path / "ran"
    inputs = keras.Input((28, 28, 1))
    code = f"lambda t: (open({str(marker)!r}, 'w').write('ran'), t)[1]"
    x = keras.layers.Lambda(eval(code))(inputs)  # noqa: S307 - the test's own code, with the path inside it
    keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(x))).save(tmp_path / "evil.keras")
    marker.unlink()
    line = one_line(sigdl_cli(["test", str(tmp_path / "evil.keras"), "-d", "mnist5k"]))
    assert "evil.keras" in line and "Python code" in line
    assert not marker.exists()
    (tmp_path / "cut.keras").write_bytes(b"PK\x03\x04 not really")
    assert "cut.keras" in one_line(sigdl_cli(["test", str(tmp_path / "cut.keras"), "-d", "mnist5k"]))


@pytest.mark.slow
def test_sigdl_run_with_framework_tensorflow_runs_the_whole_loop(sigdl_cli, tmp_path):
    needs_compressors()
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "model: lenet300100\nframework: tensorflow\ndataset: mnist5k\n"
        "train: {epochs: 2}\n"
        "compress: {chain: [prune, quant, encode], retrain: {epochs: 1}}\n"
        "budget: {max_accuracy_drop: 5.0}\n"
        "search: {sensitivity: [0.5, 0.9], bisection_steps: 1}\n"
        "limits: {max_candidates: 3, max_seconds: 120}\n"
    )
    run = tmp_path / "run"
    result = sigdl_cli(["run", str(recipe), "-o", str(run), "--json", "--quiet"])
    assert result.exit_code == 0, result.stderr[-3000:]
    report = json.loads((run / "report.json").read_text())
    assert report["model"]["framework"] == "tensorflow" and report["met"]
    assert report["chosen"]["ratio"] > 4
    assert (run / "baseline.keras").is_file() and (run / "model.onnx").is_file() and (run / "model.sigdl").is_file()


@pytest.mark.slow
def test_the_same_chain_on_the_same_lenet5_weights_agrees_in_torch_and_tensorflow(sigdl_cli, tmp_path):
    needs_compressors()
    pytest.importorskip("sigdl_framework_torch")
    from sigdl_core.plugins import load_plugins
    from sigdl_core.interfaces import TrainSettings

    registry = load_plugins().registry
    data = registry.load_dataset("mnist5k", 0)
    torch_fw, tf_fw = registry.framework("torch"), registry.framework("tensorflow")
    trained = torch_fw.build("lenet5", data.input_shape, 10, seed=0)
    torch_fw.train(trained, data, TrainSettings(epochs=2, lr=0.02, seed=0))
    weights = torch_fw.get_weights(trained)
    keras_model = tf_fw.build("lenet5", data.input_shape, 10)
    tf_fw.set_weights(keras_model, weights)  # the same names and layout: torch's arrays as they are
    x = data.x_test[:64]
    import torch

    with torch.no_grad():
        torch_logits = trained.native(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(tf_fw.predict(keras_model, x), torch_logits, atol=1e-4, rtol=1e-4)
    files = {"torch": torch_fw.save(trained, tmp_path / "lenet5.pt"),
             "tensorflow": tf_fw.save(keras_model, tmp_path / "lenet5.keras")}
    summaries = {}
    for name, path in files.items():  # no retraining: its shuffles and float sums differ between frameworks
        out = tmp_path / name
        result = sigdl_cli(["compress", str(path), "--with", "prune,quant,encode", "-p", "prune.sparsity=0.6",
                            "--dataset", "mnist5k", "--retrain-epochs", "0", "-o", str(out), "--json", "--quiet"])
        assert result.exit_code == 0, result.stderr[-3000:]
        summaries[name] = json.loads((out / "summary.json").read_text())
    sizes = {n: (tmp_path / n / "model.sigdl").stat().st_size for n in files}
    assert abs(sizes["torch"] - sizes["tensorflow"]) <= 0.01 * sizes["torch"], sizes
    top1 = {n: s["accuracy"] for n, s in summaries.items()}
    assert abs(top1["torch"] - top1["tensorflow"]) <= 0.005, top1
    assert min(top1.values()) > 0.9  # a chain that keeps the model working, so the comparison means something


@pytest.mark.slow
def test_structured_pruning_thins_a_keras_lenet5_through_sigdl_compress(sigdl_cli, tmp_path):
    needs_compressors()
    from sigdl_core.plugins import load_plugins
    from sigdl_core.interfaces import TrainSettings

    registry = load_plugins().registry
    fw = registry.framework("tensorflow")
    data = registry.load_dataset("mnist5k", 0)
    model = fw.build("lenet5", data.input_shape, 10, seed=0)
    fw.train(model, data, TrainSettings(epochs=1, lr=0.02))
    path = fw.save(model, tmp_path / "lenet5.keras")
    out = tmp_path / "thin"
    result = sigdl_cli(["compress", str(path), "--with", "prune-structured,quant,encode", "-p",
                        "prune-structured.ratio=0.5", "--dataset", "mnist5k", "--retrain-epochs", "1",
                        "-o", str(out), "--json", "--quiet"])
    assert result.exit_code == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["layers"]["conv2.weight"]["total"] == 25 * 10 * 5 * 5  # half of conv1's and conv2's filters
    assert summary["accuracy"] > 0.9
