"""Fixtures for the Caffe plugin's tests: small Caffe nets written with Caffe's own schema.

``write_caffe(folder, stem, prototxt, blobs)`` writes ``<stem>.prototxt`` (the text given)
and ``<stem>.caffemodel``: a ``NetParameter`` whose layers carry the given blobs (name →
list of arrays), serialised to the binary wire format as Caffe writes it. ``legacy=True``
writes the weights as V1 ``layers`` with 4-D ``num/channels/height/width`` blob shapes, as
pre-2015 Caffe models (BVLC's AlexNet, LeNet) are stored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest


def _write(folder: Path, stem: str, prototxt: str, blobs: Mapping[str, Sequence[np.ndarray]],
           legacy: bool = False) -> Path:
    from sigdl_framework_caffe import schema

    net = schema.NetParameter(name=stem)
    for name, arrays in blobs.items():
        layer = net.layers.add(name=name) if legacy else net.layer.add(name=name)
        for array in arrays:
            blob = layer.blobs.add()
            a = np.asarray(array, dtype=np.float32)
            if legacy:
                dims = [1] * (4 - a.ndim) + list(a.shape)
                blob.num, blob.channels, blob.height, blob.width = dims
            else:
                blob.shape.dim.extend(a.shape)
            blob.data.extend(a.reshape(-1).tolist())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.prototxt").write_text(prototxt)
    path = folder / f"{stem}.caffemodel"
    path.write_bytes(net.SerializeToString())
    return path


@pytest.fixture
def write_caffe() -> Callable[..., Path]:
    return _write
