"""The hook module: its specs, its entry point, and that it imports nothing heavy."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pluggy

from sigdl_core import hookspecs
from sigdl_core.interfaces import ArrayDataset, DatasetSpec
from sigdl_datasets import plugin


def _manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="datasets")
    pm.check_pending()
    return pm


def test_datasets_entry_point_is_installed():
    points = {ep.name: ep for ep in metadata.entry_points(group="sigdl.plugins")}
    assert points["datasets"].value == "sigdl_datasets.plugin"
    assert points["datasets"].load() is plugin
    requires = metadata.requires("sigdl-datasets")
    assert any(r.startswith("sigdl-core") for r in requires)
    assert not any(r.split(">")[0].split("=")[0].strip() in ("torch", "tensorflow", "tensorflow-cpu") for r in requires)


def test_datasets_plugin_registers_the_five_datasets():
    pm = _manager()
    (datasets,) = pm.hook.sigdl_datasets()
    assert all(isinstance(d, DatasetSpec) for d in datasets)
    by_name = {d.name: d for d in datasets}
    assert sorted(by_name) == ["digits", "image-folder", "mnist-idx", "mnist5k", "synthetic"]
    assert by_name["mnist-idx"].argument == "DIR" and by_name["mnist5k"].argument is None
    assert by_name["image-folder"].argument == "DIR[@HxW]" and by_name["synthetic"].argument == "SHAPE[:CLASSES]"
    data = by_name["synthetic"].loader("1x3x16x16:4", 0)
    assert isinstance(data, ArrayDataset) and data.input_shape == (3, 16, 16) and data.timing_only
    assert pm.hook.sigdl_frameworks() == [] and pm.hook.sigdl_models() == []


def test_datasets_registered_once_through_the_core():
    """Every installed plugin together: each dataset name comes from this plugin alone."""
    from sigdl_core.plugins import load_plugins

    registry = load_plugins().registry  # raises DuplicateNameError if two plugins claim a name
    sources = {s.name: s.source for s in registry.specs("dataset")}
    for name in ("digits", "image-folder", "mnist-idx", "mnist5k", "synthetic"):
        assert sources[name] == "datasets", (name, sources[name])
    data = registry.load_dataset("digits", 0)
    assert data.name == "digits" and data.x_train.shape[1:] == (1, 8, 8)


def test_datasets_hook_module_imports_nothing_heavy():
    code = (
        "import sys, sigdl_datasets.plugin as p; p.sigdl_datasets();"
        "heavy = [m for m in ('numpy', 'sklearn', 'mlxtend', 'PIL') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_loaders_never_import_a_framework():
    """Every loader runs with torch, TensorFlow and onnxruntime absent from sys.modules."""
    code = (
        "import sys, tempfile, pathlib, numpy as np\n"
        "from PIL import Image\n"
        "from sigdl_datasets import loaders as l\n"
        "l.load_mnist5k(None, 0); l.load_digits(None, 0); l.load_synthetic('3x4x4', 0)\n"
        "root = pathlib.Path(tempfile.mkdtemp())\n"
        "for c in ('a', 'b'):\n"
        "    (root / c).mkdir()\n"
        "    for i in range(2):\n"
        "        Image.fromarray(np.full((4, 4), i * 50, np.uint8)).save(root / c / f'{i}.png')\n"
        "l.load_image_folder(str(root), 0)\n"
        "print(','.join(m for m in ('torch', 'tensorflow', 'keras', 'onnxruntime') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == ""
