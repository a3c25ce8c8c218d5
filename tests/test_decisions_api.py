"""Reasons through the API, on SQLite and Postgres: answered, stored with the row, returned unchanged to a retry, and
readable afterwards at GET /decisions/<observation_id> with the outcome's correction history."""
from __future__ import annotations

import json

from models import Prediction, database
from pipeline.schema import validate_observation


def _stored(observation_id: str) -> Prediction:
    with database.connection_context():
        return Prediction.get(Prediction.observation_id == observation_id)


def test_should_search_answers_reasons_and_stores_them(client, artifact, observation):
    response = client.post("/should_search", json={"observation_id": "r1", "observation": observation})
    assert response.status_code == 200
    reasons = response.get_json()["reasons"]
    assert reasons == json.loads(json.dumps(artifact.reasons(validate_observation(observation))))
    assert set(reasons) == {"reference", "raising", "lowering"} and reasons["raising"] + reasons["lowering"]
    assert json.loads(_stored("r1").reasons) == reasons


def test_a_retry_gets_the_stored_reasons_byte_for_byte(client, observation):
    body = {"observation_id": "r2", "observation": observation}
    first = client.post("/should_search", json=body)
    again = client.post("/should_search", json=body)
    assert again.status_code == 200 and again.get_data() == first.get_data()


def test_a_retry_after_the_model_changed_keeps_the_first_reasons(client, observation):
    """The stored answer is what was decided; a retry must not recompute it with whatever the model is now."""
    body = {"observation_id": "r3", "observation": observation}
    first = client.post("/should_search", json=body).get_json()
    with database.connection_context():
        Prediction.update(reasons=json.dumps({"reference": {}, "raising": [], "lowering": ["as stored"]})).where(
            Prediction.observation_id == "r3").execute()
    assert client.post("/should_search", json=body).get_json()["reasons"]["lowering"] == ["as stored"]
    assert first["reasons"]["lowering"] != ["as stored"]


def test_get_decision_returns_the_stored_decision_with_its_outcome_history(client, observation):
    answer = client.post("/should_search", json={"observation_id": "r4/x y", "observation": observation}).get_json()
    assert client.post("/search_result", json={"observation_id": "r4/x y", "contraband_found": True}).status_code == 200
    corrected = client.post("/search_result", json={"observation_id": "r4/x y", "contraband_found": False,
                                                    "correction": {"reason": "lab test negative"}})
    assert corrected.status_code == 200
    response = client.get("/decisions/r4%2Fx%20y")
    assert response.status_code == 200
    stored = response.get_json()
    row = _stored("r4/x y")
    assert stored["observation_id"] == "r4/x y" and stored["observation"] == observation
    assert (stored["should_search"], stored["probability"], stored["model_version"], stored["reasons"]) == (
        answer["should_search"], answer["probability"], answer["model_version"], answer["reasons"])
    assert stored["threshold"] == row.threshold and stored["received_at"] == row.received_at.isoformat() + "Z"
    outcome = stored["outcome"]
    assert outcome["contraband_found"] is False and outcome["recorded_at"] == row.outcome_at.isoformat() + "Z"
    assert [(h["contraband_found"], h["is_correction"], h["correction_reason"]) for h in outcome["history"]] == [
        (True, False, None), (False, True, "lab test negative")]


def test_get_decision_before_any_outcome(client, observation):
    client.post("/should_search", json={"observation_id": "r5", "observation": observation})
    outcome = client.get("/decisions/r5").get_json()["outcome"]
    assert outcome == {"contraband_found": None, "recorded_at": None, "history": []}


def test_get_decision_of_a_row_logged_before_reasons_were_kept(client, observation):
    client.post("/should_search", json={"observation_id": "r6", "observation": observation})
    with database.connection_context():
        Prediction.update(reasons=None).where(Prediction.observation_id == "r6").execute()
    assert client.get("/decisions/r6").get_json()["reasons"] is None


def test_get_decision_unknown_or_invalid_id(client, assert_error):
    assert_error(client.get("/decisions/never-seen"), 404, "unknown_observation")
    body = assert_error(client.get("/decisions/" + "x" * 129), 400, "invalid_request")
    assert body["fields"] == {"observation_id": "must be at most 128 characters"}


def test_there_is_still_no_listing(client, assert_error):
    assert_error(client.get("/decisions/"), 404)
    assert_error(client.get("/decisions"), 404)


def test_the_capstone_alias_keeps_its_exact_answer_shape(client, observation):
    response = client.post("/predict", json={"id": 77, "observation": observation})
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"ContrabandIndicator", "proba"}  # no reasons, nothing else: old apps parse it
    assert isinstance(body["ContrabandIndicator"], bool) and isinstance(body["proba"], float)
    # its reasons are kept all the same, for oversight
    assert set(client.get("/decisions/77").get_json()["reasons"]) == {"reference", "raising", "lowering"}
