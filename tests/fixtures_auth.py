"""Fixtures of API keys and of a real gunicorn: a pytest plugin of conftest.py, whose docstring lists them."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from flask.testing import FlaskClient

from service.keys import new_key

ROOT = Path(__file__).resolve().parent.parent
# Two active keys per role where rotation matters, and one revoked officer key still listed.
TEST_KEYS = {"officer": "officer", "officer-next": "officer", "analyst": "analyst", "analyst-next": "analyst",
             "admin": "admin", "revoked": "officer"}


@pytest.fixture(scope="session")
def _test_key_material() -> dict[str, tuple[str, str]]:
    return {name: new_key(role, f"test-{name}") for name, role in TEST_KEYS.items()}


@pytest.fixture(scope="session")
def api_keys(_test_key_material) -> dict[str, str]:
    """The test keys by name: officer, officer-next, analyst, analyst-next, admin, revoked (an officer's)."""
    return {name: key for name, (key, _) in _test_key_material.items()}


@pytest.fixture(scope="session")
def api_key_settings(_test_key_material) -> dict[str, str]:
    """API_KEYS and API_KEYS_REVOKED configuring ``api_keys``."""
    return {"API_KEYS": ",".join(entry for _, entry in _test_key_material.values()),
            "API_KEYS_REVOKED": "test-revoked"}


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


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_headers(api_keys) -> dict[str, str]:
    """The Authorization header of the admin key, for requests to ``live_server``."""
    return {"Authorization": _bearer(api_keys["admin"])}


@pytest.fixture
def live_server(migrated_database_url, tmp_path, api_key_settings):
    """A real gunicorn (gunicorn.conf.py, as the Procfile runs it) on a fresh migrated database; yields its URL."""
    port = _free_port()
    env = dict(os.environ, DATABASE_URL=migrated_database_url, PORT=str(port), WEB_CONCURRENCY="2",
               MAX_CONTENT_LENGTH="8192", **api_key_settings)
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "gunicorn"), "--config", "gunicorn.conf.py", "--bind",
             f"127.0.0.1:{port}", "app:create_app()"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(url: str, process, log_path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    pytest.fail(f"gunicorn did not become healthy within {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")
