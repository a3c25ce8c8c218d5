"""CLI: apply pending migrations (`python -m migrations`) or list them (`--status`); the Procfile's release phase."""
from __future__ import annotations

import argparse
import sys

from migrations import COMMAND, HISTORY_TABLE, applied_migrations, apply_migrations, migration_names
from models import DEFAULT_SQLITE_URL, database_from_url, resolve_database_url


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description=f"Apply pending schema migrations (recorded in the {HISTORY_TABLE!r} table). Safe to run again.")
    parser.add_argument("--database-url",
                        help="postgres://, postgresql:// or sqlite:///path (default: $DATABASE_URL, else the "
                             f"embedded SQLite file {DEFAULT_SQLITE_URL}, which is refused on a Heroku dyno)")
    parser.add_argument("--status", action="store_true",
                        help="list applied [x] and pending [ ] migrations, change nothing; exit 1 if any is pending")
    return parser


def _status(db) -> int:
    """Print each migration with its state; 1 when something is pending so a deploy script can gate on it."""
    applied = set(applied_migrations(db))
    shipped = migration_names()
    for name in shipped:
        print(f"[{'x' if name in applied else ' '}] {name}")
    for name in sorted(applied - set(shipped)):
        print(f"[?] {name}  (recorded in the database but not shipped with this code: is the code older?)")
    return 1 if set(shipped) - applied else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: returns the process exit status."""
    args = _parser().parse_args(argv)
    try:
        url = resolve_database_url(args.database_url)
        db = database_from_url(url)
    except ValueError as exc:  # DatabaseUrlError included: a bad scheme, or the SQLite default on a dyno
        print(f"error: {exc}", file=sys.stderr)
        return 2
    where = url.split("@")[-1]  # never echo a password from the URL
    try:
        if args.status:
            return _status(db)
        print(f"migrating {where} ...", file=sys.stderr)
        applied = apply_migrations(db)
    except Exception as exc:  # any driver error: say what failed and how to fix it, without a traceback
        print(f"error: migrating {where} failed: {type(exc).__name__}: {exc}\n"
              "check that the database is reachable and DATABASE_URL is right, then rerun "
              f"`{COMMAND}`", file=sys.stderr)
        return 2
    for name in applied:
        print(f"applied: {name}")
    print(f"schema is current ({len(applied)} applied now)." if applied else "schema is current: nothing to do.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
