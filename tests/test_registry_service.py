"""The service follows the registry: promote, rollback and shadow reach a running app without a restart, each answer
and row names its version, a refused version is reported by /health while the last good one keeps answering; and
under gunicorn with load, both workers switch within 10 s with no failed request."""
from __future__ import annotations

import json
import logging
import re
import shutil
import time

import pytest

from models import Prediction, database
from pipeline.scoring import registry
from pipeline.scoring.artifact import DEFAULT_ARTIFACT_DIR, read_card
from pipeline.scoring.follow import POLL_INTERVAL_S
from service.state import EXTENSION
from tests.fault_harness import Load
from tests.gunicorn_process import GunicornProcess

DEFAULT_VERSION = read_card(DEFAULT_ARTIFACT_DIR)["version"]
SWITCH_BOUND_S = 10.0  # the bound for every worker to serve a new version


@pytest.fixture
def following_app(migrated_database_url, make_app):
    """The service as deployed: no model given, no MODEL_DIR, so it follows the registry."""
    app = make_app({"DATABASE_URL": migrated_database_url, "TESTING": True})
    yield app
    app.extensions[EXTENSION].models.stop()


def register(db, tmp_path, version: str, live_version: str = DEFAULT_VERSION, **card_changes) -> str:
    """Register the shipped pipeline under a new version (card changes applied) with a favourable comparison."""
    directory = tmp_path / version
    shutil.copytree(DEFAULT_ARTIFACT_DIR, directory)
    card = {**read_card(directory), "version": version, **card_changes,
            "comparison": {"held_out": 500, "live_version": live_version, "at_least_as_good": True}}
    (directory / "model_card.json").write_text(json.dumps(card))
    return registry.register_candidate(db, directory)


def _post(client, observation_id: str, observation: dict) -> dict:
    response = client.post("/should_search", json={"observation_id": observation_id, "observation": observation})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _row(observation_id: str) -> Prediction:
    with database.connection_context():
        return Prediction.get(Prediction.observation_id == observation_id)


def test_promote_shadow_and_rollback_reach_the_running_app(following_app, client_as, plain_db, tmp_path,
                                                           observation):
    """Each switch is served after one poll; answers, rows and /health name the versions."""
    client, follower = client_as(following_app), following_app.extensions[EXTENSION].models
    assert client.get("/health").get_json() == {"status": "ok", "model_version": DEFAULT_VERSION,
                                                 "shadow_version": None}
    first = _post(client, "o1", observation)
    assert first["model_version"] == DEFAULT_VERSION and _row("o1").shadow_version is None

    register(plain_db, tmp_path, "always-search", threshold=0.0)
    registry.promote(plain_db, "always-search", by="tester")
    follower.sync()  # the polling thread (started by the first request) may have served it a moment before
    assert follower.current[0].version == "always-search"
    second = _post(client, "o2", observation)
    assert (second["model_version"], second["should_search"]) == ("always-search", True)
    assert _row("o2").model_version == "always-search"
    client.post("/predict", json={"id": "o3", "observation": observation})  # the capstone shape: version in the row
    assert _row("o3").model_version == "always-search"

    registry.set_shadow(plain_db, DEFAULT_VERSION, by="tester")
    follower.sync()
    assert client.get("/health").get_json()["shadow_version"] == DEFAULT_VERSION
    _post(client, "o4", observation)
    row = _row("o4")
    assert (row.model_version, row.shadow_version) == ("always-search", DEFAULT_VERSION)
    assert row.shadow_probability == pytest.approx(first["probability"])
    assert row.shadow_should_search == first["should_search"]

    registry.rollback(plain_db, by="tester")  # the shadow (the default) was what always-search replaced
    follower.sync()
    assert client.get("/health").get_json() == {"status": "ok", "model_version": DEFAULT_VERSION,
                                                 "shadow_version": None}
    assert _post(client, "o5", observation)["model_version"] == DEFAULT_VERSION


def test_a_tampered_live_row_is_refused_and_the_last_good_model_keeps_answering(following_app, client_as, plain_db,
                                                                                tmp_path, observation, caplog):
    """The altered row is never loaded: the app answers with the default, logs the refusal, /health says so."""
    client, follower = client_as(following_app), following_app.extensions[EXTENSION].models
    register(plain_db, tmp_path, "cand-a")
    registry.promote(plain_db, "cand-a", by="tester")
    with registry.using(plain_db):
        row = registry.ModelVersion.get(registry.ModelVersion.version == "cand-a")
        altered = bytes(row.artifact)[:-1] + b"\0"
        registry.ModelVersion.update(artifact=altered).where(registry.ModelVersion.id == row.id).execute()
    with caplog.at_level(logging.ERROR, logger="pipeline.scoring.follow"):  # whatever level an earlier test left
        assert follower.sync() is False
    assert any("refused model cand-a" in r.getMessage() for r in caplog.records)
    assert _post(client, "t1", observation)["model_version"] == DEFAULT_VERSION
    health = client.get("/health")
    assert health.status_code == 503
    assert "cand-a refused" in health.get_json()["fields"]["model_live"]


def test_the_polling_thread_switches_within_the_bound(following_app, client_as, plain_db, tmp_path, observation):
    """Started by the first request, the thread serves a promotion within POLL_INTERVAL_S plus a load."""
    client = client_as(following_app)
    _post(client, "p1", observation)  # starts the thread in this process
    register(plain_db, tmp_path, "cand-a")
    registry.promote(plain_db, "cand-a", by="tester")
    promoted = time.monotonic()
    while client.get("/health").get_json()["model_version"] != "cand-a":
        assert time.monotonic() - promoted < SWITCH_BOUND_S, "the promotion was not followed"
        time.sleep(0.05)
    assert time.monotonic() - promoted < POLL_INTERVAL_S + 3


def test_an_unmigrated_database_serves_the_committed_default(tmp_path, make_app):
    """Before the registry exists (schema behind) the app starts on artifacts/default and keeps polling."""
    app = make_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}", "TESTING": True})
    assert app.extensions[EXTENSION].model.version == DEFAULT_VERSION
    app.extensions[EXTENSION].models.stop()


def _serving_lines(log_path, version: str) -> set[int]:
    """Pids of the workers whose log says they now serve ``version`` live."""
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return {int(pid) for pid in re.findall(rf"now serving live {re.escape(version)}, shadow \S+ \(pid (\d+)\)", text)}


def _wait_all_workers(server, log_path, version: str, since: float) -> dict[int, float]:
    """Seconds from ``since`` until each worker logged serving ``version`` (missing: never within 2 x the bound)."""
    workers, seen = set(server.workers()), {}
    while time.monotonic() - since < 2 * SWITCH_BOUND_S and set(seen) < workers:
        for pid in _serving_lines(log_path, version) & workers:
            seen.setdefault(pid, time.monotonic() - since)
        time.sleep(0.05)
    return seen


@pytest.mark.slow
def test_every_gunicorn_worker_switches_within_10_s_under_load(migrated_database_url, plain_db, tmp_path,
                                                               api_key_settings, api_keys, dry_run_requests):
    """2 workers under 3 clients: promote, then rollback; each worker logs the switch within 10 s, no request
    fails, and every answer sent after both switched names the new version, as its logged row does."""
    observations = [observation for _, observation, _ in dry_run_requests]
    log_path = tmp_path / "gunicorn.log"
    headers = {"Authorization": f"Bearer {api_keys['officer']}"}
    register(plain_db, tmp_path, "cand-a")
    with GunicornProcess(migrated_database_url, log_path, env={**api_key_settings, "WEB_CONCURRENCY": "2"}) as server, \
            Load(server.base, headers, observations) as load:
        time.sleep(1.0)
        promoted = time.monotonic()
        registry.promote(plain_db, "cand-a", by="tester")
        to_candidate = _wait_all_workers(server, log_path, "cand-a", promoted)
        candidate_everywhere = promoted + max(to_candidate.values(), default=0)
        time.sleep(1.0)
        rolled_back = time.monotonic()
        registry.rollback(plain_db, by="tester")
        to_default = _wait_all_workers(server, log_path, DEFAULT_VERSION, rolled_back)
        default_everywhere = rolled_back + max(to_default.values(), default=0)
        time.sleep(1.0)
        workers = server.workers()
    calls = list(load.calls)
    print(f"\nregistry switch under load: {len(calls)} requests, promote reached workers in "
          f"{sorted(round(s, 2) for s in to_candidate.values())} s, rollback in "
          f"{sorted(round(s, 2) for s in to_default.values())} s")
    failed = [(c.observation_id, c.status, c.error or c.body) for c in calls if c.status != 200]
    assert not failed, f"requests failed during the switches: {failed[:5]}\n{server.log_tail()}"
    assert set(to_candidate) == set(workers) and max(to_candidate.values()) < SWITCH_BOUND_S, to_candidate
    assert set(to_default) == set(workers) and max(to_default.values()) < SWITCH_BOUND_S, to_default
    expected = [("cand-a", candidate_everywhere, rolled_back), (DEFAULT_VERSION, default_everywhere, float("inf"))]
    for version, start, end in expected:
        window = [c for c in calls if start < c.sent and c.answered < end]
        assert window, f"no request was answered while {version} was live everywhere"
        assert {c.body["model_version"] for c in window} == {version}
    with plain_db.bind_ctx([Prediction]):
        stored = dict(Prediction.select(Prediction.observation_id, Prediction.model_version).tuples())
    assert all(stored[c.observation_id] == c.body["model_version"] for c in calls)
