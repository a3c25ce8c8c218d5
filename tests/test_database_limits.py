"""The connection pool's bounds: a report ends by its deadline, leaves one connection, and a dead server costs one
ping, not one per idle connection. SQLite has no statement limit, so the deadline tests are Postgres-only."""
from __future__ import annotations

import contextlib
import importlib
import logging
import threading
import time

import psycopg2
import pytest
from peewee import OperationalError
from playhouse.pool import PooledPostgresqlDatabase

from models import database
from pipeline.report import filter_choices
from tests.test_database_faults import POSTGRES_ONLY, _body, _postgres_name, _terminate_backends

database_module = importlib.import_module("models.database")


def test_a_report_leaves_one_idle_connection(app, client, observation, backend):
    """The report's query threads close their connections: after /report.html the worker holds one, not 1 + 3."""
    assert client.post("/should_search", json=_body(observation, "one")).status_code == 200
    assert client.get("/report.html").status_code == 200
    assert database.obj.idle_connections() <= 1
    assert database.obj._in_use == {}


@contextlib.contextmanager
def _log_locked(url: str):
    """Another session holds an exclusive lock on the request log: every report query waits for it."""
    with contextlib.closing(psycopg2.connect(url)) as holder:
        holder.cursor().execute("LOCK TABLE prediction IN ACCESS EXCLUSIVE MODE")  # opens a transaction
        yield
        holder.rollback()


@pytest.mark.parametrize("backend", POSTGRES_ONLY)
@pytest.mark.parametrize("path", ["/report", "/report.html"])
def test_a_report_past_its_deadline_is_ended_by_the_database(app, client, migrated_database_url, monkeypatch, caplog,
                                                             assert_error, backend, path):
    """A report whose deadline has passed is cancelled by its statement timeout (503), not by the 2 s lock timeout
    and not by gunicorn's SIGKILL: every query is limited to what is left of the report's one deadline."""
    monkeypatch.setattr(database_module, "REPORT_STATEMENT_TIMEOUT_MS", 0)  # the deadline is the start
    with _log_locked(migrated_database_url), caplog.at_level(logging.ERROR, logger="service.errors"):
        refused = client.get(path)
    assert_error(refused, 503, "database_unavailable")
    assert refused.headers["Retry-After"] == "1"
    assert "statement timeout" in caplog.text and "lock timeout" not in caplog.text


@pytest.mark.parametrize("backend", POSTGRES_ONLY)
def test_filter_choices_keep_the_report_deadline(app, migrated_database_url, backend):
    """The page's filter form queries under the same deadline as its report."""
    with _log_locked(migrated_database_url), database.connection_context(), \
            pytest.raises(OperationalError, match="statement timeout"):
        filter_choices(deadline=time.monotonic() - 1)


@pytest.mark.parametrize("backend", POSTGRES_ONLY)
def test_one_failed_ping_drops_every_idle_connection(app, migrated_database_url, postgres_admin_url, monkeypatch,
                                                     backend):
    """When the server behind the pool is gone, the first failed ping drops all idle connections (each further
    ping could wait tcp_user_timeout) and a fresh connection is opened."""
    monkeypatch.setattr(database_module, "PING_AFTER_IDLE_S", 0.0)
    pings = []
    ping = PooledPostgresqlDatabase._is_closed
    monkeypatch.setattr(PooledPostgresqlDatabase, "_is_closed", lambda db, conn: pings.append(conn) or ping(db, conn))
    held = threading.Barrier(3)

    def use():  # three threads at once, so the pool ends with three idle connections
        with database.connection_context():
            database.execute_sql("SELECT 1")
            held.wait()
    threads = [threading.Thread(target=use) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert database.obj.idle_connections() == 3
    pings.clear()  # the pings of setting up
    _terminate_backends(postgres_admin_url, _postgres_name(migrated_database_url))
    with database.connection_context():
        assert database.execute_sql("SELECT 1").fetchone() == (1,)
    assert len(pings) == 1
    assert database.obj.idle_connections() == 1  # the fresh one, back in the pool
