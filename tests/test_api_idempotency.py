"""Retries are safe: the observation id is the idempotency key for decisions and for outcomes.

Concurrency tests use one thread per request; peewee keeps one connection per thread, so they race for real
(SQLite on a file database in WAL mode, Postgres on separate connections).
"""
from __future__ import annotations

import threading

import requests

from models import Outcome, Prediction, database

N_CONCURRENT = 20


def _history(observation_id: str) -> list[tuple[bool, bool, str | None]]:
    with database.connection_context():
        query = (Outcome.select().join(Prediction).where(Prediction.observation_id == observation_id)
                 .order_by(Outcome.id))
        return [(o.contraband_found, o.is_correction, o.correction_reason) for o in query]


def _current(observation_id: str):
    with database.connection_context():
        return Prediction.get(Prediction.observation_id == observation_id).contraband_found


def test_same_id_same_observation_returns_the_stored_answer(client, observation, log_counts):
    """A retry gets byte-identical JSON and adds no row."""
    body = {"observation_id": "retry-1", "observation": observation}
    first = client.post("/should_search", json=body)
    second = client.post("/should_search", json=body)
    assert first.status_code == second.status_code == 200
    assert first.get_data() == second.get_data()
    assert log_counts()["prediction"] == 1


def test_retry_with_equivalent_spelling_is_the_same_observation(client, observation, log_counts):
    """Identity is decided on the normalised record: ' w ' and 'W', 27 and 27.0 are the same observation."""
    first = client.post("/should_search", json={"observation_id": "eq", "observation": observation})
    respelled = dict(observation, SubjectRaceCode=observation["SubjectRaceCode"].lower() + "  ",
                     SubjectAge=int(observation["SubjectAge"]))
    second = client.post("/should_search", json={"observation_id": "eq", "observation": respelled})
    assert second.status_code == 200 and second.get_json() == first.get_json()
    assert log_counts()["prediction"] == 1


def test_same_id_different_observation_is_a_422_conflict(client, observation, assert_error, log_counts):
    """Reusing an id for another stop is refused, naming the conflict; the stored row is unchanged."""
    client.post("/should_search", json={"observation_id": "dup", "observation": observation})
    other = dict(observation, SubjectAge=observation["SubjectAge"] + 10)
    response = client.post("/should_search", json={"observation_id": "dup", "observation": other})
    error = assert_error(response, 422, "observation_conflict")
    assert "observation_id" in error["fields"] and "dup" in error["message"]
    assert log_counts()["prediction"] == 1
    with database.connection_context():
        assert Prediction.get(Prediction.observation_id == "dup").subject_age == observation["SubjectAge"]


def test_capstone_integer_and_string_ids_are_the_same_key(client, observation, log_counts):
    """/predict's id 7 and /should_search's "7" name the same stop."""
    client.post("/predict", json={"id": 7, "observation": observation})
    response = client.post("/should_search", json={"observation_id": "7", "observation": observation})
    assert response.status_code == 200
    assert log_counts()["prediction"] == 1


def test_same_outcome_again_changes_nothing(client, observation, log_counts):
    """Resending an outcome answers 200 and appends nothing."""
    client.post("/should_search", json={"observation_id": "o1", "observation": observation})
    body = {"observation_id": "o1", "contraband_found": False}
    first, second = client.post("/search_result", json=body), client.post("/search_result", json=body)
    assert first.status_code == second.status_code == 200
    assert first.get_json() == second.get_json()
    assert _history("o1") == [(False, False, None)]


def test_different_outcome_without_correction_is_409(client, observation, assert_error):
    """A contradicting outcome is refused; the recorded one stays current and the history is untouched."""
    client.post("/should_search", json={"observation_id": "o2", "observation": observation})
    client.post("/search_result", json={"observation_id": "o2", "contraband_found": True})
    response = client.post("/update", json={"id": "o2", "true_class": 0})
    error = assert_error(response, 409, "outcome_conflict")
    assert "correction" in error["message"]
    assert _current("o2") is True
    assert _history("o2") == [(True, False, None)]


def test_explicit_correction_changes_the_outcome_and_keeps_history(client, observation):
    """A correction appends a row with its reason and becomes current; retrying it changes nothing more."""
    client.post("/should_search", json={"observation_id": "o3", "observation": observation})
    client.post("/search_result", json={"observation_id": "o3", "contraband_found": True})
    correction = {"observation_id": "o3", "contraband_found": False, "correction": {"reason": "lab test negative"}}
    response = client.post("/search_result", json=correction)
    assert response.status_code == 200 and response.get_json()["contraband_found"] is False
    assert client.post("/search_result", json=correction).status_code == 200
    assert _history("o3") == [(True, False, None), (False, True, "lab test negative")]
    assert _current("o3") is False
    back = client.post("/update", json={"id": "o3", "true_class": 1, "correction": {"reason": "re-examined"}})
    assert back.status_code == 200 and back.get_json()["true_class"] == 1
    assert [h[0] for h in _history("o3")] == [True, False, True]


def _race(count: int, send) -> list:
    """Run ``send(i)`` in ``count`` threads released together; return their results in order."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def worker(i):
        barrier.wait()
        try:
            results[i] = send(i)
        finally:
            if not database.is_closed():
                database.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_concurrent_identical_requests_give_one_row_and_identical_answers(app, observation, log_counts):
    """20 simultaneous identical /should_search requests: all 200, one body, one row."""
    body = {"observation_id": "race-1", "observation": observation}
    responses = _race(N_CONCURRENT, lambda i: app.test_client().post("/should_search", json=body))
    assert [r.status_code for r in responses] == [200] * N_CONCURRENT
    assert len({r.get_data() for r in responses}) == 1
    assert log_counts()["prediction"] == 1


def test_concurrent_identical_outcomes_give_one_history_row(app, client, observation):
    """20 simultaneous identical outcomes: all 200, exactly one Outcome row."""
    client.post("/should_search", json={"observation_id": "race-2", "observation": observation})
    body = {"observation_id": "race-2", "contraband_found": True}
    responses = _race(N_CONCURRENT, lambda i: app.test_client().post("/search_result", json=body))
    assert [r.status_code for r in responses] == [200] * N_CONCURRENT
    assert _history("race-2") == [(True, False, None)]


def test_concurrent_conflicting_outcomes_keep_one_winner(app, client, observation):
    """Half say true, half false, at once: exactly one is recorded, every other contradicting one gets 409."""
    client.post("/should_search", json={"observation_id": "race-3", "observation": observation})
    responses = _race(N_CONCURRENT, lambda i: app.test_client().post(
        "/search_result", json={"observation_id": "race-3", "contraband_found": bool(i % 2)}))
    winner = _current("race-3")
    for i, response in enumerate(responses):
        assert response.status_code == (200 if bool(i % 2) == winner else 409)
    assert _history("race-3") == [(winner, False, None)]


def test_concurrent_identical_requests_through_gunicorn(live_server, live_headers, observation, log_counts):
    """The same race through a real gunicorn with two worker processes and HTTP keep-alive clients."""
    body = {"observation_id": "live-race", "observation": observation}
    sessions = [requests.Session() for _ in range(N_CONCURRENT)]
    for session in sessions:
        session.headers.update(live_headers)
    responses = _race(N_CONCURRENT, lambda i: sessions[i].post(f"{live_server}/should_search", json=body, timeout=30))
    assert [r.status_code for r in responses] == [200] * N_CONCURRENT
    assert len({r.content for r in responses}) == 1
    assert log_counts()["prediction"] == 1
