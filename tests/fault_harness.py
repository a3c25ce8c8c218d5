"""Machinery of the fault test: client threads that record every (id, status), and a gunicorn process whose
workers can be listed and killed. The fault schedule and the checks live in test_fault_load.py."""
from __future__ import annotations

import contextlib
import itertools
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.gunicorn_process import GunicornProcess

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 3


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


def gunicorn(database_url: str, auth_env: dict, log_path: Path) -> GunicornProcess:
    """gunicorn.conf.py with 2 workers on a free port, started (not yet healthy), in its own process group."""
    return GunicornProcess(database_url, log_path, env={**auth_env, "WEB_CONCURRENCY": "2"}).start()
