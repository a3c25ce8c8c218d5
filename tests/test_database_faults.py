"""Database faults answer 503 with Retry-After, write nothing partial, and heal by themselves: no new app, no restart.

In-process faults on both backends. Postgres: a throwaway database whose backends are terminated and which then
refuses connections (ALLOW_CONNECTIONS false); a table lock held by another session. SQLite: the file replaced by a
directory (cannot be opened); a write lock held by another connection (BEGIN IMMEDIATE). Stopping a real server
under load is tests/test_fault_load.py's job.
"""
from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2
import pytest
from peewee import OperationalError

from models import Prediction, close_pool, database, database_from_url, long_statements

# The module, not the proxy of the same name that models/__init__ exports.
database_module = importlib.import_module("models.database")

POSTGRES_ONLY = [pytest.param("postgres", marks=pytest.mark.postgres)]


def _body(observation: dict, observation_id: str) -> dict:
    return {"observation_id": observation_id, "observation": observation}


def _ids_logged() -> list[str]:
    with database.connection_context():
        return sorted(row.observation_id for row in Prediction.select(Prediction.observation_id))


def _postgres_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _terminate_backends(admin_url: str, name: str) -> None:
    """End every session on the database, and wait until the server has really ended them."""
    with contextlib.closing(psycopg2.connect(admin_url)) as admin:
        admin.autocommit = True
        cursor = admin.cursor()
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        for _ in range(200):
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,))
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.05)
    pytest.fail(f"the sessions on {name} did not end")


def _allow_connections(admin_url: str, name: str, allow: bool) -> None:
    with contextlib.closing(psycopg2.connect(admin_url)) as admin:
        admin.autocommit = True
        admin.cursor().execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}')


@pytest.fixture
def outage(backend, migrated_database_url, request):
    """(take_down, bring_back) for the app's database: an outage as each backend has one."""
    if backend == "postgres":
        admin_url, name = request.getfixturevalue("postgres_admin_url"), _postgres_name(migrated_database_url)

        def take_down():
            _allow_connections(admin_url, name, False)
            _terminate_backends(admin_url, name)

        def bring_back():
            _allow_connections(admin_url, name, True)

        request.addfinalizer(bring_back)  # so the throwaway database can be dropped
        return take_down, bring_back
    path = Path(migrated_database_url[len("sqlite:///"):])
    away = path.with_name(path.name + ".away")

    def take_down():
        close_pool(database.obj)  # the file is closed cleanly (WAL checkpointed) before it goes away
        path.rename(away)
        path.mkdir()  # a directory where the file was: SQLite cannot open it

    def bring_back():
        path.rmdir()
        away.rename(path)

    return take_down, bring_back


def _where(url: str) -> str:
    """The part of a database URL that says where it is: the host, or the SQLite file's path."""
    return url[len("sqlite:///"):] if url.startswith("sqlite:///") else urlsplit(url).hostname


def test_database_down_answers_503_then_recovers_without_restart(app, client, observation, outage,
                                                                 migrated_database_url, assert_error):
    """While the database is down: 503 + Retry-After on writes, /health names the database (not where it is: the
    endpoint is public), nothing is written. When it returns, the same app serves again and the retried id lands
    exactly once."""
    take_down, bring_back = outage
    assert client.post("/should_search", json=_body(observation, "before")).status_code == 200
    take_down()
    for _ in range(2):  # the first meets the pooled connection the outage broke, the second a refused connect
        refused = client.post("/should_search", json=_body(observation, "during"))
        assert_error(refused, 503, "database_unavailable")
        assert refused.headers["Retry-After"] == "1"
    health = client.get("/health")
    assert "database" in assert_error(health, 503)["fields"]
    assert _where(migrated_database_url) not in health.get_data(as_text=True)
    bring_back()
    assert client.get("/health").status_code == 200
    retried = client.post("/should_search", json=_body(observation, "during"))
    assert retried.status_code == 200, retried.get_data(as_text=True)
    assert client.post("/should_search", json=_body(observation, "during")).get_json() == retried.get_json()
    assert _ids_logged() == ["before", "during"]


@contextlib.contextmanager
def _write_lock_held(backend: str, url: str):
    """Another session holds the lock an insert into prediction needs, until the block ends (then rolls back)."""
    if backend == "postgres":
        holder = psycopg2.connect(url)
        with contextlib.closing(holder):
            holder.cursor().execute("LOCK TABLE prediction IN SHARE ROW EXCLUSIVE MODE")  # opens a transaction
            yield
            holder.rollback()
        return
    holder = sqlite3.connect(url[len("sqlite:///"):], isolation_level=None)
    with contextlib.closing(holder):
        holder.execute("BEGIN IMMEDIATE")
        yield
        holder.execute("ROLLBACK")


def test_a_held_write_lock_times_out_as_503_and_writes_nothing(app, client, observation, backend,
                                                              migrated_database_url, assert_error):
    """A writer stuck behind a lock gives up at the lock timeout (Postgres lock_timeout, SQLite busy_timeout) with a
    503, not a hang and not a 500; once the lock is released the retry lands once."""
    with _write_lock_held(backend, migrated_database_url):
        refused = client.post("/should_search", json=_body(observation, "locked"))
        assert_error(refused, 503, "database_unavailable")
        assert refused.headers["Retry-After"] == "1"
    assert _ids_logged() == []
    assert client.post("/should_search", json=_body(observation, "locked")).status_code == 200
    assert _ids_logged() == ["locked"]


@pytest.mark.parametrize("backend", POSTGRES_ONLY)
@pytest.mark.parametrize("ping_after_idle, statuses", [(float("inf"), [503, 200]), (0.0, [200])],
                         ids=["no-ping", "ping"])
def test_a_broken_pooled_connection_is_never_handed_out_again(app, client, observation, migrated_database_url,
                                                              postgres_admin_url, monkeypatch, backend,
                                                              ping_after_idle, statuses):
    """A server-side kill of the pooled connection: without a ping the next request fails with a 503 and the
    connection is discarded, so the retry after it succeeds; with the idle ping the broken one is never used."""
    monkeypatch.setattr(database_module, "PING_AFTER_IDLE_S", ping_after_idle)
    assert client.post("/should_search", json=_body(observation, "first")).status_code == 200
    _terminate_backends(postgres_admin_url, _postgres_name(migrated_database_url))
    answers = [client.post("/should_search", json=_body(observation, "second")).status_code for _ in statuses]
    assert answers == statuses
    assert _ids_logged() == ["first", "second"]


def _read_only(admin_url: str, name: str, on: bool) -> None:
    with contextlib.closing(psycopg2.connect(admin_url)) as admin:
        admin.autocommit = True
        setting = "SET default_transaction_read_only = on" if on else "RESET default_transaction_read_only"
        admin.cursor().execute(f'ALTER DATABASE "{name}" {setting}')


def _rows(url: str) -> int:
    """Predictions in the database, counted on a session of its own (not the app's pool)."""
    with contextlib.closing(psycopg2.connect(url)) as session:
        cursor = session.cursor()
        cursor.execute("SELECT count(*) FROM prediction")
        return cursor.fetchone()[0]


@pytest.mark.parametrize("backend", POSTGRES_ONLY)
def test_a_read_only_database_answers_503_then_serves_again(app, client, observation, migrated_database_url,
                                                            postgres_admin_url, backend, assert_error):
    """A database refusing writes (read-only: a failover, maintenance) is a 503 + Retry-After, not a 500, and writes
    nothing; the refusing session is not reused, so once the database is writable the retry lands."""
    name = _postgres_name(migrated_database_url)
    _read_only(postgres_admin_url, name, True)
    close_pool(database.obj)  # the setting applies to sessions opened from now on
    refused = client.post("/should_search", json=_body(observation, "read-only"))
    assert_error(refused, 503, "database_unavailable")
    assert refused.headers["Retry-After"] == "1"
    assert _rows(migrated_database_url) == 0
    _read_only(postgres_admin_url, name, False)
    assert client.post("/should_search", json=_body(observation, "read-only")).status_code == 200
    assert _rows(migrated_database_url) == 1


@contextlib.contextmanager
def _prediction_locked(backend: str, url: str, observation_id: str):
    """Another session holds the lock recording an outcome for the prediction needs, until the block ends."""
    if backend == "postgres":
        holder = psycopg2.connect(url)
        with contextlib.closing(holder):  # the SELECT opens a transaction, which holds the row lock
            holder.cursor().execute("SELECT id FROM prediction WHERE observation_id = %s FOR UPDATE",
                                    (observation_id,))
            yield
            holder.rollback()
        return
    with _write_lock_held(backend, url):
        yield


def _contraband_found(observation_id: str):
    with database.connection_context():
        return Prediction.get(Prediction.observation_id == observation_id).contraband_found


def test_an_outcome_behind_a_locked_prediction_is_503_and_writes_neither_statement(
        app, client, observation, backend, migrated_database_url, assert_error, log_counts):
    """record_outcome's two statements (outcome insert, prediction update) behind a held lock: 503 + Retry-After at
    the lock timeout, no outcome row and the prediction untouched; after the release the retry lands exactly once."""
    assert client.post("/should_search", json=_body(observation, "held")).status_code == 200
    outcome = {"observation_id": "held", "contraband_found": True}
    with _prediction_locked(backend, migrated_database_url, "held"):
        refused = client.post("/search_result", json=outcome)
        assert_error(refused, 503, "database_unavailable")
        assert refused.headers["Retry-After"] == "1"
    assert log_counts() == {"prediction": 1, "outcome": 0}
    assert _contraband_found("held") is None
    assert client.post("/search_result", json=outcome).status_code == 200
    assert log_counts() == {"prediction": 1, "outcome": 1}
    assert _contraband_found("held") is True


def _setting(name: str) -> int:
    return int(database.execute_sql("SELECT setting FROM pg_settings WHERE name = %s", (name,)).fetchone()[0])


def test_serving_connections_carry_the_time_limits(app, backend):
    """The request path's limits are on every pooled connection; a report's longer limit ends with its transaction."""
    with database.connection_context():
        if backend == "sqlite":
            assert database.execute_sql("PRAGMA busy_timeout").fetchone()[0] == database_module.SQLITE_BUSY_TIMEOUT_MS
            return
        assert _setting("statement_timeout") == database_module.STATEMENT_TIMEOUT_MS
        assert _setting("lock_timeout") == database_module.LOCK_TIMEOUT_MS
        with long_statements():  # what is left of the report's deadline, just started
            assert database_module.STATEMENT_TIMEOUT_MS < _setting("statement_timeout") \
                <= database_module.REPORT_STATEMENT_TIMEOUT_MS
        assert _setting("statement_timeout") == database_module.STATEMENT_TIMEOUT_MS


@pytest.mark.parametrize("backend", POSTGRES_ONLY)
def test_the_database_url_overrides_the_defaults(migrated_database_url, backend):
    """An operator's ``options`` in DATABASE_URL win over the service's (appended after them); the rest stay."""
    db = database_from_url(migrated_database_url + "?options=-c%20statement_timeout%3D7000", serving=True)
    try:
        with db.connection_context():
            shown = [db.execute_sql(f"SHOW {name}").fetchone()[0] for name in ("statement_timeout", "lock_timeout")]
        assert shown == ["7s", f"{database_module.LOCK_TIMEOUT_MS // 1000}s"]
    finally:
        close_pool(db)


@pytest.mark.parametrize("backend", POSTGRES_ONLY)  # SQLite has none: its waits are bounded by busy_timeout
def test_statement_timeout_ends_a_slow_statement(app, backend):
    """Postgres cancels a request-path statement at the limit (an OperationalError, which the service answers 503)."""
    limit_s = database_module.STATEMENT_TIMEOUT_MS / 1000
    with database.connection_context(), pytest.raises(OperationalError, match="statement timeout"):
        database.execute_sql("SELECT pg_sleep(%s)", (limit_s + 2,))


def _idle_connection_in_pool() -> None:
    def use():
        with database.connection_context():
            database.execute_sql("SELECT 1")
    thread = threading.Thread(target=use)
    thread.start()
    thread.join()


def test_a_forked_child_gets_an_empty_pool(app, client, observation):
    """No connection crosses a fork: the parent closes its idle ones, the child forgets the ones in use and opens
    its own, and the parent's in-use connection still works after the child is gone."""
    assert client.post("/should_search", json=_body(observation, "pre-fork")).status_code == 200
    pool = database.obj
    database.connect()  # in use across the fork, as a request thread of the parent might hold it
    try:
        _idle_connection_in_pool()
        assert len(pool._connections) == 1
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 1
            try:
                gc.collect()  # inherited connections must not be finalised: a Terminate on the parent's socket
                empty = not pool._connections and not pool._in_use and database.is_closed()
                with database.connection_context():
                    database.execute_sql("SELECT 1")
                code = 0 if empty else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert pool._connections == []  # the idle one was closed before the fork
        assert database.execute_sql("SELECT COUNT(*) FROM prediction").fetchone()[0] == 1
    finally:
        database.close()


def test_the_start_up_warning_keeps_the_first_line_of_the_driver_message(make_app, artifact, caplog):
    """An unreachable database at start-up: one warning line; later lines of the driver's message stay out."""
    with caplog.at_level(logging.WARNING, logger="service.health"):
        make_app({"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere"}, model=artifact)
    [warning] = [r.getMessage() for r in caplog.records if "start-up" in r.getMessage()]
    assert "Connection refused" in warning and "\n" not in warning
