"""Hostile and heavy clients against a real gunicorn (issue 17): slow sockets, and a flood of reports.

  python -m bench.hostile slow --sockets 64 --mode headers     # slow sockets; /health and a decision probed
  python -m bench.hostile slow --worker-class sync             # the same against another worker class
  python -m bench.hostile reports --clients 64                 # 64 analysts' report loops; a decision's p99
  python -m bench.hostile cost                                 # workers' CPU per request, sync against buffering

Each run serves app:create_app() with gunicorn.conf.py (2 workers, Postgres throwaway database; flags override the
worker class) on loopback, prints one summary line per measure on stdout and its raw figures as JSON on the last line.
Progress goes to stderr. Loopback only; every loop is bounded by --seconds.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import selectors
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench.servers import (
    DEFAULT_POSTGRES_URL,
    MINIMAL_APP,
    ApiKey,
    GunicornSettings,
    dry_run_observations,
    gunicorn,
    log,
    throwaway_postgres,
)
from service.keys import new_key
from tests.gunicorn_process import SERVICE_APP, GunicornProcess

CANARY = "CANARYHOSTILE"  # in every slow request's query: it must never reach gunicorn's log


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class Probe:
    """One client asking the same thing in a loop; keeps every latency and every failure."""

    name: str
    send: object  # callable() -> requests.Response
    pause: float = 0.1
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def run(self, stop: threading.Event) -> None:
        """Ask until ``stop``; a request slower than 10 s counts as a failure."""
        while not stop.is_set():
            began = time.monotonic()
            try:
                response = self.send()
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code}")
            except requests.RequestException as error:
                self.failures.append(type(error).__name__)
            self.latencies.append(time.monotonic() - began)
            stop.wait(self.pause)

    def summary(self) -> dict:
        """Count, p50, p99 and max latency in ms, and the failures."""
        ms = [x * 1000 for x in self.latencies]
        return {"name": self.name, "requests": len(ms), "p50_ms": round(_percentile(ms, 0.5), 1),
                "p99_ms": round(_percentile(ms, 0.99), 1), "max_ms": round(max(ms, default=float("nan")), 1),
                "failures": len(self.failures), "failure_kinds": sorted(set(self.failures))}


class SlowSockets:
    """``count`` sockets that never finish their request: headers or a body trickled one byte every ``every`` s."""

    def __init__(self, port: int, count: int, mode: str, officer: str, every: float = 2.0, reconnect: bool = False):
        self.port, self.count, self.mode, self.officer = port, count, mode, officer
        self.every, self.reconnect = every, reconnect
        self.selector = selectors.DefaultSelector()
        self.held: list[float] = []  # seconds each socket was held open before the server cut it
        self.answers: dict[str, int] = {}  # first response line (or 'closed') -> count
        self.open_at_end = 0

    def _head(self) -> bytes:
        if self.mode == "headers":
            return f"POST /should_search?department={CANARY} HTTP/1.1\r\nHost: x\r\nX-Slow: ".encode()
        return (f"POST /should_search?department={CANARY} HTTP/1.1\r\nHost: x\r\nAuthorization: {self.officer}\r\n"
                "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n" + '{"observation_id": ').encode()

    def _open(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.sendall(self._head())
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ, time.monotonic())

    def run(self, stop: threading.Event) -> None:
        """Open the sockets, trickle until ``stop``, and record when and how the server ends each."""
        for _ in range(self.count):
            self._open()
        next_byte = time.monotonic() + self.every
        while not stop.is_set():
            for key, _ in self.selector.select(timeout=0.05):
                self._closed_by_server(key)
            if time.monotonic() >= next_byte:
                next_byte += self.every
                for key in list(self.selector.get_map().values()):
                    try:
                        key.fileobj.send(b"a")
                    except OSError:
                        self._closed_by_server(key)
        self.open_at_end = len(self.selector.get_map())
        for key in list(self.selector.get_map().values()):
            self.selector.unregister(key.fileobj)
            key.fileobj.close()

    def _closed_by_server(self, key) -> None:
        try:
            data = key.fileobj.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        first = data.split(b"\r\n", 1)[0].decode("latin-1") if data else "closed without an answer"
        self.answers[first] = self.answers.get(first, 0) + 1
        self.held.append(time.monotonic() - key.data)
        self.selector.unregister(key.fileobj)
        key.fileobj.close()
        if self.reconnect:
            self._open()

    def summary(self) -> dict:
        """How many were cut, after how long, with what answer, and how many were still open at the end."""
        return {"sockets": self.count, "mode": self.mode, "cut": len(self.held),
                "held_median_s": round(statistics.median(self.held), 2) if self.held else None,
                "held_max_s": round(max(self.held), 2) if self.held else None,
                "answers": self.answers, "open_at_end": self.open_at_end}


def _keys() -> tuple[ApiKey, str, str]:
    officer, officer_entry = new_key("officer", key_id="bench-officer")
    analyst, analyst_entry = new_key("analyst", key_id="bench-analyst")
    return (ApiKey(entry=f"{officer_entry},{analyst_entry}", header=f"Bearer {officer}"), f"Bearer {officer}",
            f"Bearer {analyst}")


def _decision_probe(base: str, officer: str, observations: list[str], prefix: str) -> Probe:
    counter = iter(range(10**9))
    headers = {"Authorization": officer, "Content-Type": "application/json"}

    def send():
        n = next(counter)
        body = f'{{"observation_id":"{prefix}-{n}","observation":{observations[n % len(observations)]}}}'
        return requests.post(f"{base}/should_search", data=body, headers=headers, timeout=10)
    return Probe("should_search", send)


def _run(probes: list[Probe], seconds: float, extra=None) -> None:
    stop = threading.Event()
    targets = [p.run for p in probes] + ([extra.run] if extra else [])
    threads = [threading.Thread(target=t, args=(stop,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)


def slow(args) -> dict:
    """Slow sockets held open while /health and /should_search are probed."""
    key, officer, _ = _keys()
    observations = dry_run_observations()
    settings = GunicornSettings(worker_class=args.worker_class, threads=args.threads)
    with throwaway_postgres(DEFAULT_POSTGRES_URL) as url, tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "gunicorn.log"
        with gunicorn(SERVICE_APP, url, settings, log_path, key) as port:
            base = f"http://127.0.0.1:{port}"
            attack = SlowSockets(port, args.sockets, args.mode, officer, reconnect=args.reconnect)
            probes = [Probe("health", lambda: requests.get(f"{base}/health", timeout=10)),
                      _decision_probe(base, officer, observations, "slow")]
            log(f"{settings.label()}: {args.sockets} slow sockets ({args.mode}) for {args.seconds:.0f} s")
            _run(probes, args.seconds, attack)
        server_log = log_path.read_text()
    result = {"settings": settings.label(), "attack": attack.summary(),
              "probes": [p.summary() for p in probes], "canary_in_log": CANARY in server_log}
    print(f"{result['settings']}: attack {json.dumps(result['attack'])}")
    for probe in result["probes"]:
        print(f"  {probe['name']}: {probe['requests']} requests, p50 {probe['p50_ms']} ms, p99 {probe['p99_ms']} ms, "
              f"max {probe['max_ms']} ms, {probe['failures']} failed {probe['failure_kinds']}")
    print(f"  canary in gunicorn's log: {result['canary_in_log']}")
    return result


def _report_flood(port: int, analyst: str, clients: int, seconds: float, counts) -> None:
    """``clients`` sockets each asking GET /report again as soon as its answer ends (Retry-After ignored).

    Run in its own process, on raw non-blocking sockets: 64 client threads in the measuring process would make
    the decisions' latencies those of the GIL.
    """
    request = f"GET /report HTTP/1.1\r\nHost: x\r\nAuthorization: {analyst}\r\nConnection: close\r\n\r\n".encode()
    selector = selectors.DefaultSelector()

    def ask():
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        selector.register(sock, selectors.EVENT_WRITE, [b"", False])

    for _ in range(clients):
        ask()
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        for key, _ in selector.select(timeout=0.1):
            sock, state = key.fileobj, key.data
            if not state[1]:  # connected: send the request once
                try:
                    sock.send(request)
                except OSError:
                    pass
                state[1] = True
                selector.modify(sock, selectors.EVENT_READ, state)
                continue
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if data:
                state[0] = state[0] or data[:12]
                continue
            status = state[0][9:12].decode("latin-1") or "closed"
            counts[status] = counts.get(status, 0) + 1
            selector.unregister(sock)
            sock.close()
            ask()


def reports(args) -> dict:
    """``--clients`` analysts asking for /report back to back while an officer's decisions are timed."""
    key, officer, analyst = _keys()
    observations = dry_run_observations()
    settings = GunicornSettings(worker_class=args.worker_class, threads=args.threads)
    with throwaway_postgres(DEFAULT_POSTGRES_URL) as url, tempfile.TemporaryDirectory() as tmp:
        with gunicorn(SERVICE_APP, url, settings, Path(tmp) / "gunicorn.log", key) as port:
            base = f"http://127.0.0.1:{port}"
            log(f"seeding {args.seed} decisions and outcomes")
            for n in range(args.seed):
                body = f'{{"observation_id":"seed-{n}","observation":{observations[n % len(observations)]}}}'
                requests.post(f"{base}/should_search", data=body, timeout=10,
                              headers={"Authorization": officer, "Content-Type": "application/json"})
                requests.post(f"{base}/search_result", timeout=10, headers={"Authorization": analyst},
                              json={"observation_id": f"seed-{n}", "contraband_found": n % 3 == 0})
            with multiprocessing.Manager() as manager:
                statuses = manager.dict()
                flood = multiprocessing.Process(target=_report_flood,
                                                args=(port, analyst, args.clients, args.seconds, statuses))
                decisions = _decision_probe(base, officer, observations, "flood")
                decisions.pause = 0.05
                log(f"{settings.label()}: {args.clients} report clients for {args.seconds:.0f} s")
                flood.start()
                _run([decisions], args.seconds)
                flood.join(timeout=60)
                statuses = dict(statuses)
    result = {"settings": settings.label(), "report_statuses": statuses,
              "decisions": decisions.summary()}
    d = result["decisions"]
    print(f"{result['settings']}: reports answered {result['report_statuses']}")
    print(f"  should_search: {d['requests']} requests, p50 {d['p50_ms']} ms, p99 {d['p99_ms']} ms, "
          f"max {d['max_ms']} ms, {d['failures']} failed {d['failure_kinds']}")
    return result


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes."""
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def cost(args) -> dict:
    """Workers' CPU per request (user + system), which a loaded machine changes much less than req/s."""
    key, officer, _ = _keys()
    observations = dry_run_observations()
    rows = []
    for worker_class in args.classes.split(","):
        settings = GunicornSettings(worker_class=worker_class)
        for app in (MINIMAL_APP, SERVICE_APP):
            with throwaway_postgres(DEFAULT_POSTGRES_URL) as url, tempfile.TemporaryDirectory() as tmp:
                with GunicornProcess(url, Path(tmp) / "gunicorn.log", env={"API_KEYS": key.entry},
                                     flags=settings.flags(), app=app) as server:
                    workers = server.workers()
                    probe = _decision_probe(server.base, officer, observations, "cost")
                    probe.pause = 0.0
                    before = _cpu_s(workers)
                    _run([probe], args.seconds)
                    spent = _cpu_s(workers) - before
            rows.append({"settings": settings.label(), "app": "minimal" if app == MINIMAL_APP else "service",
                         "requests": len(probe.latencies), "failures": len(probe.failures),
                         "worker_cpu_us_per_request": round(spent / max(1, len(probe.latencies)) * 1e6)})
            print(f"{rows[-1]['settings']:<45} {rows[-1]['app']:<8} {rows[-1]['requests']:>6} requests, "
                  f"{rows[-1]['worker_cpu_us_per_request']:>6} us of worker CPU each")
    return {"rows": rows}


def main(argv=None) -> int:
    """Parse the command line and run one measure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker-class", help="override gunicorn.conf.py's worker class (e.g. sync, gthread)")
    parser.add_argument("--threads", type=int, help="threads per worker (gthread)")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the attack lasts (default 20)")
    commands = parser.add_subparsers(dest="command", required=True)
    slow_parser = commands.add_parser("slow", help="slow sockets against /health and /should_search")
    slow_parser.add_argument("--sockets", type=int, default=64)
    slow_parser.add_argument("--mode", choices=("headers", "body"), default="headers")
    slow_parser.add_argument("--reconnect", action="store_true", help="reopen every socket the server cuts")
    report_parser = commands.add_parser("reports", help="a flood of /report against an officer's decisions")
    report_parser.add_argument("--clients", type=int, default=64)
    report_parser.add_argument("--seed", type=int, default=300, help="decisions and outcomes stored first")
    cost_parser = commands.add_parser("cost", help="workers' CPU per request, one client, minimal app and service")
    cost_parser.add_argument("--classes", default="sync,service.gunicorn_worker.BufferingWorker",
                             help="comma-separated worker classes")
    args = parser.parse_args(argv)
    result = {"slow": slow, "reports": reports, "cost": cost}[args.command](args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
