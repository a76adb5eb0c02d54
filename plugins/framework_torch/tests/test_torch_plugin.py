"""The hook module: its specs, its entry point, and that it imports nothing heavy."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pluggy

from sigdl_core import hookspecs
from sigdl_core.interfaces import Framework, FrameworkSpec, ModelSpec
from sigdl_framework_torch import plugin


def _manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="framework_torch")
    pm.check_pending()
    return pm


def test_torch_plugin_entry_point_is_installed():
    points = {ep.name: ep for ep in metadata.entry_points(group="sigdl.plugins")}
    assert points["framework_torch"].value == "sigdl_framework_torch.plugin"
    assert points["framework_torch"].load() is plugin
    assert metadata.distribution("sigdl-framework-torch").metadata["Name"] == "sigdl-framework-torch"
    requires = metadata.requires("sigdl-framework-torch")
    assert "torch==2.13.0" in requires and any(r.startswith("sigdl-core") for r in requires)
    assert "sigdl-datasets" in requires  # a torch install brings the zoo's datasets


def test_torch_plugin_registers_its_specs():
    pm = _manager()
    (frameworks,) = pm.hook.sigdl_frameworks()
    assert [type(f) for f in frameworks] == [FrameworkSpec]
    assert frameworks[0].name == "torch" and frameworks[0].suffixes == (".pt", ".pth")
    framework = frameworks[0].factory()
    assert isinstance(framework, Framework) and framework.name == "torch"

    (models,) = pm.hook.sigdl_models()
    assert all(isinstance(m, ModelSpec) and m.framework == "torch" for m in models)
    by_name = {m.name: m for m in models}
    assert sorted(by_name) == ["alexnet", "lenet300100", "lenet5", "mobilenet", "squeezenet", "vgg16"]
    assert by_name["lenet300100"].dataset == by_name["lenet5"].dataset == "mnist5k"
    assert by_name["lenet5"].parameters == 431_080 and by_name["vgg16"].input_shape == (3, 224, 224)
    # the zoo's datasets are sigdl-datasets', a dependency, not this hook module's
    assert pm.hook.sigdl_datasets() == [] and not hasattr(plugin, "sigdl_datasets")


def test_torch_plugin_module_imports_nothing_heavy():
    code = (
        "import sys, sigdl_framework_torch.plugin as p; p.sigdl_models(); p.sigdl_frameworks();"
        "heavy = [m for m in ('torch', 'numpy', 'onnx', 'onnxruntime', 'sklearn', 'mlxtend', 'PIL') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
