"""The database proxy every model is bound to, initialised from a URL at start-up (never on import)."""
from __future__ import annotations

import os
from pathlib import Path

from peewee import DatabaseProxy, SqliteDatabase
from playhouse.db_url import connect

database = DatabaseProxy()

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_URL = f"sqlite:///{PROJECT_ROOT / 'instance' / 'ctrp3.sqlite3'}"

# WAL lets readers (reports) run beside the writer; busy_timeout makes concurrent writers wait instead of fail.
SQLITE_PRAGMAS = {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 10000, "synchronous": "normal"}
SCHEMES = ("postgres://", "postgresql://", "sqlite:///")


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


def database_from_url(url: str):
    """Open a peewee database for a URL: postgres://, postgresql:// (Heroku's forms) or sqlite:///path."""
    if _checked(url).startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return SqliteDatabase(path, pragmas=SQLITE_PRAGMAS)
    # Without a connect timeout an unreachable host blocks a worker until gunicorn kills it; 5 s answers 503 first.
    options = {} if "connect_timeout=" in url else {"connect_timeout": 5}
    return connect(url, autorollback=False, **options)
