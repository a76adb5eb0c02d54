"""One run on a real board over SSH: connect, copy, run, fetch, clean up.

paramiko (not asyncssh): the run is one sequential conversation with one board, for which a
blocking client is the plain fit; paramiko is the most widely deployed Python SSH library,
has SFTP, known_hosts handling (``load_host_keys``, ``RejectPolicy``) and agent/key auth
built in, and needs no event loop inside SigDL's synchronous emulator interface.

Security
--------
* The board's host key is checked against ``known_hosts`` (the user's ``~/.ssh/known_hosts``
  unless another file is named); an unknown host is refused unless ``accept_new_host_key``
  is set, in which case its key is added to that file (trust on first use, as OpenSSH's
  ``StrictHostKeyChecking=accept-new``); a *changed* key is always refused.
* Keys or the SSH agent only: paramiko is never given a password, and a recipe has no place
  for one.
* Connection, authentication and banner timeouts (``connect_timeout``) and a timeout on the
  run (``command_timeout``); a silent link is detected by SSH keep-alives.
* The runner's folder on the board is a fresh ``mktemp -d`` directory, removed afterwards
  by SigDL and, when it ends, by the runner itself (so also after a dropped connection).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sigdl_core.errors import BadInputError, SigdlError

__all__ = ["BoardAddress", "BoardError", "BoardResult", "MissingRuntimeError", "run_on_board"]

RUNNER = Path(__file__).with_name("board_runner.py")


class BoardError(SigdlError):
    """The board could not be reached, refused us, or dropped the connection mid-run.

    Exit code 3: not bad input, and not a missed budget; retry with ``--resume``.
    """

    exit_code = 3


class MissingRuntimeError(BadInputError):
    """The board's Python has no onnxruntime (or NumPy)."""


@dataclass(frozen=True)
class BoardAddress:
    """Where the board is and how to log in (no password, ever)."""

    host: str
    port: int = 22
    user: str | None = None
    key_file: str | None = None
    known_hosts: str | None = None
    accept_new_host_key: bool = False

    def label(self) -> str:
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"


@dataclass
class BoardResult:
    """What the runner measured (its ``result.json``), and the remote folder it used."""

    values: dict[str, Any]
    remote_dir: str
    seconds: float


def _known_hosts(address: BoardAddress) -> Path:
    return Path(address.known_hosts).expanduser() if address.known_hosts else Path("~/.ssh/known_hosts").expanduser()


class _AcceptAndSave:
    """paramiko missing-host-key policy: accept a new host and append it to known_hosts."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def missing_host_key(self, client, hostname, key) -> None:  # paramiko's policy interface
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        client.save_host_keys(str(self.path))


def connect(address: BoardAddress, timeout: float):
    """An authenticated ``paramiko.SSHClient`` to the board; raises :class:`BoardError`."""
    import paramiko

    client = paramiko.SSHClient()
    known = _known_hosts(address)
    if known.exists():
        client.load_host_keys(str(known))
    elif not address.accept_new_host_key:
        raise BoardError(f"no known_hosts file at {known} to verify {address.label()} against",
                         "add the board's key (ssh-keyscan -p PORT HOST >> ~/.ssh/known_hosts, after "
                         "checking it) or pass accept_new_host_key=true once")
    client.set_missing_host_key_policy(_AcceptAndSave(known) if address.accept_new_host_key
                                       else paramiko.RejectPolicy())
    try:
        client.connect(address.host, port=address.port, username=address.user,
                       key_filename=os.path.expanduser(address.key_file) if address.key_file else None,
                       timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                       allow_agent=True, look_for_keys=address.key_file is None)
    except paramiko.BadHostKeyException:
        client.close()
        raise BoardError(f"the host key of {address.label()} does not match {known}: refusing to connect "
                         "(the board was reinstalled, or someone is in between)",
                         f"check the board's key, then remove its old line: ssh-keygen -R '[{address.host}]:{address.port}'") from None
    except paramiko.AuthenticationException:
        client.close()
        raise BoardError(f"{address.label()} refused our key", "give key_file=PATH or load the key into "
                         "ssh-agent; passwords are not used") from None
    except paramiko.SSHException as exc:
        client.close()
        if "not found in known_hosts" in str(exc):
            raise BoardError(f"{address.label()} is not in {known}: refusing an unknown host key",
                             "check the board's key and add it (ssh-keyscan), or pass accept_new_host_key=true") from None
        raise BoardError(f"SSH to {address.label()} failed: {' '.join(str(exc).split())}") from None
    except (OSError, EOFError) as exc:
        client.close()
        raise BoardError(f"cannot reach {address.label()}: {' '.join(str(exc).split()) or type(exc).__name__}",
                         "check the host, the port and that sshd runs on the board") from None
    transport = client.get_transport()
    if transport is not None:
        transport.set_keepalive(max(1, int(timeout // 3)))
    return client


def _exec(client, command: str, timeout: float) -> tuple[int, str, str]:
    """Runs ``command``; returns (exit code, stdout, stderr); raises :class:`BoardError` on
    a dropped connection or when ``timeout`` passes."""
    chan = client.get_transport().open_session(timeout=timeout)
    chan.settimeout(1.0)
    chan.exec_command(command)
    out, err = bytearray(), bytearray()
    deadline = time.monotonic() + timeout
    while True:
        if chan.recv_ready():
            out += chan.recv(65536)
        if chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
        if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
            break
        if chan.closed or not client.get_transport().is_active():
            raise EOFError("the connection closed")
        if time.monotonic() > deadline:
            chan.close()
            raise TimeoutError(f"no result after {timeout:g} s")
        time.sleep(0.02)
    status = chan.recv_exit_status()
    if status == -1:  # paramiko: the channel closed without an exit status
        raise EOFError("the session ended without an exit status")
    return status, out.decode(errors="replace"), err.decode(errors="replace")


@contextlib.contextmanager
def board_lock(address: BoardAddress) -> Iterator[None]:
    """One run at a time per board (host:port), across processes on this machine: a board
    times one model at a time."""
    key = hashlib.sha1(f"{address.host}:{address.port}".encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"sigdl-lock-board-{key}"
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_on_board(address: BoardAddress, files: Mapping[str, Path], request: Mapping[str, Any],
                 python: str = "python3", connect_timeout: float = 15.0,
                 command_timeout: float = 600.0) -> BoardResult:
    """Copies ``files`` (remote name → local path) and the runner into a fresh temporary
    folder on the board, runs it with ``python``, and returns its result.

    Raises :class:`MissingRuntimeError` when the board's Python lacks onnxruntime and
    :class:`BoardError` for every SSH failure (unreachable, refused, host key, dropped).
    """
    start = time.monotonic()
    with board_lock(address):
        client = connect(address, connect_timeout)
        remote_dir = ""
        try:
            try:
                code, out, err = _exec(client, "mktemp -d /tmp/sigdl-board-XXXXXXXX", connect_timeout)
                remote_dir = out.strip()
                if code != 0 or not remote_dir.startswith("/tmp/sigdl-board-"):
                    raise BoardError(f"could not make a temporary folder on {address.label()}: {err.strip()[:200]}")
                with client.open_sftp() as sftp:
                    sftp.get_channel().settimeout(command_timeout)
                    sftp.put(str(RUNNER), f"{remote_dir}/board_runner.py")
                    for name, local in files.items():
                        sftp.put(str(local), f"{remote_dir}/{name}")
                    with sftp.open(f"{remote_dir}/request.json", "w") as fh:
                        fh.write(json.dumps(dict(request)))
                command = f"{shlex.quote(python)} {remote_dir}/board_runner.py {remote_dir}"
                code, out, err = _exec(client, command, command_timeout)
            except (EOFError, socket.error, TimeoutError) as exc:
                raise BoardError(f"the connection to {address.label()} was lost during the run "
                                 f"({' '.join(str(exc).split()) or type(exc).__name__})",
                                 "nothing from this run was kept; check the board and retry (sigdl run --resume)") from None
            except Exception as exc:
                import paramiko

                if isinstance(exc, paramiko.SSHException):
                    raise BoardError(f"the connection to {address.label()} failed during the run "
                                     f"({' '.join(str(exc).split())})", "retry (sigdl run --resume)") from None
                raise
            line = next((ln for ln in reversed(out.strip().splitlines()) if ln.startswith("{")), "")
            try:
                values = json.loads(line) if line else None
            except json.JSONDecodeError:
                values = None
            if code == 127 or (values is None and "not found" in err):
                raise MissingRuntimeError(f"the board has no Python at '{python}'",
                                          "give python=PATH (the board's interpreter with onnxruntime)")
            if values is not None and values.get("error") == "missing_onnxruntime":
                raise MissingRuntimeError(f"the board's Python ({python}) has no onnxruntime",
                                          f"on the board: {python} -m pip install onnxruntime numpy, or give "
                                          "python=PATH of a venv that has it")
            if code != 0 or values is None:
                tail = " ".join((err or out).split())[-300:]
                raise BoardError(f"the runner failed on {address.label()} (exit {code}): {tail}")
            return BoardResult(values, remote_dir, time.monotonic() - start)
        finally:
            if remote_dir.startswith("/tmp/sigdl-board-"):
                with contextlib.suppress(Exception):
                    _exec(client, f"rm -rf {shlex.quote(remote_dir)}", connect_timeout)
            client.close()
