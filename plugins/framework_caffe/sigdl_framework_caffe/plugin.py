"""SigDL's Caffe plugin: the ``caffe`` framework, which reads ``.prototxt`` + ``.caffemodel``.

Registered through the entry point ``framework_caffe = "sigdl_framework_caffe.plugin"`` in
the group ``sigdl.plugins``. This module imports neither protobuf nor onnx: the framework
is built by the spec's ``factory`` on first use.
"""

from __future__ import annotations

from sigdl_core import hookimpl
from sigdl_core.interfaces import Framework, FrameworkSpec

FRAMEWORK = "caffe"


def _framework() -> Framework:
    from .framework import CaffeFramework

    return CaffeFramework()


@hookimpl
def sigdl_frameworks() -> list[FrameworkSpec]:
    return [
        FrameworkSpec(
            name=FRAMEWORK,
            description="Caffe .prototxt + .caffemodel, read without Caffe and converted to ONNX; "
                        "then as the onnx framework (saves back to .caffemodel)",
            factory=_framework,
            suffixes=(".caffemodel", ".prototxt"),
        )
    ]
