"""/metrics: the counts after a known sequence of requests, in one process and summed across gunicorn's workers."""
from __future__ import annotations

import concurrent.futures
import os
import signal
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from service import monitoring
from tests.gunicorn_process import GunicornProcess

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/nowhere"
# What a dyno exports at most (the count is worked out in service/monitoring.py's docstring); the gunicorn test
# prints what a scrape after its traffic holds.
SERIES_BOUND = 400


def scrape(text: str) -> dict[tuple, float]:
    """{(sample name, sorted label items): value} of a Prometheus text exposition."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    """One sample's value; 0 when the series does not exist (yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def series_count(text: str) -> int:
    """The number of series (sample lines) in an exposition."""
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def _known_sequence(post, get, observation, prefix: str) -> None:
    """4 new decisions (one also retried), 2 outcomes (one repeated), 1 refused body, 1 unknown URL, 1 /health."""
    for number in range(4):
        assert post("/should_search", {"observation_id": f"{prefix}-{number}", "observation": observation}) == 200
    assert post("/should_search", {"observation_id": f"{prefix}-0", "observation": observation}) == 200  # replay
    assert post("/search_result", {"observation_id": f"{prefix}-0", "contraband_found": True}) == 200
    assert post("/search_result", {"observation_id": f"{prefix}-0", "contraband_found": True}) == 200  # repeat
    assert post("/should_search", {"observation_id": f"{prefix}-bad", "observation": {"SubjectAge": "x"}}) == 400
    assert get("/nowhere") == 404
    assert get("/health") == 200


def _check_known_sequence(samples: dict, model_version: str, times: int = 1) -> None:
    answers = [value(samples, "ctrp3_decisions_total", model_version=model_version, should_search=answer)
               for answer in ("true", "false")]
    assert sorted(answers) == [0, 4 * times]  # one observation, so one answer, counted once per new id
    assert value(samples, "ctrp3_decision_replays_total") == 1 * times
    assert value(samples, "ctrp3_outcomes_total", contraband_found="true") == 2 * times
    requests_total = "ctrp3_http_requests_total"
    assert value(samples, requests_total, route="/should_search", method="POST", status="200") == 5 * times
    assert value(samples, requests_total, route="/should_search", method="POST", status="400") == 1 * times
    assert value(samples, requests_total, route="/search_result", method="POST", status="200") == 2 * times
    assert value(samples, requests_total, route="unmatched", method="GET", status="404") == 1 * times
    assert value(samples, "ctrp3_http_request_duration_seconds_count", route="/should_search") == 6 * times
    assert value(samples, "ctrp3_http_request_duration_seconds_sum", route="/should_search") > 0
    assert value(samples, "ctrp3_model_info", version=model_version) == 1


def test_known_sequence_in_one_process(app, client_as, observation, artifact):
    """The Flask app alone: each count is what the requests made, and labels hold nothing from the bodies."""
    officer, analyst = client_as(app, "officer"), client_as(app, "analyst")
    posts = {"/should_search": officer, "/search_result": analyst}
    marked = {**observation, "Department Name": "Zzmarkedtown", "ReportingOfficerIdentificationID": "OFFICER9876"}
    _known_sequence(lambda path, body: posts[path].post(path, json=body).status_code,
                    lambda path: officer.get(path).status_code, marked, "seq-marker-id")
    response = client_as(app, "monitor").get("/metrics")
    assert response.status_code == 200 and response.content_type.startswith("text/plain; version=0.0.4")
    text = response.get_data(as_text=True)
    _check_known_sequence(scrape(text), artifact.version)
    for secret in ("Zzmarkedtown", "OFFICER9876", "seq-marker-id", "test-officer", "nowhere"):
        assert secret not in text, f"{secret!r} reached a label"
    assert series_count(text) <= SERIES_BOUND


def test_503_causes_are_counted(make_app, artifact, client_as, tmp_path):
    """A database that refuses connections and a schema behind its migrations are each counted by cause."""
    down = make_app({"DATABASE_URL": UNREACHABLE}, model=artifact)
    assert client_as(down, "officer").post("/should_search", json={}).status_code == 503
    assert client_as(down, None).get("/health").status_code == 503
    samples = scrape(client_as(down, "admin").get("/metrics").get_data(as_text=True))
    assert value(samples, "ctrp3_unavailable_total", cause="database") == 1
    assert value(samples, "ctrp3_unavailable_total", cause="unhealthy") == 1
    behind = make_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}"}, model=artifact)
    assert client_as(behind, "officer").post("/should_search", json={}).status_code == 503
    samples = scrape(client_as(behind, "admin").get("/metrics").get_data(as_text=True))
    assert value(samples, "ctrp3_unavailable_total", cause="schema_out_of_date") == 1


def test_metrics_need_no_database(make_app, artifact, client_as):
    """/metrics answers while the database is down: the scrape must show the outage, not suffer it."""
    down = make_app({"DATABASE_URL": UNREACHABLE}, model=artifact)
    assert client_as(down, "monitor").get("/metrics").status_code == 200


def test_model_switch_is_counted_and_published():
    """The registry's hook: a switch counts once and moves the info gauge to the new version."""
    metrics = monitoring.Metrics(registry=monitoring.CollectorRegistry())
    metrics.model_loaded("v1")
    metrics.publish_once_per_process()
    metrics.model_loaded("v2")
    metrics.model_loaded("v2")  # the same version again is no switch
    samples = scrape(metrics.exposition().decode())
    assert value(samples, "ctrp3_model_switches_total") == 1
    assert value(samples, "ctrp3_model_info", version="v1") == 0
    assert value(samples, "ctrp3_model_info", version="v2") == 1
    metrics.shadow_compared("v2", "v3", agree=True)
    assert value(scrape(metrics.exposition().decode()), "ctrp3_shadow_comparisons_total", live_version="v2",
                 shadow_version="v3", agree="true") == 1


def test_pool_waits_are_observed(make_app, artifact, tmp_path):
    """A connect that finds every pooled connection in use reports its wait, also when it gives up."""
    from models import database

    app = make_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'pool.sqlite3'}"}, model=artifact)
    metrics = app.extensions[monitoring.EXTENSION]
    pool = database.obj
    pool._max_connections, pool._wait_timeout = 1, 0.2
    holder = concurrent.futures.ThreadPoolExecutor(1)
    try:
        holder.submit(pool.connect).result()  # another thread holds the only connection
        with pytest.raises(Exception, match="connection pool exhausted"):
            pool.connect()
        samples = scrape(metrics.exposition().decode())
        assert value(samples, "ctrp3_db_pool_wait_seconds_count") == 1
        assert value(samples, "ctrp3_db_pool_wait_seconds_sum") >= 0.2
        holder.submit(pool.close).result()
        pool.connect()  # a free connection: no wait recorded
        pool.close()
        assert value(scrape(metrics.exposition().decode()), "ctrp3_db_pool_wait_seconds_count") == 1
    finally:
        holder.shutdown()


def _metric_files(directory: Path) -> set[int]:
    """Pids that wrote counter files."""
    return {int(path.stem.rsplit("_", 1)[1]) for path in directory.glob("counter_*.db")}


@pytest.mark.slow
@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
def test_known_sequence_summed_across_gunicorn_workers(migrated_database_url, api_keys, api_key_settings,
                                                       observation, artifact, tmp_path):
    """A real gunicorn, 2 workers: the scrape sums both workers' counts, ignores a previous run's files, and keeps a
    killed worker's counts (totals never go down) while its replacement serves."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_999999.db").write_bytes(b"stale")  # a previous run's file: removed at start
    environment = {**api_key_settings, "WEB_CONCURRENCY": "2", "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    server = GunicornProcess(migrated_database_url, tmp_path / "gunicorn.log", env=environment)
    with server:
        assert not (directory / "counter_999999.db").exists()
        keys = {path: {"Authorization": f"Bearer {api_keys[role]}"}
                for path, role in (("/should_search", "officer"), ("/search_result", "analyst"), ("", "monitor"))}

        def post(path, body):
            return requests.post(server.base + path, json=body, headers=keys[path], timeout=30).status_code

        def get(path):
            return requests.get(server.base + path, headers=keys["/should_search"], timeout=30).status_code

        # Three copies of the sequence at once, so both workers serve some of it.
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda n: _known_sequence(post, get, observation, f"gw{n}"), range(3)))
        workers = server.workers()
        assert len(workers) == 2 and _metric_files(directory) >= set(workers), "both workers counted requests"
        text = requests.get(server.base + "/metrics", headers=keys[""], timeout=30).text
        samples = scrape(text)
        _check_known_sequence(samples, artifact.version, times=3)
        print(f"\n/metrics after 3 x the known sequence on 2 workers: {series_count(text)} series, "
              f"{len(text)} bytes")
        assert series_count(text) <= SERIES_BOUND

        assert (directory / f"gauge_livemax_{workers[0]}.db").exists()  # each worker published its live model
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while set(server.workers()) & {workers[0]} or len(server.workers()) < 2:
            assert time.monotonic() < deadline, "gunicorn did not replace the killed worker"
            time.sleep(0.1)
        assert not (directory / f"gauge_livemax_{workers[0]}.db").exists(), "child_exit kept a dead worker's gauge"
        assert (directory / f"counter_{workers[0]}.db").exists(), "a dead worker's counts must stay"
        after = scrape(requests.get(server.base + "/metrics", headers=keys[""], timeout=30).text)
        _check_known_sequence(after, artifact.version, times=3)


def test_shadow_agreement_and_a_live_switch_through_the_app(migrated_database_url, make_app, artifact, client_as,
                                                            observation):
    """With a shadow model each new decision counts one comparison (the same model as shadow: always agreeing);
    when the serving pair changes, the next request counts the switch and moves the info gauge."""
    from dataclasses import replace

    from pipeline.scoring.follow import ServingModels

    models = ServingModels(artifact, artifact)
    app = make_app({"DATABASE_URL": migrated_database_url}, model=models)
    officer, monitor = client_as(app, "officer"), client_as(app, "monitor")
    for number in range(3):
        assert officer.post("/should_search", json={"observation_id": f"shadowed-{number}",
                                                    "observation": observation}).status_code == 200
    samples = scrape(monitor.get("/metrics").get_data(as_text=True))
    assert value(samples, "ctrp3_shadow_comparisons_total", live_version=artifact.version,
                 shadow_version=artifact.version, agree="true") == 3
    assert value(samples, "ctrp3_model_switches_total") == 0
    models.current = (replace(artifact, card={**artifact.card, "version": "switched-in"}), None)  # as the follower
    assert officer.get("/health").status_code == 200
    samples = scrape(monitor.get("/metrics").get_data(as_text=True))
    assert value(samples, "ctrp3_model_switches_total") == 1
    assert value(samples, "ctrp3_model_info", version="switched-in") == 1
    assert value(samples, "ctrp3_model_info", version=artifact.version) == 0
