"""Retraining from the service's log (``python -m pipeline.train --from-log``), on SQLite and Postgres.

The log is filled through the real API (the app's test client): /should_search for each stop, /search_result for
its outcome, a correction with a reason where a label changes.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from models import database, database_from_url
from pipeline.schema import TARGET, validate_observation
from pipeline.scoring.artifact import DEFAULT_ARTIFACT_DIR, load_artifact
from pipeline.scoring.registry import live_version, promote, version_detail
from pipeline.training.from_log import LogTrainingConfig, NotEnoughOutcomes, train_from_log
from pipeline.training.from_log import main as from_log_main
from pipeline.training.log_data import read_log

DEPARTMENTS = {"Darien": 1.0, "New Haven": -1.0, "Milford": 0.0, "Hartford": 0.5}


def stops(n: int, seed: int = 0) -> list[tuple[dict, bool]]:
    """(observation as an app sends it, outcome) for ``n`` distinct stops whose outcome depends on department
    and SearchAuthorizationCode."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        department = list(DEPARTMENTS)[i % len(DEPARTMENTS)]
        sac = "CINO"[rng.integers(0, 4)]
        logit = DEPARTMENTS[department] + (1.2 if sac == "O" else -0.6)
        observation = {
            "Department Name": department, "InterventionDateTime": f"2018-{1 + i % 12:02d}-{1 + i % 28:02d}T"
            f"{i % 24:02d}:{i % 60:02d}:00", "InterventionLocationName": f"TOWN {i % 7}",
            "InterventionReasonCode": "VEI"[i % 3], "ReportingOfficerIdentificationID": str(100 + i % 9),
            "ResidentIndicator": bool(i % 2), "SearchAuthorizationCode": sac,
            "StatuteReason": ["Speed Related", "Registration", "Other"][i % 3], "SubjectAge": 18 + i % 50,
            "SubjectEthnicityCode": "HMN"[i % 3], "SubjectRaceCode": "ABIW"[i % 4], "SubjectSexCode": "FM"[i % 2],
            "TownResidentIndicator": bool(i % 5)}
        out.append((observation, bool(rng.random() < 1 / (1 + np.exp(-logit)))))
    return out


def send(client, observation_id: str, observation: dict, outcome: bool | None, reason: str | None = None):
    """Log one request (and its outcome, if given) through the API."""
    response = client.post("/should_search", json={"observation_id": observation_id, "observation": observation})
    assert response.status_code == 200, response.get_data(as_text=True)
    if outcome is not None:
        body = {"observation_id": observation_id, "contraband_found": outcome}
        if reason:
            body["correction"] = {"reason": reason}
        response = client.post("/search_result", json=body)
        assert response.status_code == 200, response.get_data(as_text=True)


def _read(url: str):
    db = database_from_url(url)
    database.initialize(db)
    try:
        return read_log(db)
    finally:
        db.close()


def test_corrections_apply_and_duplicates_collapse(client, migrated_database_url):
    (first, _), (second, _), (third, _) = stops(3)
    send(client, "a", first, True)
    client.post("/search_result", json={"observation_id": "a", "contraband_found": False,
                                        "correction": {"reason": "lab result came back negative"}})
    send(client, "b", second, True)
    send(client, "b-again", second, True)  # the same stop under another id, same outcome: one row
    send(client, "b-other", second, False)  # the same stop with the other outcome: kept, as the file's are
    send(client, "c", third, None)  # no outcome yet: not a training row
    loaded = _read(migrated_database_url)
    assert loaded.counts == {"labelled": 4, "after_dedup": 3, "usable": 3}
    frame = loaded.frame
    assert frame[TARGET].tolist() == [False, True, False]  # "a" corrected to False; "b" once True, once False
    assert frame["Department Name"].tolist() == [first["Department Name"], second["Department Name"],
                                                 second["Department Name"]]
    assert frame["SubjectAge"].dtype == np.float32 and str(frame["InterventionDateTime"].dtype).startswith("datetime")


def test_retrain_from_log_writes_a_compared_candidate(client, migrated_database_url, tmp_path, capsys):
    for i, (observation, outcome) in enumerate(stops(240)):
        send(client, f"s{i}", observation, outcome)
    send(client, "dup", stops(1)[0][0], stops(1)[0][1])
    out = tmp_path / "candidate"
    code = from_log_main(["--from-log", "--database-url", migrated_database_url, "--out", str(out),
                          "--live-model", str(DEFAULT_ARTIFACT_DIR), "--fairness-min-department", "20"])
    assert code == 0
    captured = capsys.readouterr()
    version = captured.out.strip().splitlines()[-1]
    assert captured.out.strip() == version  # the version alone on stdout, progress on stderr
    assert "reading the labelled predictions" in captured.err
    candidate = load_artifact(out)  # the fast path was built and checked against scikit-learn on load
    assert candidate.version == version and candidate.scoring_path == "fast-linear"
    card = candidate.card
    assert card["training_data"]["log"]["labelled"] == 241 and card["training_data"]["log"]["after_dedup"] == 240
    assert card["training_data"]["held_out"]["rows"] == 48
    comparison = card["comparison"]
    assert comparison["held_out"] == 48 and comparison["live_version"] == load_artifact().version
    for block in (comparison["candidate"], comparison["live"]):
        assert {"threshold", "auc", "auc_interval", "precision", "precision_interval", "recall", "recall_interval",
                "fairness"} <= set(block)
    # 48 held-out rows hold fewer than 30 hits: too few to judge, so no verdict and no promotion without --force
    assert comparison["verdict"] is None and comparison["at_least_as_good"] is False
    low, high = comparison["auc_difference"]["interval"]
    assert low <= comparison["auc_difference"]["value"] <= high
    assert card["threshold"] == comparison["candidate"]["threshold"]
    assert "officer" not in " ".join(card["feature_names"]).lower()  # issue 12: not a feature of the default
    json.dumps(card)  # JSON all the way down
    # reasons: stated against the average training record the card holds, adding up (checked by load_artifact)
    assert set(card["reasons"]["feature_means"]) == set(card["feature_names"])
    reasons = candidate.reasons(validate_observation(stops(1)[0][0]))
    assert reasons["reference"]["description"].startswith("the average training record")
    # registered as a candidate, with the comparison promote reads
    row, stored_card, _ = version_detail(database_from_url(migrated_database_url), version)
    assert row.status == "candidate" and stored_card["comparison"] == comparison


def test_too_few_outcomes_are_refused(client, migrated_database_url, tmp_path):
    for i, (observation, outcome) in enumerate(stops(12)):
        send(client, f"s{i}", observation, outcome if i < 10 else None)
    config = LogTrainingConfig(database_url=migrated_database_url, out=tmp_path / "m", quiet=True)
    with pytest.raises(NotEnoughOutcomes, match=r"holds 10 labelled predictions .* at least 100"):
        train_from_log(config)
    assert not (tmp_path / "m").exists()


def test_a_log_of_one_class_is_refused(client, migrated_database_url, tmp_path):
    for i, (observation, _) in enumerate(stops(30)):
        send(client, f"s{i}", observation, True)
    config = LogTrainingConfig(database_url=migrated_database_url, min_outcomes=20, quiet=True)
    with pytest.raises(NotEnoughOutcomes, match="both outcomes are needed"):
        train_from_log(config)


def test_configuration_is_immutable_and_help_names_the_command(capsys):
    config = LogTrainingConfig(database_url="sqlite:///x")
    with pytest.raises(AttributeError):
        config.margin = 0.1
    with pytest.raises(SystemExit) as exit_info:
        from_log_main(["--from-log", "--help"])
    assert exit_info.value.code == 0
    assert "python -m pipeline.train --from-log" in capsys.readouterr().out


def write_training_file(path, rows: list[tuple[dict, bool]]):
    """The client's file format (15 columns, CT dates, searched rows plus one unsearched row that is ignored)."""
    import pandas as pd

    from pipeline.schema import CT_DATETIME_FORMAT, SEARCHED, TRAINING_COLUMNS

    records = []
    for observation, outcome in rows + [(rows[0][0], False)]:
        record = dict(observation, **{SEARCHED: True, TARGET: outcome})
        stamp = pd.Timestamp(observation["InterventionDateTime"]) - pd.DateOffset(years=2)
        record["InterventionDateTime"] = stamp.strftime(CT_DATETIME_FORMAT)
        records.append(record)
    records[-1][SEARCHED] = False
    pd.DataFrame(records, columns=list(TRAINING_COLUMNS)).to_csv(path, index=False)
    return path


def test_the_client_file_joins_the_log_with_a_measured_weight(client, migrated_database_url, tmp_path):
    data = write_training_file(tmp_path / "train.csv", stops(300, seed=5))
    for i, (observation, outcome) in enumerate(stops(150, seed=6)):
        send(client, f"s{i}", observation, outcome)
    config = LogTrainingConfig(database_url=migrated_database_url, data=data, out=tmp_path / "m",
                               live_model=DEFAULT_ARTIFACT_DIR, quiet=True)
    _, version = train_from_log(config)
    card = load_artifact(tmp_path / "m").card
    assert card["version"] == version
    rows = card["training_data"]
    assert rows["source"] == "log + file" and rows["file"]["usable"] == 300 and rows["held_out"]["source"] == "log"
    weighting = rows["file_weighting"]
    assert set(weighting["held_out_auc"]) == {"0", "0.1", "0.3", "1"}
    assert weighting["held_out_auc"][f"{weighting['chosen']:g}"] == max(weighting["held_out_auc"].values())


def test_a_file_makes_up_for_too_few_outcomes(client, migrated_database_url, tmp_path):
    data = write_training_file(tmp_path / "train.csv", stops(300, seed=5))
    for i, (observation, outcome) in enumerate(stops(10, seed=6)):
        send(client, f"s{i}", observation, outcome)
    config = LogTrainingConfig(database_url=migrated_database_url, data=data, out=tmp_path / "m", quiet=True,
                               live_model=DEFAULT_ARTIFACT_DIR)
    train_from_log(config)
    rows = load_artifact(tmp_path / "m").card["training_data"]
    assert rows["held_out"]["source"] == "file" and rows["log"]["fitted"] == 10 and rows["held_out"]["rows"] == 60


def test_calibrated_threshold_keeps_precision_through_the_drift():
    from pipeline.training.calibrated_threshold import calibrated_threshold

    rng = np.random.default_rng(3)
    scores = rng.beta(2, 3, 4000)
    truth = rng.random(4000) < scores  # calibrated scores
    plain = calibrated_threshold(truth, scores, 0.5, 0.0)
    drifted = calibrated_threshold(truth, scores, 0.5, 0.3)
    assert plain["feasible"] and drifted["feasible"]
    assert 0.2 < plain["threshold"] < drifted["threshold"] < 0.8  # a fall in hit rate asks for a higher bar
    assert plain["expected_precision"] >= 0.5 and abs(plain["precision"] - 0.5) < 0.05
    assert plain["recall"] > drifted["recall"]
    assert abs(plain["recalibration"]["slope"] - 1) < 0.2 and abs(plain["recalibration"]["intercept"]) < 0.2
    useless = calibrated_threshold(truth, 1 - scores, 0.5, 0.0)
    assert not useless["feasible"] and "does not rank" in useless["reason"]


def test_compared_with_the_registry_live_version_and_promotable_by_its_verdict(client, migrated_database_url,
                                                                                tmp_path, monkeypatch):
    from pipeline.scoring.registry import PromotionRefused

    monkeypatch.delenv("MODEL_DIR", raising=False)
    for i, (observation, outcome) in enumerate(stops(200, seed=8)):
        send(client, f"s{i}", observation, outcome)
    config = LogTrainingConfig(database_url=migrated_database_url, out=tmp_path / "m", quiet=True)
    _, version = train_from_log(config)
    db = database_from_url(migrated_database_url)
    live = live_version(db)
    comparison = load_artifact(tmp_path / "m").card["comparison"]
    assert live is not None and comparison["live_version"] == live
    if comparison["at_least_as_good"]:
        promote(db, version, by="test")
        assert live_version(db) == version
    else:
        with pytest.raises(PromotionRefused):
            promote(db, version, by="test")
        assert live_version(db) == live
    db.close()


def test_verdict_reads_at_least_as_good_literally():
    from pipeline.training.comparison import delong_difference, verdict

    enough = {"tp": 20, "fn": 20, "tn": 30, "fp": 10}
    good, poor = {"precision": 0.55, "counts": enough}, {"precision": 0.45, "counts": enough}
    assert verdict(good, None, None, 0.5) is None
    too_few = {"precision": 0.55, "counts": dict(enough, fn=9)}  # 29 hits held out
    assert verdict(too_few, good, {"value": 0.04, "interval": [0.01, 0.07]}, 0.5) is None
    assert verdict(good, good, {"value": -0.001, "interval": [-0.05, 0.05]}, 0.5) == "worse"
    assert verdict(good, good, {"value": 0.001, "interval": [-0.05, 0.05]}, 0.5) == "similar"
    assert verdict(good, good, {"value": 0.04, "interval": [0.01, 0.07]}, 0.5) == "better"
    assert verdict(poor, good, {"value": 0.04, "interval": [0.01, 0.07]}, 0.5) == "worse"
    assert verdict(poor, poor, {"value": 0.04, "interval": [0.01, 0.07]}, 0.5) == "similar"
    rng = np.random.default_rng(0)
    truth = rng.random(3000) < 0.35
    strong, weak = truth + rng.normal(0, 0.6, 3000), truth + rng.normal(0, 1.5, 3000)
    difference = delong_difference(truth, strong, weak)
    from sklearn.metrics import roc_auc_score
    assert abs(difference["value"] - (roc_auc_score(truth, strong) - roc_auc_score(truth, weak))) < 1e-12
    assert difference["interval"][0] > 0


def test_model_dir_pins_the_comparison_only_when_it_names_another_directory(monkeypatch, tmp_path):
    from pipeline.training.from_log import _pinned_model

    config = LogTrainingConfig(database_url="sqlite:///x")
    monkeypatch.delenv("MODEL_DIR", raising=False)
    assert _pinned_model(config) is None
    monkeypatch.setenv("MODEL_DIR", str(DEFAULT_ARTIFACT_DIR))
    assert _pinned_model(config) is None  # the service follows the registry with this setting
    monkeypatch.setenv("MODEL_DIR", str(tmp_path))
    assert _pinned_model(config) == tmp_path
    assert _pinned_model(LogTrainingConfig(database_url="sqlite:///x", live_model=DEFAULT_ARTIFACT_DIR)) == \
        DEFAULT_ARTIFACT_DIR
