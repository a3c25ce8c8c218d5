"""Benchmark: /should_search under load on Postgres, against a minimal Flask endpoint on the same gunicorn settings.

Run: .venv/bin/python -m bench.service --seconds 20   (needs Postgres; creates and drops a throwaway database)
Prints requests/s and p50/p99 latency for both, their ratio, and checks that every 200 left exactly one row.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import psycopg2

from bench.service_load import LoadResult, run_python, run_wrk
from migrations import apply_migrations
from models import database_from_url

ROOT = Path(__file__).resolve().parent.parent
DRY_RUN = ROOT / "tests" / "fixtures" / "dry_run.json"
SERVICE_APP = "app:create_app()"
MINIMAL_APP = "bench.service_minimal_app:create_app()"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def dry_run_observations() -> list[str]:
    """The 223 dry-run observations, each re-serialised compactly as the JSON the officers' apps sent."""
    table = json.loads(DRY_RUN.read_text())
    column = table["fields"].index("observation")
    return [json.dumps(json.loads(row[column])["observation"], separators=(",", ":")) for row in table["values"]]


@contextlib.contextmanager
def throwaway_postgres(admin_url: str, keep: bool):
    """Create a uniquely named database beside admin_url's, migrated; drop it afterwards unless keep."""
    name = f"bench_service_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    url = urllib.parse.urlsplit(admin_url)._replace(path=f"/{name}").geturl()
    try:
        db = database_from_url(url)
        apply_migrations(db)
        yield url
    finally:
        if keep:
            _log(f"kept database {url}")
        else:
            admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def gunicorn(app_spec: str, database_url: str, workers: int, log_path: Path):
    """Serve app_spec with gunicorn.conf.py on a free loopback port; yields the port; SIGTERM on exit."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DYNO",)}
    env.update(PORT=str(port), WEB_CONCURRENCY=str(workers), DATABASE_URL=database_url)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
             app_spec], cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        _wait_healthy(process, port, log_path)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(process: subprocess.Popen, port: int, log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}; its log:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(OSError, urllib.error.URLError):
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn not healthy after {timeout:.0f} s; its log:\n{log_path.read_text()[-3000:]}")


def drive(port: int, args, observations: list[str], prefix: str, work_dir: Path) -> LoadResult:
    """One timed load run with the chosen client."""
    if args.client == "wrk":
        return run_wrk(port, observations, args.seconds, args.connections, prefix, work_dir)
    return run_python(port, observations, args.seconds, args.connections, prefix)


def check_rows(database_url: str, ok_ids: list[str], connections: int) -> tuple[bool, str]:
    """Every 200 has exactly one row, and there are no rows beyond requests cut off in flight at the deadline."""
    with contextlib.closing(psycopg2.connect(database_url)) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT observation_id FROM prediction")
        rows = [r[0] for r in cursor.fetchall()]
    stored, answered = set(rows), set(ok_ids)
    duplicates = len(rows) - len(stored)
    missing = len(answered - stored)
    unanswered = len(stored - answered)
    ok = (duplicates == 0 and missing == 0 and len(answered) == len(ok_ids) and unanswered <= connections)
    return ok, (f"{len(ok_ids)} answers 200, {len(rows)} rows, {duplicates} duplicate ids, {missing} answers "
                f"without a row, {unanswered} rows without a 200 (requests cut off in flight; at most {connections})")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.service", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20, help="load duration per app, 1-300 (default 20)")
    parser.add_argument("--connections", type=int, default=4, help="concurrent client connections, 1-64 (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers, i.e. WEB_CONCURRENCY (default 2)")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto",
                        help="load generator: wrk if installed (apt-get install wrk), else a Python client")
    parser.add_argument("--postgres-url", default=os.environ.get("TEST_POSTGRES_URL",
                                                                 "postgresql://postgres@127.0.0.1:5432/test"),
                        help="a Postgres database to connect to in order to create the throwaway one "
                             "(default: $TEST_POSTGRES_URL or postgresql://postgres@127.0.0.1:5432/test)")
    parser.add_argument("--keep-database", action="store_true", help="do not drop the throwaway database")
    return parser


def _validate(args, parser) -> None:
    if not 1 <= args.seconds <= 300 or not 1 <= args.connections <= 64 or not 1 <= args.workers <= 16:
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
    run_id = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        work_dir = Path(tmp)
        log_path = work_dir / "gunicorn.log"
        try:
            with throwaway_postgres(args.postgres_url, args.keep_database) as url:
                _log(f"minimal Flask app: {args.seconds:g} s, {args.connections} connections, {args.client} ...")
                with gunicorn(MINIMAL_APP, url, args.workers, log_path) as port:
                    minimal = drive(port, args, observations, f"min{run_id}", work_dir)
                _log(f"/should_search on Postgres: {args.seconds:g} s ...")
                with gunicorn(SERVICE_APP, url, args.workers, log_path) as port:
                    service = drive(port, args, observations, f"svc{run_id}", work_dir)
                rows_ok, rows_text = check_rows(url, service.ok_ids, args.connections)
        except (RuntimeError, psycopg2.Error, subprocess.SubprocessError) as error:
            print(f"error: {error}\nIs Postgres reachable at --postgres-url?", file=sys.stderr)
            return 2
    print(f"gunicorn.conf.py, {args.workers} sync workers, {args.connections} connections, {args.seconds:g} s each, "
          f"client {args.client}, {os.cpu_count()} CPUs")
    print(f"{'':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'answers':>10}{'non-200':>8}{'errors':>8}")
    print(_row("minimal Flask JSON endpoint", minimal))
    print(_row("/should_search (Postgres)", service))
    print(f"throughput ratio service/minimal: {service.rps / minimal.rps:.1%}")
    print(f"row check {'OK' if rows_ok else 'FAILED'}: {rows_text}")
    return 0 if rows_ok and service.other_statuses == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
