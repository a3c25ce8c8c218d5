"""What differs between SQLite and Postgres, as methods of the database: callers ask it, never check its class.

``models.database`` builds every database from these classes: the plain ones here (migrations, offline reports,
tools) and the service's pools, which mix the same dialects into peewee's pooled databases.
"""
from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext

from peewee import Cast, PostgresqlDatabase, SqliteDatabase, fn


class Dialect:
    """The questions every backend answers; ``discard`` is shared, pools override it."""

    def discard(self) -> None:
        """Close this thread's connection instead of keeping it (its session state is unusable)."""
        if not self.is_closed():
            self.close()


class SqliteDialect(Dialect):
    """What SQLite does differently: callers ask the database (``database.obj.write_transaction()``)."""

    def write_transaction(self):
        """A write transaction that takes the write lock at BEGIN, so a read-then-write never meets a lock-upgrade
        deadlock (and so serialises writers: no row lock is needed)."""
        return self.atomic("IMMEDIATE")

    def locking_rows(self, query):
        """``query`` as is: the IMMEDIATE write transaction already serialises writers."""
        return query

    def statement_deadline(self, deadline: float):
        """No statement limit: SQLite has no statement timeout (its reports have no deadline)."""
        return nullcontext()

    def migration_lock(self):
        """No lock: SQLite's migrations take the database's write lock in their own transactions."""
        return nullcontext()

    def floor_integer(self, expression):
        """floor(expression) as an integer, for expressions >= 0 (SQLite's CAST truncates)."""
        return Cast(expression, "INTEGER")

    @contextmanager
    def streaming_cursor(self, chunk_rows: int):
        """A cursor whose ``fetchmany`` reads rows as it goes (SQLite's own cursors do), for reading a big log."""
        cursor = self.cursor()
        try:
            yield cursor
        finally:
            cursor.close()


# Any fixed 64-bit key: it serialises concurrent `python -m migrations` runs against one Postgres database.
_MIGRATION_LOCK_KEY = 0x43545250330001


class PostgresDialect(Dialect):
    """What Postgres does differently (see SqliteDialect for the questions)."""

    def write_transaction(self):
        """A plain transaction: writers are serialised by row locks (``locking_rows``)."""
        return self.atomic()

    def locking_rows(self, query):
        """``query ... FOR UPDATE``: the row stays locked until the write transaction ends."""
        return query.for_update()

    @contextmanager
    def statement_deadline(self, deadline: float):
        """A transaction whose statements may run until ``deadline`` (time.monotonic()); past it the limit is 1 ms,
        so the statement is cancelled (an OperationalError: 503). SET LOCAL ends with the transaction, so a pooled
        connection goes back with the request path's limit."""
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        with self.atomic():
            self.execute_sql(f"SET LOCAL statement_timeout = {max(1, remaining_ms)}")
            yield

    @contextmanager
    def migration_lock(self):
        """Hold an advisory lock so two release processes cannot apply the same migration twice."""
        self.execute_sql("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK_KEY,))
        try:
            yield
        finally:
            self.execute_sql("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK_KEY,))

    def floor_integer(self, expression):
        """floor(expression) as an integer (Postgres rounds on CAST, so FLOOR first)."""
        return Cast(fn.FLOOR(expression), "INTEGER")

    @contextmanager
    def streaming_cursor(self, chunk_rows: int):
        """A server-side (named) cursor sending ``chunk_rows`` rows per round trip, so a big SELECT is never held
        whole in memory. peewee's connections are in autocommit mode, where psycopg2 takes a named cursor only
        WITH HOLD; inside the explicit transaction it streams all the same."""
        with self.atomic():
            cursor = self.connection().cursor(name="streaming_cursor", withhold=True)
            cursor.itersize = chunk_rows
            try:
                yield cursor
            finally:
                cursor.close()


class PlainSqliteDatabase(SqliteDialect, SqliteDatabase):
    """SQLite for migrations, offline reports and tools: one connection, no pool."""


class PlainPostgresqlDatabase(PostgresDialect, PostgresqlDatabase):
    """Postgres for migrations, offline reports and tools: no pool, no statement limit (migrations run long)."""
