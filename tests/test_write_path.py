"""The lean write path of /should_search: one INSERT ... ON CONFLICT DO NOTHING RETURNING, built once from the model.

It must store exactly what peewee's own insert stores, answer exactly what the former read-then-insert path
answered, cost one statement for a new observation, and have committed the row before the 200 leaves.
Measured (µs per committed insert; figures in service/predictions.py): ``python -m bench.insert_timing``.
"""
from __future__ import annotations

import dataclasses

import pytest
from peewee import PostgresqlDatabase

from models import Prediction, database, database_from_url
from pipeline.schema import validate_observation
from service import predictions

VOLATILE = ("id", "observation_id", "received_at")  # differ between two inserts of the same observation


def _stored(observation_id: str) -> dict:
    with database.connection_context():
        row = Prediction.select().where(Prediction.observation_id == observation_id).dicts().get()
    return {key: value for key, value in row.items() if key not in VOLATILE}


def _former_decide(observation_id: str, raw: dict, record: dict, model) -> predictions.Decision:
    """The write path this one replaced: pre-read, then a peewee insert in its own transaction."""
    digest = predictions.observation_digest(record)
    existing = Prediction.get_or_none(Prediction.observation_id == observation_id)
    if existing is not None:
        return predictions._stored_answer(existing, digest)
    probability = model.predict_one(record)  # the model step is not what is compared here
    reasons = model.reasons(record)
    row = predictions._prediction_row(observation_id, raw, record, digest, probability, model, reasons=reasons)
    with database.atomic():
        Prediction.insert(row).execute()
    return predictions.Decision(observation_id, raw, row["should_search"], probability, model.version, None,
                                reasons)


def test_prepared_insert_stores_what_peewee_stores(app, artifact, observation):
    """Same row dict through the prepared statement and through Prediction.insert: identical stored values."""
    record = validate_observation(observation)
    row = predictions._prediction_row("prepared", observation, record, predictions.observation_digest(record),
                                      artifact.predict_one(record), artifact)
    with database.connection_context():
        assert predictions._insert_new(row) is True
        Prediction.insert(dict(row, observation_id="peewee")).execute()
        assert predictions._insert_new(row) is False  # the id is taken: nothing written
        assert Prediction.select().count() == 2
    assert _stored("prepared") == _stored("peewee")


def test_lean_path_answers_and_stores_what_the_former_path_did(app, artifact, dry_run_requests):
    """Every dry-run observation through both paths: same answers, same stored rows, same answers to a retry."""
    # One outer transaction only spares 900 disk syncs; commit behaviour is tested on its own below.
    with database.connection_context(), database.atomic():
        for id_, raw, _ in dry_run_requests:
            record = validate_observation(raw)
            lean = predictions.decide(f"lean-{id_}", raw, record, artifact)
            former = _former_decide(f"former-{id_}", raw, record, artifact)
            assert dataclasses.replace(lean, observation_id=former.observation_id) == former
            assert predictions.decide(f"lean-{id_}", raw, record, artifact) == lean
            assert _former_decide(f"former-{id_}", raw, record, artifact) == former
        assert Prediction.select().count() == 2 * len(dry_run_requests)
    for id_, _, _ in dry_run_requests:
        assert _stored(f"lean-{id_}") == _stored(f"former-{id_}")


def test_same_id_other_observation_is_a_conflict_and_changes_nothing(app, artifact, observation):
    """The conflict branch of the lean path: ObservationConflict, the first row untouched."""
    record = validate_observation(observation)
    other_raw = dict(observation, SubjectAge=observation["SubjectAge"] + 1)
    other = validate_observation(other_raw)
    with database.connection_context():
        predictions.decide("taken", observation, record, artifact)
        before = _stored("taken")
        with pytest.raises(predictions.ObservationConflict):
            predictions.decide("taken", other_raw, other, artifact)
        assert Prediction.select().count() == 1
    assert _stored("taken") == before


def _statements_of(client, body: dict) -> tuple[int, list[str]]:
    """(status, SQL of every statement peewee ran) for one request."""
    statements: list[str] = []
    hook = lambda event: statements.append(event.sql)  # noqa: E731
    database.obj.query_hooks.append(hook)
    try:
        status = client.post("/should_search", json=body).status_code
    finally:
        database.obj.query_hooks.remove(hook)
    return status, statements


def test_a_new_observation_costs_one_statement(app, client, observation):
    """New id: the INSERT alone (no pre-read, no BEGIN/COMMIT). Retry: the INSERT finds the id, one read follows."""
    body = {"observation_id": "one-trip", "observation": observation}
    status, new = _statements_of(client, body)
    assert status == 200 and len(new) == 1
    assert new[0].startswith("INSERT") and "ON CONFLICT" in new[0] and "RETURNING" in new[0]
    status, retry = _statements_of(client, body)
    assert status == 200 and len(retry) == 2 and retry[1].startswith("SELECT")


def test_a_200_means_the_row_is_committed(app, client, observation, migrated_database_url):
    """Another connection sees the row, with the answered probability, as soon as the 200 is back."""
    answer = client.post("/should_search", json={"observation_id": "durable", "observation": observation})
    assert answer.status_code == 200
    other = database_from_url(migrated_database_url)
    try:
        query = Prediction.select(Prediction.probability).where(Prediction.observation_id == "durable")
        with other.bind_ctx([Prediction]):
            assert [row.probability for row in query] == [answer.get_json()["probability"]]
        if isinstance(other, PostgresqlDatabase):
            assert other.execute_sql("SHOW synchronous_commit").fetchone()[0] == "on"
    finally:
        other.close()
