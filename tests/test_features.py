"""The feature transformers keep scikit-learn's contract and treat messy, unseen and missing values sanely."""
import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from pipeline.schema import PROTECTED_FIELDS, clean_frame, records_to_frame, validate_observation
from pipeline.transform.features import CategoryCodes, StopFeatures
from pipeline.transform.linear_encoding import LinearEncoding

DRY_RUN = Path(__file__).parent / "fixtures" / "dry_run.json"


@pytest.fixture(scope="module")
def observations():
    rows = json.loads(DRY_RUN.read_text())["values"]
    return [json.loads(row[2])["observation"] for row in rows]


@pytest.fixture(scope="module")
def training_frame(observations):
    """The dry-run rows as a training file would hold them: text cells through clean_frame."""
    return clean_frame(pd.DataFrame(observations).astype(str))


@pytest.fixture(scope="module")
def serving_frame(observations):
    return records_to_frame([validate_observation(o) for o in observations])


def test_fit_returns_self_and_transform_before_fit_raises(training_frame):
    features = StopFeatures()
    with pytest.raises(NotFittedError):
        features.transform(training_frame)
    with pytest.raises(NotFittedError):
        features.get_feature_names_out()
    assert features.fit(training_frame) is features


def test_clone_keeps_parameters_and_drops_learned_state(training_frame):
    fitted = StopFeatures(min_count=3, max_categories=10).fit(training_frame)
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    with pytest.raises(NotFittedError):
        copy.transform(training_frame)


def test_feature_names_match_columns_and_leave_out_protected_and_officer(training_frame):
    features = StopFeatures(min_count=2).fit(training_frame)
    out = features.transform(training_frame)
    names = list(features.get_feature_names_out())
    assert names == list(out.columns)
    assert not set(names) & set(PROTECTED_FIELDS)
    assert "ReportingOfficerIdentificationID" not in names
    assert set(features.categorical_features()) <= set(names)
    assert out.dtypes.eq(np.float32).all()


def test_protected_variant_adds_protected_attributes(training_frame):
    names = set(StopFeatures(protected=PROTECTED_FIELDS).fit(training_frame).get_feature_names_out())
    assert set(PROTECTED_FIELDS) <= names
    only_age = StopFeatures(protected=("SubjectAge",)).fit(training_frame).get_feature_names_out()
    assert set(only_age) & set(PROTECTED_FIELDS) == {"SubjectAge"}
    with pytest.raises(ValueError, match="ReportingOfficerIdentificationID"):
        StopFeatures(protected=("ReportingOfficerIdentificationID",)).fit(training_frame)


def test_pickle_round_trip_gives_identical_output(training_frame):
    features = StopFeatures(min_count=2).fit(training_frame)
    restored = pickle.loads(pickle.dumps(features))
    np.testing.assert_array_equal(restored.transform(training_frame).to_numpy(),
                                  features.transform(training_frame).to_numpy())


def test_training_and_serving_frames_give_identical_features(training_frame, serving_frame):
    features = StopFeatures(min_count=2).fit(training_frame)
    np.testing.assert_array_equal(features.transform(serving_frame).to_numpy(),
                                  features.transform(training_frame).to_numpy())


def test_messy_text_variants_share_one_code():
    train = pd.DataFrame({"StatuteReason": ["Stop Sign", "Stop Sign", "Speed Related", "Speed Related"]})
    codes = CategoryCodes(columns=("StatuteReason",), min_count=2).fit(train)
    messy = pd.DataFrame({"StatuteReason": ["Stop Sign ", "  stop   SIGN", "STOP SIGN", "speed related"]})
    out = codes.transform(messy)["StatuteReason"].to_numpy()
    assert out[0] == out[1] == out[2] == codes.transform(train)["StatuteReason"].iloc[0]
    assert out[3] == codes.transform(train)["StatuteReason"].iloc[2]


def test_rare_unseen_and_missing_values():
    train = pd.DataFrame({"Department Name": ["A"] * 5 + ["B"] * 5 + ["Rare"]})
    codes = CategoryCodes(columns=("Department Name",), min_count=2).fit(train)
    out = codes.transform(pd.DataFrame({"Department Name": ["a", "Rare", "Never Seen", None, "   "]}))
    values = out["Department Name"].to_numpy()
    assert values[0] >= 1  # kept category
    assert values[1] == values[2] == 0  # rare and unseen share the "other" code
    assert np.isnan(values[3]) and np.isnan(values[4])  # missing and blank stay missing


def test_max_categories_keeps_the_most_frequent():
    train = pd.DataFrame({"StatuteReason": ["x"] * 9 + ["y"] * 8 + ["z"] * 7})
    codes = CategoryCodes(columns=("StatuteReason",), min_count=1, max_categories=2).fit(train)
    assert list(codes.categories_["StatuteReason"]) == ["x", "y"]


def test_time_features_flag_the_midnight_placeholder(training_frame):
    frame = training_frame.head(3).copy()
    frame["InterventionDateTime"] = pd.to_datetime(["2018-05-16 00:00", "2018-05-16 00:30", None])
    out = StopFeatures(min_count=1).fit(training_frame).transform(frame)
    assert list(out["time_missing"].to_numpy()[:2]) == [1.0, 0.0]
    assert np.isnan(out["time_missing"].iloc[2]) and np.isnan(out["hour"].iloc[2])
    assert out["hour"].iloc[1] == 0.0


def test_later_stops_get_the_newest_training_period_not_an_extrapolated_trend(training_frame):
    """The fractional year is clipped to the training range, so a 2026 stop scores like the newest training stop."""
    history = training_frame.copy()
    history["InterventionDateTime"] = pd.date_range("2014-01-01", "2017-06-01", periods=len(history))
    features = StopFeatures(min_count=1).fit(history)
    assert features.year_range_[0] == pytest.approx(2014.0, abs=0.01)
    assert features.year_range_[1] == pytest.approx(2017.41, abs=0.01)
    later = history.head(3).copy()
    later["InterventionDateTime"] = pd.to_datetime(["2017-06-01", "2018-05-16", "2026-11-28"])
    years = features.transform(later)["year"].to_numpy()
    assert years[0] == years[1] == years[2] == pytest.approx(features.year_range_[1])


def test_missing_input_column_is_named(training_frame):
    features = StopFeatures().fit(training_frame)
    with pytest.raises(KeyError, match="StatuteReason"):
        features.transform(training_frame.drop(columns="StatuteReason"))


def _coded_frame():
    return pd.DataFrame({"code": [1.0] * 30 + [2.0] * 25 + [3.0] * 2 + [np.nan] * 3,
                         "SubjectAge": np.linspace(16, 80, 60), "year": np.linspace(2014, 2018, 60)})


def test_linear_encoding_contract_and_unseen_rare_missing_levels():
    frame = _coded_frame()
    encoding = LinearEncoding(one_hot=("code",), numeric=("year",), age="SubjectAge", min_frequency=20)
    with pytest.raises(NotFittedError):
        encoding.transform(frame)
    assert clone(encoding).get_params() == encoding.get_params()
    out = encoding.fit(frame).transform(frame)
    names = list(encoding.get_feature_names_out())
    assert out.shape == (60, len(names))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(encoding)).transform(frame), out)
    probe = pd.DataFrame({"code": [1.0, 3.0, 9.0, np.nan], "SubjectAge": [17.0, 45.0, np.nan, 90.0],
                          "year": [2016.0, np.nan, 2016.0, 2016.0]})
    encoded = pd.DataFrame(encoding.transform(probe), columns=names)
    assert list(encoded["code=1"]) == [1, 0, 0, 0]
    assert list(encoded["code=other"]) == [0, 1, 1, 0]  # rare (3) and unseen (9) share a column
    assert list(encoded["code=missing"]) == [0, 0, 0, 1]
    assert encoded["SubjectAge[0,18)"].iloc[0] == 1 and encoded["SubjectAge=missing"].iloc[2] == 1
    assert encoded["SubjectAge>=60"].iloc[3] == 1
    assert encoded["year"].iloc[1] == 0.0  # missing numbers become the training mean
    assert (encoded.drop(columns="year").sum(axis=1) == 2).all()  # one level per one-hot block
