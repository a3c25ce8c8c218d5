"""Migrations build exactly the schema the models declare, on SQLite and Postgres, and are safe to rerun."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from peewee import PostgresqlDatabase

import migrations
from models import TABLES, database_from_url

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextlib.contextmanager
def _open(url: str):
    """A connected peewee database for a URL, closed on exit."""
    db = database_from_url(url)
    db.connect()
    try:
        yield db
    finally:
        db.close()


def _pg_lengths(db, table: str) -> dict:
    """Declared varchar lengths on Postgres (peewee's get_columns reports only 'character varying')."""
    if not isinstance(db, PostgresqlDatabase):
        return {}
    rows = db.execute_sql("SELECT column_name, character_maximum_length FROM information_schema.columns "
                          "WHERE table_schema = current_schema() AND table_name = %s", (table,)).fetchall()
    return dict(rows)


def introspect(db, exclude=(migrations.HISTORY_TABLE,)) -> dict:
    """Tables -> columns (type, nullability, pk, length), indexes (columns, uniqueness) and foreign keys."""
    schema = {}
    for table in sorted(set(db.get_tables()) - set(exclude)):
        lengths = _pg_lengths(db, table)
        schema[table] = {
            "columns": {c.name: (c.data_type.lower(), c.null, c.primary_key, lengths.get(c.name))
                        for c in db.get_columns(table)},
            "indexes": {(i.name, tuple(i.columns), i.unique) for i in db.get_indexes(table)},
            "foreign_keys": {(f.column, f.dest_table, f.dest_column) for f in db.get_foreign_keys(table)},
        }
    return schema


def declared_schema(url: str) -> dict:
    """Introspection of a fresh database built by create_tables from the application models."""
    with _open(url) as db, db.bind_ctx(TABLES):
        db.create_tables(TABLES)
        return introspect(db)


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrated_schema_equals_models(backend, fresh_url):
    """Every migration applied to an empty database gives exactly the models' tables, columns and indexes."""
    expected = declared_schema(fresh_url(backend))
    with _open(fresh_url(backend)) as db:
        applied = migrations.apply_migrations(db)
        actual = introspect(db)
    assert applied == migrations.migration_names()
    assert set(actual) == {model._meta.table_name for model in TABLES}
    for table in expected:
        assert actual[table]["columns"] == expected[table]["columns"], table
        assert actual[table]["indexes"] == expected[table]["indexes"], table
        assert actual[table]["foreign_keys"] == expected[table]["foreign_keys"], table
    # Guard against a vacuous comparison: the models do declare indexes and a foreign key.
    assert any(index[2] for index in expected["prediction"]["indexes"])
    assert expected["outcome"]["foreign_keys"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_rerun_is_a_no_op_and_pending_shrinks_to_empty(backend, fresh_url):
    """On an empty database everything is pending; after one run nothing is, and a second run changes nothing."""
    with _open(fresh_url(backend)) as db:
        assert migrations.pending_migrations(db) == migrations.migration_names()
        assert migrations.applied_migrations(db) == []
        first = migrations.apply_migrations(db)
        schema_after_first = introspect(db, exclude=())
        assert migrations.pending_migrations(db) == []
        assert migrations.apply_migrations(db) == []
        assert introspect(db, exclude=()) == schema_after_first
        assert migrations.applied_migrations(db) == first
        recorded = db.execute_sql(f'SELECT COUNT(*) FROM "{migrations.HISTORY_TABLE}"').fetchone()[0]
    assert first and recorded == len(first)


@pytest.mark.parametrize("backend", BACKENDS)
def test_helpers_leave_a_callers_connection_open(backend, fresh_url):
    """Health checks call pending_migrations inside a request: it must not close the request's connection."""
    with _open(fresh_url(backend)) as db:
        migrations.apply_migrations(db)
        migrations.pending_migrations(db)
        assert not db.is_closed()


def test_helpers_accept_the_models_proxy(fresh_url):
    """The app passes models.database (a DatabaseProxy); the helpers unwrap it."""
    from peewee import DatabaseProxy
    proxy = DatabaseProxy()
    with pytest.raises(ValueError, match="not initialised"):
        migrations.pending_migrations(proxy)
    proxy.initialize(database_from_url(fresh_url("sqlite")))
    assert migrations.apply_migrations(proxy) == migrations.migration_names()
    assert migrations.pending_migrations(proxy) == []


def _cli(*args: str, **extra_env: str) -> subprocess.CompletedProcess:
    """Run `python -m migrations` from the project root with DATABASE_URL and DYNO unset unless given."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DYNO")}
    env.update(extra_env)
    return subprocess.run([sys.executable, "-m", "migrations", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_cli_applies_then_reports_current(backend, fresh_url):
    """--status exits 1 while something is pending, the command applies it, and a rerun does nothing."""
    url = fresh_url(backend)
    before = _cli("--database-url", url, "--status")
    assert before.returncode == 1 and "[ ] 0001_initial" in before.stdout
    first = _cli("--database-url", url)
    assert first.returncode == 0, first.stderr
    assert "applied: 0001_initial" in first.stdout
    again = _cli("--database-url", url)
    assert again.returncode == 0 and "applied:" not in again.stdout
    after = _cli("--database-url", url, "--status")
    assert after.returncode == 0 and "[x] 0001_initial" in after.stdout


@pytest.mark.slow
def test_cli_explains_a_bad_url():
    """An unsupported scheme is a one-line error with exit status 2, not a traceback."""
    result = _cli("--database-url", "mysql://nobody@localhost/x")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "postgresql://" in result.stderr


@pytest.mark.slow
def test_cli_refuses_the_sqlite_default_on_a_heroku_dyno():
    """A release phase without DATABASE_URL must fail, not migrate a throwaway file and report success."""
    result = _cli(DYNO="release.1")
    assert result.returncode == 2 and "DATABASE_URL" in result.stderr and "applied" not in result.stdout


@pytest.mark.slow
def test_cli_takes_database_url_from_the_environment(fresh_url):
    """Heroku's release phase passes the database only through DATABASE_URL."""
    url = fresh_url("sqlite")
    result = _cli(DATABASE_URL=url, DYNO="release.1")
    assert result.returncode == 0 and "applied: 0001_initial" in result.stdout
    assert _cli("--database-url", url, "--status").returncode == 0


def test_migration_files_are_frozen_copies():
    """Migrations must not import the live models, or editing a model would silently rewrite history."""
    for path in migrations.MIGRATIONS_DIR.glob("[0-9]*.py"):
        source = path.read_text()
        assert "from models" not in source and "import models" not in source, path.name


@pytest.mark.parametrize("backend", BACKENDS)
def test_0004_refreshes_the_shipped_card_a_registry_row_holds_from_an_older_release(backend, fresh_url):
    """A database migrated when the shipped card had no ``reasons`` keeps that card in its registry row, which would
    then fail to verify; 0004 gives the row the current card of that version (kept in artifacts/retired/ since
    another default shipped) and leaves others alone."""
    import importlib
    import json
    from datetime import datetime

    from models import ModelVersion
    from pipeline.scoring import registry
    from pipeline.scoring.artifact import ArtifactError
    reasons_migration = importlib.import_module("migrations.0004_decision_reasons")
    shipped = reasons_migration.SHIPPED
    with _open(fresh_url(backend)) as db:
        migrations.apply_migrations(db)
        current = (shipped / "model_card.json").read_text()
        older = json.dumps({k: v for k, v in json.loads(current).items() if k != "reasons"}, indent=2) + "\n"
        artifact, now = (shipped / "model.joblib").read_bytes(), datetime(2026, 11, 28)
        with registry.using(db):
            ModelVersion.create(version=json.loads(current)["version"], status="retired", artifact=artifact,
                                card=older, sha256=registry.digest(artifact), signature_key_id="shipped",
                                signature=registry.digest(older.encode()), created_at=now, status_changed_at=now)
        with pytest.raises(ArtifactError, match="claims to be a shipped default"):
            registry.load_version(db, shipped.name)
        assert reasons_migration.refresh_shipped_card(db) == 1
        assert registry.load_version(db, shipped.name).card["reasons"] == json.loads(current)["reasons"]
        assert reasons_migration.refresh_shipped_card(db) == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_0004_completes_a_database_that_applied_its_earlier_form(backend, fresh_url):
    """A database that applied 0004_reasons (reasons only) gets leading_reason, and then the models' schema."""
    from playhouse.migrate import SchemaMigrator
    expected = declared_schema(fresh_url(backend))
    with _open(fresh_url(backend)) as db:
        migrations.apply_migrations(db)
        migrator = SchemaMigrator.from_database(db)
        migrator.migrate(migrator.drop_column("prediction", "leading_reason"))
        db.execute_sql(f"UPDATE {migrations.HISTORY_TABLE} SET name = '0004_reasons' "
                       "WHERE name = '0004_decision_reasons'")
        assert migrations.pending_migrations(db) == ["0004_decision_reasons"]
        assert migrations.apply_migrations(db) == ["0004_decision_reasons"]
        assert introspect(db)["prediction"]["columns"] == expected["prediction"]["columns"]
