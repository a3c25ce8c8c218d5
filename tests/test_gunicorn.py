"""The service through a real gunicorn process (gunicorn.conf.py, SQLite and Postgres), and the files that start it."""
from __future__ import annotations

import contextlib
import json
import os
import runpy
import signal
import time
from pathlib import Path

import psycopg2
import pytest
import requests

from models import database, database_from_url
from tests.fixtures_auth import started_gunicorn
from tests.gunicorn_process import GunicornProcess

pytestmark = pytest.mark.slow  # real servers and generated cases: minutes, not seconds

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "gunicorn.conf.py"
WORKERS = 2
HEROKU_WINDOW = 30  # seconds: Heroku's router timeout and its SIGTERM-to-SIGKILL grace period


@pytest.fixture
def server(migrated_database_url, tmp_path, request, api_key_settings):
    """gunicorn serving app:create_app() on a free loopback port; killed in a finalizer whatever happens."""
    env = {"WEB_CONCURRENCY": str(WORKERS), **api_key_settings}
    started = started_gunicorn(request, GunicornProcess(migrated_database_url, tmp_path / "gunicorn.log", env=env))
    return started.process, started.base, migrated_database_url, started.log_path


def _rows(url: str) -> list[tuple]:
    db = database_from_url(url)
    try:
        return db.execute_sql("SELECT observation_id, should_search, probability FROM prediction").fetchall()
    finally:
        db.close()


def _postgres_connections(url: str) -> int:
    """Open connections to this throwaway database, counted from the admin database."""
    admin_url, name = url.rsplit("/", 1)
    with contextlib.closing(psycopg2.connect(f"{admin_url}/postgres")) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                       (name,))
        return cursor.fetchone()[0]


def test_serves_logs_and_stops_gracefully(server, dry_run_requests, live_headers):
    """/health 200, a dry-run observation answered and logged once, request log on stdout, clean SIGTERM exit."""
    process, base, url, log_path = server
    id_, observation, _ = dry_run_requests[0]
    response = requests.post(f"{base}/should_search", json={"observation_id": f"gunicorn-{id_}",
                                                            "observation": observation}, headers=live_headers,
                             timeout=10)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["observation_id"] == f"gunicorn-{id_}" and 0 <= answer["probability"] <= 1
    rows = _rows(url)
    assert len(rows) == 1 and rows[0][0] == f"gunicorn-{id_}"
    assert bool(rows[0][1]) == answer["should_search"] and rows[0][2] == pytest.approx(answer["probability"])
    if url.startswith("postgres"):
        # Each worker keeps at most one pooled connection between requests; the master (which preloaded the app)
        # holds none, so never more than the number of workers.
        assert 1 <= _postgres_connections(url) <= WORKERS

    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=HEROKU_WINDOW) == 0
    assert time.monotonic() - began < HEROKU_WINDOW
    log = log_path.read_text()
    # The app's JSON request line, and no gunicorn access line (it would log the raw request line).
    assert '"route":"/should_search","status":200' in log and f'"observation_id":"gunicorn-{id_}"' in log
    assert "HTTP/1.1" not in log
    assert "[INFO] service: serving model" in log  # the app's own INFO lines reach the log too
    assert "Shutting down" in log and "Traceback" not in log


def _load_config(monkeypatch, **env) -> dict:
    for key in ("PORT", "WEB_CONCURRENCY"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # Reading the file creates a metrics directory and sets the variables naming it: both undone here.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    monkeypatch.setenv("CTRP3_CREATED_METRICS_DIR", "")
    config = runpy.run_path(str(CONFIG))
    created = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    assert os.path.isdir(created)
    config["on_exit"](None)
    assert not os.path.exists(created)
    return config


def test_config_fits_heroku(monkeypatch):
    """Bound to $PORT, WEB_CONCURRENCY workers, timeouts inside Heroku's 30 s, app (and model) preloaded once."""
    config = _load_config(monkeypatch, PORT="6123", WEB_CONCURRENCY="3")
    assert config["bind"] == "0.0.0.0:6123" and config["workers"] == 3
    assert 0 < config["timeout"] < HEROKU_WINDOW
    assert 0 < config["graceful_timeout"] < HEROKU_WINDOW
    assert config["preload_app"] is True and config["worker_class"] == "service.gunicorn_worker.BufferingWorker"
    assert config["accesslog"] is None  # the app's request log replaces gunicorn's access log
    defaults = _load_config(monkeypatch)
    assert defaults["bind"] == "0.0.0.0:5000" and defaults["workers"] == 3


def test_pre_fork_closes_a_connection_the_master_opened(monkeypatch, tmp_path):
    """A connection opened while preloading must not be inherited by the forked workers."""
    config = _load_config(monkeypatch)
    previous = database.obj
    database.initialize(database_from_url(f"sqlite:///{tmp_path / 'master.sqlite3'}"))
    try:
        database.connect()
        config["pre_fork"](None, None)
        assert database.is_closed()
        config["pre_fork"](None, None)  # nothing open: still fine
    finally:
        database.initialize(previous)


# Every way of starting the service must use the same config file and app factory.
START = 'gunicorn --config gunicorn.conf.py "app:create_app()"'


def _dockerfile() -> list[str]:
    """Dockerfile instructions with continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_procfile_runs_gunicorn_and_releases_migrations():
    """Heroku: web on the config file, release applies migrations before the new code serves."""
    entries = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert entries == {"web": START, "release": "python -m migrations"}


def test_dockerfile_key_properties():
    """Statically (`make docker-test` builds and runs it): python:3.11-slim by default, the pinned install in a build
    stage only, no CA certificate in the file, non-root, HEALTHCHECK, gunicorn."""
    lines = _dockerfile()
    assert lines[0] == "ARG BASE_IMAGE=python:3.11-slim"
    stages = [line for line in lines if line.startswith("FROM ")]
    assert stages == ["FROM ${BASE_IMAGE} AS build", "FROM ${BASE_IMAGE}"]
    build, final = "\n".join(lines).split("\nFROM ${BASE_IMAGE}\n")
    assert "pip install -q --no-compile -r /tmp/requirements.txt" in build and "pip install" not in final
    assert "apt-get" not in final and "strip" not in final  # build tools stay in the build stage
    assert "COPY --from=build /opt/venv /opt/venv" in final
    assert "BEGIN CERTIFICATE" not in (ROOT / "Dockerfile").read_text()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    health = next(line for line in lines if line.startswith("HEALTHCHECK"))
    assert "/health" in health and "python" in health and "curl" not in health
    cmd = next(line for line in reversed(lines) if line.startswith("CMD "))
    assert json.loads(cmd[4:]) == ["gunicorn", "--config", "gunicorn.conf.py", "app:create_app()"]
    assert any(line.startswith("ENV") and "PORT=" in line for line in lines)


def test_dockerignore_keeps_local_state_out_of_the_image():
    """The virtualenv, git history, caches, local databases and bench output never enter the build context."""
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".venv", ".git", "instance/", "bench/out/", ".pytest_cache", "**/__pycache__"} <= ignored


def test_make_and_ci_use_the_same_commands():
    """make run starts the same gunicorn command; .ci/run runs the linter, then make test, then make docker-test."""
    makefile = (ROOT / "Makefile").read_text()
    # `python -m gunicorn`: console-script shebangs break when a virtualenv is copied or cloned to another path.
    assert START.replace("gunicorn ", "$(VENV)/bin/python -m gunicorn ", 1) in makefile
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci[0] == "#!/usr/bin/env bash" and "set -euo pipefail" in ci
    targets = [line for line in ci if line.startswith("make")]
    assert "make test" in targets and targets.index("make lint") < targets.index("make test")
    assert targets[-1] == "make docker-test" and targets.index("make test") < targets.index("make docker-test")
    assert os.access(ROOT / ".ci" / "run", os.X_OK)
