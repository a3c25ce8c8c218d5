"""Two web instances ("dynos") of the service on one Postgres: idempotency across them, one killed under load, and
the connections each one holds. Each instance is gunicorn.conf.py with 2 workers on its own port."""
from __future__ import annotations

import concurrent.futures
import itertools
import json
import threading
import time

import psycopg2
import pytest
import requests

from tests.fault_harness import post
from tests.gunicorn_process import GunicornProcess

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", [pytest.param("postgres",
                                                                                 marks=pytest.mark.postgres)])]


@pytest.fixture
def two_instances(migrated_database_url, api_key_settings, tmp_path):
    """Two gunicorn instances on the same migrated Postgres database; yields them, stops what is left after."""
    instances = [GunicornProcess(migrated_database_url, tmp_path / f"gunicorn-{n}.log",
                                 env={**api_key_settings, "WEB_CONCURRENCY": "2"}) for n in (1, 2)]
    try:
        for instance in instances:
            instance.start()
        for instance in instances:
            instance.wait_healthy()
        yield instances
    finally:
        for instance in instances:
            instance.stop()


def _rows(url: str, observation_id: str | None = None) -> dict[str, tuple]:
    """{observation_id: (should_search, probability, model_version)} of the prediction table (one id, or all)."""
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        where, args = ("WHERE observation_id = %s", (observation_id,)) if observation_id else ("", ())
        cursor.execute(f"SELECT observation_id, should_search, probability, model_version FROM prediction {where}",
                       args)
        rows = cursor.fetchall()
    connection.close()
    assert len({row[0] for row in rows}) == len(rows), "an observation id holds more than one row"
    return {row[0]: tuple(row[1:]) for row in rows}


def _connections(url: str) -> int:
    """Connections to the test database, this one excluded."""
    database = url.rsplit("/", 1)[1]
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                       (database,))
        count = cursor.fetchone()[0]
    connection.close()
    return count


def test_twenty_identical_requests_across_both_give_one_row(two_instances, migrated_database_url, api_keys,
                                                           observation):
    """20 concurrent copies of one request, alternating between the instances: one row, 20 identical answers."""
    headers = {"Authorization": f"Bearer {api_keys['officer']}"}
    body = {"observation_id": "twin-dyno-1", "observation": observation}
    start = threading.Barrier(20)

    def send(number: int) -> tuple[int, str]:
        start.wait()
        response = requests.post(f"{two_instances[number % 2].base}/should_search", json=body, headers=headers,
                                 timeout=30)
        return response.status_code, response.text

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(send, range(20)))
    assert {status for status, _ in answers} == {200}
    assert len({text for _, text in answers}) == 1, "the instances answered differently"
    rows = _rows(migrated_database_url, "twin-dyno-1")
    answer = json.loads(answers[0][1])
    assert rows == {"twin-dyno-1": (answer["should_search"], answer["probability"], answer["model_version"])}


def test_killing_one_instance_under_load_loses_no_accepted_request(two_instances, migrated_database_url, api_keys,
                                                                   dry_run_requests):
    """Clients spread over both instances, as a router would; one instance is SIGKILLed mid-load (master and
    workers). A request that got no answer is retried with the same id on the survivor, as a client must. Every
    id answered 200 has exactly one row with the answer given, and the survivor serves on."""
    headers = {"Authorization": f"Bearer {api_keys['officer']}"}
    observations = [observation for _, observation, _ in dry_run_requests]
    survivor, victim = two_instances
    alive = [survivor, victim]
    answered: dict[str, dict] = {}
    retries, stop = [], threading.Event()
    max_connections = [0]

    def client(n: int) -> None:
        for i in itertools.count():
            if stop.is_set():
                return
            observation_id, index = f"dyno-load-{n}-{i}", (n * 31 + i) % len(observations)
            for attempt in range(5):
                instance = alive[(n + i + attempt) % len(alive)]
                call = post(instance.base, headers, observation_id, observations, index)
                if call.status == 200:
                    answered[observation_id] = call.body
                    break
                retries.append((observation_id, call.status, call.error[:80]))
                time.sleep(0.05)
            else:
                pytest.fail(f"{observation_id} never answered 200: {retries[-5:]}")

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(client, n) for n in range(4)]
        time.sleep(3)
        before_kill = len(answered)
        max_connections[0] = _connections(migrated_database_url)
        victim.kill()  # SIGKILL to the whole process group: master and both workers, mid-request
        alive.remove(victim)
        time.sleep(3)
        stop.set()
        for future in futures:
            future.result(timeout=60)
    rows = _rows(migrated_database_url)
    print(f"\ntwo instances under load: {before_kill} answered before the kill, {len(answered)} in all, "
          f"{len(retries)} retried after a failed attempt, {max_connections[0]} database connections during load")
    assert before_kill > 0 and len(answered) > before_kill, "both phases carried load"
    # Every client finished its id before stopping, so each row was answered (a commit whose answer died with the
    # victim was answered from the log on the retry) and each answer has its row.
    assert set(rows) == set(answered)
    for observation_id, body in answered.items():
        assert rows[observation_id] == (body["should_search"], body["probability"], body["model_version"])
    assert requests.get(f"{survivor.base}/health", timeout=10).status_code == 200


def test_connection_budget_per_instance(two_instances, migrated_database_url, api_keys, observation):
    """What each instance holds: at rest two per worker (the requests' pooled connection, the registry follower's
    poll); during a report up to 3 more per worker (its query threads), closed after it."""
    headers = {"Authorization": f"Bearer {api_keys['admin']}"}
    for instance in two_instances:
        for n in range(8):  # enough requests that both workers of each instance serve
            requests.post(f"{instance.base}/should_search", headers=headers, timeout=30,
                          json={"observation_id": f"budget-{instance.port}-{n}", "observation": observation})
    at_rest = _connections(migrated_database_url)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _connections(migrated_database_url))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda n: requests.get(f"{two_instances[n % 2].base}/report", headers=headers,
                                                 timeout=60).status_code, range(8)))
    finally:
        done.set()
        sampler.join()
    print(f"\nconnections, 2 instances x 2 sync workers: {at_rest} at rest, {peak[0]} at most during reports")
    assert at_rest <= 2 * 2 * 2  # per worker: its requests' pooled connection, its registry follower's
    assert peak[0] <= 2 * 2 * (2 + 3)  # ... and the report's 3 query threads


def test_a_promoted_model_reaches_every_worker_of_both_within_10_s(two_instances, migrated_database_url, api_keys,
                                                                  observation, tmp_path):
    """Promote through the registry (as the CLI does, on its own connection): each worker of both instances logs the
    switch within 10 s, answers name the new version, and /metrics shows it live and the switch counted."""
    from models import database_from_url
    from pipeline.scoring import registry
    from tests.test_registry_service import SWITCH_BOUND_S, _wait_all_workers, register

    plain = database_from_url(migrated_database_url)
    try:
        register(plain, tmp_path, "cand-dyno")
        promoted = time.monotonic()
        registry.promote(plain, "cand-dyno", by="tester")
        reached = [_wait_all_workers(instance, instance.log_path, "cand-dyno", promoted) for instance in two_instances]
    finally:
        plain.close()
    print(f"\npromotion reached the workers of the two instances in "
          f"{[sorted(round(s, 2) for s in seen.values()) for seen in reached]} s")
    for instance, seen in zip(two_instances, reached):
        assert set(seen) == set(instance.workers()) and max(seen.values()) < SWITCH_BOUND_S, seen
    headers = {"Authorization": f"Bearer {api_keys['officer']}"}
    monitor = {"Authorization": f"Bearer {api_keys['monitor']}"}
    for instance in two_instances:
        for n in range(6):
            answer = requests.post(f"{instance.base}/should_search", headers=headers, timeout=30,
                                   json={"observation_id": f"promoted-{instance.port}-{n}", "observation": observation})
            assert answer.json()["model_version"] == "cand-dyno"
        metrics = requests.get(f"{instance.base}/metrics", headers=monitor, timeout=30).text
        assert 'ctrp3_model_info{version="cand-dyno"} 1.0' in metrics
        assert "ctrp3_model_switches_total 0.0" not in metrics
