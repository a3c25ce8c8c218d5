"""What the HTTP benchmarks share: a throwaway Postgres database, gunicorn on loopback, the request bodies, the key.

Used by bench/speed.py (interleaved rounds, the gunicorn study) and its parts.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import runpy
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from migrations import apply_migrations
from models import database_from_url
from tests.gunicorn_process import GUNICORN_CONF, ROOT, SCRUBBED_ENV, GunicornProcess

DRY_RUN = ROOT / "tests" / "fixtures" / "dry_run.json"
MINIMAL_APP = "bench.service_minimal_app:create_app()"
# The minimal app plus the service's one committed insert (bench/service_floor_app.py): the service's floor.
FLOOR_APP = "bench.service_floor_app:create_app()"
DEFAULT_POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def log(message: str) -> None:
    """Progress goes to stderr, so stdout carries only the results."""
    print(message, file=sys.stderr, flush=True)


def dry_run_observations() -> list[str]:
    """The 223 dry-run observations, each re-serialised compactly as the JSON the officers' apps sent."""
    table = json.loads(DRY_RUN.read_text())
    column = table["fields"].index("observation")
    return [json.dumps(json.loads(row[column])["observation"], separators=(",", ":")) for row in table["values"]]


@dataclass(frozen=True)
class ApiKey:
    """An officer key for the run: the API_KEYS entry the server gets and the header every client sends."""

    entry: str
    header: str


def officer_key() -> ApiKey | None:
    """A fresh officer key from service.keys, or None while the service has no API keys (before issue 5)."""
    if importlib.util.find_spec("service.keys") is None:
        return None
    from service.keys import new_key

    key, entry = new_key("officer", key_id="bench-officer")
    return ApiKey(entry=entry, header=f"Bearer {key}")


@dataclass(frozen=True)
class GunicornSettings:
    """Overrides of gunicorn.conf.py given as gunicorn flags (which win over the file); None keeps the file's."""

    worker_class: str | None = None
    workers: int | None = None
    threads: int | None = None

    def flags(self) -> list[str]:
        """The gunicorn command-line flags for these overrides."""
        flags = []
        if self.worker_class:
            flags += ["--worker-class", self.worker_class]
        if self.workers:
            flags += ["--workers", str(self.workers)]
        if self.threads:
            flags += ["--threads", str(self.threads)]
        return flags

    def effective(self) -> dict:
        """What gunicorn will run with: gunicorn.conf.py (with the benchmark's environment) under the overrides."""
        saved = {name: os.environ.pop(name) for name in SCRUBBED_ENV if name in os.environ}
        try:
            conf = runpy.run_path(str(GUNICORN_CONF))
        finally:
            os.environ.update(saved)
        worker_class = self.worker_class or conf.get("worker_class", "sync")
        threads = self.threads or conf.get("threads", 1)
        return {"worker_class": worker_class, "workers": self.workers or conf.get("workers", 1),
                "threads": threads if worker_class == "gthread" else 1,
                "preload_app": bool(conf.get("preload_app", False)), "keepalive": conf.get("keepalive"),
                "overrides": self.flags()}

    def label(self) -> str:
        """A short name such as 'gthread w2 t4' for tables."""
        eff = self.effective()
        threads = f" t{eff['threads']}" if eff["worker_class"] == "gthread" else ""
        return f"{eff['worker_class']} w{eff['workers']}{threads}"


@contextlib.contextmanager
def throwaway_postgres(admin_url: str, keep: bool = False):
    """Create a uniquely named database beside admin_url's, migrated; drop it afterwards unless keep."""
    name = f"bench_service_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    url = urllib.parse.urlsplit(admin_url)._replace(path=f"/{name}").geturl()
    try:
        db = database_from_url(url)
        apply_migrations(db)
        db.close()
        yield url
    finally:
        if keep:
            log(f"kept database {url}")
        else:
            admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


_RUNNING: dict[int, GunicornProcess] = {}


def workers_cpu_s(port: int) -> float:
    """User + system CPU seconds used so far by the current workers of the gunicorn serving on port."""
    total = 0
    for pid in _RUNNING[port].workers():
        with contextlib.suppress(OSError):  # a worker replaced meanwhile
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def gunicorn(app_spec: str, database_url: str, settings: GunicornSettings, log_path: Path,
             api_key: ApiKey | None = None):
    """Serve app_spec with gunicorn.conf.py (plus settings' flags) on a free loopback port; yields the port."""
    env = {"API_KEYS": api_key.entry} if api_key is not None else {}
    with GunicornProcess(database_url, log_path, env=env, flags=settings.flags(), app=app_spec) as server:
        _RUNNING[server.port] = server
        try:
            yield server.port
        finally:
            del _RUNNING[server.port]


def check_rows(database_url: str, ok_ids: list[str], cut_off_limit: int) -> tuple[bool, str]:
    """Every 200 has exactly one row, and there are no rows beyond requests cut off in flight at a deadline."""
    with contextlib.closing(psycopg2.connect(database_url)) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT observation_id FROM prediction")
        rows = [r[0] for r in cursor.fetchall()]
    stored, answered = set(rows), set(ok_ids)
    duplicates = len(rows) - len(stored)
    missing = len(answered - stored)
    unanswered = len(stored - answered)
    ok = (duplicates == 0 and missing == 0 and len(answered) == len(ok_ids) and unanswered <= cut_off_limit)
    return ok, (f"{len(ok_ids)} answers 200, {len(rows)} rows, {duplicates} duplicate ids, {missing} answers "
                f"without a row, {unanswered} rows without a 200 (requests cut off in flight; at most "
                f"{cut_off_limit})")


def start_shadow(url: str, work_dir: Path) -> str:
    """Register the committed model again under another version and put it in shadow: every request scores twice."""
    from pipeline.scoring import registry  # noqa: PLC0415 (the model registry and artifacts: only when asked)
    from pipeline.scoring.artifact import DEFAULT_ARTIFACT_DIR  # noqa: PLC0415

    directory = work_dir / "shadow-artifact"
    shutil.copytree(DEFAULT_ARTIFACT_DIR, directory)
    card = json.loads((directory / "model_card.json").read_text())
    card["version"] = f"{card['version']}-shadow"
    (directory / "model_card.json").write_text(json.dumps(card))
    db = database_from_url(url)
    try:
        version = registry.register_candidate(db, directory, created_by="bench.speed")
        registry.set_shadow(db, version, by="bench.speed")
    finally:
        db.close()
    return version
