"""The one way tests and benchmarks start the service under gunicorn, as the Procfile does.

``sys.executable -m gunicorn`` with gunicorn.conf.py on a free loopback port: the running interpreter, never a
path such as ``.venv/bin/gunicorn``, so the suite runs from any virtual or conda environment. Framework-free (no
pytest), so bench/ uses it too.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONF = ROOT / "gunicorn.conf.py"
SERVICE_APP = "app:create_app()"
# Settings each caller decides itself: any auth or dyno variable of the caller's shell must not leak in.
# The metrics directory too: each instance makes its own (gunicorn.conf.py) unless the caller names one.
SCRUBBED_ENV = ("DYNO", "API_KEYS", "API_KEYS_REVOKED", "API_AUTH_DISABLED", "SESSION_SECRET", "WEB_CONCURRENCY",
                "PORT", "DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR", "CTRP3_CREATED_METRICS_DIR")


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with contextlib.closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerNotReady(RuntimeError):
    """gunicorn exited or never answered /health; the message ends with its log."""


class GunicornProcess:
    """gunicorn serving ``app`` in its own session (so the whole group can be killed), its output in ``log_path``.

    ``env`` adds to the scrubbed environment (DATABASE_URL, API_KEYS, WEB_CONCURRENCY ...); ``flags`` are gunicorn
    command-line overrides, which win over gunicorn.conf.py. Use as a context manager: started and healthy inside,
    stopped (SIGTERM, then SIGKILL) after.
    """

    def __init__(self, database_url: str, log_path: Path, env: dict | None = None, flags=(),
                 app: str = SERVICE_APP, port: int | None = None):
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path)
        self.environment = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
        self.environment.update(env or {}, DATABASE_URL=database_url, PORT=str(self.port))
        if self.environment.get("API_KEYS") and not self.environment.get("SESSION_SECRET"):
            self.environment["SESSION_SECRET"] = secrets.token_urlsafe(32)  # keys on need one; no caller shares it
        self.command = [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONF), "--bind",
                        f"127.0.0.1:{self.port}", *flags, app]
        self.process: subprocess.Popen | None = None

    def start(self) -> "GunicornProcess":
        """Start the master (returns at once; see ``wait_healthy``)."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.environment, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def log_tail(self, characters: int = 3000) -> str:
        """The end of the server's log, for failure messages."""
        return self.log_path.read_text(errors="replace")[-characters:] if self.log_path.exists() else ""

    def wait_healthy(self, timeout: float = 60) -> None:
        """Return once /health answers 200; ServerNotReady with the log if gunicorn exits or never gets there."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerNotReady(f"gunicorn exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                with urllib.request.urlopen(f"{self.base}/health", timeout=5) as response:
                    if response.status == 200:
                        return
            time.sleep(0.2)
        raise ServerNotReady(f"gunicorn not healthy after {timeout:.0f} s:\n{self.log_tail()}")

    def workers(self) -> list[int]:
        """Pids of the master's current children (its workers)."""
        pid = self.process.pid
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

    def terminate(self, wait_s: float = 30.0) -> float:
        """SIGTERM the master and return the seconds it took to exit (giving up after ``wait_s``)."""
        start = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=wait_s)
        return time.monotonic() - start

    def kill(self) -> None:
        """SIGKILL the whole process group if anything of it is still alive."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def __enter__(self) -> "GunicornProcess":
        self.start()
        try:
            self.wait_healthy()
        except BaseException:
            self.kill()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM the master if it runs, then SIGKILL whatever of its group is left."""
        if self.process is not None and self.process.poll() is None:
            self.terminate()
        self.kill()

    def __exit__(self, *exc) -> None:
        self.stop()
