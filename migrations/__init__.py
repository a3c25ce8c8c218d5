"""Numbered, forward-only schema migrations (peewee's playhouse runner), recorded in the `schema_version` table."""
from __future__ import annotations

import contextlib
from pathlib import Path

from peewee import Database, Proxy
from playhouse.migrations import Migration, Runner

MIGRATIONS_DIR = Path(__file__).resolve().parent
HISTORY_TABLE = "schema_version"
COMMAND = "python -m migrations"

__all__ = ["apply_migrations", "pending_migrations", "applied_migrations", "migration_names", "COMMAND",
           "HISTORY_TABLE", "MIGRATIONS_DIR"]


def _real(db) -> Database:
    """The concrete database behind a DatabaseProxy (the runner needs the real class to pick its migrator)."""
    if isinstance(db, Proxy):
        if db.obj is None:
            raise ValueError("the database proxy is not initialised: call database.initialize(...) first")
        return db.obj
    return db


@contextlib.contextmanager
def _connected(db: Database):
    """Use the caller's open connection (e.g. a request's), or open one and close it again afterwards."""
    opened = db.is_closed()
    if opened:
        db.connect()
    try:
        yield
    finally:
        if opened:
            db.close()


def _runner(db: Database) -> Runner:
    """A playhouse runner over this package's numbered files and the schema_version history table."""
    return Runner(db, directory=str(MIGRATIONS_DIR), table_name=HISTORY_TABLE)


def migration_names() -> list[str]:
    """Names of every migration file shipped with the code, in the order they apply."""
    return [m.name for m in Migration.load_directory(str(MIGRATIONS_DIR))]


def applied_migrations(db) -> list[str]:
    """Names recorded in schema_version (including any the code no longer ships), in numeric order."""
    db = _real(db)
    with _connected(db):
        return [m.name for m in _runner(db).status() if m.applied]


def pending_migrations(db) -> list[str]:
    """Names of shipped migrations not yet applied to this database; empty means the schema is current."""
    db = _real(db)
    with _connected(db):
        return [m.name for m in _runner(db).status() if m.path is not None and not m.applied]


def apply_migrations(db) -> list[str]:
    """Apply every pending migration in order, each in its own transaction; the names applied (safe to rerun)."""
    db = _real(db)
    with _connected(db), db.migration_lock():
        return _runner(db).up()
