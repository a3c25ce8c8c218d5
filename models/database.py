"""The database proxy every model is bound to, initialised from a URL at start-up (never on import).

Two kinds of database come out of ``database_from_url``: a plain one (migrations, offline reports, tests), and with
``serving=True`` the service's: a per-process connection pool with the request path's timeouts, so a request pays
neither a Postgres backend fork nor an unbounded wait.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from peewee import DatabaseProxy, OperationalError
from playhouse.db_url import parse
from playhouse.pool import MaxConnectionsExceeded, PooledPostgresqlDatabase, PooledSqliteDatabase

from models.dialects import PlainPostgresqlDatabase, PlainSqliteDatabase, PostgresDialect, SqliteDialect

database = DatabaseProxy()

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_URL = f"sqlite:///{PROJECT_ROOT / 'instance' / 'ctrp3.sqlite3'}"
SCHEMES = ("postgres://", "postgresql://", "sqlite:///")

# The budget: a request must answer (at worst a 503) within ~5 s, far under Heroku's 30 s router limit.
# Connecting: 2 s. An unreachable host otherwise blocks until the kernel's TCP timeout (minutes); refused is instant.
CONNECT_TIMEOUT_S = 2
# One statement of the request path: 3 s, of which waiting for a row lock at most 2 s (a lock wait is the likely
# cause of a slow insert, and it then gets its own clearer error). 2 s connect + 3 s statement = the 5 s budget.
STATEMENT_TIMEOUT_MS = 3000
LOCK_TIMEOUT_MS = 2000
# A worker frozen inside a transaction (SIGSTOP, a debugger) must not hold row locks for ever.
IDLE_IN_TRANSACTION_TIMEOUT_MS = 10000
# The report's GROUP BYs take 2-4.5 s each on 1M rows (bench/report.py): the whole report, all its queries
# together, gets REPORT_STATEMENT_TIMEOUT_MS from its start (pipeline/report sets the deadline); each query is
# limited to what is left of it, so the database, not gunicorn's SIGKILL, ends a slow report with a 503.
REPORT_STATEMENT_TIMEOUT_MS = 10000
# A dead server (host gone, cable cut) is noticed by the kernel instead of waiting for ever on a read:
# unacknowledged data for 2 s, or an idle connection failing 3 probes 1 s apart after 5 s, closes the socket.
TCP_OPTIONS = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 1, "keepalives_count": 3,
               "tcp_user_timeout": 2000}
# SQLite: a writer waits at most 3 s for the lock, then "database is locked" -> 503 (was 10 s, over the budget).
SQLITE_BUSY_TIMEOUT_MS = 3000
# WAL lets readers (reports) run beside the writer; busy_timeout makes concurrent writers wait instead of fail.
SQLITE_PRAGMAS = {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
                  "synchronous": "normal"}
# Per worker process a sync worker needs one request connection plus the report's 3 query threads. The cap only
# matters for threaded use (tests race 20 threads; a gthread worker): it keeps a thread storm from exhausting the
# server's max_connections (100 by default), and a thread waits at most 1 s for a free connection before its 503.
POOL_MAX_CONNECTIONS = 32
POOL_WAIT_S = 1
# A pooled connection older than this is closed at its next check-in or check-out: a worker that once needed more
# (a thread storm) does not keep them for ever, and server-side session state cannot outlive it.
POOL_STALE_S = 300
# A pooled connection idle this long is pinged (one round trip) before reuse, so one broken by a server restart is
# discarded instead of failing a request. Busier connections skip the ping: a connection that breaks while in
# use fails its request with a 503 and is discarded at check-in (its transaction status is then unknown).
PING_AFTER_IDLE_S = 1.0

# The worst case of one write on Postgres, each step bounded by the setting named:
#   wait for a free pooled connection   POOL_WAIT_S                 1 s (only with more threads than the cap)
#   ping of an idle connection          tcp_user_timeout            2 s, a dead server; 3 s (statement limit), a
#                                                                   stalled one. One failed ping drops every other
#                                                                   idle connection: they share the dead server
#   connect                             CONNECT_TIMEOUT_S           2 s (libpq: per address the host resolves to)
#   each round trip                     STATEMENT_TIMEOUT_MS        3 s (lock waits within it: 2 s); a server that
#                                                                   vanishes mid-statement: ~7 s (keepalive idle 5 s
#                                                                   + tcp_user_timeout 2 s), after which none follow
# Outages as they happen: refused at once; host gone 2 + 2 = 4 s (ping, connect); a held row lock 2 s.
# Everything stalling just under its limit: /should_search, new id (1 statement): 1 + 3 + 2 + 3 = 9 s, a retried
# id (+ its SELECT) 12 s; /search_result (BEGIN, SELECT FOR UPDATE, INSERT, UPDATE, COMMIT): 1 + 3 + 2 + 5 x 3 =
# 21 s. gunicorn's timeout (15 s, gunicorn.conf.py) is the backstop for that compound case: the worker is recycled
# and its connection's open transaction rolled back (nothing written), and the client's retry lands once.


class DatabaseUrlError(ValueError):
    """No usable database URL: an unsupported scheme, or the SQLite default on a Heroku dyno."""


def resolve_database_url(url: str | None = None, environ=None) -> str:
    """The database this process must use: ``url``, else $DATABASE_URL, else the embedded SQLite file.

    The SQLite default is refused on a Heroku dyno ($DYNO set), whose file system is wiped daily: the app and the
    release-phase migrations must both fail there rather than use a throwaway file.
    """
    environ = os.environ if environ is None else environ
    url = url or environ.get("DATABASE_URL") or ""
    if not url:
        if environ.get("DYNO"):
            raise DatabaseUrlError(
                "DATABASE_URL is not set on a Heroku dyno; refusing the SQLite default because dyno file systems "
                "are wiped daily. Attach Postgres: `heroku addons:create heroku-postgresql`.")
        return DEFAULT_SQLITE_URL
    return _checked(url)


def _checked(url: str) -> str:
    if not url.startswith(SCHEMES):
        raise DatabaseUrlError(f"unsupported DATABASE_URL scheme {url.split(':', 1)[0]!r}: use postgresql://, "
                               "postgres:// or sqlite:///path")
    return url


# Connections a forked child found in its pool: never used and never closed there, because closing a Postgres
# connection sends the server a Terminate message on the socket the parent still owns.
_INHERITED: list = []


_WAIT = threading.local()  # .since: when this thread first found every pooled connection in use


class _Pool:
    """What both pools add to peewee's: an exhausted pool is a 503 like any outage, fork safety, and wait times."""

    # Called with the seconds a connect waited for a free connection, when it had to (the service's metrics).
    wait_observer = None

    def connect(self, reuse_if_open=False):
        """Take a pooled connection (or open one); an exhausted pool raises OperationalError, so it answers 503."""
        try:
            return super().connect(reuse_if_open)
        except MaxConnectionsExceeded as error:
            raise OperationalError(f"connection pool exhausted: {error}") from error
        finally:
            since = getattr(_WAIT, "since", None)
            if since is not None:  # only a connect that found the pool full pays for this
                _WAIT.since = None
                if self.wait_observer is not None:
                    self.wait_observer(time.monotonic() - since)

    def _connect(self):
        try:
            return super()._connect()
        except MaxConnectionsExceeded:
            if getattr(_WAIT, "since", None) is None:
                _WAIT.since = time.monotonic()
            raise

    def forget_inherited(self) -> None:
        """In a forked child: drop every connection (and lock) copied from the parent, so the pool starts empty."""
        _INHERITED.extend([conn for *_, conn in self._connections] +
                          [pooled.connection for pooled in self._in_use.values()])
        if not self._state.closed:
            _INHERITED.append(self._state.conn)
        self._connections, self._in_use = [], {}
        self._state.reset()
        self._lock = threading.Lock()  # another thread of the parent may have held them at fork time
        self._pool_lock = threading.RLock()
        self._pool_available = threading.Condition(self._pool_lock)

    def idle_connections(self) -> int:
        """How many connections the pool holds idle, open for reuse."""
        return len(self._connections)

    def discard(self) -> None:
        """Close this thread's connection instead of returning it to the pool (its session state is unusable)."""
        if not self.is_closed():
            self.manual_close()


class ServingSqliteDatabase(_Pool, SqliteDialect, PooledSqliteDatabase):
    """The service's SQLite: pooled connections, so the pragmas run once per connection, not per request."""


class ServingPostgresqlDatabase(_Pool, PostgresDialect, PooledPostgresqlDatabase):
    """The service's Postgres: pooled connections; only one idle over PING_AFTER_IDLE_S is pinged before reuse."""

    def __init__(self, *args, **kwargs):
        self._idle_since = {}
        super().__init__(*args, **kwargs)

    def _is_closed(self, conn):
        if conn.closed or self._adapter.txn_status(conn) == self._adapter.txn_unknown:
            return True
        if time.monotonic() - self._idle_since.get(id(conn), 0.0) < PING_AFTER_IDLE_S:
            return False
        if not super()._is_closed(conn):  # SELECT 1
            return False
        # The ping failed: the other idle connections most likely share the dead server, and pinging each would
        # cost up to tcp_user_timeout apiece. Drop them all and connect afresh (the caller's lock is held).
        self.close_idle()
        return True

    def _close(self, conn, close_conn=False):
        self._idle_since[id(conn)] = time.monotonic()
        super()._close(conn, close_conn)

    def _close_raw(self, conn):
        self._idle_since.pop(id(conn), None)
        super()._close_raw(conn)


def _close_idle_before_fork() -> None:
    if isinstance(database.obj, _Pool):
        database.obj.close_idle()


def _empty_pool_in_child() -> None:
    if isinstance(database.obj, _Pool):
        database.obj.forget_inherited()


# gunicorn preloads the app in the master and forks the workers: no connection may be shared across the fork.
# The parent closes its idle pooled connections itself (gunicorn.conf.py's pre_fork has returned the master's to
# the pool); the child forgets whatever is left, so each worker opens its own.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_close_idle_before_fork, after_in_child=_empty_pool_in_child)


def _postgres_options(url_params: dict) -> dict:
    """Connection parameters: the URL's win over our defaults; server settings are prepended to its ``options``."""
    settings = (f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c lock_timeout={LOCK_TIMEOUT_MS} "
                f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT_MS}")
    params = {"connect_timeout": CONNECT_TIMEOUT_S, **TCP_OPTIONS, **url_params}
    params["options"] = f"{settings} {url_params.get('options', '')}".strip()  # later -c settings win
    return params


def database_from_url(url: str, serving: bool = False):
    """Open a peewee database for a URL: postgres://, postgresql:// (Heroku's forms) or sqlite:///path.

    ``serving=True``: the service's database, a connection pool with the request path's statement and lock
    timeouts. Otherwise a plain one (migrations must be free to run long statements), with the connect timeout.
    """
    if _checked(url).startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # (The pool takes ``timeout`` as its wait for a free connection; the busy_timeout pragma bounds the lock wait.)
        if serving:  # pooled connections move between threads (the report's query threads)
            return ServingSqliteDatabase(path, pragmas=SQLITE_PRAGMAS, check_same_thread=False,
                                         max_connections=POOL_MAX_CONNECTIONS, timeout=POOL_WAIT_S,
                                         stale_timeout=POOL_STALE_S)
        return PlainSqliteDatabase(path, pragmas=SQLITE_PRAGMAS)
    params = parse(url)
    if serving:
        return ServingPostgresqlDatabase(max_connections=POOL_MAX_CONNECTIONS, timeout=POOL_WAIT_S,
                                         stale_timeout=POOL_STALE_S, **_postgres_options(params))
    return PlainPostgresqlDatabase(**{"connect_timeout": CONNECT_TIMEOUT_S, **TCP_OPTIONS, **params})


def close_pool(db) -> None:
    """Close every connection a database holds, idle pooled ones included (the plain ``close`` keeps those)."""
    if hasattr(db, "close_all"):
        db.close_all()
    elif not db.is_closed():
        db.close()


def report_deadline() -> float:
    """The time.monotonic() by which a report started now must be done: REPORT_STATEMENT_TIMEOUT_MS from now."""
    return time.monotonic() + REPORT_STATEMENT_TIMEOUT_MS / 1000


def long_statements(db=database, deadline: float | None = None):
    """A transaction whose statements may run until ``deadline`` (default: REPORT_STATEMENT_TIMEOUT_MS from now);
    Postgres only, as SQLite has no statement limit (see ``statement_deadline``)."""
    real = db.obj if isinstance(db, DatabaseProxy) else db
    return real.statement_deadline(report_deadline() if deadline is None else deadline)
