"""Fixtures of the core's tests. ``numpy_plugin`` is a real plugin module (tests/numpy_plugin.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


def _load_numpy_plugin() -> ModuleType:
    name = "sigdl_tests_numpy_plugin"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("numpy_plugin.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def numpy_plugin() -> ModuleType:
    module = _load_numpy_plugin()
    module.EVENTS.clear()
    module.TRAIN_CALLS.clear()
    return module
