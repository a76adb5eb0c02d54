"""The Deep Compression benchmark's flow, small and fast: bench/deep_compression.py on LeNet-300-100.

Runs the benchmark's own ``run_model`` (baseline → sensitivity → AGP pruning with retraining →
weight sharing with fine-tuning → entropy coding → artifacts on disk → decode → test) with a
few epochs instead of the benchmark's dozens, through the real plugins (torch framework,
``prune``, ``quant``, ``encode``) on mnist5k, and checks what the benchmark's tables rest on.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "deep_compression.py"


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_deep_compression", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    torch = pytest.importorskip("torch")
    pytest.importorskip("sigdl_framework_torch")
    pytest.importorskip("sigdl_compress_prune")
    pytest.importorskip("sigdl_compress_quant")
    from sigdl_core.plugins import load_plugins

    torch.set_num_threads(1)
    dc = _bench_module()
    registry = load_plugins().registry
    data = registry.load_dataset("mnist5k", 0)
    settings = replace(
        dc.SETTINGS["lenet300100"],
        baseline=dc.Train(epochs=2, lr=0.05),
        agp_steps=1,
        initial_sparsity=0.5,
        agp_retrain=dc.Train(epochs=1, lr=0.02),
        prune_retrain=dc.Train(epochs=1, lr=0.01),
        quant_retrain=dc.Train(epochs=1, lr=0.001),
        sensitivity_grid=(0.5, 0.9),
    )
    ctx = dc.Context(registry, registry.framework("torch"), data, tmp_path_factory.mktemp("dc"), log=lambda m: None)
    record = dc.run_model(ctx, "lenet300100", settings, seed=0, with_sensitivity=True)
    return dc, settings, record


@pytest.mark.slow
def test_deep_compression_flow_prunes_each_layer_exactly_to_its_target(flow):
    _dc, settings, record = flow
    for name, sparsity in settings.sparsity.items():
        total = record["layers"][name]["weights"]
        assert record["kept"][name] == total - round(sparsity * total)
    steps = record["agp_steps"]
    assert len(steps) == settings.agp_steps + 1
    assert steps[0]["sparsity"]["fc1.weight"] == pytest.approx(0.5, abs=1e-4)
    assert steps[-1]["sparsity"]["fc1.weight"] == pytest.approx(settings.sparsity["fc1.weight"], abs=1e-4)


@pytest.mark.slow
def test_deep_compression_flow_each_stage_makes_the_file_smaller(flow):
    _dc, _settings, record = flow
    b = record["bytes"]
    assert b["P"] > b["P+Q"] > b["P+Q+H (huffman)"] >= b["P+Q+H"]
    assert record["ratio"]["P+Q+H"] == pytest.approx(record["original_bytes"] / b["P+Q+H"], rel=1e-3)
    assert record["ratio"]["P+Q+H"] > 40
    for row in record["layers"].values():
        assert row["weight_bits_PQH"] <= row["weight_bits_PQ"]
        assert row["clusters"] <= 2 ** 3  # bits_fc=3


@pytest.mark.slow
def test_deep_compression_flow_decodes_bit_exactly_and_keeps_accuracy(flow):
    _dc, _settings, record = flow
    assert record["decoded_bit_exact"] is True
    assert record["baseline_top1"] > 0.9
    # a broken projection (masks or ties lost) or decoder would cost far more than this
    assert record["final_top1"] > record["baseline_top1"] - 0.05


@pytest.mark.slow
def test_deep_compression_flow_codes_within_a_few_percent_of_the_entropy_bound(flow):
    _dc, _settings, record = flow
    best, huffman = record["entropy"]["best_coder"], record["entropy"]["huffman"]
    assert 1.0 <= best["coded_over_entropy"] <= huffman["coded_over_entropy"] < 1.1


@pytest.mark.slow
def test_deep_compression_flow_writes_the_tables(flow, tmp_path):
    dc, _settings, record = flow
    sens = record["sensitivity_train_split"]
    assert set(sens["layers"]) == {"fc1.weight", "fc2.weight", "fc3.weight"}
    assert all(np.isfinite(a) for c in sens["layers"].values() for _, a in c["points"])
    report = {"command": "test", "machine": "test", "threads": 1, "seconds": 1.0,
              "models": {"lenet300100": [record]},
              "aggregate": {"lenet300100": {"baseline_top1": "-", "final_top1": "-", "drop_points": "-",
                                            "ratio": "-"}}}
    path = tmp_path / "dc.md"
    dc.write_markdown(report, path)
    text = path.read_text()
    assert "Table 2 — LeNet-300-100" in text
    assert f"{record['ratio']['P+Q+H']:.1f}×" in text
    assert "| fc1.weight (ip1) | 235,200 / 235K |" in text
