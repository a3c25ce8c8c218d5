"""Benchmark: /should_search under load on Postgres, against a minimal Flask endpoint on the same gunicorn settings.

Run: .venv/bin/python -m bench.service --seconds 20   (needs Postgres; creates and drops a throwaway database)
Prints requests/s and p50/p99 latency for both, their ratio, and checks that every 200 left exactly one row.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg2

from bench.servers import (
    DEFAULT_POSTGRES_URL,
    MINIMAL_APP,
    GunicornSettings,
    check_rows,
    dry_run_observations,
    gunicorn,
    log,
    officer_key,
    throwaway_postgres,
)
from bench.service_load import LoadResult, run_python, run_wrk
from tests.gunicorn_process import SERVICE_APP


def drive(port: int, args, observations: list[str], prefix: str, work_dir: Path,
          headers: dict[str, str] | None = None) -> LoadResult:
    """One timed load run with the chosen client (args.client, args.seconds, args.connections)."""
    if args.client == "wrk":
        return run_wrk(port, observations, args.seconds, args.connections, prefix, work_dir, headers)
    return run_python(port, observations, args.seconds, args.connections, prefix, headers)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.service", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20, help="load duration per app, 1-300 (default 20)")
    parser.add_argument("--connections", type=int, default=4, help="concurrent client connections, 1-64 (default 4)")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: gunicorn.conf.py's)")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto",
                        help="load generator: wrk if installed (apt-get install wrk), else a Python client")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL,
                        help="a Postgres database to connect to in order to create the throwaway one "
                             "(default: $TEST_POSTGRES_URL or postgresql://postgres@127.0.0.1:5432/test)")
    parser.add_argument("--keep-database", action="store_true", help="do not drop the throwaway database")
    return parser


def _validate(args, parser) -> None:
    if not 1 <= args.seconds <= 300 or not 1 <= args.connections <= 64 or not 1 <= (args.workers or 1) <= 16:
        parser.error("keep --seconds in 1-300, --connections in 1-64, --workers in 1-16")
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "python"
    elif args.client == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed: apt-get install -y wrk, or use --client python")


def _row(name: str, r: LoadResult) -> str:
    return f"{name:<28}{r.rps:>10.1f}{r.p50_ms:>10.2f}{r.p99_ms:>10.2f}{r.responses:>10}{r.other_statuses:>8}" \
           f"{r.socket_errors:>8}"


def main(argv: list[str] | None = None) -> int:
    """Run both measurements, print the comparison and the row check; exit 1 if the row check fails."""
    parser = _parser()
    args = parser.parse_args(argv)
    _validate(args, parser)
    observations = dry_run_observations()
    settings = GunicornSettings(workers=args.workers)
    api_key = officer_key()
    headers = {"Authorization": api_key.header} if api_key else {}
    run_id = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        work_dir = Path(tmp)
        log_path = work_dir / "gunicorn.log"
        try:
            with throwaway_postgres(args.postgres_url, args.keep_database) as url:
                log(f"minimal Flask app: {args.seconds:g} s, {args.connections} connections, {args.client} ...")
                with gunicorn(MINIMAL_APP, url, settings, log_path, api_key) as port:
                    minimal = drive(port, args, observations, f"min{run_id}", work_dir, headers)
                log(f"/should_search on Postgres: {args.seconds:g} s ...")
                with gunicorn(SERVICE_APP, url, settings, log_path, api_key) as port:
                    service = drive(port, args, observations, f"svc{run_id}", work_dir, headers)
                rows_ok, rows_text = check_rows(url, service.ok_ids, args.connections)
        except (RuntimeError, psycopg2.Error, subprocess.SubprocessError) as error:
            print(f"error: {error}\nIs Postgres reachable at --postgres-url?", file=sys.stderr)
            return 2
    print(f"gunicorn.conf.py as {settings.label()}, {args.connections} connections, {args.seconds:g} s each, "
          f"client {args.client}, {os.cpu_count()} CPUs, API key {'sent' if api_key else 'none (no auth yet)'}")
    print(f"{'':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'answers':>10}{'non-200':>8}{'errors':>8}")
    print(_row("minimal Flask JSON endpoint", minimal))
    print(_row("/should_search (Postgres)", service))
    print(f"throughput ratio service/minimal: {service.rps / minimal.rps:.1%}")
    print(f"row check {'OK' if rows_ok else 'FAILED'}: {rows_text}")
    return 0 if rows_ok and service.other_statuses == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
