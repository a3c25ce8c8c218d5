"""Hostile and heavy clients against a real gunicorn (gunicorn.conf.py, 2 workers; issue 17).

Slow sockets trickling their headers or body must cost almost nothing: /health and /should_search answer within
1 s while 64 are open, and each is cut with a JSON 408 a few seconds after it connected, logged without its URI.
A flood of reports must not starve decisions. What gunicorn refuses before Flask answers the JSON error shape, and
its log holds no URI, also when a worker is killed for its timeout mid-request.
"""
from __future__ import annotations

import contextlib
import json
import selectors
import socket
import sqlite3
import threading
import time
from urllib.parse import urlsplit

import psycopg2
import pytest
import requests

from service.gunicorn_worker import READ_TIMEOUT_S

pytestmark = pytest.mark.slow
CANARY = "ZQX-HOSTILE-CANARY"
SLOW_SOCKETS = 64
LIMIT = 8192  # live_server's MAX_CONTENT_LENGTH


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port


def _raw(url: str, data: bytes, timeout: float = 10) -> tuple[int, bytes, bytes]:
    """Send raw bytes, read the answer to its end: (status, head, body)."""
    with socket.create_connection(_address(url), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body


def _json_error(head: bytes, body: bytes, status: int) -> dict:
    assert b"content-type: application/json" in head.lower(), head
    payload = json.loads(body)
    assert set(payload) == {"status", "error", "message", "fields"} and payload["status"] == status, payload
    return payload


def _server_log(tmp_path) -> str:
    return (tmp_path / "gunicorn.log").read_text()


class SlowSockets:
    """Sockets that never finish their request, trickling one byte a second, and what the server did with each."""

    def __init__(self, url: str, mode: str, officer: str):
        self.selector = selectors.DefaultSelector()
        self.answers: list[tuple[float, bytes]] = []  # (seconds open, what the server sent before closing)
        if mode == "headers":
            head = f"POST /should_search?department={CANARY} HTTP/1.1\r\nHost: x\r\nX-Slow: "
        else:
            head = (f"POST /should_search?department={CANARY} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {officer}"
                    "\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"observation_id\": ")
        for _ in range(SLOW_SOCKETS):
            sock = socket.create_connection(_address(url), timeout=5)
            sock.sendall(head.encode())
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ, [time.monotonic(), b""])

    def trickle(self, seconds: float) -> None:
        """Send one byte a second on every open socket for ``seconds``, reading what the server answers."""
        stop, next_byte = time.monotonic() + seconds, 0.0
        while self.selector.get_map() and time.monotonic() < stop:
            for key, _ in self.selector.select(timeout=0.05):
                self._read(key)
            if time.monotonic() >= next_byte:
                next_byte = time.monotonic() + 1
                for key in list(self.selector.get_map().values()):
                    with contextlib.suppress(OSError):
                        key.fileobj.send(b"a")

    def _read(self, key) -> None:
        try:
            data = key.fileobj.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            key.data[1] += data
            return
        self.answers.append((time.monotonic() - key.data[0], key.data[1]))
        self.selector.unregister(key.fileobj)
        key.fileobj.close()

    def close(self) -> int:
        """Close what is still open; returns how many were."""
        still_open = list(self.selector.get_map().values())
        for key in still_open:
            self.selector.unregister(key.fileobj)
            key.fileobj.close()
        return len(still_open)


def _probe(url: str, officer: str, observation: dict, stop: threading.Event, latencies: list, failures: list):
    n = 0
    while not stop.is_set():
        for method, path, kwargs in (
                ("GET", "/health", {}),
                ("POST", "/should_search", {"headers": {"Authorization": f"Bearer {officer}"},
                                            "json": {"observation_id": f"probe-{n}", "observation": observation}})):
            began = time.monotonic()
            try:
                status = requests.request(method, url + path, timeout=10, **kwargs).status_code
            except requests.RequestException as error:
                status = type(error).__name__
            latencies.append((path, time.monotonic() - began))
            if status != 200:
                failures.append((path, status))
        n += 1
        stop.wait(0.1)


@pytest.mark.parametrize("mode", ["headers", "body"])
def test_slow_sockets_cost_almost_nothing(live_server, tmp_path, api_keys, observation, mode):
    """64 sockets trickling headers (no key) or a body (an officer's key): /health and /should_search within 1 s
    throughout; every slow socket is answered a JSON 408 and closed within a few seconds; no URI in the log."""
    attack = SlowSockets(live_server, mode, api_keys["officer"])
    stop, latencies, failures = threading.Event(), [], []
    prober = threading.Thread(target=_probe, args=(live_server, api_keys["officer"], observation, stop, latencies,
                                                   failures))
    prober.start()
    try:
        attack.trickle(READ_TIMEOUT_S + 4)
    finally:
        stop.set()
        prober.join(timeout=30)
        still_open = attack.close()
    slowest = {path: max(seconds for p, seconds in latencies if p == path) for path in ("/health", "/should_search")}
    held = sorted(seconds for seconds, _ in attack.answers)
    print(f"\n{mode}: {len(held)} slow sockets cut after {held[0]:.2f}-{held[-1]:.2f} s, {still_open} left open; "
          f"slowest answers during the attack: {slowest}, {len(latencies)} probes")
    assert failures == [] and len(latencies) >= 20
    assert all(seconds < 1.0 for seconds in slowest.values()), slowest
    assert still_open == 0 and len(held) == SLOW_SOCKETS
    assert READ_TIMEOUT_S - 0.5 < held[0] and held[-1] < READ_TIMEOUT_S + 3
    for _, answer in attack.answers:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 ")
        assert _json_error(head, body, 408)["error"] == "request_timeout"
    log = _server_log(tmp_path)
    assert "408: closed" in log and CANARY.lower() not in log.lower()


def _seed(url: str, api_keys: dict, observations: list[dict], count: int) -> None:
    for n in range(count):
        requests.post(f"{url}/should_search", headers={"Authorization": f"Bearer {api_keys['officer']}"}, timeout=10,
                      json={"observation_id": f"seed-{n}", "observation": observations[n % len(observations)]})
        requests.post(f"{url}/search_result", headers={"Authorization": f"Bearer {api_keys['analyst']}"}, timeout=10,
                      json={"observation_id": f"seed-{n}", "contraband_found": n % 3 == 0})


def _report_flood(url: str, analyst: str, clients: int, stop: threading.Event, statuses: dict) -> None:
    """``clients`` connections asking GET /report again as soon as each answer ends (ignoring Retry-After)."""
    request = f"GET /report HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {analyst}\r\n\r\n".encode()
    selector = selectors.DefaultSelector()

    def ask():
        sock = socket.create_connection(_address(url), timeout=5)
        sock.sendall(request)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, [b""])

    for _ in range(clients):
        ask()
    while not stop.is_set():
        for key, _ in selector.select(timeout=0.05):
            try:
                data = key.fileobj.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                key.data[0] = key.data[0] or data[:12]
                continue
            status = key.data[0][9:12].decode() or "closed"
            statuses[status] = statuses.get(status, 0) + 1
            selector.unregister(key.fileobj)
            key.fileobj.close()
            ask()
    for key in list(selector.get_map().values()):
        key.fileobj.close()


def _decisions(url: str, officer: str, observation: dict, prefix: str, count: int) -> tuple[list[float], list]:
    latencies, failures = [], []
    for n in range(count):
        began = time.monotonic()
        try:
            status = requests.post(f"{url}/should_search", headers={"Authorization": f"Bearer {officer}"},
                                   json={"observation_id": f"{prefix}-{n}", "observation": observation},
                                   timeout=10).status_code
        except requests.RequestException as error:
            status = type(error).__name__
        latencies.append(time.monotonic() - began)
        if status != 200:
            failures.append(status)
        time.sleep(0.02)
    return latencies, failures


def _p99(latencies: list[float]) -> float:
    return sorted(latencies)[int(0.99 * (len(latencies) - 1))]


def test_a_report_flood_does_not_starve_decisions(live_server, api_keys, observation):
    """64 connections asking for reports back to back: no decision fails, and their p99 stays under 100 ms (or, on
    a machine too loaded for that even when quiet, under 3 times the quiet p99 measured just before)."""
    _seed(live_server, api_keys, [observation], 60)
    quiet, quiet_failures = _decisions(live_server, api_keys["officer"], observation, "quiet", 60)
    stop, statuses = threading.Event(), {}
    flood = threading.Thread(target=_report_flood, args=(live_server, api_keys["analyst"], 64, stop, statuses))
    flood.start()
    try:
        time.sleep(1)  # the flood under way: every report client has a request in
        loaded, failures = _decisions(live_server, api_keys["officer"], observation, "flood", 150)
    finally:
        stop.set()
        flood.join(timeout=30)
    print(f"\ndecision p99: {_p99(quiet) * 1000:.0f} ms quiet, {_p99(loaded) * 1000:.0f} ms under 64 report "
          f"clients; reports answered {statuses}")
    assert quiet_failures == [] and failures == []
    assert _p99(loaded) < max(0.1, 3 * _p99(quiet))
    assert statuses.get("200", 0) >= 1 and set(statuses) <= {"200", "503"}, statuses


def test_pre_flask_refusals_answer_the_json_shape(live_server, tmp_path, api_keys, observation):
    """gunicorn's own refusals (400, 414, 431) and the body edges through the real server; no canary in the log."""
    url, key = live_server, f"Bearer {api_keys['officer']}"
    cases = [
        (f"GET /report?department={CANARY}{'a' * 5000} HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
        ("GET /health HTTP/1.1\r\nHost: x\r\n" + "".join(f"X-{CANARY}-{n}: 1\r\n" for n in range(120)) + "\r\n",
         431, "request_header_fields_too_large"),
        (f"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {CANARY}{'a' * 70000}\r\n\r\n", 431,
         "request_header_fields_too_large"),
        (f"GET /health?{CANARY}\r\nHost: x\r\n\r\n", 400, "bad_request"),  # no HTTP version
        (f"GET /health?{CANARY} HTTP/9.9\r\nHost: x\r\n\r\n", 400, "bad_request"),
        (f"GET /health?{CANARY} HTTP/1.1\r\nHost: x\r\nBad Header {CANARY}: 1\r\n\r\n", 400, "bad_request"),
        (f"POST /should_search?{CANARY} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400,
         "bad_request"),
    ]
    for request, status, code in cases:
        got, head, body = _raw(url, request.encode())
        assert got == status, (request[:60], head)
        assert _json_error(head, body, status)["error"] == code

    body = json.dumps({"observation_id": "exact", "observation": observation}).encode()
    exact = body + b" " * (LIMIT - len(body))
    headers = {"Authorization": key, "Content-Type": "application/json"}
    assert requests.post(f"{url}/should_search", data=exact, headers=headers, timeout=10).status_code == 200
    chunked = requests.post(f"{url}/should_search", data=iter([exact.replace(b"exact", b"chunk")]), headers=headers,
                            timeout=10)  # a generator: sent chunked, without Content-Length
    assert chunked.status_code == 200, chunked.text
    too_big = requests.post(f"{url}/should_search", data=exact + b" ", headers=headers, timeout=10)
    assert too_big.status_code == 413 and too_big.json()["error"] == "request_entity_too_large"
    coded = requests.post(f"{url}/should_search", data=body, timeout=10,
                          headers={**headers, "Content-Encoding": "gzip"})
    assert coded.status_code == 415 and coded.json()["error"] == "unsupported_content_encoding"
    time.sleep(0.5)  # the workers write their log lines as they go
    assert CANARY.lower() not in _server_log(tmp_path).lower()


@pytest.fixture
def short_worker_timeout(monkeypatch):
    """gunicorn's timeout at 1 s for the next gunicorn (command-line flags win over gunicorn.conf.py)."""
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "--timeout 1")


@contextlib.contextmanager
def _write_lock(database_url: str):
    """Hold the prediction table's write lock, so an insert waits (2 s in Postgres, 3 s in SQLite)."""
    if database_url.startswith("sqlite"):
        connection = sqlite3.connect(database_url.split("sqlite:///", 1)[1], isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
    else:
        connection = psycopg2.connect(database_url)
        connection.cursor().execute("LOCK TABLE prediction IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        connection.rollback()
        connection.close()


def test_a_worker_timeout_leaves_no_uri_in_the_log(short_worker_timeout, migrated_database_url, live_server,
                                                   tmp_path, api_keys, observation):
    """A request stalled past gunicorn's timeout (a held lock; timeout 1 s): WORKER TIMEOUT is logged, the query's
    canary is not. (A worker stuck in the database driver is killed before Python runs again: no answer at all.)
    A body trickled for longer than the timeout (the sync worker's leak: it was killed inside recv() and logged the
    request line) never reaches a worker now."""
    headers = {"Authorization": f"Bearer {api_keys['officer']}"}
    slow_body = SlowSockets(live_server, "body", api_keys["officer"])
    slow_body.trickle(2.5)
    slow_body.close()
    with _write_lock(migrated_database_url):
        for attempt in range(4):  # the database's own lock limit may answer first (503): stall again
            with contextlib.suppress(requests.RequestException):
                requests.post(f"{live_server}/should_search?department={CANARY}", headers=headers, timeout=10,
                              json={"observation_id": f"{CANARY}-{attempt}", "observation": observation})
            if "WORKER TIMEOUT" in _server_log(tmp_path):
                break
    log = _server_log(tmp_path)
    assert "WORKER TIMEOUT" in log
    assert CANARY.lower() not in log.lower()
    assert requests.get(f"{live_server}/health", timeout=10).status_code == 200  # a new worker serves
