"""The contract of every endpoint, on SQLite and Postgres: keys, types, what is logged, health and OpenAPI."""
from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import datetime, timedelta, timezone

import pytest
import requests

from models import Outcome, Prediction, database
from pipeline.schema import (
    FIELDS,
    MAX_TEXT_LENGTH,
    OBSERVATION_FIELDS,
    WHITESPACE,
    ValidationError,
    age_group,
    validate_observation,
)
from service import create_app

DECISION_KEYS = {"observation_id", "should_search", "probability", "model_version"}
ANSWER_KEYS = DECISION_KEYS | {"reasons"}  # /should_search also says why; /search_result answers the decision only


def _stored(observation_id: str) -> Prediction:
    with database.connection_context():
        return Prediction.get(Prediction.observation_id == observation_id)


def test_should_search_answers_and_logs_the_normalised_record(client, artifact, observation):
    """200 with the decision from the card's threshold; one row holding the raw and normalised observation."""
    before = datetime.now(timezone.utc).replace(tzinfo=None)
    response = client.post("/should_search", json={"observation_id": "stop-1", "observation": observation})
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == ANSWER_KEYS
    record = validate_observation(observation)
    expected = float(artifact.predict_proba([record])[0])
    assert body["observation_id"] == "stop-1"
    assert body["probability"] == pytest.approx(expected, abs=1e-12)
    assert 0.0 <= body["probability"] <= 1.0
    assert body["should_search"] is (expected >= artifact.threshold)
    assert body["model_version"] == artifact.version
    row = _stored("stop-1")
    assert json.loads(row.observation) == observation
    assert (row.department, row.location, row.subject_age, row.subject_age_group) == (
        record["Department Name"], record["InterventionLocationName"], record["SubjectAge"],
        age_group(record["SubjectAge"]))
    assert (row.subject_race, row.subject_ethnicity, row.subject_sex, row.search_authorization_code) == (
        record["SubjectRaceCode"], record["SubjectEthnicityCode"], record["SubjectSexCode"],
        record["SearchAuthorizationCode"])
    assert row.intervention_at == record["InterventionDateTime"]
    assert (row.threshold, row.model_version, row.should_search) == (
        artifact.threshold, artifact.version, body["should_search"])
    assert row.probability == body["probability"]
    assert before - timedelta(seconds=1) <= row.received_at <= datetime.now(timezone.utc).replace(tzinfo=None)
    assert row.contraband_found is None and row.outcome_at is None
    assert len(row.observation_digest) == 64 and row.observation_digest != hashlib.sha256(b"").hexdigest()


def test_values_are_normalised_before_logging(client, observation):
    """Case, padding and 27 vs 27.0 are normalised; the raw observation keeps what the client sent."""
    messy = dict(observation, SubjectRaceCode=" w ", InterventionLocationName="  darien ", SubjectAge=27,
                 ReportingOfficerIdentificationID=12345)
    assert client.post("/should_search", json={"observation_id": "messy", "observation": messy}).status_code == 200
    row = _stored("messy")
    assert (row.subject_race, row.location, row.subject_age, row.officer_id) == ("W", "DARIEN", 27, "12345")
    assert json.loads(row.observation)["InterventionLocationName"] == "  darien "


def test_optional_fields_may_be_null(client, observation):
    """Location, statute reason and officer id are optional: null is logged as NULL."""
    sparse = dict(observation, InterventionLocationName=None, StatuteReason=None,
                  ReportingOfficerIdentificationID=None)
    assert client.post("/should_search", json={"observation_id": "sparse", "observation": sparse}).status_code == 200
    row = _stored("sparse")
    assert (row.location, row.statute_reason, row.officer_id) == (None, None, None)


def test_search_result_records_the_outcome(client, observation):
    """200 with the decision plus the outcome; Prediction holds it and the history has one row."""
    decision = client.post("/should_search", json={"observation_id": "s2", "observation": observation}).get_json()
    response = client.post("/search_result", json={"observation_id": "s2", "contraband_found": True})
    assert response.status_code == 200
    answered = {key: value for key, value in decision.items() if key != "reasons"}
    assert response.get_json() == {**answered, "contraband_found": True}
    row = _stored("s2")
    assert row.contraband_found is True and row.outcome_at is not None
    with database.connection_context():
        history = list(Outcome.select().where(Outcome.prediction == row.id))
    assert [(o.contraband_found, o.is_correction) for o in history] == [(True, False)]


def test_search_result_for_unknown_id_is_404(client, assert_error, log_counts):
    """An outcome for an id never predicted is refused, and nothing is stored."""
    response = client.post("/search_result", json={"observation_id": "ghost", "contraband_found": False})
    assert_error(response, 404, "unknown_observation")
    assert log_counts() == {"prediction": 0, "outcome": 0}


def test_capstone_aliases_share_the_code_path(client, observation):
    """/predict and /update answer the capstone's shapes from the same logic and the same rows."""
    main = client.post("/should_search", json={"observation_id": "m1", "observation": observation}).get_json()
    predicted = client.post("/predict", json={"id": 41, "observation": observation})
    assert predicted.status_code == 200
    assert predicted.get_json() == {"ContrabandIndicator": main["should_search"], "proba": main["probability"]}
    assert _stored("41").probability == main["probability"]
    updated = client.post("/update", json={"id": 41, "true_class": 1})
    assert updated.status_code == 200
    assert updated.get_json() == {"id": "41", "observation": observation, "proba": main["probability"],
                                  "ContrabandIndicator": main["should_search"], "true_class": 1,
                                  "model_version": main["model_version"]}
    again = client.post("/search_result", json={"observation_id": "41", "contraband_found": True})
    assert again.status_code == 200 and again.get_json()["contraband_found"] is True


def test_update_accepts_booleans(client, observation):
    """true_class may be 0/1 or a JSON boolean."""
    client.post("/predict", json={"id": "b1", "observation": observation})
    response = client.post("/update", json={"id": "b1", "true_class": False})
    assert response.status_code == 200 and response.get_json()["true_class"] == 0


def test_health_is_ok_when_migrated(client, artifact):
    """Model loaded, database answering, schema current -> 200."""
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "model_version": artifact.version, "shadow_version": None}


def test_unmigrated_database_refuses_to_serve_until_migrated(database_url, artifact, assert_error, caplog,
                                                             observation, client_as, make_app):
    """Behind schema: a start-up log line, /health and every endpoint 503 naming the command; then recovery."""
    from migrations import COMMAND, apply_migrations

    with caplog.at_level(logging.ERROR, logger="service"):
        app = make_app({"DATABASE_URL": database_url, "TESTING": True}, model=artifact)
    assert any(COMMAND in record.getMessage() for record in caplog.records)
    client = client_as(app)
    health = assert_error(client.get("/health"), 503, "unhealthy")
    assert COMMAND in health["fields"]["schema"]
    body = {"observation_id": "x", "observation": observation}
    assert COMMAND in assert_error(client.post("/should_search", json=body), 503, "schema_out_of_date")["message"]
    assert_error(client.post("/update", json={"id": 1, "true_class": 1}), 503, "schema_out_of_date")
    apply_migrations(database)
    assert client.get("/health").status_code == 200
    assert client.post("/should_search", json=body).status_code == 200
    database.close()


def test_database_outage_is_503_not_500(artifact, assert_error, observation, client_as):
    """An unreachable database: /health says so, writes answer 503 with Retry-After, never 500."""
    app = create_app({"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere"}, model=artifact)
    client = client_as(app)
    assert "database" in assert_error(client.get("/health"), 503, "unhealthy")["fields"]
    response = client.post("/should_search", json={"observation_id": "x", "observation": observation})
    assert_error(response, 503, "database_unavailable")
    assert response.headers["Retry-After"]


class _BrokenModel:
    """A model whose scoring fails, to exercise the unexpected-error path."""

    version, threshold = "broken-1", 0.5

    def predict_proba(self, records):
        raise RuntimeError("scoring exploded")

    def predict_one(self, record):
        raise RuntimeError("scoring exploded")


def test_unexpected_error_is_logged_500_in_the_error_shape(migrated_database_url, assert_error, caplog,
                                                           observation, log_counts, client_as, make_app):
    """A bug answers 500 in the same shape, logs its type and frames but not its message, and writes nothing."""
    app = make_app({"DATABASE_URL": migrated_database_url}, model=_BrokenModel())
    with caplog.at_level(logging.ERROR):
        response = client_as(app).post("/should_search", json={"observation_id": "x", "observation": observation})
    body = assert_error(response, 500, "internal_error")
    assert "exploded" not in body["message"]  # internals stay in the log, not in the answer
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "service.errors")
    assert "builtins.RuntimeError" in logged and ", in predict" in logged  # the type and the failing frame
    assert response.headers["X-Request-ID"] in logged
    # The message may quote request values (protected attributes, free text), so the log keeps only type and frames.
    assert "exploded" not in logged and not any(r.exc_info for r in caplog.records)
    assert log_counts() == {"prediction": 0, "outcome": 0}


def _code_spellings(codes) -> tuple[list[str], list[str]]:
    """(each code lower-cased, padded with every WHITESPACE character and up to the length limit; near misses)."""
    blanks = [c for c in map(chr, range(0x3001)) if re.fullmatch(f"[{WHITESPACE}]", c)]
    forms = [form for code in codes for form in (code, code.lower(), f" {code.lower()} ", f"\t{code}\r\n",
                                                  " " * (MAX_TEXT_LENGTH - 1) + code,
                                                  *(f"{b}{code}{b}" for b in blanks))]
    misses = ["", " ", "X", "x", codes[0] * 2, f"{codes[0]} {codes[0]}", f"{codes[0]}\x0b", f"\x00{codes[0]}",
              "\u0131", "\uff36", "\u2164", " " * MAX_TEXT_LENGTH + codes[0], f"{codes[0]}\x85", "V,E"]
    return forms, misses


def _code_accepted(field, value: str) -> bool:
    """Whether pipeline.schema's validator accepts ``value`` for the code ``field``."""
    try:
        validate_observation({name: (value if name == field.name else None) for name in OBSERVATION_FIELDS})
    except ValidationError as error:
        return field.name not in error.errors
    return True


def test_openapi_is_generated_from_the_schema(client):
    """/openapi.json is OpenAPI 3, lists every endpoint, and its observation is pipeline.schema.FIELDS."""
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    routes = {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule) for rule in client.application.url_map.iter_rules()
              if rule.endpoint != "static" and not rule.endpoint.startswith("pages.")}
    assert routes == set(spec["paths"]), "every API route is documented, and nothing else (pages are not API)"
    observation = spec["components"]["schemas"]["Observation"]
    assert list(observation["properties"]) == list(OBSERVATION_FIELDS)
    assert observation["required"] == list(OBSERVATION_FIELDS)
    for field in FIELDS:
        if field.codes:
            schema = observation["properties"][field.name]
            forms, misses = _code_spellings(field.codes)
            for value in forms + misses:
                documented = len(value) <= schema["maxLength"] and bool(re.search(schema["pattern"], value))
                assert documented == _code_accepted(field, value) == (value in forms), (field.name, value)
    assert "correction" in spec["components"]["schemas"]["SearchResultRequest"]["properties"]


def test_openapi_needs_no_database(artifact):
    """The description is served even while the database is down."""
    app = create_app({"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere"}, model=artifact)
    assert app.test_client().get("/openapi.json").status_code == 200


def test_contract_through_gunicorn(live_server, live_headers, observation, artifact, log_counts):
    """Every endpoint once over real HTTP: decision, outcome, aliases, health and the OpenAPI document."""
    session = requests.Session()
    session.headers.update(live_headers)
    decision = session.post(f"{live_server}/should_search", json={"observation_id": "g1", "observation": observation},
                            timeout=30)
    assert decision.status_code == 200 and set(decision.json()) == ANSWER_KEYS
    outcome = session.post(f"{live_server}/search_result", json={"observation_id": "g1", "contraband_found": False},
                           timeout=30)
    answered = {key: value for key, value in decision.json().items() if key != "reasons"}
    assert outcome.status_code == 200 and outcome.json() == {**answered, "contraband_found": False}
    predicted = session.post(f"{live_server}/predict", json={"id": 9, "observation": observation}, timeout=30)
    assert predicted.json() == {"ContrabandIndicator": decision.json()["should_search"],
                                "proba": decision.json()["probability"]}
    assert session.post(f"{live_server}/update", json={"id": 9, "true_class": 1}, timeout=30).json()["true_class"] == 1
    assert session.get(f"{live_server}/health", timeout=30).json() == {
        "status": "ok", "model_version": artifact.version, "shadow_version": None}
    assert session.get(f"{live_server}/openapi.json", timeout=30).json()["openapi"].startswith("3.")
    assert log_counts() == {"prediction": 2, "outcome": 2}
