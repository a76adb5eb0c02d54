"""SigDL's PyTorch framework plugin: zoo models, training, safe checkpoints, ONNX.

The public API::

    from sigdl_framework_torch.framework import TorchFramework   # the Framework
    from sigdl_framework_torch.models import build_module         # the six architectures

The datasets the zoo trains on are in ``sigdl_datasets.loaders`` (plugin ``sigdl-datasets``).

Importing this package imports neither torch nor NumPy (the plugin's hook module,
:mod:`sigdl_framework_torch.plugin`, is loaded by ``sigdl plugins``); ``TorchFramework`` is
also reachable here, imported on first access.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["TorchFramework", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "TorchFramework":
        from .framework import TorchFramework

        return TorchFramework
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
