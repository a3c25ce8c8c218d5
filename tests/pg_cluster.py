"""A throwaway PostgreSQL cluster (initdb + pg_ctl in a temporary directory) that a test may crash and restart.

The machine's shared server must never be stopped by a test, so the fault test gets its own cluster: a private
data directory, a free loopback port, a unix socket in the same directory, trust authentication. Durability is left
as in production (fsync and synchronous_commit on), so "stop -m immediate" loses exactly what a real crash would.
initdb refuses to run as root, so under root (CI) every server command runs as the ``postgres`` OS user.
"""
from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import psycopg2

from tests.gunicorn_process import free_port

BIN_DIR = Path(os.environ.get("PG_BIN_DIR", "/usr/lib/postgresql/15/bin"))
SERVER_USER = "postgres"
# Small memory, real durability; no logging collector so the log file is the one pg_ctl -l writes.
# Crash recovery first flushes the data directory; the default walks it file by file (~3 s here), syncfs is one
# call with the same guarantee, so the restart after "stop -m immediate" stays short.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "shared_buffers": "'16MB'",
    "max_connections": "40",
    "fsync": "on",
    "synchronous_commit": "on",
    "recovery_init_sync_method": "syncfs",
    "logging_collector": "off",
    "log_min_messages": "warning",
}


class ClusterError(RuntimeError):
    """The throwaway cluster could not be created, started or stopped; the message carries the server log tail."""


class PostgresCluster:
    """A private PostgreSQL cluster: ``start()``, ``stop(mode)``, ``create_database(name)``, ``url(name)``."""

    def __init__(self, bin_dir: Path = BIN_DIR):
        if not (bin_dir / "initdb").exists():
            raise ClusterError(f"no initdb in {bin_dir}; install PostgreSQL 15 or set PG_BIN_DIR")
        self.bin_dir = bin_dir
        self.as_root = os.geteuid() == 0
        # Not pytest's tmp_path: under root it is mode 700 and the postgres user could not reach its data.
        self.root = Path(tempfile.mkdtemp(prefix="pg_cluster_"))
        self.data, self.socket_dir, self.log = self.root / "data", self.root / "socket", self.root / "server.log"
        self.port = free_port()
        self.socket_dir.mkdir()
        if self.as_root:
            user = pwd.getpwnam(SERVER_USER)
            for path in (self.root, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        command = [str(self.bin_dir / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise ClusterError(f"{tool} {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}\n"
                               f"server log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server log (empty before the first start)."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def init(self) -> None:
        """initdb with trust auth and the settings above."""
        # --no-sync only skips initdb's own final flush; the running server keeps fsync on.
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                  "--locale=C", "--no-sync", "--no-instructions")
        settings = {**SETTINGS, "port": str(self.port), "unix_socket_directories": f"'{self.socket_dir}'"}
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("".join(f"{key} = {value}\n" for key, value in settings.items()))

    def start(self) -> None:
        """Start the server and return once it accepts connections (pg_ctl -w)."""
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", timeout=90)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``mode="immediate"`` is a crash: no checkpoint, recovery on the next start."""
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "60", timeout=90)

    def running(self) -> bool:
        """True while a postmaster owns the data directory."""
        return (self.data / "postmaster.pid").exists()

    def url(self, dbname: str = "postgres") -> str:
        """A libpq URL of a database in this cluster over TCP on loopback."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        with contextlib.closing(psycopg2.connect(self.url(), connect_timeout=10)) as admin:
            admin.autocommit = True
            admin.cursor().execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        """Crash-stop the server if it runs (killing the postmaster if pg_ctl cannot) and delete the directory."""
        try:
            if self.running():
                self.stop("immediate")
        except (ClusterError, subprocess.TimeoutExpired):
            self._kill_postmaster()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
            # A stale pid file may name a pid since reused by an unrelated process: kill only our postmaster.
            if str(self.data).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def postgres_cluster(bin_dir: Path = BIN_DIR):
    """A started throwaway cluster, destroyed on exit whatever happened inside."""
    cluster = PostgresCluster(bin_dir)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
