"""The TensorFlow framework on real Keras models and real MNIST digits (one file: TensorFlow loads once).

Builds, named weights and their layout, kinds, channel groups, training (determinism, the
projection after every step, optimizers by name, schedules), evaluation on every split,
.keras files (round trip, damage, a Lambda with code refused before it runs), ONNX export
against onnxruntime and TFLite export.
"""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from sigdl_core.errors import BadInputError, InvalidValueError, ModelFileError, UnsafeFileError, UnsupportedModelError  # noqa: E402
from sigdl_core.interfaces import COMPRESSIBLE_KINDS, TrainSettings  # noqa: E402
from sigdl_framework_tensorflow.framework import keras_input, learning_rates, to_keras_layout  # noqa: E402
from sigdl_framework_tensorflow.plugin import MODEL_CATALOG, RECOMMENDED_SETTINGS  # noqa: E402

QUICK = TrainSettings(epochs=1, batch_size=64, optimizer="sgd", lr=0.02, momentum=0.9, schedule="cosine", seed=3)


@pytest.mark.parametrize("arch", ["lenet300100", "lenet5", "mobilenet", "squeezenet"])
def test_zoo_parameter_counts_equal_the_torch_zoo(tf_framework, arch):
    _, shape, classes, parameters, _ = MODEL_CATALOG[arch]
    model = tf_framework.build(arch, shape, classes)
    assert tf_framework.parameter_count(model) == parameters
    assert model.native.name == arch and model.input_shape == shape


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["alexnet", "vgg16"])
def test_large_zoo_parameter_counts_equal_the_torch_zoo(tf_framework, arch):
    _, shape, classes, parameters, _ = MODEL_CATALOG[arch]
    model = tf_framework.build(arch, shape, classes)
    assert tf_framework.parameter_count(model) == parameters
    if arch == "vgg16":  # keras.applications' own names and layout
        paths = [v.path for v in model.native.weights]
        assert paths[:2] == ["block1_conv1/kernel", "block1_conv1/bias"] and paths[-2:] == ["predictions/kernel",
                                                                                          "predictions/bias"]
        assert model.native.get_layer("fc1").kernel.shape == (25088, 4096)  # in×out, as the .h5 weights hold it
        groups = tf_framework.channel_groups(model)
        last_conv = next(g for g in groups if g.producers[0].name == "block5_conv3.weight")
        assert len(last_conv.consumers) == 49 and last_conv.consumers[1].offset == 512  # N×H×W×C flatten


def test_mobilenet_keeps_keras_applications_names_and_its_channel_groups(tf_framework):
    model = tf_framework.build("mobilenet", (3, 32, 32), 10)
    reference = keras.applications.MobileNet(input_shape=(32, 32, 3), weights=None, classes=10,
                                             classifier_activation=None)
    assert [v.path for v in model.native.weights] == [v.path for v in reference.weights]
    kinds = tf_framework.layer_kinds(model)
    weights = tf_framework.get_weights(model)
    assert kinds["conv_dw_1.weight"] == "depthwise" and weights["conv_dw_1.weight"].shape == (32, 1, 3, 3)
    assert kinds["conv_pw_1.weight"] == "conv" and weights["conv_pw_1.weight"].shape == (64, 32, 1, 1)
    assert kinds["conv1_bn.running_var"] == "norm"
    groups = tf_framework.channel_groups(model)
    assert len(groups) == 15 and not groups[-1].prunable
    first = groups[0]
    assert [s.name for s in first.followers][:5] == ["conv1_bn.weight", "conv1_bn.bias", "conv1_bn.running_mean",
                                                     "conv1_bn.running_var", "conv_dw_1.weight"]
    assert first.consumers[0].name == "conv_pw_1.weight" and first.consumers[0].axis == 1
    with pytest.raises(UnsupportedModelError, match="squeezenet"):
        tf_framework.channel_groups(tf_framework.build("squeezenet", (3, 32, 32), 10))


def test_named_weights_are_in_torch_layout_and_round_trip(tf_framework, small):
    model = tf_framework.build("lenet5", (1, 28, 28), 10, seed=1)
    weights = tf_framework.get_weights(model)
    assert list(weights) == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                             "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert weights["conv2.weight"].shape == (50, 20, 5, 5) and weights["fc1.weight"].shape == (500, 800)
    kinds = tf_framework.layer_kinds(model)
    assert {n for n, k in kinds.items() if k in COMPRESSIBLE_KINDS} == {"conv1.weight", "conv2.weight",
                                                                          "fc1.weight", "fc2.weight"}
    kernel = model.native.get_layer("conv2").kernel.numpy()
    np.testing.assert_array_equal(weights["conv2.weight"][7, 3], kernel[:, :, 3, 7])
    # The same computation by hand in SigDL's layout: conv2 output channel 7 at pixel (0, 0).
    x = small.x_test[:2]
    conv1 = keras.Model(model.native.inputs, model.native.get_layer("pool1").output)([to_keras_layout(x)]).numpy()
    patch = conv1[:, :5, :5, :].transpose(0, 3, 1, 2)  # N×20×5×5
    expected = (patch * weights["conv2.weight"][7]).sum(axis=(1, 2, 3)) + weights["conv2.bias"][7]
    got = keras.Model(model.native.inputs, model.native.get_layer("conv2").output)([to_keras_layout(x)]).numpy()
    np.testing.assert_allclose(got[:, 0, 0, 7], expected, rtol=1e-4, atol=1e-5)
    before = tf_framework.predict(model, x)
    edited = {k: v * 0.5 for k, v in weights.items()}
    tf_framework.set_weights(model, edited)
    np.testing.assert_array_equal(tf_framework.get_weights(model)["fc1.weight"], edited["fc1.weight"])
    tf_framework.set_weights(model, weights)
    np.testing.assert_array_equal(tf_framework.predict(model, x), before)
    with pytest.raises(BadInputError, match="unknown weight"):
        tf_framework.set_weights(model, {"nope": np.zeros(1)})
    with pytest.raises(InvalidValueError, match="NaN"):
        tf_framework.set_weights(model, {"fc2.bias": np.full(10, np.nan)})


def test_structured_pruning_reshapes_the_keras_model(tf_framework, small):
    prune = pytest.importorskip("sigdl_compress_prune.structured")
    model = tf_framework.build("lenet5", (1, 28, 28), 10, seed=0)
    weights = tf_framework.get_weights(model)
    groups = tf_framework.channel_groups(model)
    assert groups[1].consumers[0].span == 16  # conv2's channels are 4×4 features of fc1, as in torch
    keep = [np.arange(0, 20, 2), np.arange(30), np.arange(100), np.arange(10)]
    thin = prune.thin_arrays(weights, prune.axis_keep_masks({n: w.shape for n, w in weights.items()}, groups, keep))
    assert thin["fc1.weight"].shape == (100, 30 * 16)
    tf_framework.set_weights(model, thin)
    assert model.native.get_layer("conv2").filters == 30
    assert tf_framework.parameter_count(model) == sum(w.size for w in thin.values())
    assert tf_framework.evaluate(model, small).samples == 300
    with pytest.raises(InvalidValueError, match="fc1"):
        tf_framework.set_weights(model, {"conv2.weight": thin["conv2.weight"][:10], "conv2.bias": thin["conv2.bias"][:10]})
    assert model.native.get_layer("conv2").filters == 30  # left as it was


def test_training_is_deterministic_and_the_projection_holds_after_every_step(tf_framework, small):
    np.random.seed(123)
    a = tf_framework.build("lenet300100", (1, 28, 28), 10, seed=5)
    b = tf_framework.build("lenet300100", (1, 28, 28), 10, seed=5)
    tf_framework.train(a, small, QUICK)
    tf_framework.train(b, small, QUICK)
    assert np.random.get_state()[1][0] == np.random.RandomState(123).get_state()[1][0]  # the caller's RNG kept
    assert np.random.rand() == np.random.RandomState(123).rand()
    for name, w in tf_framework.get_weights(a).items():
        np.testing.assert_array_equal(w, tf_framework.get_weights(b)[name])
    weights = tf_framework.get_weights(a)
    mask = np.abs(weights["fc1.weight"]) > np.quantile(np.abs(weights["fc1.weight"]), 0.8)
    seen: list[int] = []

    def projection(arrays):
        assert arrays["fc1.weight"].shape == (300, 784)
        seen.append(int((arrays["fc1.weight"][~mask] != 0).sum()))  # what the last step changed
        arrays["fc1.weight"] *= mask

    history = tf_framework.train(a, small, QUICK, projection=projection)
    assert len(seen) == 16 and all(changed > 0 for changed in seen[1:])  # once per step (1,000 / 64)
    assert (tf_framework.get_weights(a)["fc1.weight"][~mask] == 0).all()
    assert len(history.loss) == 1 and np.isfinite(history.loss[0])


def test_optimizers_by_name_and_schedules(tf_framework, small):
    model = tf_framework.build("lenet300100", (1, 28, 28), 10, seed=0)
    for name, params in (("adam", {}), ("RMSprop", {"rho": 0.8}), ("AdamW", {"beta_2": 0.99}), ("nadam", {})):
        settings = TrainSettings(epochs=1, optimizer=name, lr=0.001, schedule="step", step_size=1, seed=0,
                                 optimizer_params=params)
        tf_framework.check_settings(settings)
        history = tf_framework.train(model, small, settings)
        assert np.isfinite(history.loss[0])
    assert tf_framework.evaluate(model, small, "validation").top1 > 0.8
    decay = TrainSettings(epochs=1, lr=0.01, schedule="ExponentialDecay",
                          schedule_params={"decay_steps": 4, "decay_rate": 0.5})
    seen = []
    tf_framework.train(model, small, decay, projection=lambda a: seen.append(1))
    assert len(seen) == 16
    rate = learning_rates(decay, total_steps=16)
    assert rate(0, 15) == pytest.approx(0.01 * 0.5 ** (15 / 4), rel=1e-6)
    cosine = learning_rates(TrainSettings(lr=0.1, schedule="cosine"), 40)
    assert (cosine(0, 0), cosine(2, 20)) == (pytest.approx(0.1), pytest.approx(0.05))
    for bad, words in ((TrainSettings(optimizer="nosuch"), "unknown optimizer 'nosuch'"),
                       (TrainSettings(optimizer="adam", optimizer_params={"nope": 1}), "does not take"),
                       (TrainSettings(schedule="nosuch"), "unknown learning-rate schedule"),
                       (TrainSettings(schedule="ExponentialDecay"), "decay_steps")):
        with pytest.raises(BadInputError, match=words):
            tf_framework.check_settings(bad)


def test_evaluate_reads_every_split(tf_framework, small):
    model = tf_framework.build("lenet300100", (1, 28, 28), 10, seed=0)
    tf_framework.train(model, small, QUICK)
    for split, n in (("train", 1000), ("validation", 200), ("test", 300)):
        acc = tf_framework.evaluate(model, small, split)
        assert acc.samples == n and 0.6 < acc.top1 <= acc.top5 <= 1
    logits = tf_framework.predict(model, small.x_test)
    assert acc.top1 == np.mean(logits.argmax(1) == small.y_test)
    with pytest.raises(BadInputError, match="unknown split"):
        tf_framework.evaluate(model, small, "holdout")


def test_keras_files_round_trip_and_damage_is_one_clear_error(tf_framework, small, tmp_path):
    model = tf_framework.build("lenet5", (1, 28, 28), 10, seed=2)
    path = tf_framework.save(model, tmp_path / "lenet5.keras")
    assert "sigdl.json" in zipfile.ZipFile(path).namelist()
    back = tf_framework.load(path)
    assert (back.architecture, back.input_shape, back.num_classes) == ("lenet5", (1, 28, 28), 10)
    np.testing.assert_array_equal(tf_framework.predict(back, small.x_test[:8]), tf_framework.predict(model, small.x_test[:8]))
    # A user's own Keras model (Sequential, no SigDL member) loads by its name and shapes.
    own = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)], name="tiny")
    own.save(tmp_path / "own.keras")
    loaded = tf_framework.load(tmp_path / "own.keras")
    assert (loaded.architecture, loaded.input_shape, loaded.num_classes) == ("tiny", (1, 28, 28), 10)
    assert tf_framework.evaluate(loaded, small).samples == 300
    free = keras.Sequential([keras.Input((None, None, 1)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    free.save(tmp_path / "free.keras")
    with pytest.raises(UnsupportedModelError, match="variable input"):
        tf_framework.load(tmp_path / "free.keras")
    truncated = tmp_path / "cut.keras"
    truncated.write_bytes(path.read_bytes()[:3000])
    for bad in (truncated, tmp_path / "missing.keras"):
        with pytest.raises(ModelFileError):
            tf_framework.load(bad)
    (tmp_path / "text.keras").write_text("not a model")
    with pytest.raises(ModelFileError, match="not a zip archive"):
        tf_framework.load(tmp_path / "text.keras")


def test_a_lambda_holding_code_is_refused_and_never_runs(tf_framework, tmp_path):
    marker = tmp_path / "ran"
    code = f"lambda x: (open({str(marker)!r}, 'w').write('ran'), x)[1]"
    inputs = keras.Input((4,))
    out = keras.layers.Lambda(eval(code))(inputs)  # noqa: S307 - the test's own code
    keras.Model(inputs, keras.layers.Dense(2)(out)).save(tmp_path / "lambda.keras")
    marker.unlink()  # building the model ran it once; loading must not
    with pytest.raises(UnsafeFileError, match="Python code"):
        tf_framework.load(tmp_path / "lambda.keras")
    assert not marker.exists()


def test_onnx_export_matches_onnxruntime(tf_framework, small, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    for arch, shape in (("lenet5", (1, 28, 28)), ("mobilenet", (3, 32, 32))):
        model = tf_framework.build(arch, shape, 10, seed=0)
        path = tf_framework.export_onnx(model, tmp_path / f"{arch}.onnx")
        onnx.checker.check_model(str(path), full_check=True)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == ["input"]
        assert [o.name for o in session.get_outputs()] == ["logits"]
        assert session.get_inputs()[0].shape == ["batch", *shape]  # N×C×H×W, as the core's datasets
        x = small.x_test[:16] if shape[0] == 1 else np.random.default_rng(0).normal(size=(16, *shape)).astype(np.float32)
        got = session.run(None, {"input": x})[0]
        np.testing.assert_allclose(got, tf_framework.predict(model, x), atol=1e-4, rtol=1e-4)


def test_tflite_float_and_int8_exports(tf_framework, small, tmp_path):
    model = tf_framework.build("lenet5", (1, 28, 28), 10, seed=0)
    tf_framework.train(model, small, QUICK)
    keras_top1 = tf_framework.evaluate(model, small).top1
    flat = tf_framework.export_tflite(model, tmp_path / "f.tflite")
    int8 = tf_framework.export_tflite(model, tmp_path / "q.tflite", "int8", small, calibration_samples=64)
    assert tf_framework.evaluate_tflite(flat, small).top1 == pytest.approx(keras_top1, abs=0.004)
    assert tf_framework.evaluate_tflite(int8, small).top1 == pytest.approx(keras_top1, abs=0.02)
    assert int8.stat().st_size < flat.stat().st_size / 3  # int8 weights: a quarter of float32
    interpreter = tf.lite.Interpreter(model_path=str(int8))
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert tuple(interpreter.get_input_details()[0]["shape"][1:]) == keras_input((1, 28, 28))
    with pytest.raises(InvalidValueError, match="calibrate"):
        tf_framework.export_tflite(model, tmp_path / "x.tflite", "int8")


@pytest.mark.slow
@pytest.mark.parametrize("arch, least", [("lenet300100", 0.92), ("lenet5", 0.97)])
def test_lenets_reach_their_accuracy_on_mnist5k(tf_framework, mnist5k, arch, least):
    data = mnist5k
    model = tf_framework.build(arch, data.input_shape, 10, seed=0)
    history = tf_framework.train(model, data, RECOMMENDED_SETTINGS[arch])
    accuracy = tf_framework.evaluate(model, data)
    assert accuracy.samples == 1000
    assert accuracy.top1 >= least, f"{arch}: {accuracy.top1:.3f} after {history.seconds:.1f} s"


def test_inputs_an_architecture_cannot_take_are_one_clear_error(tf_framework):
    with pytest.raises(UnsupportedModelError, match="16×16"):
        tf_framework.build("lenet5", (1, 8, 8), 10)
    with pytest.raises(UnsupportedModelError, match="C×H×W"):
        tf_framework.build("mobilenet", (64,), 10)
    with pytest.raises(BadInputError, match="unknown model"):
        tf_framework.build("resnet", (3, 32, 32), 10)
