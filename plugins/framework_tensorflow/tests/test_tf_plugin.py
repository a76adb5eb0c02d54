"""The plugin's registrations, without importing TensorFlow."""

from __future__ import annotations

import subprocess
import sys

from sigdl_core.plugins import load_plugins


def test_the_plugin_registers_the_framework_and_six_zoo_models():
    registry = load_plugins(allow=["framework_tensorflow"]).registry
    spec = registry.get("framework", "tensorflow")
    assert spec.suffixes == (".keras",) and spec.preference < 0
    models = {s.name: s for s in registry.specs("model") if s.framework == "tensorflow"}
    assert sorted(models) == ["alexnet", "lenet300100", "lenet5", "mobilenet", "squeezenet", "vgg16"]
    assert models["lenet5"].parameters == 431_080 and models["vgg16"].parameters == 138_357_544
    assert models["lenet5"].train_defaults["lr"] == 0.02  # LeNet-5 has no ReLU after its convolutions
    assert registry.get("model", "lenet5", framework="tensorflow") is models["lenet5"]


def test_listing_the_plugin_imports_no_tensorflow():
    code = ("import sys; from sigdl_core.plugins import load_plugins; "
            "load_plugins(allow=['framework_tensorflow']); import sigdl_framework_tensorflow; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'tf2onnx', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
