"""Compressor parameters: defaults when none are given, and checks before any training."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("sigdl_compress_prune")
pytest.importorskip("sigdl_compress_quant")


def one_error_line(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def _plugins(numpy_plugin):
    import sigdl_compress_prune.plugin as prune
    import sigdl_compress_quant.plugin as quant

    return [numpy_plugin, prune, quant]


def test_compress_without_parameters_uses_the_compressors_defaults(sigdl_cli, numpy_plugin, tmp_path) -> None:
    out = tmp_path / "c"
    result = sigdl_cli(["compress", "softmax", "--with", "prune,quant,encode", "-d", "digits-flat", "--epochs", "3",
                        "-o", str(out), "--json"], plugins=_plugins(numpy_plugin))
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["chain"][0] == ["prune", {"sparsity": 0.9}]
    fc = summary["layers"]["fc.weight"]
    assert fc["kept"] == pytest.approx(0.1 * fc["total"], abs=1)
    listing = sigdl_cli(["compressors", "--json"], plugins=_plugins(numpy_plugin))
    prune = next(c for c in json.loads(listing.stdout) if c["name"] == "prune")
    assert prune["defaults"] == {"sparsity": 0.9}


@pytest.mark.parametrize("param, words", [
    ("prune.sparsty=0.9", "unknown 'prune' parameter 'sparsty'"),
    ("prune.sparsity=1.5", "parameter 'sparsity'=1.5 is out of range"),
    ("prune.agp_steps=3", "'prune' needs exactly one of quality, sparsity, global_sparsity"),
    ("quant.bitz=3", "unknown 'quant' parameter 'bitz'"),
])
def test_bad_parameters_exit_2_before_any_training(sigdl_cli, numpy_plugin, tmp_path, param, words) -> None:
    numpy_plugin.TRAIN_CALLS.clear()
    out = tmp_path / "never"
    result = sigdl_cli(["compress", "softmax", "--with", "prune,quant,encode", "-d", "digits-flat", "-p", param,
                        "-o", str(out)], plugins=_plugins(numpy_plugin))
    assert words in one_error_line(result)
    assert numpy_plugin.TRAIN_CALLS == [] and not out.exists()
