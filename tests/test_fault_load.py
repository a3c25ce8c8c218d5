"""Fault and load: 2 gunicorn workers on a throwaway Postgres that is crashed for 3.5 s while client threads post
dry-run observations, then a worker SIGKILLed, Postgres restarted again during a quiet spell, the master SIGTERMed.
No accepted request may be lost, every failure must be a 503 with Retry-After or a connection dropped by a kill, no
request may fail once Postgres is back, and every failed id must land exactly once on retry.

The figures (accepted, failures by kind, rows lost, recovery time, master exit time) are printed on one line and
written to fault_load.json in the test's tmp dir; only behaviour is asserted, never speed (the bounds are generous).
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import psycopg2
import pytest

from migrations import apply_migrations
from models import database_from_url
from models.database import PING_AFTER_IDLE_S
from service.keys import new_key
from tests.fault_harness import CLIENTS, Call, Load, gunicorn, post
from tests.gunicorn_process import GunicornProcess
from tests.pg_cluster import BIN_DIR, postgres_cluster

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

BASELINE_S = 2.0  # load before the first fault
OUTAGE_S = 3.5  # the issue asks for Postgres down at least 3 s
SETTLE_S = 1.5  # load between faults, so each failure can be attributed to one of them
RECOVERY_BOUND_S = 10.0  # behaviour (recovers with no restart), not speed: the figure itself is reported
EXIT_BOUND_S = 20.0  # the bound on the master's exit after SIGTERM
QUIET_S = 2 * PING_AFTER_IDLE_S  # no traffic before the quiet restart: pooled connections idle past the ping age


@pytest.fixture
def fault_cluster():
    """A throwaway Postgres cluster (never the shared server: this test crashes it) with a migrated database."""
    if not (BIN_DIR / "initdb").exists():
        reason = f"no PostgreSQL server binaries in {BIN_DIR} (set PG_BIN_DIR)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the fault test must run: {reason}")
        pytest.skip(reason)
    with postgres_cluster() as cluster:
        url = cluster.create_database("fault_load")
        db = database_from_url(url)
        try:
            apply_migrations(db)
        finally:
            db.close()
        yield cluster, url


@pytest.fixture
def gunicorn_factory(tmp_path):
    """Start gunicorns on demand (all logging to tmp_path/gunicorn.log); every one is killed at teardown."""
    started: list[GunicornProcess] = []

    def start(database_url: str, auth_env: dict) -> GunicornProcess:
        server = gunicorn(database_url, auth_env, tmp_path / "gunicorn.log")
        started.append(server)
        server.wait_healthy()
        return server
    yield start
    for server in started:
        server.kill()


def _auth() -> tuple[dict, dict]:
    """(server environment, client headers) with one real officer key."""
    key, entry = new_key("officer")
    return {"API_KEYS": entry}, {"Authorization": f"Bearer {key}"}


def _rows(url: str) -> dict[str, list[tuple]]:
    """{observation_id: [(should_search, probability), ...]} of every logged prediction."""
    rows: dict[str, list[tuple]] = {}
    with contextlib.closing(psycopg2.connect(url, connect_timeout=10)) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT observation_id, should_search, probability FROM prediction")
        for observation_id, should_search, probability in cursor.fetchall():
            rows.setdefault(observation_id, []).append((should_search, probability))
    return rows


def _stored_as_answered(call: Call, rows: dict) -> bool:
    """The first stored row of a 200's id holds the decision and probability the client was given."""
    should_search, probability = rows[call.observation_id][0]
    return should_search == call.body["should_search"] and probability == pytest.approx(call.body["probability"])


def _kind(call: Call, timeline: dict) -> str:
    """What a call's outcome was: ok, a clean 503, a connection dropped by one of the kills, or unexpected."""
    if call.status == 200:
        return "ok"
    if call.status == 503 and call.retry_after and (call.body or {}).get("error") == "database_unavailable":
        return "503"
    if call.status is None:
        # In flight at the kill: sent before it returned, failed after it began. No bound on how soon after: a
        # loaded machine may notice the reset late, and at most one per client is asserted below instead.
        if call.sent <= timeline["worker_killed"] and call.answered >= timeline["worker_kill"]:
            return "dropped_by_worker_kill"
        if call.answered >= timeline["sigterm"] and "refused" in call.error.lower():
            return "refused_after_sigterm"  # the listener is closed: never accepted, so nothing to lose
        # Workers stop accepting at SIGTERM but hold the listening socket until their process ends; a connection
        # queued in that window is reset before anything is read, so nothing is written and its retry lands. The
        # client reports the reset as such or, now and then, as an end of file ("closed ... without response"):
        # seen once in CI (2026-11-29), then in 5 of 54 SIGTERMs under load with the minimal app; in the runs where
        # each worker logged its accepts and closes, none had accepted, read or closed such a connection.
        error = call.error.lower()
        if timeline["sigterm"] <= call.answered <= timeline["master_exited"] and (
                "reset" in error or "without response" in error):
            return "reset_at_sigterm"
    return "unexpected"


def _run_faults(cluster, server: GunicornProcess, load: Load) -> tuple[dict, dict]:
    """The schedule: crash Postgres under load, SIGKILL a worker, restart Postgres while idle, SIGTERM the master.

    Returns (timeline of monotonic instants, figures measured on the way).
    """
    timeline, figures = {"start": time.monotonic()}, {}
    time.sleep(BASELINE_S)
    cluster.stop("immediate")
    timeline["postgres_down"] = time.monotonic()
    time.sleep(OUTAGE_S)
    cluster.start()  # returns once the server accepts connections again
    timeline["postgres_up"] = time.monotonic()
    figures["recovery_s"] = load.first_200_after(timeline["postgres_up"], RECOVERY_BOUND_S)
    time.sleep(SETTLE_S)
    figures["workers_before_kill"] = server.workers()
    timeline["worker_kill"] = time.monotonic()  # taken first: a client may see the reset before kill returns
    os.kill(figures["workers_before_kill"][0], signal.SIGKILL)
    timeline["worker_killed"] = time.monotonic()
    time.sleep(SETTLE_S)
    figures["workers_after_kill"] = server.workers()
    # A restart during a quiet spell leaves every pooled connection idle and broken; traffic that resumes after
    # it must not meet them (each must be pinged or replaced), so every request sent afterwards must get a 200.
    load.pause()
    time.sleep(QUIET_S)
    cluster.stop("immediate")
    cluster.start()
    timeline["quiet_restart"] = time.monotonic()
    load.resume()
    time.sleep(SETTLE_S)
    timeline["sigterm"] = time.monotonic()
    figures["master_exit_s"] = server.terminate()
    timeline["master_exited"] = time.monotonic()
    return timeline, figures


def _log_excerpt(path: Path, lines: int = 30) -> str:
    """gunicorn's non-request lines (errors, signals, worker births), a run of one message shown once with its count."""
    counts: dict[str, int] = {}
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("[") and "] " in line:  # "[time] [pid] [LEVEL] ..."; request lines are JSON
            message = line.split("] ", 2)[-1]
            counts[message] = counts.get(message, 0) + 1
    return "\n".join(f"{n:5d} x {message}" for message, n in list(counts.items())[-lines:])


def _write_report(tmp_path: Path, summary: dict, timeline: dict, calls: list[Call], kinds: list[str],
                  capsys) -> None:
    start = timeline["start"]
    (tmp_path / "fault_load.json").write_text(json.dumps({
        "summary": summary, "timeline_s": {k: round(v - start, 3) for k, v in timeline.items()},
        "failures": [{**asdict(c), "kind": k, "sent": round(c.sent - start, 3),
                      "answered": round(c.answered - start, 3)} for c, k in zip(calls, kinds) if k != "ok"],
        "calls": [[c.observation_id, c.status or "connection error"] for c in calls]}, indent=1))
    with capsys.disabled():  # the figures belong in CI's output even when the test passes
        print(f"\nfault_load: {json.dumps(summary)} (details: {tmp_path / 'fault_load.json'}, "
              f"log: {tmp_path / 'gunicorn.log'})")


def test_no_accepted_request_is_lost_under_database_crash_and_kills(fault_cluster, gunicorn_factory,
                                                                     dry_run_requests, tmp_path, capsys):
    """Crash Postgres 3.5 s and SIGKILL a worker under load: every 200 stored once, failures clean and retryable."""
    cluster, url = fault_cluster
    auth_env, headers = _auth()
    observations = [observation for _, observation, _ in dry_run_requests]
    server = gunicorn_factory(url, auth_env)
    with Load(server.base, headers, observations) as load:
        timeline, figures = _run_faults(cluster, server, load)
    calls = list(load.calls)
    kinds = [_kind(call, timeline) for call in calls]
    rows = _rows(url)
    # A failure whose row exists anyway was committed and its answer lost; the retry must answer that row.
    in_doubt = [kind for call, kind in zip(calls, kinds) if kind != "ok" and call.observation_id in rows]
    retry_server = gunicorn_factory(url, auth_env)
    with ThreadPoolExecutor(CLIENTS) as pool:
        retries = list(pool.map(lambda call: post(retry_server.base, headers, call.observation_id, observations,
                                                   call.observation), [c for c, k in zip(calls, kinds) if k != "ok"]))
    rows_after = _rows(url)

    accepted = [call for call in calls if call.status == 200]
    lost = [call.observation_id for call in accepted if call.observation_id not in rows]
    mismatched = [call.observation_id for call in accepted
                  if call.observation_id in rows and not _stored_as_answered(call, rows)]
    duplicated = [oid for oid, found in rows_after.items() if len(found) != 1]
    bad_retries = [(r.observation_id, r.status, r.error or r.body) for r in retries
                   if r.status != 200 or len(rows_after.get(r.observation_id, [])) != 1
                   or not _stored_as_answered(r, rows_after)]
    after_quiet_restart = [(c.observation_id, c.status, c.error or c.body) for c in calls
                           if timeline["quiet_restart"] < c.sent and c.answered < timeline["sigterm"]
                           and c.status != 200]
    unexpected = [(c.observation_id, c.status, c.retry_after, c.error or c.body)
                  for c, k in zip(calls, kinds) if k == "unexpected"]
    summary = {
        "requests": len(calls), "accepted": len(accepted), "rows_lost": len(lost),
        "failures": {kind: kinds.count(kind) for kind in sorted(set(kinds) - {"ok"})},
        "in_doubt_rows": {kind: in_doubt.count(kind) for kind in sorted(set(in_doubt))},
        "retried": len(retries), "retries_landed_once": len(retries) - len(bad_retries),
        "postgres_down_s": round(timeline["postgres_up"] - timeline["postgres_down"], 3),
        "503_sent_after_postgres_up": sum(c.status == 503 and c.sent > timeline["postgres_up"] for c in calls),
        "failed_after_quiet_restart": len(after_quiet_restart),
        "max_503_latency_s": round(max((c.answered - c.sent for c in calls if c.status == 503), default=0), 3),
        **{k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()},
        "duration_s": round(time.monotonic() - timeline["start"], 1),
    }
    _write_report(tmp_path, summary, timeline, calls, kinds, capsys)

    log = _log_excerpt(tmp_path / "gunicorn.log")
    assert not unexpected, f"failures neither a 503 with Retry-After nor a kill's drop: {unexpected[:10]}\n{log}"
    assert kinds.count("503") > 0, "no request met the database outage: the fault was not exercised"
    assert not lost and not mismatched, f"200s not stored as answered: lost {lost[:10]}, mismatched {mismatched[:10]}"
    assert not duplicated and set(rows_after) <= {c.observation_id for c in calls}, f"duplicated: {duplicated[:10]}"
    assert not bad_retries, f"retries that did not land exactly once: {bad_retries[:10]}\n{log}"
    assert not after_quiet_restart, f"stale pooled connections after a quiet restart: {after_quiet_restart}\n{log}"
    assert figures["recovery_s"] is not None, f"no 200 within {RECOVERY_BOUND_S} s of Postgres returning\n{log}"
    # _run_faults SIGKILLs one worker. A BufferingWorker (gunicorn.conf.py) holds the request it serves plus those it
    # has accepted and is reading or holding whole: at most one per client, each retried above and landed once.
    assert kinds.count("dropped_by_worker_kill") <= CLIENTS, "the kill dropped more connections than there are clients"
    before, after = figures["workers_before_kill"], figures["workers_after_kill"]
    assert before[0] not in after and len(after) == 2, f"the killed worker was not replaced: {before} -> {after}"
    assert figures["master_exit_s"] < EXIT_BOUND_S, f"master exit took {figures['master_exit_s']:.1f} s\n{log}"
