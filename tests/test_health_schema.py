"""The app refuses to serve on a database whose schema is behind the code, and says which command fixes it."""
from __future__ import annotations

import logging
import shutil

import pytest

import migrations
from models import database_from_url
from service import create_app

DATA_ENDPOINTS = ["/should_search", "/search_result", "/predict", "/update"]


@pytest.fixture
def observation_body(dry_run_requests) -> dict:
    """A valid /should_search body built from the first dry-run request."""
    id_, observation, _ = dry_run_requests[0]
    return {"observation_id": f"health-{id_}", "observation": observation}


def _bodies(observation_body: dict) -> dict:
    """A well-formed body per data endpoint, so a 503 can only come from the schema gate."""
    oid, obs = observation_body["observation_id"], observation_body["observation"]
    return {"/should_search": observation_body, "/search_result": {"observation_id": oid, "contraband_found": True},
            "/predict": {"id": oid, "observation": obs}, "/update": {"id": oid, "true_class": 1}}


def _migrate(url: str) -> list[str]:
    db = database_from_url(url)
    try:
        return migrations.apply_migrations(db)
    finally:
        db.close()


def _prediction_rows(url: str) -> int:
    db = database_from_url(url)
    try:
        return db.execute_sql("SELECT COUNT(*) FROM prediction").fetchone()[0]
    finally:
        db.close()


def _assert_refuses(client, observation_body, assert_error, pending: list[str]) -> None:
    """/health and every data endpoint answer 503 naming the pending migrations and the command to run."""
    body = assert_error(client.get("/health"), 503)
    assert migrations.COMMAND in body["message"] and "schema" in body["fields"]
    assert all(name in body["message"] for name in pending)
    for path, payload in _bodies(observation_body).items():
        refused = assert_error(client.post(path, json=payload), 503)
        assert migrations.COMMAND in refused["message"], path


def test_empty_database_is_refused_until_migrated(database_url, artifact, observation_body, assert_error, caplog,
                                                  client_as):
    """A never-migrated database: 503 everywhere with the command in the answer and in the start-up log; then 200."""
    with caplog.at_level(logging.INFO):
        app = create_app({"DATABASE_URL": database_url, "TESTING": True}, model=artifact)
    assert any(migrations.COMMAND in r.getMessage() and r.levelno >= logging.WARNING for r in caplog.records)
    client = client_as(app)
    _assert_refuses(client, observation_body, assert_error, migrations.migration_names())

    assert _migrate(database_url) == migrations.migration_names()
    health = client.get("/health")
    assert health.status_code == 200 and health.get_json()["status"] == "ok"
    assert client.post("/should_search", json=observation_body).status_code == 200
    assert _prediction_rows(database_url) == 1


def test_schema_behind_the_code_is_refused(database_url, artifact, observation_body, assert_error, tmp_path,
                                           monkeypatch, client_as):
    """The previous deployment's failure: code ships a migration production has not run. 503 until it is applied."""
    _migrate(database_url)
    ahead = tmp_path / "migrations"
    shutil.copytree(migrations.MIGRATIONS_DIR, ahead, ignore=shutil.ignore_patterns("__pycache__"))
    (ahead / "9999_future_column.py").write_text(
        '"""A later migration the database has not seen."""\nfrom peewee import TextField\n\n\n'
        "def up(migrator, db):\n"
        '    migrator.migrate(migrator.add_column("prediction", "future_note", TextField(null=True)))\n')
    monkeypatch.setattr(migrations, "MIGRATIONS_DIR", ahead)

    client = client_as(create_app({"DATABASE_URL": database_url, "TESTING": True}, model=artifact))
    _assert_refuses(client, observation_body, assert_error, ["9999_future_column"])
    assert _prediction_rows(database_url) == 0

    assert _migrate(database_url) == ["9999_future_column"]
    assert client.get("/health").status_code == 200
    assert client.post("/should_search", json=observation_body).status_code == 200
    assert _prediction_rows(database_url) == 1
