"""Shared fixtures: a fresh database per test on SQLite and on Postgres, the app on it, and the dry-run requests.

Reusable by every test module:
- ``backend``: "sqlite" or "postgres" (parametrised; Postgres tests carry the ``postgres`` marker);
- ``fresh_url``: a factory ``make(backend) -> url`` of EMPTY throwaway databases, dropped after the test;
- ``database_url``: an EMPTY throwaway database of that backend, dropped after the test;
- ``migrated_database_url``: a fresh database with every migration applied (Postgres: copied from
  ``postgres_template``, migrated once per session);
- ``artifact``: the committed model, loaded once per session;
- ``app`` / ``client``: the service on ``migrated_database_url`` and its Flask test client;
- ``make_app``: ``make_app(settings, model=...)``, create_app for a test needing its own app; pools closed after;
- ``log_counts``: a function returning {"prediction": n, "outcome": n} for the app's database;
- ``dry_run_requests``: the 223 dry-run requests as (id, observation dict, true_class or None);
- ``dry_run_bodies``: the same as (id, raw request body exactly as sent, true_class or None);
- ``observation``: one valid observation dict (tests/fixtures/observation.json);
- ``assert_error``: the one assertion of the JSON error shape;
- ``live_server``: a real gunicorn (gunicorn.conf.py) on ``migrated_database_url``; yields its base URL; its
  stdout and stderr go to ``tmp_path / "gunicorn.log"``;
- ``api_keys``: {name: key} for "officer", "officer-next", "analyst", "analyst-next", "monitor", "admin" and
  "revoked" (an officer key listed in API_KEYS but revoked); ``api_key_settings``: the matching API_KEYS /
  API_KEYS_REVOKED.
  Every test runs with them in the environment, so any create_app() or gunicorn started by a test needs keys;
- ``client`` (any ``app.test_client()`` of the ``app`` fixture) sends the admin key; ``client_as(app, name)`` is a
  test client sending ``api_keys[name]`` (None: no Authorization header); ``live_headers``: the admin header.
The key and gunicorn fixtures live in tests/fixtures_auth.py, loaded as a plugin.

Markers: ``slow`` (a real gunicorn, a command run as a subprocess, fuzzing: ``make test-fast`` leaves them out),
added here to every test that uses ``live_server`` and written on the others; ``postgres`` on every Postgres case.

Postgres comes from TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test). When it is
unreachable its tests are skipped, except under CI=true, where they fail.
"""
from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path

import psycopg2
import pytest

from migrations import apply_migrations
from models import Outcome, Prediction, close_pool, database, database_from_url
from pipeline.scoring.artifact import load_artifact
from service import create_app

pytest_plugins = ["tests.fixtures_auth"]  # api_keys, client_as, live_server ... (listed above)
ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def pytest_collection_modifyitems(items):
    """Mark as slow every test that starts a real server or a subprocess (see the module docstring)."""
    for item in items:
        if "live_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """TEST_POSTGRES_URL once it answers; skips when it does not, unless CI is set."""
    try:
        psycopg2.connect(POSTGRES_URL, connect_timeout=5).close()
    except psycopg2.OperationalError as error:
        reason = (f"PostgreSQL at {POSTGRES_URL} is unreachable ({str(error).strip()}); "
                  "start it or set TEST_POSTGRES_URL")
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so Postgres tests must run: {reason}")
        pytest.skip(reason)
    return POSTGRES_URL


@contextlib.contextmanager
def throwaway_postgres(admin_url: str, prefix: str = "h3a_test", template: str | None = None):
    """Create a uniquely named database beside admin_url's (copied from ``template`` if given), yield its URL,
    and drop it afterwards even if connections are still open."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    try:
        admin.cursor().execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        try:
            yield admin_url.rsplit("/", 1)[0] + "/" + name
        finally:
            admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """The database backend of this test run: "sqlite" or "postgres"."""
    return request.param


@pytest.fixture
def fresh_url(request, tmp_path):
    """A factory of URLs of EMPTY databases of a given backend, each dropped at teardown."""
    stack = contextlib.ExitStack()
    request.addfinalizer(stack.close)

    def make(backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / f'{uuid.uuid4().hex}.sqlite3'}"
        return stack.enter_context(throwaway_postgres(request.getfixturevalue("postgres_admin_url")))

    return make


@pytest.fixture
def database_url(backend, fresh_url) -> str:
    """URL of an empty database of this backend (a tmp_path file or a throwaway Postgres database)."""
    return fresh_url(backend)


def _migrate(url: str) -> None:
    db = database_from_url(url)
    try:
        apply_migrations(db)
    finally:
        db.close()


@pytest.fixture(scope="session")
def postgres_template(postgres_admin_url):
    """Name of a Postgres database migrated once per session; copying it is faster than migrating per test."""
    with throwaway_postgres(postgres_admin_url, prefix="h3a_template") as url:
        _migrate(url)
        yield url.rsplit("/", 1)[1]


@pytest.fixture
def migrated_database_url(backend, tmp_path, request) -> str:
    """A fresh database of this backend with every migration applied, as the release phase would leave it."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'service.sqlite3'}"
        _migrate(url)
        return url
    template = request.getfixturevalue("postgres_template")
    stack = contextlib.ExitStack()
    request.addfinalizer(stack.close)
    return stack.enter_context(throwaway_postgres(request.getfixturevalue("postgres_admin_url"), template=template))


@pytest.fixture
def plain_db(migrated_database_url):
    """A plain (unpooled) peewee database on the test's migrated database: what the CLIs and tools use."""
    db = database_from_url(migrated_database_url)
    yield db
    db.close()


@pytest.fixture(scope="session")
def artifact():
    """The committed model artifact, loaded once per session."""
    return load_artifact()


@pytest.fixture
def app(migrated_database_url, artifact, admin_client_class):
    """The service on a fresh migrated database, with the session's artifact; its test clients send the admin key."""
    app = create_app({"DATABASE_URL": migrated_database_url, "TESTING": True}, model=artifact)
    db = database.obj  # this app's pool: a later create_app in the test points the proxy elsewhere
    app.test_client_class = admin_client_class
    yield app
    close_pool(db)  # idle pooled connections too, so the throwaway database can be dropped


@pytest.fixture
def make_app():
    """``make_app(settings, model=...)``: create_app for a test needing an app of its own; its pool closed after."""
    pools = []

    def make(settings: dict, **kwargs):
        app = create_app(settings, **kwargs)
        pools.append(database.obj)
        return app
    yield make
    for db in pools:
        close_pool(db)


@pytest.fixture
def client(app):
    """Flask test client of ``app``, sending the admin key."""
    return app.test_client()


@pytest.fixture
def log_counts(app):
    """A function counting the rows of the request log and the outcome history in the app's database."""
    def count() -> dict[str, int]:
        opened = database.is_closed()
        if opened:
            database.connect()
        try:
            return {"prediction": Prediction.select().count(), "outcome": Outcome.select().count()}
        finally:
            if opened:
                database.close()
    return count


def _dry_run_rows() -> list[dict]:
    data = json.loads((FIXTURES / "dry_run.json").read_text())
    return [dict(zip(data["fields"], row)) for row in data["values"]]


@pytest.fixture(scope="session")
def dry_run_bodies() -> list[tuple[int, str, int | None]]:
    """(id, request body exactly as the capstone client sent it, true_class or None) for all 223 requests."""
    return [(row["observation_id"], row["observation"], row["true_class"]) for row in _dry_run_rows()]


@pytest.fixture(scope="session")
def dry_run_requests(dry_run_bodies) -> list[tuple[int, dict, int | None]]:
    """(id, observation dict, true_class or None) for all 223 dry-run requests."""
    return [(id_, json.loads(body)["observation"], label) for id_, body, label in dry_run_bodies]


@pytest.fixture(scope="session")
def observation() -> dict:
    """One valid observation (Darien, 2014) as a client would send it."""
    return json.loads((FIXTURES / "observation.json").read_text())


ERROR_KEYS = {"status", "error", "message", "fields"}


def _assert_error(response, status: int, error: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == ERROR_KEYS
    assert body["status"] == status
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["fields"], dict)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in body["fields"].items())
    if error is not None:
        assert body["error"] == error, body
    return body


@pytest.fixture(scope="session")
def assert_error():
    """The one assertion of the error shape: ``assert_error(response, status, short_code=None) -> body``."""
    return _assert_error
