"""Machinery of the fault test: client threads that record every (id, status), and a gunicorn process whose
workers can be listed and killed. The fault schedule and the checks live in test_fault_load.py."""
from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.pg_cluster import free_port

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 3
EXIT_WAIT_S = 30.0  # how long terminate() waits for the master before giving up (the test's bound is lower)


@dataclass
class Call:
    """One client request and what came back (status None: the connection failed)."""

    observation_id: str
    observation: int  # index into the dry-run observations, so a retry resends the same one
    sent: float
    answered: float
    status: int | None = None
    retry_after: str | None = None
    body: dict | None = None
    error: str = ""


def post(base: str, headers: dict, observation_id: str, observations: list, index: int) -> Call:
    """POST one dry-run observation to /should_search under ``observation_id``; never raises, records the outcome."""
    sent = time.monotonic()
    try:
        response = requests.post(f"{base}/should_search", headers=headers, timeout=15,
                                 json={"observation_id": observation_id, "observation": observations[index]})
    except requests.RequestException as error:
        return Call(observation_id, index, sent, time.monotonic(), error=f"{type(error).__name__}: {error}"[:300])
    body = None
    with contextlib.suppress(ValueError):
        body = response.json()
    return Call(observation_id, index, sent, time.monotonic(), response.status_code,
                response.headers.get("Retry-After"), body)


class Load:
    """CLIENTS threads posting unique observation ids back to back until stopped; every call is kept."""

    def __init__(self, base: str, headers: dict, observations: list):
        self.base, self.headers, self.observations = base, headers, observations
        self.calls: list[Call] = []
        self.stopping, self.running = threading.Event(), threading.Event()
        self.running.set()
        self.busy = threading.Semaphore(CLIENTS)  # a client holds one while its request is in flight
        self.threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(CLIENTS)]

    def _client(self, n: int) -> None:
        for i in itertools.count():
            self.running.wait()
            if self.stopping.is_set():
                return
            with self.busy:
                if not self.running.is_set():
                    continue  # paused between the check above and here: wait again
                call = post(self.base, self.headers, f"load-{n}-{i}", self.observations,
                             (n * 97 + i) % len(self.observations))
            self.calls.append(call)  # list.append is atomic under the GIL
            if "refused" in call.error.lower():
                return  # only a closed listener refuses (the master is shutting down): nothing more to learn
            if call.status != 200:
                time.sleep(0.05)  # a failing server is not hammered, but recovery is still seen within 50 ms

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.running.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def pause(self) -> None:
        """Hold every client before its next request and return once none is in flight."""
        self.running.clear()
        for _ in range(CLIENTS):
            self.busy.acquire(timeout=30)
        for _ in range(CLIENTS):
            self.busy.release()

    def resume(self) -> None:
        """Let the clients go on."""
        self.running.set()

    def first_200_after(self, moment: float, timeout: float) -> float | None:
        """Seconds from ``moment`` to the first 200 answered after it, waiting up to ``timeout``; None if none."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answered = [c.answered for c in list(self.calls) if c.status == 200 and c.answered > moment]
            if answered:
                return min(answered) - moment
            time.sleep(0.02)
        return None


class Gunicorn:
    """gunicorn.conf.py with 2 workers on a free port, in its own session so teardown can kill the whole group."""

    def __init__(self, database_url: str, auth_env: dict, log_path: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if k not in ("DYNO", "API_KEYS", "API_AUTH_DISABLED")}
        env.update(auth_env, DATABASE_URL=database_url, PORT=str(self.port), WEB_CONCURRENCY="2")
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "gunicorn"), "--config", "gunicorn.conf.py", "--bind",
                 f"127.0.0.1:{self.port}", "app:create_app()"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_healthy(self, timeout: float = 60) -> None:
        """Return once /health answers 200; fail with the log if gunicorn exits or never gets there."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"gunicorn exited early:\n{self.log_path.read_text()[-3000:]}"
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.base}/health", timeout=5).status_code == 200:
                    return
            time.sleep(0.2)
        pytest.fail(f"gunicorn never became healthy:\n{self.log_path.read_text()[-3000:]}")

    def workers(self) -> list[int]:
        """Pids of the master's current children (its workers)."""
        pid = self.process.pid
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

    def terminate(self) -> float:
        """SIGTERM the master and return the seconds it took to exit (giving up after EXIT_WAIT_S)."""
        start = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=EXIT_WAIT_S)
        return time.monotonic() - start

    def kill(self) -> None:
        """SIGKILL the whole process group if anything of it is still alive."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
