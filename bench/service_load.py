"""Load generators for bench/speed.py: wrk (if installed) or a multi-process keep-alive Python client."""
from __future__ import annotations

import http.client
import json
import multiprocessing
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

WRK_SCRIPT = Path(__file__).resolve().parent / "service_wrk.lua"


@dataclass
class LoadResult:
    """What one timed run measured; ok_ids are the observation ids answered 200."""

    client: str
    responses: int
    seconds: float
    p50_ms: float
    p99_ms: float
    other_statuses: int
    socket_errors: int
    ok_ids: list[str] = field(default_factory=list)
    # CPU seconds the server's gunicorn workers used during the run, per response (µs): the cost of a request that
    # the machine's other load changes far less than req/s (it is what a cut must lower; issue 15).
    worker_cpu_us: float | None = None

    @property
    def rps(self) -> float:
        """Completed responses per second."""
        return self.responses / self.seconds if self.seconds else 0.0


def run_wrk(port: int, observations: list[str], seconds: float, connections: int, prefix: str,
            work_dir: Path, headers: dict[str, str] | None = None) -> LoadResult:
    """Drive POST /should_search with wrk for `seconds`; the Lua script makes every observation id unique."""
    pool = work_dir / f"{prefix}-observations.jsonl"
    pool.write_text("\n".join(observations) + "\n")
    out = work_dir / prefix
    out.mkdir()
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
               "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{port}/should_search", "--", str(pool), str(out), prefix,
               *(f"{name}: {value}" for name, value in (headers or {}).items())]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True)
    line = next((ln for ln in finished.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{finished.stdout}\n{finished.stderr}")
    summary = json.loads(line.removeprefix("BENCH_JSON "))
    ok_ids = [i for f in sorted(out.glob("ok-*.txt")) for i in f.read_text().split()]
    return LoadResult("wrk", summary["responses"], summary["seconds"], summary["p50_ms"], summary["p99_ms"],
                      summary["other"], summary["socket_errors"], ok_ids)


def _client_process(args) -> tuple[list[float], list[str], int, int]:
    """One client: sequential keep-alive requests until the deadline; (latencies ms, ok ids, non-200s, errors)."""
    port, observations, start_at, deadline, prefix, extra_headers = args
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies, ok_ids, other, errors, n = [], [], 0, 0, 0
    headers = {"Content-Type": "application/json", **extra_headers}
    time.sleep(max(0.0, start_at - time.time()))
    # Stop issuing at the deadline but let the request in flight finish, so every committed row has an answer.
    while time.time() < deadline:
        observation_id = f"{prefix}-{n}"
        body = '{"observation_id":"%s","observation":%s}' % (observation_id, observations[n % len(observations)])
        n += 1
        began = time.perf_counter()
        try:
            connection.request("POST", "/should_search", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            errors += 1
            connection.close()
            continue
        latencies.append((time.perf_counter() - began) * 1e3)
        if response.status == 200:
            ok_ids.append(observation_id)
        else:
            other += 1
    connection.close()
    return latencies, ok_ids, other, errors


def run_python(port: int, observations: list[str], seconds: float, connections: int, prefix: str,
               headers: dict[str, str] | None = None) -> LoadResult:
    """Drive POST /should_search from `connections` processes (no GIL contention) for `seconds`."""
    start_at = time.time() + 1.0  # every process is up before the clock starts
    jobs = [(port, observations, start_at, start_at + seconds, f"{prefix}-{i}", headers or {})
            for i in range(connections)]
    with multiprocessing.get_context("spawn").Pool(connections) as pool:
        results = pool.map(_client_process, jobs)
        elapsed = max(time.time() - start_at, 1e-9)
    latencies = np.array([x for r in results for x in r[0]]) if any(r[0] for r in results) else np.zeros(1)
    ok_ids = [i for r in results for i in r[1]]
    return LoadResult("python", sum(len(r[0]) for r in results), elapsed,
                      float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99)),
                      sum(r[2] for r in results), sum(r[3] for r in results), ok_ids)
