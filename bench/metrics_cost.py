"""What /metrics costs: the per-request work of service.monitoring and one scrape, as gunicorn runs them.

    .venv/bin/python -m bench.metrics_cost [--requests N] [--workers W]

Runs in prometheus_client's multiprocess mode (a fresh PROMETHEUS_MULTIPROC_DIR, as gunicorn.conf.py makes), and
times, per request: the after_request hook's work (one request counter, one latency observation, the live-version
check) and a decision's count (and its shadow agreement); then the scrape of W workers' files. Each figure is the
median of 5 rounds of N calls, in µs; the machine's load average is printed beside it, as the CPU is shared.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def _rounds(function, calls: int, rounds: int = 5) -> float:
    """Median µs per call over ``rounds`` rounds of ``calls`` calls."""
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            function()
        timings.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(timings)


def _decision(should_search: bool, shadow: bool = False):
    from service.predictions import Decision

    return Decision("bench", {}, should_search, 0.5, "bench-model", None, shadow_version="bench-shadow" if shadow
                    else None, shadow_should_search=not should_search if shadow else None)


def _worker(calls: int) -> None:
    """In a child: count ``calls`` requests as a worker would, so the scrape has a worker's files to read."""
    from service.monitoring import Metrics

    metrics = Metrics(registry=None)
    metrics.model_loaded("bench-model")
    for number in range(calls):
        metrics.request_done("/should_search", "POST", 200 if number % 10 else 400, 0.002)
        metrics.decided(_decision(number % 3 == 0))
        metrics.publish_once_per_process()


def main(argv=None) -> int:
    """Time the hooks and a scrape; print one line per figure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--requests", type=int, default=20000, help="calls per round (default 20000)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes whose files a scrape reads")
    parser.add_argument("--as-worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.as_worker is not None:
        _worker(args.as_worker)
        return 0
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        with tempfile.TemporaryDirectory(prefix="bench-metrics-", dir="/dev/shm" if os.path.isdir("/dev/shm")
                                         else None) as directory:
            env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=directory)  # before prometheus_client is imported
            return subprocess.call([sys.executable, "-m", "bench.metrics_cost", *(argv or sys.argv[1:])], env=env)

    from service.monitoring import Metrics

    print(f"load average before: {os.getloadavg()[0]:.2f} (2 shared cores)", file=sys.stderr)
    metrics = Metrics(registry=None)
    metrics.model_loaded("bench-model")
    metrics.publish_once_per_process()
    request_us = _rounds(lambda: (metrics.publish_once_per_process(),
                                  metrics.request_done("/should_search", "POST", 200, 0.002)), args.requests)
    decision = _decision(True)
    decision_us = _rounds(lambda: metrics.decided(decision), args.requests)
    shadowed = _decision(True, shadow=True)
    shadow_us = _rounds(lambda: metrics.decided(shadowed), args.requests)
    for _ in range(args.workers - 1):
        subprocess.run([sys.executable, "-m", "bench.metrics_cost", "--as-worker", "1000"], check=True)
    text = metrics.exposition()
    scrape_ms = _rounds(metrics.exposition, 20) / 1000
    series = sum(1 for line in text.decode().splitlines() if line and not line.startswith("#"))
    print(f"per request, after_request hook (request counter + latency histogram + live-version check): "
          f"{request_us:.2f} us")
    print(f"per new decision (decision counter): {decision_us:.2f} us; with a shadow model (+ agreement counter): "
          f"{shadow_us:.2f} us")
    print(f"per request, both, as on /should_search: {request_us + decision_us:.2f} us")
    print(f"one scrape of {args.workers} workers' files: {scrape_ms:.2f} ms, {series} series, {len(text)} bytes")
    print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
