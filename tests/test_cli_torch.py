"""Bad model files through the `sigdl` command itself, with the real PyTorch plugin."""

from __future__ import annotations

import builtins

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sigdl_framework_torch")


class RunsCode:
    """Unpickling this would call builtins.open(marker, "w"): it would create the marker."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def one_line(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.fixture
def checkpoint(tmp_path):
    from sigdl_framework_torch.framework import TorchFramework

    fw = TorchFramework()
    model = fw.build("lenet300100", (1, 28, 28), 10)
    return fw.save(model, tmp_path / "good.pt"), model


def test_a_checkpoint_holding_pickled_code_is_refused_and_never_run(sigdl_cli, checkpoint, tmp_path) -> None:
    _, model = checkpoint
    marker = tmp_path / "was-run"
    torch.save({"sigdl": {"format": 1}, "state_dict": model.native.state_dict(), "hook": RunsCode(str(marker))},
               tmp_path / "evil.pt")
    line = one_line(sigdl_cli(["test", str(tmp_path / "evil.pt"), "-d", "mnist5k"]))
    assert "evil.pt" in line
    assert not marker.exists()


@pytest.mark.parametrize("keep", [0, 100, 0.5])
def test_truncated_or_empty_checkpoints_get_one_line(sigdl_cli, checkpoint, tmp_path, keep) -> None:
    good, _ = checkpoint
    data = good.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    assert "cut.pt" in one_line(sigdl_cli(["test", str(cut), "-d", "mnist5k"]))


def test_a_good_checkpoint_tests_fine(sigdl_cli, checkpoint) -> None:
    good, _ = checkpoint
    result = sigdl_cli(["test", str(good), "-d", "mnist5k"])
    assert result.exit_code == 0, result.stderr
