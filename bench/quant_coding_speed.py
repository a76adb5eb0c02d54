"""Speed and size of SigDL's weight sharing and entropy coding at LeNet and AlexNet sizes.

Measures, on seeded synthetic weights shaped like the real layers (speed and the coders'
distance from the bound depend on sizes and value distributions, not on what the network
learned):

* 1-D k-means (:func:`sigdl_compress_quant.weight_sharing.kmeans_1d`): AlexNet fc6 dense
  (9216 x 4096 = 37.7 M weights, 8 bits) and at Deep Compression's 9 % density (5 bits);
* encoding and decoding a pruned, weight-shared layer into ``.sigdl`` layers
  (:func:`sigdl_core.artifact.encode_codebook_layer` and ``decode``), Huffman-only (the paper's
  P+Q+H) and ``auto`` (smallest of fixed width, Huffman and rANS per stream): LeNet-300-100's
  fc1 (784 x 300 at 8 %) and AlexNet's fc6 (at 9 %), with the coded bits against the
  streams' Shannon bound.

Weights are N(0, 1/sqrt(fan_in)); pruning keeps the largest magnitudes (Han et al.), the
kept ones are clustered with linear initialisation; the gap width is 5 bits (fc).

Run::

    .venv/bin/python bench/quant_coding_speed.py

It writes ``bench/results/quant_coding_speed.json`` and ``.md``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from sigdl_core.artifact import encode_codebook_layer
from sigdl_compress_quant.weight_sharing import kmeans_1d

RESULTS = Path(__file__).parent / "results"
COMMAND = ".venv/bin/python bench/quant_coding_speed.py"


def _pruned(shape: tuple[int, int], density: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal(shape) / np.sqrt(shape[1])).astype(np.float32)
    k = int(round(density * w.size))
    threshold = np.partition(np.abs(w).ravel(), w.size - k)[w.size - k]
    mask = np.abs(w) >= threshold
    return w, mask


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def bench_kmeans() -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    dense = (rng.standard_normal(9216 * 4096) / np.sqrt(9216)).astype(np.float32)
    result, seconds = _timed(kmeans_1d, dense, 256)
    rows.append({"layer": "AlexNet fc6, dense", "weights": dense.size, "bits": 8,
                 "clusters": len(result.centroids), "iterations": result.iterations, "seconds": round(seconds, 2)})
    del dense, result
    w, mask = _pruned((4096, 9216), 0.09, 1)
    kept = w[mask]
    result, seconds = _timed(kmeans_1d, kept, 32)
    rows.append({"layer": "AlexNet fc6, 9 % kept", "weights": kept.size, "bits": 5,
                 "clusters": len(result.centroids), "iterations": result.iterations, "seconds": round(seconds, 2)})
    return rows


def bench_coding() -> list[dict]:
    rows = []
    for label, shape, density, bits in (("LeNet-300-100 fc1", (300, 784), 0.08, 5),
                                        ("AlexNet fc6", (4096, 9216), 0.09, 5)):
        w, mask = _pruned(shape, density, 2)
        km = kmeans_1d(w[mask], 1 << bits)
        idx = np.zeros(w.shape, np.int64)
        idx[mask] = km.labels
        for coder in ("huffman", "auto"):
            layer, enc = _timed(encode_codebook_layer, "w", km.centroids, idx, mask, 5, coder)
            decoded, dec = _timed(layer.decode)
            expected = np.where(mask, km.centroids[idx], 0).astype(np.float32)
            assert np.array_equal(decoded, expected)
            r = layer.report()
            rows.append({
                "layer": label, "weights": w.size, "kept": int(mask.sum()), "coder": coder,
                "value_coder": r["value_coder"], "gap_coder": r["gap_coder"],
                "coded_bits": r["coded_bits"], "entropy_bits": r["entropy_bits"],
                "over_bound_pct": round(100 * (r["coded_bits"] / r["entropy_bits"] - 1), 2),
                "bits_per_kept_weight": r["bits_per_weight"],
                "encode_s": round(enc, 3), "decode_s": round(dec, 3),
            })
    return rows


def main() -> None:
    kmeans = bench_kmeans()
    coding = bench_coding()
    machine = (f"{platform.machine()} {os.cpu_count()}-core CI-class VM, shared with other jobs while measured "
               f"(timings are noisy); Python {sys.version.split()[0]}, NumPy {np.__version__}")
    out = {"command": COMMAND, "machine": machine, "kmeans": kmeans, "coding": coding}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "quant_coding_speed.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = ["## Weight sharing and entropy coding: speed and size", "",
             f"Command: `{COMMAND}`  ", f"Machine: {machine}", "",
             "| k-means layer | weights | bits | clusters | iterations | seconds |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in kmeans:
        lines.append(f"| {r['layer']} | {r['weights']:,} | {r['bits']} | {r['clusters']} | {r['iterations']} "
                     f"| {r['seconds']} |")
    lines += ["", "| coded layer | kept | coder | value / gap coder | coded bits | entropy bound | over bound "
              "| bits per kept weight | encode s | decode s |", "|---|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in coding:
        lines.append(f"| {r['layer']} | {r['kept']:,} | {r['coder']} | {r['value_coder']} / {r['gap_coder']} "
                     f"| {r['coded_bits']:,} | {r['entropy_bits']:,.0f} | {r['over_bound_pct']} % "
                     f"| {r['bits_per_kept_weight']} | {r['encode_s']} | {r['decode_s']} |")
    (RESULTS / "quant_coding_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
