"""SigDL's ONNX plugin: the ``onnx`` framework, which reads any ``.onnx`` model file.

Registered through the entry point ``framework_onnx = "sigdl_framework_onnx.plugin"`` in the
group ``sigdl.plugins``. This module imports neither onnx nor onnxruntime: the framework is
built by the spec's ``factory`` on first use, so ``sigdl --help`` stays fast.
"""

from __future__ import annotations

from sigdl_core import hookimpl
from sigdl_core.interfaces import Framework, FrameworkSpec

FRAMEWORK = "onnx"


def _framework() -> Framework:
    from .framework import OnnxFramework

    return OnnxFramework()


@hookimpl
def sigdl_frameworks() -> list[FrameworkSpec]:
    return [
        FrameworkSpec(
            name=FRAMEWORK,
            description="any ONNX model file: onnxruntime evaluation, initializers as weights, "
                        "post-training compression; retraining through the torch framework",
            factory=_framework,
            suffixes=(".onnx",),
        )
    ]
