"""A throwaway PostgreSQL cluster on a free loopback port, for tests and probes: start, stop, freeze.

`initdb` and `pg_ctl` come from the PATH or /usr/lib/postgresql/*/bin; as root the cluster runs as
the `postgres` OS user (PostgreSQL refuses to run as root). `freeze` stops every server process
with SIGSTOP (a hung host: connections stay open and nothing answers), `thaw` resumes them.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


class ClusterUnavailable(Exception):
    """The binaries or the OS user a cluster needs are missing; the message says what to install."""


def pg_bindir() -> Path | None:
    """Where initdb/pg_ctl live: the PATH first, then Debian's versioned directories (newest first)."""
    found = shutil.which("initdb")
    candidates = [found] if found else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    for candidate in candidates:
        bindir = Path(candidate).resolve().parent
        if (bindir / "pg_ctl").exists():
            return bindir
    return None


def _as_postgres_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ClusterUnavailable("running as root and there is no `postgres` OS user to run the server as") from None
    if not shutil.which("runuser"):
        raise ClusterUnavailable("running as root and `runuser` is missing, so the server cannot drop root")
    return ["runuser", "-u", "postgres", "--"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    """One cluster's directories, port and commands; `dsn` names its `postgres` database."""

    bindir: Path
    root: Path
    port: int
    prefix: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str, check: bool = True) -> None:
        command = [*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.data), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._ctl("-o", options, "-l", str(self.root / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop", check=False)

    def pids(self) -> list[int]:
        """The postmaster and every process it started (backends, checkpointer, ...); none when it is down."""
        try:
            head = (self.data / "postmaster.pid").read_text().split()[0]
        except (FileNotFoundError, IndexError):
            return []
        children = subprocess.run(["pgrep", "-P", head], capture_output=True, text=True, check=False).stdout.split()
        return [int(head), *(int(p) for p in children)]

    def _signal_all(self, signum: signal.Signals) -> None:
        """Signal every server process; one that exits between the listing and the signal is skipped
        (a backend ending its session, or the postmaster shutting down), which is what made a teardown
        fail with ProcessLookupError under load."""
        for pid in self.pids():
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                continue

    def freeze(self) -> None:
        self._signal_all(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal_all(signal.SIGCONT)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster() -> Cluster:
    """initdb and start a cluster in a new temp dir; ClusterUnavailable when it cannot be done here."""
    bindir = pg_bindir()
    if bindir is None:
        raise ClusterUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found; apt-get install -y postgresql")
    prefix = _as_postgres_user()
    root = Path(tempfile.mkdtemp(prefix="cascade-pg-"))
    if prefix:
        entry = pwd.getpwnam("postgres")
        os.chown(root, entry.pw_uid, entry.pw_gid)
    cluster = Cluster(bindir, root, free_port(), prefix)
    initdb = [*prefix, str(bindir / "initdb"), "-D", str(cluster.data), "-U", "postgres", "-A", "trust", "-E", "UTF8"]
    done = subprocess.run([*initdb, "--no-sync"], capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    cluster.start()
    return cluster
