"""Replay the capstone's real dry run: 223 /predict bodies exactly as sent, then their 113 outcomes via /update."""
from __future__ import annotations

import json
from collections import defaultdict

import pytest

from models import Outcome, Prediction, database
from pipeline.schema import validate_observation

N_REQUESTS, N_LABELS = 223, 113


def test_fixture_is_the_whole_dry_run(dry_run_bodies):
    """Guard against a trimmed fixture: 223 distinct ids, 113 labels."""
    assert len(dry_run_bodies) == N_REQUESTS
    assert len({id_ for id_, _, _ in dry_run_bodies}) == N_REQUESTS
    assert sum(label is not None for _, _, label in dry_run_bodies) == N_LABELS


def test_replay_predict_and_update(client, artifact, dry_run_bodies, dry_run_requests):
    """Every request gets 200 in the capstone shape, every label is stored, and the log matches the stream."""
    answers = {}
    for id_, body, _ in dry_run_bodies:
        response = client.post("/predict", data=body.encode("utf-8"), content_type="application/json")
        assert response.status_code == 200, (id_, response.get_data(as_text=True))
        answer = response.get_json()
        assert set(answer) == {"ContrabandIndicator", "proba"}
        answers[id_] = answer
    for id_, _, label in dry_run_bodies:
        if label is None:
            continue
        response = client.post("/update", json={"id": id_, "true_class": label})
        assert response.status_code == 200, (id_, response.get_data(as_text=True))
        stored = response.get_json()
        assert (stored["id"], stored["true_class"], stored["proba"]) == (str(id_), label, answers[id_]["proba"])

    records = [validate_observation(observation) for _, observation, _ in dry_run_requests]
    expected = artifact.predict_proba(records)
    for (id_, _, _), probability in zip(dry_run_requests, expected):
        assert answers[id_]["proba"] == pytest.approx(float(probability), abs=1e-9)
        assert answers[id_]["ContrabandIndicator"] is (float(probability) >= artifact.threshold)

    with database.connection_context():
        rows = {row.observation_id: row for row in Prediction.select()}
        outcomes = list(Outcome.select())
    assert set(rows) == {str(id_) for id_, _, _ in dry_run_bodies}
    assert len(outcomes) == N_LABELS and not any(o.is_correction for o in outcomes)
    for id_, observation, label in dry_run_requests:
        row = rows[str(id_)]
        assert json.loads(row.observation) == observation
        assert row.contraband_found == (None if label is None else bool(label))
        assert row.probability == answers[id_]["proba"]


def test_byte_identical_pairs_get_identical_answers_and_two_rows(client, dry_run_requests, log_counts):
    """The stream holds the same observation under two ids: each id is its own stop, with the same answer."""
    by_observation = defaultdict(list)
    for id_, observation, _ in dry_run_requests:
        by_observation[json.dumps(observation, sort_keys=True)].append(id_)
    pairs = [ids for ids in by_observation.values() if len(ids) >= 2]
    assert len(pairs) >= 100  # the capstone client sent nearly every stop twice
    observation_of = {id_: observation for id_, observation, _ in dry_run_requests}
    for ids in pairs[:10]:
        answers = [client.post("/predict", json={"id": id_, "observation": observation_of[id_]}).get_json()
                   for id_ in ids]
        assert all(answer == answers[0] for answer in answers)
    assert log_counts()["prediction"] == sum(len(ids) for ids in pairs[:10])
