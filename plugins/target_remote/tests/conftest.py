"""A real OpenSSH server on 127.0.0.1 for the real-board tests: this machine is the "board".

The fixture starts ``/usr/sbin/sshd -D`` at a free port with a throwaway host key and a
throwaway user key (AuthorizedKeysFile in the temporary folder, StrictModes no, UsePAM no),
and writes a known_hosts file holding the host key. Tests skip, saying why, only when sshd is
not installed (``make test`` installs Debian's openssh-server when it is missing).
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"


@dataclass
class TestSshd:
    port: int
    user: str
    key_file: Path
    known_hosts: Path
    host_pub: str
    proc: subprocess.Popen
    folder: Path

    def kill(self) -> None:
        """Kills the server and the per-connection processes it forked, by their ids."""
        for pid in [*_children(self.proc.pid), self.proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)


def _children(pid: int) -> list[int]:
    """The ids of the processes whose parent is ``pid`` (sshd's per-connection children)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def start_sshd(folder: Path, port: int | None = None) -> TestSshd:
    """Starts sshd with the keys in ``folder`` (made on first use) at ``port`` (a free one)."""
    if not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None:
        pytest.skip("OpenSSH's sshd is not installed (apt-get install openssh-server; make test does this)")
    folder.mkdir(parents=True, exist_ok=True)
    host, user_key = folder / "host_key", folder / "user_key"
    for key in (host, user_key):
        if not key.exists():
            _keygen(key)
    auth = folder / "authorized_keys"
    auth.write_text(Path(str(user_key) + ".pub").read_text())
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation directory
    port = port or _free_port()
    config = folder / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host}", f"AuthorizedKeysFile {auth}",
        "StrictModes no", "UsePAM no", f"PidFile {folder / 'sshd.pid'}", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password", "Subsystem sftp internal-sftp",
        "LogLevel ERROR", "",
    ]))
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                            stderr=open(folder / "sshd.log", "w"), start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sshd exited: {(folder / 'sshd.log').read_text()[:500]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    host_pub = Path(str(host) + ".pub").read_text().split()
    known = folder / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    return TestSshd(port, getpass.getuser(), user_key, known, " ".join(host_pub[:2]), proc, folder)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    return _free_port()


@pytest.fixture
def sshd(tmp_path):
    server = start_sshd(tmp_path / "sshd")
    yield server
    server.kill()


@pytest.fixture
def sshd_at():
    """``start(folder, port)`` → a :class:`TestSshd`; every server started is killed afterwards.
    ``start.free_port()`` gives a port nothing listens on."""
    started: list[TestSshd] = []

    def start(folder: Path, port: int | None = None) -> TestSshd:
        server = start_sshd(folder, port)
        started.append(server)
        return server

    start.free_port = _free_port  # type: ignore[attr-defined]
    yield start
    for server in started:
        server.kill()
