"""The shrinkage encoder's scikit-learn rules and statistics, and the fast path of a model that uses it."""
from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from pipeline.schema import OBSERVATION_FIELDS, TARGET, records_to_frame, validate_observation
from pipeline.scoring.artifact import ArtifactError, check_scorer, load_artifact, save_artifact
from pipeline.scoring.fast_linear import build_scorer, probe_records, worst_disagreement
from pipeline.training.log_model import build_log_model
from pipeline.transform.shrinkage import ShrinkageEncoder, prior_strength_by_moments
from pipeline.transform.shrunk_features import ShrunkStopFeatures

DEPARTMENTS = {"Darien": 1.2, "New Haven": -0.8, "Milford": 0.0, "Hartford": 0.6, "Bristol": -0.3}


def _groups(n=4000, seed=0):
    """A frame with a department (strong effects), an officer (no effect) and labels."""
    rng = np.random.default_rng(seed)
    names = list(DEPARTMENTS)
    department = rng.integers(0, len(names), n)
    logit = np.array(list(DEPARTMENTS.values()))[department] - 0.5
    labels = rng.random(n) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame({"department": [names[i] for i in department],
                          "officer": [f"O{i}" for i in rng.integers(0, 1500, n)]})
    return frame, labels


def test_effects_follow_the_data_and_shrink_with_few_outcomes():
    frame, labels = _groups()
    encoder = ShrinkageEncoder(("department", "officer")).fit(frame, labels)
    effects = encoder.effects_["department"]
    assert [effects[k.casefold()] > 0 for k in ("Darien", "Hartford")] == [True, True]
    assert effects["new haven"] < effects["bristol"] < effects["milford"] < effects["hartford"] < effects["darien"]
    # the officer carries no signal: far more shrinkage than the department
    assert encoder.strength_["officer"] > 20 * encoder.strength_["department"]
    # a value with 3 outcomes (all hits) moves less than one with 300 (80% hits), both above the overall 60%
    few_and_many = ShrinkageEncoder(("d",), prior_strength=20).fit(
        pd.DataFrame({"d": ["many"] * 300 + ["few"] * 3 + ["rest"] * 200}),
        np.r_[np.ones(240), np.zeros(60), np.ones(3), np.ones(60), np.zeros(140)])
    assert few_and_many.effects_["d"]["many"] > few_and_many.effects_["d"]["few"] > 0
    assert 0 < prior_strength_by_moments(np.array([300, 3, 200]), np.array([240, 3, 60])) < np.inf


def test_no_signal_gives_the_prior():
    frame = pd.DataFrame({"d": ["a", "b"] * 500})
    labels = np.tile([True, False, False, True], 250)
    encoder = ShrinkageEncoder(("d",)).fit(frame, labels)
    assert encoder.strength_["d"] == np.inf
    assert set(encoder.effects_["d"].values()) == {0.0}


def test_unseen_missing_and_spelling():
    frame, labels = _groups()
    frame.loc[:99, "department"] = None
    encoder = ShrinkageEncoder(("department",)).fit(frame, labels)
    new = pd.DataFrame({"department": ["  DARIEN\t", "Nowhere Town", None]})
    out = encoder.transform(new)
    assert out[0, 0] == encoder.effects_["department"]["darien"]
    assert out[1, 0] == 0.0  # unseen: the prior
    assert out[2, 0] == encoder.missing_effects_["department"] != 0.0
    assert encoder.effect_of("department", " darien") == out[0, 0]
    assert encoder.effect_of("department", None) == out[2, 0]
    assert list(encoder.get_feature_names_out()) == ["department:log_odds"]


def test_fit_transform_is_cross_fitted():
    frame, labels = _groups(n=600)
    frame.loc[0, "officer"] = "seen once"
    encoder = ShrinkageEncoder(("department", "officer"), prior_strength=1.0)
    crossed = encoder.fit_transform(frame, labels)
    plain = encoder.transform(frame)
    # a value seen once is, out of fold, never seen: its own label cannot leak into its encoding
    assert crossed[0, 1] == 0.0 and plain[0, 1] != 0.0
    assert not np.allclose(crossed, plain)
    assert np.corrcoef(crossed[:, 0], plain[:, 0])[0, 1] > 0.95  # the department is learnt in every fold


def test_scikit_learn_rules():
    frame, labels = _groups(n=500)
    encoder = ShrinkageEncoder(("department",), prior_strength="auto", cv=3, random_state=4)
    with pytest.raises(NotFittedError):
        encoder.transform(frame)
    assert encoder.get_params() == clone(encoder).get_params()
    assert not hasattr(clone(encoder), "effects_")
    encoder.fit(frame, labels)
    restored = pickle.loads(pickle.dumps(encoder))
    assert np.array_equal(restored.transform(frame), encoder.transform(frame))
    assert encoder.fit(frame, labels) is encoder
    for bad in (ShrinkageEncoder(("department",), prior_strength=-1), ShrinkageEncoder(("department",), cv=1),
                ShrinkageEncoder(("nope",))):
        with pytest.raises((ValueError, KeyError)):
            bad.fit(frame, labels)
    with pytest.raises(ValueError, match="binary"):
        encoder.fit(frame, np.full(len(frame), 2))


def test_sample_weight_counts_rows():
    frame = pd.DataFrame({"d": ["a", "a", "b", "b"]})
    labels = np.array([1, 0, 1, 0])
    doubled = ShrinkageEncoder(("d",), prior_strength=2.0).fit(pd.concat([frame, frame.iloc[:1]]),
                                                                 np.r_[labels, 1])
    weighted = ShrinkageEncoder(("d",), prior_strength=2.0).fit(frame, labels, sample_weight=[2, 1, 1, 1])
    assert weighted.effects_ == doubled.effects_
    assert weighted.prior_ == doubled.prior_


def random_records(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Validated random stop records (as the API would pass them) and labels with department effects."""
    rng = np.random.default_rng(seed)
    records, logits = [], []
    names = list(DEPARTMENTS)
    for i in range(n):
        department = names[rng.integers(0, len(names))]
        sac = "CINO"[rng.integers(0, 4)]
        raw = {"Department Name": department, "InterventionDateTime": f"2018-{1 + i % 12:02d}-{1 + i % 28:02d}T"
               f"{rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}:00",
               "InterventionLocationName": f"Town {rng.integers(0, 40)}", "InterventionReasonCode": "VEI"[i % 3],
               "ReportingOfficerIdentificationID": f"{rng.integers(0, 300)}", "ResidentIndicator": bool(i % 2),
               "SearchAuthorizationCode": sac, "StatuteReason": ["Speed Related", "Registration", None][i % 3],
               "SubjectAge": int(rng.integers(16, 80)), "SubjectEthnicityCode": "HMN"[i % 3],
               "SubjectRaceCode": "ABIW"[i % 4], "SubjectSexCode": "FM"[i % 2], "TownResidentIndicator": bool(i % 5)}
        records.append(validate_observation(raw))
        logits.append(DEPARTMENTS[department] + (1.0 if sac == "O" else -0.7))
    labels = rng.random(n) < 1 / (1 + np.exp(-np.array(logits)))
    return records_to_frame(records).assign(**{TARGET: labels}), labels


@pytest.mark.parametrize("include_officer", [False, True])
def test_fast_path_of_a_shrunk_model_agrees_with_sklearn(include_officer, tmp_path):
    frame, labels = random_records(1500)
    model = build_log_model(include_officer=include_officer).fit(frame, labels)
    features = model.named_steps["features"]
    assert isinstance(features, ShrunkStopFeatures)
    scorer = build_scorer(model)
    assert scorer is not None and scorer.path == "fast-linear"
    probes = probe_records(features)
    probed = {record["InterventionLocationName"] for record in probes}
    assert {label.upper() for label in features.shrinkage_.effects_["InterventionLocationName"]} <= \
        {str(value).upper() for value in probed}
    difference, _ = worst_disagreement(scorer, model, probes)
    assert difference <= 1e-9
    save_artifact(model, {"version": "shrunk-test", "threshold": 0.5}, tmp_path / "model")
    assert load_artifact(tmp_path / "model").scoring_path == "fast-linear"


def test_probe_check_covers_the_encoded_tables():
    frame, labels = random_records(800, seed=1)
    model = build_log_model().fit(frame, labels)
    scorer = build_scorer(model)
    effects = model.named_steps["features"].shrinkage_.effects_["InterventionLocationName"]
    label = sorted(effects)[-1]
    effects[label] += 0.5  # the pipeline now disagrees with the tables built before
    with pytest.raises(ArtifactError, match="differs from its sklearn pipeline"):
        check_scorer(scorer, model, "test")


def test_unseen_values_score_as_the_prior_on_both_paths():
    frame, labels = random_records(800, seed=2)
    model = build_log_model().fit(frame, labels)
    scorer = build_scorer(model)
    record = dict(zip(OBSERVATION_FIELDS, frame.iloc[0][list(OBSERVATION_FIELDS)]))
    record = {k: (None if v is None or v != v else v) for k, v in record.items()}
    record["InterventionDateTime"] = frame.iloc[0]["InterventionDateTime"].to_pydatetime()
    record["SubjectAge"] = int(record["SubjectAge"])
    unseen = dict(record, **{"Department Name": "Never Seen PD", "InterventionLocationName": "NOWHERE"})
    expected = model.predict_proba(records_to_frame([unseen]))[0, 1]
    assert abs(scorer.predict_one(unseen) - expected) <= 1e-9
