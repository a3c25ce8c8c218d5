"""Fixtures of API keys and of a real gunicorn: a pytest plugin of conftest.py, whose docstring lists them."""
from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from service.keys import new_key
from tests.gunicorn_process import GunicornProcess, ServerNotReady

ROOT = Path(__file__).resolve().parent.parent
# Two active keys per role where rotation matters, and one revoked officer key still listed.
TEST_KEYS = {"officer": "officer", "officer-next": "officer", "analyst": "analyst", "analyst-next": "analyst",
             "monitor": "monitor", "admin": "admin", "revoked": "officer"}

TEST_SESSION_SECRET = "test-session-secret-" + "x" * 32


@pytest.fixture(scope="session")
def _test_key_material() -> dict[str, tuple[str, str]]:
    return {name: new_key(role, f"test-{name}") for name, role in TEST_KEYS.items()}


@pytest.fixture(scope="session")
def api_keys(_test_key_material) -> dict[str, str]:
    """The test keys by name: officer, officer-next, analyst, analyst-next, monitor, admin, revoked (an officer's)."""
    return {name: key for name, (key, _) in _test_key_material.items()}


@pytest.fixture(scope="session")
def api_key_settings(_test_key_material) -> dict[str, str]:
    """API_KEYS and API_KEYS_REVOKED configuring ``api_keys``, and the SESSION_SECRET keys require."""
    return {"API_KEYS": ",".join(entry for _, entry in _test_key_material.values()),
            "API_KEYS_REVOKED": "test-revoked", "SESSION_SECRET": TEST_SESSION_SECRET}


@pytest.fixture(autouse=True)
def _api_keys_in_environment(monkeypatch, api_key_settings):
    """Every test runs with the test keys configured, as a deployment would, and never with auth disabled."""
    for name, value in api_key_settings.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("API_AUTH_DISABLED", raising=False)


def _bearer(key: str) -> str:
    return f"Bearer {key}"


class _KeyedClient(FlaskClient):
    """A Flask test client sending ``key`` in every request unless the request sets its own Authorization."""

    key: str | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.key is not None:
            self.environ_base["HTTP_AUTHORIZATION"] = _bearer(self.key)


@pytest.fixture(scope="session")
def admin_client_class(api_keys) -> type:
    """A FlaskClient class sending the admin key (the ``app`` fixture's ``test_client_class``)."""
    return type("AdminClient", (_KeyedClient,), {"key": api_keys["admin"]})


@pytest.fixture
def client_as(api_keys):
    """``client_as(app, name)``: a test client of ``app`` sending ``api_keys[name]``, or no key when name is None."""
    def make(app, name: str | None = "admin") -> FlaskClient:
        key = None if name is None else api_keys[name]
        return type("KeyedClient", (_KeyedClient,), {"key": key})(app, app.response_class, use_cookies=True)
    return make


@pytest.fixture
def live_headers(api_keys) -> dict[str, str]:
    """The Authorization header of the admin key, for requests to ``live_server``."""
    return {"Authorization": _bearer(api_keys["admin"])}


@pytest.fixture
def live_server(migrated_database_url, tmp_path, api_key_settings, request):
    """A real gunicorn (gunicorn.conf.py, as the Procfile runs it) on a fresh migrated database; yields its URL."""
    env = {"WEB_CONCURRENCY": "2", "MAX_CONTENT_LENGTH": "8192", **api_key_settings}
    yield started_gunicorn(request, GunicornProcess(migrated_database_url, tmp_path / "gunicorn.log", env=env)).base


def started_gunicorn(request, server: GunicornProcess) -> GunicornProcess:
    """Start ``server`` and wait until it is healthy (else fail with its log); it is stopped at the test's end."""
    request.addfinalizer(server.stop)
    server.start()
    try:
        server.wait_healthy()
    except ServerNotReady as error:
        pytest.fail(str(error))
    return server
