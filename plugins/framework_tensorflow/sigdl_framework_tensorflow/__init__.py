"""SigDL's TensorFlow/Keras 3 framework plugin: zoo models, training, safe .keras files, ONNX, TFLite.

The public API::

    from sigdl_framework_tensorflow.framework import TensorFlowFramework  # the Framework
    from sigdl_framework_tensorflow.models import build_keras_model       # the six architectures

Importing this package imports neither TensorFlow nor NumPy (the plugin's hook module,
:mod:`sigdl_framework_tensorflow.plugin`, is loaded by ``sigdl plugins``);
``TensorFlowFramework`` is also reachable here, imported on first access.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["TensorFlowFramework", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "TensorFlowFramework":
        from .framework import TensorFlowFramework

        return TensorFlowFramework
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
