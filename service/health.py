"""Is the service able to serve: model loaded, database answering, schema current. Framework-free."""
from __future__ import annotations

import logging

from peewee import DatabaseError, InterfaceError

from migrations import COMMAND, pending_migrations

log = logging.getLogger(__name__)


class SchemaGate:
    """Remembers once the schema is current; until then re-checks, so running migrations needs no restart."""

    def __init__(self, database):
        self.database = database
        self.current = False

    def problem(self) -> str | None:
        """Why the schema cannot be used (pending migrations), or None when it is current."""
        if self.current:
            return None
        pending = pending_migrations(self.database)
        if pending:
            return f"database schema is behind: {len(pending)} pending migration(s) ({', '.join(pending)}); " \
                   f"run `{COMMAND}`"
        self.current = True
        return None


def first_line(error: Exception) -> str:
    """'Type: first line of the message': later lines of a driver's message (DETAIL, CONTEXT) may quote row values."""
    return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"


def check(model, gate: SchemaGate) -> dict[str, str]:
    """Problems by component ('model', 'database', 'schema'); empty when healthy.

    /health is public, so the driver's message (host, port, user) goes to the log, not into the answer.
    """
    problems = {}
    if model is None:
        problems["model"] = "not loaded"
    try:
        gate.database.execute_sql("SELECT 1")
    except (DatabaseError, InterfaceError) as error:
        log.warning("health: database not answering (%s)", first_line(error))
        problems["database"] = f"not answering ({type(error).__name__}); details are in the service log"
        return problems
    try:
        schema = gate.problem()
    except (DatabaseError, InterfaceError) as error:
        log.warning("health: cannot read the schema version (%s)", first_line(error))
        schema = f"cannot read the schema version ({type(error).__name__}); details are in the service log"
    if schema:
        problems["schema"] = schema
    return problems


def log_startup_state(gate: SchemaGate) -> None:
    """One log line at start-up when the database is unreachable or its schema is behind, naming the fix."""
    try:
        problem = gate.problem()
    except (DatabaseError, InterfaceError) as error:
        log.warning("database not reachable at start-up (%s); requests will get 503 until it is", first_line(error))
        return
    finally:
        if not gate.database.is_closed():
            gate.database.close()
    if problem:
        log.error("refusing to serve until migrated: %s", problem)
