"""Hook implementations of the real-board plugin: the "remote" emulator and its options.

Any registered target can be a real board (``NAME@USER@HOST[:PORT]``): the core binds such a
target to this emulator. Imports nothing heavy (paramiko is imported when a board is used).
"""

from __future__ import annotations

from sigdl_core import hookimpl
from sigdl_core.interfaces import EmulatorOption, EmulatorSpec

#: Options of a real-board run; the core fills host/user/port from ``NAME@USER@HOST:PORT``.
OPTIONS: tuple[EmulatorOption, ...] = (
    EmulatorOption("host", str, None, "the board's host name or address"),
    EmulatorOption("user", str, None, "the login user (default: SSH's, the local user)"),
    EmulatorOption("port", int, 22, "SSH port", minimum=1, maximum=65535),
    EmulatorOption("key_file", str, None, "private key file (default: ssh-agent and ~/.ssh keys; never a password)"),
    EmulatorOption("python", str, "python3", "the board's Python interpreter that has onnxruntime"),
    EmulatorOption("power_command", str, None,
                   "shell command on the board that prints its power draw (e.g. tegrastats, or cat an INA2xx power1_input)"),
    EmulatorOption("power_scale", float, 1.0, "factor from the command's number to watts (1e-6 for microwatts)",
                   exclusive_minimum=0.0),
    EmulatorOption("known_hosts", str, None, "known_hosts file that verifies the board (default ~/.ssh/known_hosts)"),
    EmulatorOption("accept_new_host_key", bool, False,
                   "accept and remember a board whose key is not yet known (never a changed one)"),
    EmulatorOption("runs", int, 50, "timed runs after the warm-up", minimum=5),
    EmulatorOption("warmup", int, 5, "untimed runs first", minimum=0),
    EmulatorOption("threads", int, 0, "onnxruntime intra-op threads on the board (0 = its default)", minimum=0),
    EmulatorOption("connect_timeout", float, 15.0, "seconds to connect and authenticate", exclusive_minimum=0.0),
    EmulatorOption("command_timeout", float, 600.0, "seconds the run on the board may take", exclusive_minimum=0.0),
    EmulatorOption("max_samples", int, 0, "test samples sent to the board (0 = all)", minimum=0),
)


def _emulator():
    from .emulator import RemoteEmulator

    return RemoteEmulator()


@hookimpl
def sigdl_emulators() -> list[EmulatorSpec]:
    return [EmulatorSpec(
        "remote",
        "re-tests on the real board over SSH (paramiko): the model and a small runner are copied to a "
        "temporary folder, the board's onnxruntime times it; every number is measured on the board",
        factory=_emulator, options=OPTIONS)]
