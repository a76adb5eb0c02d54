"""Re-testing on a real board over SSH, against a real OpenSSH sshd on 127.0.0.1 (conftest):
the "board" is this machine, with this venv's python and onnxruntime."""

from __future__ import annotations

import glob
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sigdl_core.interfaces import ArrayDataset, Method, TargetSpec

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("paramiko")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from sigdl_target_remote.board import BoardError, MissingRuntimeError  # noqa: E402
from sigdl_target_remote.emulator import RemoteEmulator  # noqa: E402

BOARD = TargetSpec(name="test-board", title="this machine as a board", emulator="none", cores=2,
                   clock_hz=1e9, memory_bytes=1 << 30, memory_bandwidth=1e9, peak_ops={"fp32": 1e9},
                   tdp_w=1.0)


def blobs(tmp_path: Path):
    """A classifier of Gaussian blobs built by construction (nearest centre): real accuracy."""
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((10, 64)).astype(np.float32)
    y = rng.integers(0, 10, 300)
    x = (centres[y] + 0.9 * rng.standard_normal((300, 64))).astype(np.float32).reshape(300, 1, 8, 8)
    b = (-0.5 * (centres ** 2).sum(1)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["f"], name="flat"),
         helper.make_node("Gemm", ["f", "w", "b"], ["logits"], transB=1, name="fc")],
        "blobs", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(centres, "w"), numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = tmp_path / "blobs.onnx"
    onnx.save(m, str(path))
    xt, yt = x[100:], y[100:]
    expected = float(((xt.reshape(len(xt), 64) @ centres.T + b).argmax(1) == yt).mean())
    return path, ArrayDataset("blobs", x[:100], y[:100], xt, yt, 10), expected


def board_options(sshd, **more):
    return {"host": "127.0.0.1", "port": sshd.port, "user": sshd.user, "key_file": str(sshd.key_file),
            "known_hosts": str(sshd.known_hosts), "python": sys.executable, "runs": 20, "warmup": 2,
            "connect_timeout": 10.0, "command_timeout": 60.0, **more}


def _board_dirs() -> set[str]:
    return set(glob.glob("/tmp/sigdl-board-*"))


def test_measured_on_the_board_and_folder_removed(sshd, tmp_path):
    path, data, expected = blobs(tmp_path)
    before = _board_dirs()
    rep = RemoteEmulator().emulate(path, BOARD, data, board_options(
        sshd, power_command="echo 2.5", runs=10))
    assert rep.target == "test-board@127.0.0.1"
    assert rep.accuracy.top1 == pytest.approx(expected, abs=1e-6) and rep.accuracy.samples == 200
    assert 0 < rep.latency_ms_p50 <= rep.latency_ms_p95
    assert rep.peak_memory_bytes > 10 << 20  # a Python with onnxruntime loaded
    assert rep.power_w == pytest.approx(2.5)  # sampled from the command during the timed runs
    assert {p.method for p in rep.provenance.values()} == {Method.MEASURED}
    assert Method.MEASURED.value == "measured on the board"
    remote_dir = rep.extra["remote_dir"]
    assert remote_dir.startswith("/tmp/sigdl-board-") and not Path(remote_dir).exists()
    assert _board_dirs() == before  # the temporary folder on the "board" is gone


def test_wrong_host_key_is_refused_and_unknown_host_needs_consent(sshd, tmp_path):
    path, data, _ = blobs(tmp_path)
    import subprocess

    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, key = Path(str(other) + ".pub").read_text().split()[:2]
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {kind} {key}\n")
    with pytest.raises(BoardError, match="does not match"):
        RemoteEmulator().emulate(path, BOARD, data, board_options(sshd, known_hosts=str(wrong)))
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(BoardError, match="not in .*refusing an unknown host key"):
        RemoteEmulator().emulate(path, BOARD, data, board_options(sshd, known_hosts=str(empty)))
    # accept_new_host_key: trust on first use, remembered in the file; a changed key still refused
    rep = RemoteEmulator().emulate(path, BOARD, None, board_options(sshd, known_hosts=str(empty),
                                                                    accept_new_host_key=True, runs=5))
    assert rep.latency_ms_p50 > 0 and sshd.host_pub.split()[1] in empty.read_text()
    with pytest.raises(BoardError, match="does not match"):
        RemoteEmulator().emulate(path, BOARD, data, board_options(sshd, known_hosts=str(wrong),
                                                                  accept_new_host_key=True))


def test_missing_onnxruntime_on_the_board_is_one_clear_error(sshd, tmp_path):
    path, data, _ = blobs(tmp_path)
    system_python = "/usr/bin/python3"  # Debian's python3: no onnxruntime (nor numpy)
    before = _board_dirs()
    with pytest.raises(MissingRuntimeError, match="has no onnxruntime") as info:
        RemoteEmulator().emulate(path, BOARD, data, board_options(sshd, python=system_python))
    assert "pip install onnxruntime" in info.value.one_line() and "\n" not in info.value.one_line()
    with pytest.raises(MissingRuntimeError, match="no Python at"):
        RemoteEmulator().emulate(path, BOARD, data, board_options(sshd, python="/nonexistent/python3"))
    assert _board_dirs() == before  # cleaned up after a failed run too


def test_server_killed_mid_run_is_one_clear_error(sshd, tmp_path):
    path, data, _ = blobs(tmp_path)
    errors: list[BaseException] = []

    def run() -> None:
        try:  # long enough to be killed in the middle: many timed runs, power sampled
            RemoteEmulator().emulate(path, BOARD, data, board_options(
                sshd, runs=10**7, command_timeout=16.0, power_command="sleep 0.05; echo 1"))
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            errors.append(exc)

    before = _board_dirs()
    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(
            Path(d, "request.json").exists() for d in _board_dirs() - before):
        time.sleep(0.05)
    time.sleep(0.5)  # the runner is timing now
    sshd.kill()
    t.join(timeout=30)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], BoardError), errors
    line = errors[0].one_line()
    assert "lost during the run" in line and "--resume" in line and "\n" not in line
    assert errors[0].exit_code == 3
    deadline = time.monotonic() + 20  # the orphaned runner stops at its time limit and cleans up
    while time.monotonic() < deadline and _board_dirs() - before:
        time.sleep(0.2)
    assert _board_dirs() == before


def test_full_remote_sigdl_test_beside_the_emulator(sshd, tmp_path, sigdl_cli):
    """`sigdl test model --target rpi4-a72@USER@127.0.0.1:PORT:python=...` prints the board's
    measured latency beside the ARM emulator's, with the emulator's error."""
    arm = pytest.importorskip("sigdl_target_arm.plugin")
    from sigdl_target_remote import plugin as remote

    path, _data, _ = blobs(tmp_path)
    known = tmp_path / "kh"
    known.write_text(sshd.known_hosts.read_text())
    target = (f"rpi4-a72@{sshd.user}@127.0.0.1:{sshd.port}:python={sys.executable},"
              f"key_file={sshd.key_file},known_hosts={known},runs=10,threads=2")
    result = sigdl_cli(["test", str(path), "--target", target],
                       plugins=[arm, remote])
    out = result.stdout
    assert result.exit_code == 0, out + result.stderr
    assert "rpi4-a72@127.0.0.1" in out and "measured on the board" in out and "analytical" in out
    assert "emulator error, latency p50" in out
    # the board dropped: the emulated target's result is still printed; exit code 3
    sshd.kill()
    result = sigdl_cli(["test", str(path), "--target", target],
                       plugins=[arm, remote])
    assert result.exit_code == 3
    assert "cannot reach" in result.stdout + result.stderr
    assert "analytical" in result.stdout  # the twin's (emulated) column survived


def test_board_targets_bind_beside_their_emulated_twin():
    arm = pytest.importorskip("sigdl_target_arm.plugin")
    from sigdl_core.errors import InvalidValueError
    from sigdl_core.plugins import load_plugins
    from sigdl_core.targets import TargetRef, resolve_targets

    registry = load_plugins(allow=["target_arm", "target_remote"]).registry
    assert arm is not None
    bound = resolve_targets(registry, ["rpi4-a72@pi@192.0.2.7:2222:threads=2,python=/opt/venv/bin/python"])
    assert [b.name for b in bound] == ["rpi4-a72", "rpi4-a72@192.0.2.7"]
    twin, board = bound
    assert twin.emulator.name == "arm" and twin.options["threads"] == 2 and "python" not in twin.options
    assert board.emulator.name == "remote"
    assert (board.options["host"], board.options["port"], board.options["user"]) == ("192.0.2.7", 2222, "pi")
    assert board.options["python"] == "/opt/venv/bin/python" and board.options["threads"] == 2
    # the user's own entry for the twin wins, wherever it stands
    bound = resolve_targets(registry, ["rpi4-a72@pi@192.0.2.7", "rpi4-a72:precision=int8"])
    assert [b.name for b in bound] == ["rpi4-a72", "rpi4-a72@192.0.2.7"]
    assert bound[0].options["precision"] == "int8"
    recipe = TargetRef.from_recipe({"name": "jetson-nano-cpu", "remote": {"host": "nano", "user": "nv"},
                                    "power_command": "tegrastats", "runs": 7})
    board = resolve_targets(registry, [recipe])[1]
    assert board.options["power_command"] == "tegrastats" and board.options["runs"] == 7
    with pytest.raises(InvalidValueError, match="unknown option 'colour'"):
        resolve_targets(registry, ["rpi4-a72@pi@host:colour=red"])
    with pytest.raises(InvalidValueError, match="runs"):
        resolve_targets(registry, ["rpi4-a72@pi@host:runs=1"])
    from sigdl_core.errors import BadInputError

    with pytest.raises(BadInputError, match="named twice"):
        resolve_targets(registry, ["rpi4-a72@pi@host", "rpi4-a72@root@host"])


@pytest.mark.slow
def test_loop_with_a_board_that_is_down_resumes_when_it_is_back(tmp_path, sigdl_cli, sshd_at):
    """`sigdl run` with a real board that does not answer: one clear error (exit 3), the run
    folder intact; `--resume` retries once the board is back and re-tests on it."""
    arm = pytest.importorskip("sigdl_target_arm.plugin")
    torch_plugin = pytest.importorskip("sigdl_framework_torch.plugin")
    prune = pytest.importorskip("sigdl_compress_prune.plugin")
    datasets = pytest.importorskip("sigdl_datasets.plugin")
    from sigdl_target_remote import plugin as remote

    folder, port = tmp_path / "board", sshd_at.free_port()
    server = sshd_at(folder, port)  # keys and known_hosts for the recipe, then the board goes down
    server.kill()
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"""
model: lenet300100
dataset: digits
train: {{epochs: 1}}
compress: {{chain: [prune], params: {{prune: {{sparsity: 0.5}}}}, retrain: {{epochs: 1}}}}
targets:
  - name: rpi4-a72
    remote: {{host: 127.0.0.1, user: {server.user}, port: {port}, key_file: {server.key_file}, python: {sys.executable}}}
    known_hosts: {server.known_hosts}
    runs: 5
    connect_timeout: 5.0
budget: {{max_accuracy_drop: 100.0, min_fps: 1}}
search: {{strategy: fixed}}
limits: {{max_candidates: 1}}
""")
    run = tmp_path / "run"
    plugins = [arm, remote, torch_plugin, prune, datasets]
    first = sigdl_cli(["run", str(recipe), "-o", str(run), "-q"], plugins=plugins)
    assert first.exit_code == 3, first.stdout + first.stderr
    assert "cannot reach" in first.stdout + first.stderr
    assert (run / "recipe.json").is_file()  # the run folder stands, ready to resume
    server = sshd_at(folder, port)
    again = sigdl_cli(["run", "--resume", str(run), "-q"], plugins=plugins)
    assert again.exit_code in (0, 1), again.stdout + again.stderr
    assert "rpi4-a72@127.0.0.1" in again.stdout
    report = (run / "report.md").read_text()
    assert "measured on the board" in report and "emulator error, latency p50 (vs board)" in report


def test_the_board_runs_the_model_its_emulator_would_int8_qdq(sshd, tmp_path):
    pytest.importorskip("sigdl_target_arm.plugin")
    from sigdl_core.plugins import load_plugins
    from sigdl_core.targets import emulate_target, resolve_targets

    registry = load_plugins(allow=["target_arm", "target_remote"]).registry
    path, data, expected = blobs(tmp_path)
    target = (f"rpi4-a72@{sshd.user}@127.0.0.1:{sshd.port}:precision=int8,python={sys.executable},"
              f"key_file={sshd.key_file},known_hosts={sshd.known_hosts},runs=5")
    twin, board = resolve_targets(registry, [target])
    assert board.twin == twin and twin.options["precision"] == "int8"
    emulated = emulate_target(registry, twin, path, data)
    measured = emulate_target(registry, board, path, data)
    assert "int8-qdq" in measured.extra["model_run"]
    assert measured.provenance["accuracy"].method is Method.MEASURED
    assert measured.accuracy.top1 == pytest.approx(emulated.accuracy.top1, abs=0.02)  # one QDQ model
    assert abs(measured.accuracy.top1 - expected) <= 0.05


def test_power_from_a_streaming_tegrastats_like_command(sshd, tmp_path):
    path, _data, _ = blobs(tmp_path)
    stream = "while true; do echo 'RAM 1200/3964MB CPU [5%@1420] POM_5V_IN 3120/3000 POM_5V_CPU 800/700'; sleep 0.05; done"
    rep = RemoteEmulator().emulate(path, BOARD, None, board_options(
        sshd, power_command=stream, runs=200))
    assert rep.power_w == pytest.approx(3.12)  # tegrastats' milliwatts, the first rail
    assert rep.provenance["power_w"].method is Method.MEASURED
    assert rep.energy_mj == pytest.approx(3.12 * rep.latency_ms_p50)
