"""The fast single-record scorer gives the sklearn pipeline's probabilities, and a load refuses one that does not.

Equivalence is checked on the 223 dry-run requests, on a held-out generated set made messy on purpose (missing
values, unseen categories, odd spacing and case, dates outside the training years, midnight, ISO offsets), and on
small linear pipelines fitted here with protected features, so every feature branch of the scorer is exercised.
"""
from __future__ import annotations

import copy
import random

import numpy as np
import pandas as pd
import pytest

from pipeline.schema import (
    OBSERVATION_FIELDS,
    TARGET,
    ValidationError,
    category_key,
    clean_frame,
    records_to_frame,
    validate_observation,
)
from pipeline.scoring.artifact import (
    FAST_TOLERANCE,
    Artifact,
    ArtifactError,
    check_scorer,
    load_artifact,
    save_artifact,
)
from pipeline.scoring.fast_linear import FAST_LINEAR, SKLEARN, build_scorer, probe_records, worst_disagreement
from pipeline.scoring.fast_trees import FAST_TREES
from pipeline.synthetic import generate as synthetic
from pipeline.training.cli import PROTECTED_CHOICES
from pipeline.training.selection import build_model
from pipeline.transform.features import AGE_FIELD, DATETIME_FIELD

TRAIN_ROWS, TRAIN_SEED = 4000, 21
HELD_OUT_ROWS, HELD_OUT_SEED = 3000, 22


def _observations(frame: pd.DataFrame) -> list[dict]:
    """Generated rows as JSON-like observations (None where the file has no value)."""
    rows = frame[list(OBSERVATION_FIELDS)].astype(object).where(frame[list(OBSERVATION_FIELDS)].notna(), None)
    return [{k: (int(v) if k == "SubjectAge" and v is not None else v) for k, v in row.items()}
            for row in rows.to_dict("records")]


def _mess(observation: dict, rng: random.Random) -> dict:
    """One observation with some of the mess a client may send (each kind on a share of the rows)."""
    out = dict(observation)
    roll = rng.random
    if roll() < 0.15:
        out["InterventionLocationName"] = rng.choice([None, "", "   "])
    if roll() < 0.1:
        out["StatuteReason"] = None
    for name in ("Department Name", "InterventionLocationName", "StatuteReason"):
        if out[name] and roll() < 0.15:
            out[name] = "  " + "   ".join(out[name].swapcase().split()) + "\t"
        if roll() < 0.05:
            out[name] = f"Never Seen {name} {rng.randrange(10**6)}"
    if roll() < 0.2:
        out["SearchAuthorizationCode"] = f" {out['SearchAuthorizationCode'].lower()} "
    month, day, rest = out["InterventionDateTime"].split("/", 2)
    year, clock = rest.split(" ", 1)
    if roll() < 0.3:
        year = str(rng.choice([2000, 2005, 2011, 2012, 2019, 2024, 2030, 2099]))
    if roll() < 0.1:
        clock = "12:00:00 AM"
    stamp = f"{month}/{day}/{year} {clock}"
    if roll() < 0.1:
        stamp = f"{year}-{month}-{day}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00-05:00"
    out["InterventionDateTime"] = stamp
    return out


def _validated(observations: list[dict]) -> list[dict]:
    """The observations the API would accept (generated reason-code junk is refused, as by the service)."""
    records = []
    for observation in observations:
        try:
            records.append(validate_observation(observation))
        except ValidationError:
            pass
    return records


def _assert_equivalent(scorer, pipeline, records: list[dict]) -> float:
    expected = pipeline.predict_proba(records_to_frame(records))[:, 1]
    fast = np.array([scorer.predict_one(record) for record in records])
    difference = np.abs(fast - expected)
    assert difference.max() <= FAST_TOLERANCE, records[int(difference.argmax())]
    return float(difference.max())


@pytest.fixture(scope="module")
def training_frame():
    frame, _ = synthetic.generate(TRAIN_ROWS, TRAIN_SEED)
    return clean_frame(frame), frame[TARGET].astype(bool)


@pytest.fixture(scope="module")
def held_out_records():
    frame, _ = synthetic.generate(HELD_OUT_ROWS, HELD_OUT_SEED)
    rng = random.Random(HELD_OUT_SEED)
    records = _validated([_mess(observation, rng) for observation in _observations(frame)])
    assert len(records) > 0.95 * HELD_OUT_ROWS
    return records


def test_default_artifact_scores_one_record_on_the_fast_linear_path(artifact):
    assert artifact.scoring_path == FAST_LINEAR


def test_fast_path_matches_sklearn_on_every_dry_run_request(artifact, dry_run_requests):
    records = [validate_observation(observation) for _, observation, _ in dry_run_requests]
    assert len(records) == 223
    _assert_equivalent(artifact.scorer, artifact.pipeline, records)
    assert [artifact.predict_one(r) for r in records] == [artifact.scorer.predict_one(r) for r in records]


def test_fast_path_matches_sklearn_on_a_messy_held_out_generated_set(artifact, held_out_records):
    features = artifact.pipeline.named_steps["features"]
    years = [r[DATETIME_FIELD].year for r in held_out_records]
    assert min(years) < features.year_range_[0] and max(years) > features.year_range_[1] + 1
    assert any(r["InterventionLocationName"] is None for r in held_out_records)
    kept = set(features.codes_.categories_["Department Name"])
    assert any(category_key(r["Department Name"]) not in kept for r in held_out_records)
    _assert_equivalent(artifact.scorer, artifact.pipeline, held_out_records)


@pytest.mark.parametrize("protected", ["none", "age", "all"])
def test_fast_path_matches_linear_pipelines_fitted_with_protected_features(training_frame, held_out_records,
                                                                           protected):
    frame, target = training_frame
    pipeline = build_model("logistic_regression", protected=PROTECTED_CHOICES[protected], min_count=5)
    pipeline.fit(frame, target)
    scorer = build_scorer(pipeline)
    assert scorer.path == FAST_LINEAR
    probes = probe_records(pipeline.named_steps["features"])
    _assert_equivalent(scorer, pipeline, held_out_records + probes)


def test_probes_reach_every_kept_level_an_unseen_value_missing_values_and_dates_around_training(artifact):
    features = artifact.pipeline.named_steps["features"]
    probes = probe_records(features)
    for name, labels in features.codes_.categories_.items():
        seen = {category_key(p[name]) if p[name] is not None else None for p in probes}
        assert set(labels) <= seen and None in seen and seen - set(labels) - {None}
    years = {p[DATETIME_FIELD].year for p in probes if p[DATETIME_FIELD] is not None}
    assert min(years) < features.year_range_[0] and max(years) > features.year_range_[1] + 1
    assert any(p[DATETIME_FIELD] is None for p in probes) and any(p[AGE_FIELD] is None for p in probes)


@pytest.mark.parametrize("tamper", ["category", "unseen", "numeric", "intercept"])
def test_a_tampered_fast_scorer_is_refused_naming_the_record_and_the_difference(artifact, tamper):
    scorer = copy.deepcopy(artifact.scorer)
    if tamper == "category":
        table = scorer.categorical[3][1]
        table[next(iter(table))] += 1e-6
    elif tamper == "unseen":
        field, table, unseen, missing = scorer.categorical[0]
        scorer.categorical[0] = (field, table, unseen + 1e-6, missing)
    elif tamper == "numeric":
        scorer.numeric[-1][1].coefficient += 1e-6
    else:
        scorer.intercept += 1e-6
    with pytest.raises(ArtifactError, match=r"differs from its sklearn pipeline by [0-9.e-]+ .*Department Name="):
        check_scorer(scorer, artifact.pipeline, "here")
    check_scorer(artifact.scorer, artifact.pipeline, "here")


def test_worst_disagreement_counts_a_nan_probability_as_wrong(artifact):
    scorer = copy.deepcopy(artifact.scorer)
    scorer.intercept = float("nan")
    probes = probe_records(artifact.pipeline.named_steps["features"])
    difference, _ = worst_disagreement(scorer, artifact.pipeline, probes)
    assert difference == float("inf")


@pytest.mark.parametrize("protected", ["none", "all"])
def test_fast_path_matches_gradient_boosting_pipelines(training_frame, held_out_records, protected):
    frame, target = training_frame
    pipeline = build_model("hist_gradient_boosting", protected=PROTECTED_CHOICES[protected], min_count=5)
    pipeline.fit(frame, target)
    scorer = build_scorer(pipeline)
    assert scorer.path == FAST_TREES and scorer.steps > 1
    _assert_equivalent(scorer, pipeline, held_out_records + probe_records(pipeline.named_steps["features"]))


def test_a_tampered_tree_scorer_is_refused(training_frame):
    frame, target = training_frame
    pipeline = build_model("hist_gradient_boosting", min_count=5).fit(frame, target)
    scorer = build_scorer(pipeline)
    check_scorer(scorer, pipeline, "here")
    scorer.value[scorer.value != 0] += 1e-6
    with pytest.raises(ArtifactError, match="differs from its sklearn pipeline"):
        check_scorer(scorer, pipeline, "here")


def test_random_forests_fall_back_to_the_sklearn_path_when_loaded(training_frame, held_out_records, tmp_path):
    frame, target = training_frame
    pipeline = build_model("random_forest", min_count=5).set_params(model__n_estimators=10).fit(frame, target)
    assert build_scorer(pipeline) is None
    loaded = load_artifact(save_artifact(pipeline, {"version": "rf-test", "threshold": 0.5}, tmp_path / "rf"))
    assert loaded.scoring_path == SKLEARN
    records = held_out_records[:50]
    # one row at a time against the batch: the forest's threads may add trees in another order (1 ulp)
    np.testing.assert_allclose([loaded.predict_one(r) for r in records], loaded.predict_proba(records),
                               rtol=0, atol=FAST_TOLERANCE)


def test_a_saved_linear_artifact_loads_with_a_checked_fast_scorer(training_frame, held_out_records, tmp_path):
    frame, target = training_frame
    pipeline = build_model("logistic_regression", protected=PROTECTED_CHOICES["all"], min_count=5).fit(frame, target)
    loaded = load_artifact(save_artifact(pipeline, {"version": "lr-test", "threshold": 0.5}, tmp_path / "lr"))
    assert loaded.scoring_path == FAST_LINEAR
    unchecked = Artifact(pipeline=loaded.pipeline, card=loaded.card)
    assert unchecked.scoring_path == SKLEARN
    records = held_out_records[:200]
    assert np.abs(np.array([loaded.predict_one(r) for r in records])
                  - np.array([unchecked.predict_one(r) for r in records])).max() <= FAST_TOLERANCE


def test_a_multiclass_gradient_boosting_model_falls_back_to_the_sklearn_path(training_frame, tmp_path, caplog):
    frame, target = training_frame
    # three classes: HistGradientBoosting then grows one tree per class per iteration, which the fast form lacks
    classes = np.where(target, 2, np.arange(len(target)) % 2)
    pipeline = build_model("hist_gradient_boosting", min_count=5).set_params(model__max_iter=5).fit(frame, classes)
    with caplog.at_level("INFO", logger="pipeline.scoring.fast_linear"):
        assert build_scorer(pipeline) is None
    assert "3 trees per iteration" in caplog.text
    loaded = load_artifact(save_artifact(pipeline, {"version": "hgb-3", "threshold": 0.5}, tmp_path / "hgb3"))
    assert loaded.scoring_path == SKLEARN


def test_a_linear_model_whose_coefficients_do_not_fit_its_encoder_is_refused_at_load(training_frame, tmp_path):
    frame, target = training_frame
    pipeline = build_model("logistic_regression", min_count=5).fit(frame, target)
    model = pipeline.named_steps["model"]
    model.coef_ = model.coef_[:, :-3]  # as if the encoder had been refitted without the model
    with pytest.raises(ValueError, match="columns but the model has"):
        build_scorer(pipeline)
    with pytest.raises(ArtifactError, match=r"cannot be turned into its fast scorer: the encoder makes \d+ columns "
                                            r"but the model has \d+ coefficients; .*retrain"):
        load_artifact(save_artifact(pipeline, {"version": "lr-bad", "threshold": 0.5}, tmp_path / "bad"))
