"""The database proxy every model is bound to, initialised from a URL at start-up (never on import)."""
from __future__ import annotations

from pathlib import Path

from peewee import DatabaseProxy, SqliteDatabase
from playhouse.db_url import connect

database = DatabaseProxy()

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_URL = f"sqlite:///{PROJECT_ROOT / 'instance' / 'ctrp3.sqlite3'}"

# WAL lets readers (reports) run beside the writer; busy_timeout makes concurrent writers wait instead of fail.
SQLITE_PRAGMAS = {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 10000, "synchronous": "normal"}


def database_from_url(url: str):
    """Open a peewee database for a URL: postgres://, postgresql:// (Heroku's forms) or sqlite:///path."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return SqliteDatabase(path, pragmas=SQLITE_PRAGMAS)
    if not url.startswith(("postgres://", "postgresql://")):
        raise ValueError(f"unsupported DATABASE_URL scheme in {url.split(':', 1)[0]!r}: use postgresql:// or sqlite:///")
    # Without a connect timeout an unreachable host blocks a worker until gunicorn kills it; 5 s answers 503 first.
    options = {} if "connect_timeout=" in url else {"connect_timeout": 5}
    return connect(url, autorollback=False, **options)
