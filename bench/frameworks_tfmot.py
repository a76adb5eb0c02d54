"""TF Model Optimization's pruning of the Keras LeNet-300-100, run by bench/frameworks.py in its own venv.

Not a SigDL module: bench/frameworks.py runs this file with the Python of a venv that holds
tf_keras and tensorflow-model-optimization, under ``TF_USE_LEGACY_KERAS=1`` (TF-MOT 0.8.1
prunes only tf_keras models, and importing it switches the process to legacy Keras). It
reads the data, the baseline's weights and the settings from an .npz file, and prints one
JSON object: what ``prune_low_magnitude`` + fine-tuning + ``strip_pruning`` + TFLite
full-integer int8 gives, and the float TFLite of the same stripped model.

    TF_USE_LEGACY_KERAS=1 /tmp/venv/bin/python bench/frameworks_tfmot.py INPUT.npz OUT_DIR
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402


def build(weights: dict[str, np.ndarray]) -> tf.keras.Model:
    """The SigDL Keras LeNet-300-100 (channels-first flatten, fc1/fc2/fc3) in tf_keras, with its weights."""
    model = tf.keras.Sequential([
        tf.keras.Input((28, 28, 1)),
        tf.keras.layers.Permute((3, 1, 2)),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(300, activation="relu", name="fc1"),
        tf.keras.layers.Dense(100, activation="relu", name="fc2"),
        tf.keras.layers.Dense(10, name="fc3"),
    ])
    for name in ("fc1", "fc2", "fc3"):
        model.get_layer(name).set_weights([weights[f"{name}.weight"].T, weights[f"{name}.bias"]])
    return model


def top1(logits: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=1) == y))


def tflite_top1(flatbuffer: bytes, x: np.ndarray, y: np.ndarray) -> float:
    interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], [len(x), *x.shape[1:]])
    interpreter.allocate_tensors()
    feed = x
    if inp["dtype"] != np.float32:
        scale, zero = inp["quantization"]
        feed = np.clip(np.round(x / scale + zero), -128, 127).astype(inp["dtype"])
    interpreter.set_tensor(inp["index"], feed)
    interpreter.invoke()
    return top1(interpreter.get_tensor(out["index"]).astype(np.float32), y)


def main() -> None:
    source, out = Path(sys.argv[1]), Path(sys.argv[2])
    z = np.load(source)
    x_train, y_train, x_test, y_test = z["x_train"], z["y_train"], z["x_test"], z["y_test"]
    weights = {k[2:]: z[k] for k in z.files if k.startswith("w:")}
    sparsity, epochs, lr, seed = float(z["sparsity"]), int(z["epochs"]), float(z["lr"]), int(z["seed"])
    tf.keras.utils.set_random_seed(seed)
    model = build(weights)
    baseline = top1(model.predict(x_test, verbose=0), y_test)
    steps = int(np.ceil(len(x_train) / 64)) * epochs
    schedule = tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=0.5, final_sparsity=sparsity,
                                                    begin_step=0, end_step=max(1, (2 * steps) // 3), frequency=10)
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
    pruned.compile(optimizer=tf.keras.optimizers.SGD(lr, momentum=0.9),
                   loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=0, shuffle=True,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    kernels = [stripped.get_layer(n).kernel.numpy() for n in ("fc1", "fc2", "fc3")]
    zeros = sum(int((k == 0).sum()) for k in kernels) / sum(k.size for k in kernels)
    rows = {}
    for kind in ("float", "int8"):
        converter = tf.lite.TFLiteConverter.from_keras_model(stripped)
        if kind == "int8":
            chosen = x_train[np.random.default_rng(seed).permutation(len(x_train))[:256]]
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([s[None]] for s in chosen)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        flatbuffer = converter.convert()
        (out / f"tfmot_{kind}.tflite").write_bytes(flatbuffer)
        rows[kind] = {"bytes": len(flatbuffer), "gzip_bytes": len(gzip.compress(flatbuffer, 9)),
                      "top1": tflite_top1(flatbuffer, x_test, y_test)}
    print(json.dumps({"tfmot": tfmot.__version__, "tensorflow": tf.__version__, "keras": tf.keras.__name__,
                      "baseline_top1": baseline, "kernel_zeros": zeros,
                      "stripped_top1": top1(stripped.predict(x_test, verbose=0), y_test), "tflite": rows}))


if __name__ == "__main__":
    main()
