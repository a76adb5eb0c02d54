"""Targets as the user names them, and emulator options: parsed, validated before any work,
and passed to the emulator from the command line and from a recipe.

A small real plugin (``toy_board`` below) declares one target whose emulator's latency
follows its options, so that a good value visibly changes the result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sigdl_core import hookimpl
from sigdl_core.errors import InvalidValueError
from sigdl_core.interfaces import (
    EmulationReport,
    Emulator,
    EmulatorOption,
    EmulatorSpec,
    Method,
    Provenance,
    TargetSpec,
)
from sigdl_core.recipe import Recipe
from sigdl_core.targets import RemoteBoard, TargetRef, validate_options

TOY_OPTIONS = (
    EmulatorOption("ms_per_kib", float, 1.0, "milliseconds per KiB of model", exclusive_minimum=0),
    EmulatorOption("precision", str, "fp32", "number format", choices=("fp32", "fp16")),
    EmulatorOption("cores", int, None, "cores used (default: all)", minimum=1, maximum="cores"),
    EmulatorOption("batch_sizes", list[int], (1, 2), "batch sizes", minimum=1),
    EmulatorOption("warm", bool, False, "warm start"),
)
SEEN: list[dict[str, Any]] = []


class ToyEmulator(Emulator):
    """Latency = model size × ``ms_per_kib`` (halved in fp16): an emulator whose result follows its options."""

    name = "toy"

    def emulate(self, onnx_path, target, data, options=None) -> EmulationReport:
        opts = validate_options(TOY_OPTIONS, options, target)
        SEEN.append(opts)
        ms = Path(onnx_path).stat().st_size / 1024 * opts["ms_per_kib"] * (0.5 if opts["precision"] == "fp16" else 1)
        rep = EmulationReport(target=target.name, emulator=self.name, latency_ms_p50=ms, latency_ms_p95=ms,
                              fps_batch1=1000 / ms)
        for key in ("latency_ms_p50", "latency_ms_p95", "fps_batch1"):
            rep.provenance[key] = Provenance(Method.ANALYTICAL, "model size × ms_per_kib")
        return rep


class toy_board:  # noqa: N801 - a plugin object, named as a module would be
    @staticmethod
    @hookimpl
    def sigdl_targets() -> list[TargetSpec]:
        return [TargetSpec("toy-board", "Toy board", "toy", cores=4, clock_hz=1e9, memory_bytes=1 << 30,
                           memory_bandwidth=1e9, peak_ops={"fp32": 1e9}, tdp_w=1.0)]

    @staticmethod
    @hookimpl
    def sigdl_emulators() -> list[EmulatorSpec]:
        return [EmulatorSpec("toy", "latency from the model's size", factory=ToyEmulator, options=TOY_OPTIONS)]


def one_error_line(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


TARGET = TargetSpec("toy-board", "Toy board", "toy", cores=4, clock_hz=1e9, memory_bytes=1 << 30,
                    memory_bandwidth=1e9, peak_ops={"fp32": 1e9}, tdp_w=1.0)


# --------------------------------------------------------------------------- syntax


def test_parse_plain_options_lists_and_remote() -> None:
    assert TargetRef.parse("jetson-tx2") == TargetRef("jetson-tx2")
    ref = TargetRef.parse("jetson-tx2:precision=fp32,batch_sizes=[1,4],use_gpu=false")
    assert ref.name == "jetson-tx2" and ref.remote is None
    assert dict(ref.options) == {"precision": "fp32", "batch_sizes": "[1,4]", "use_gpu": "false"}
    assert TargetRef.parse(str(ref)) == ref
    board = TargetRef.parse("rpi4-a72@pi@192.168.1.7:2222:threads=2")
    assert board.remote == RemoteBoard(host="192.168.1.7", user="pi", port=2222)
    assert dict(board.options) == {"threads": "2"}
    assert TargetRef.parse("rpi4-a72@pi@host").remote == RemoteBoard(host="host", user="pi", port=22)
    assert TargetRef.parse("rpi4-a72@pi@host:threads=2").remote.port == 22
    assert str(board) == "rpi4-a72@pi@192.168.1.7:2222:threads=2"


@pytest.mark.parametrize("text", ["jetson-tx2:", "jetson-tx2:precision", ":precision=fp32", "jetson-tx2:a=1,a=2",
                                  "jetson-tx2:batch_sizes=[1,2", "rpi@pi@:22", "rpi@pi@host:99999"])
def test_bad_target_syntax_is_one_clear_error(text: str) -> None:
    with pytest.raises(InvalidValueError) as err:
        TargetRef.parse(text)
    assert "\n" not in err.value.one_line()


def test_recipe_forms_and_their_round_trip() -> None:
    r = Recipe.from_mapping({"targets": ["atom-x5-e3930", "c66x-c6678:cores=1",
                                         {"name": "jetson-tx2", "precision": "fp32"},
                                         {"name": "rpi4-a72", "remote": {"host": "10.0.0.2", "user": "pi",
                                                                         "key_file": "~/.ssh/id_ed25519"}}]})
    assert [t.name for t in r.targets] == ["atom-x5-e3930", "c66x-c6678", "jetson-tx2", "rpi4-a72"]
    assert dict(r.targets[1].options) == {"cores": "1"}
    assert dict(r.targets[2].options) == {"precision": "fp32"}
    assert r.targets[3].remote == RemoteBoard(host="10.0.0.2", user="pi", key_file="~/.ssh/id_ed25519")
    assert Recipe.from_mapping(r.to_mapping()).targets == r.targets
    assert r.to_mapping()["targets"][0] == "atom-x5-e3930"  # plain names stay plain


# --------------------------------------------------------------------------- options


def test_options_take_text_fill_defaults_and_name_the_allowed_values() -> None:
    got = validate_options(TOY_OPTIONS, {"ms_per_kib": "2.5", "cores": "3", "warm": "yes",
                                         "batch_sizes": "[1,8]"}, TARGET)
    assert got == {"ms_per_kib": 2.5, "precision": "fp32", "cores": 3, "batch_sizes": [1, 8], "warm": True}
    assert validate_options(TOY_OPTIONS, None, TARGET) == {
        "ms_per_kib": 1.0, "precision": "fp32", "cores": None, "batch_sizes": [1, 2], "warm": False}
    for bad, says in [({"precison": "fp16"}, "did you mean 'precision'"),
                      ({"precision": "fp64"}, "one of fp32, fp16"),
                      ({"cores": 5}, "<= 4"),            # the bound names the target's field
                      ({"cores": 1.5}, "whole number"),
                      ({"cores": True}, "whole number"),  # a bool is not a number
                      ({"ms_per_kib": 0}, "> 0"),
                      ({"batch_sizes": [0]}, "list of whole numbers >= 1"),
                      ({"warm": "maybe"}, "true or false")]:
        with pytest.raises(InvalidValueError) as err:
            validate_options(TOY_OPTIONS, bad, TARGET)
        assert says in err.value.one_line(), (bad, err.value.one_line())


# --------------------------------------------------------------------------- through the CLI and the loop


@pytest.fixture
def onnx_model(sigdl_cli, numpy_plugin, tmp_path) -> Path:
    out = tmp_path / "base"
    recipe = tmp_path / "plain.yaml"
    recipe.write_text("model: softmax\ndataset: digits-flat\ntrain: {epochs: 1, lr: 0.5}\ncompress: {chain: []}\n"
                      "targets: []\n")
    assert sigdl_cli(["run", str(recipe), "-o", str(out), "-q"], plugins=[numpy_plugin]).exit_code == 0
    return out / "model.onnx"


def test_cli_target_options_reach_the_emulator(sigdl_cli, numpy_plugin, onnx_model) -> None:
    def latency(target: str) -> float:
        result = sigdl_cli(["test", str(onnx_model), "--target", target, "--json"], plugins=[numpy_plugin, toy_board])
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)["targets"]["toy-board"]["latency_ms_p50"]

    base = latency("toy-board")
    assert latency("toy-board:ms_per_kib=3") == pytest.approx(3 * base)
    assert latency("toy-board:precision=fp16,ms_per_kib=3") == pytest.approx(1.5 * base)


def test_a_bad_option_exits_2_before_any_work(sigdl_cli, numpy_plugin, onnx_model, tmp_path) -> None:
    SEEN.clear()
    result = sigdl_cli(["test", str(onnx_model), "--target", "toy-board:precision=fp64"],
                       plugins=[numpy_plugin, toy_board])
    assert "precision must be one of fp32, fp16" in one_error_line(result)
    numpy_plugin.TRAIN_CALLS.clear()
    out = tmp_path / "never"
    for args in (["--target", "toy-board:speed=2"], []):
        recipe = tmp_path / "r.yaml"
        targets = "[{name: toy-board, cores: 9}]" if not args else "[]"
        recipe.write_text(f"model: softmax\ndataset: digits-flat\ncompress: {{chain: []}}\ntargets: {targets}\n")
        result = sigdl_cli(["run", str(recipe), *args, "-o", str(out)], plugins=[numpy_plugin, toy_board])
        line = one_error_line(result)
        assert ("unknown option 'speed'" in line) if args else ("cores must be a whole number >= 1 and <= 4" in line)
    assert numpy_plugin.TRAIN_CALLS == [] and SEEN == [] and not out.exists()


def test_recipe_target_options_reach_the_loop(sigdl_cli, numpy_plugin, tmp_path) -> None:
    recipe = tmp_path / "r.yaml"
    SEEN.clear()
    runs = {}
    for name, targets in (("plain", "[toy-board]"), ("slow", "[{name: toy-board, ms_per_kib: 4, warm: true}]")):
        recipe.write_text("model: softmax\ndataset: digits-flat\ntrain: {epochs: 1, lr: 0.5}\ncompress: {chain: []}\n"
                          f"targets: {targets}\n")
        result = sigdl_cli(["run", str(recipe), "-o", str(tmp_path / name), "--json"], plugins=[numpy_plugin, toy_board])
        assert result.exit_code == 0, result.stderr
        runs[name] = json.loads(result.stdout)["baseline"]["targets"]["toy-board"]["latency_ms_p50"]
    assert runs["slow"] == pytest.approx(4 * runs["plain"])
    assert SEEN[-1]["warm"] is True and SEEN[-1]["ms_per_kib"] == 4.0
    saved = json.loads((tmp_path / "slow" / "recipe.json").read_text())
    assert saved["targets"] == [{"name": "toy-board", "ms_per_kib": 4, "warm": True}]


def test_jetson_fp32_is_slower_than_fp16_from_the_cli(sigdl_cli, onnx_model) -> None:
    pytest.importorskip("sigdl_target_jetson")
    times = {}
    for precision in ("fp16", "fp32"):
        result = sigdl_cli(["test", str(onnx_model), "--target", f"jetson-tx2:precision={precision},use_gpu=false",
                            "--json"])
        assert result.exit_code == 0, result.stderr
        times[precision] = json.loads(result.stdout)["targets"]["jetson-tx2"]["latency_ms_p50"]
    assert times["fp32"] > times["fp16"]


def test_emulators_lists_the_declared_options(sigdl_cli) -> None:
    result = sigdl_cli(["emulators", "--json"], plugins=[toy_board])
    assert result.exit_code == 0, result.stderr
    (toy,) = json.loads(result.stdout)
    assert [o["name"] for o in toy["options"]] == [o.name for o in TOY_OPTIONS]
    precision = toy["options"][1]
    assert precision == {"name": "precision", "type": "str", "default": "fp32", "choices": ["fp32", "fp16"],
                         "minimum": None, "exclusive_minimum": None, "maximum": None, "help": "number format"}
    assert toy["options"][3]["type"] == "list[int]" and toy["options"][3]["default"] == [1, 2]
    table = sigdl_cli(["emulators"], plugins=[toy_board])
    assert "precision=fp32: one of fp32, fp16" in table.stdout


def test_the_recipe_schema_checks_the_installed_targets_options(sigdl_cli) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    result = sigdl_cli(["run", "--schema"], plugins=[toy_board])
    assert result.exit_code == 0, result.stderr
    schema = json.loads(result.stdout)
    toy = schema["$defs"]["Target_toy_board"]["properties"]
    assert toy["precision"] == {"type": "string", "enum": ["fp32", "fp16"], "default": "fp32",
                                "description": "number format"}
    good = [{"name": "toy-board", "precision": "fp16", "batch_sizes": [1, 4], "cores": None},
            {"name": "board-of-a-plugin-not-installed", "anything": 1}, "toy-board:precision=fp16"]
    jsonschema.validate({"targets": good}, schema)
    for bad in ({"name": "toy-board", "precision": "fp64"}, {"name": "toy-board", "speed": 2},
                {"name": "toy-board", "ms_per_kib": 0}, {"name": "toy-board", "batch_sizes": [0]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"targets": [bad]}, schema)
