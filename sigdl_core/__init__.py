"""SigDL core: hook specs, plugin discovery, the loop, the CLI, reports and errors.

Plugin authors need :data:`hookimpl` and the spec types of :mod:`sigdl_core.interfaces`::

    from sigdl_core import hookimpl
    from sigdl_core.interfaces import TargetSpec

This package imports nothing heavy: no torch, tensorflow or onnxruntime.
"""

from .errors import BadInputError, SigdlError
from .hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["BadInputError", "SigdlError", "__version__", "hookimpl"]
