"""SigDL's framework-neutral datasets: mnist5k, digits, mnist-idx, image-folder, synthetic.

The public API::

    from sigdl_datasets.loaders import load_mnist5k, load_digits  # the five loaders

Importing this package imports nothing but the standard library (its hook module,
:mod:`sigdl_datasets.plugin`, is loaded by ``sigdl plugins``); NumPy, mlxtend, scikit-learn
and Pillow are imported by a loader on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
