"""The stop-record schema: every real dry-run request accepted, values normalised, every problem reported by field."""
from __future__ import annotations

import copy
import itertools
import json
import math
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.schema import (
    AGE_GROUPS,
    CT_DATETIME_FORMAT,
    FIELDS,
    OBSERVATION_FIELDS,
    SEARCHED,
    TARGET,
    TRAINING_COLUMNS,
    ValidationError,
    age_group,
    age_group_series,
    clean_frame,
    validate_observation,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _dry_run_observations() -> list[dict]:
    table = json.loads((FIXTURES / "dry_run.json").read_text())
    return [json.loads(row[2])["observation"] for row in table["values"]]


DRY_RUN = _dry_run_observations()
EXAMPLE = json.loads((FIXTURES / "observation.json").read_text())


def _with(**changes) -> dict:
    record = copy.deepcopy(EXAMPLE)
    for key, value in changes.items():
        record[key.replace("_", " ") if key == "Department_Name" else key] = value
    return record


def test_fixture_holds_the_documented_223_requests():
    assert len(DRY_RUN) == 223
    assert all(set(obs) == set(OBSERVATION_FIELDS) for obs in DRY_RUN)


@pytest.mark.parametrize("index", range(len(DRY_RUN)))
def test_every_dry_run_observation_is_accepted_unchanged(index):
    raw = DRY_RUN[index]
    sent = copy.deepcopy(raw)
    record = validate_observation(raw)
    assert raw == sent, "validation must not modify the caller's object"
    assert set(record) == set(OBSERVATION_FIELDS)
    assert record["SubjectAge"] == raw["SubjectAge"] and isinstance(record["SubjectAge"], int)
    assert record["ReportingOfficerIdentificationID"] == raw["ReportingOfficerIdentificationID"].strip()
    assert record["InterventionDateTime"] == datetime.strptime(raw["InterventionDateTime"], "%m/%d/%Y %I:%M:%S %p")
    assert record["InterventionLocationName"] == " ".join(raw["InterventionLocationName"].split()).upper()


def test_training_columns_follow_the_client_file_order():
    # The header of the LDSA train.csv, as listed in issue 2 and CALIBRATION.md.
    assert TRAINING_COLUMNS == (
        "InterventionDateTime", "InterventionLocationName", "InterventionReasonCode",
        "ReportingOfficerIdentificationID", "ResidentIndicator", "SearchAuthorizationCode", "StatuteReason",
        "SubjectAge", "SubjectEthnicityCode", "SubjectRaceCode", "SubjectSexCode", "TownResidentIndicator",
        SEARCHED, TARGET, "Department Name")


@pytest.mark.parametrize("field, sent, expected", [
    ("SubjectSexCode", "m", "M"),
    ("SubjectRaceCode", " b ", "B"),
    ("SearchAuthorizationCode", "o", "O"),
    ("InterventionLocationName", "WATERTOWN           ", "WATERTOWN"),
    ("InterventionLocationName", "Glastonbury", "GLASTONBURY"),
    ("InterventionLocationName", "  east   Main St/Columbu ", "EAST MAIN ST/COLUMBU"),
    ("StatuteReason", "Stop Sign ", "Stop Sign"),
    ("Department Name", "  New   Haven ", "New Haven"),
    ("Department Name", "CSP Troop C", "CSP Troop C"),
    ("SubjectAge", 49.0, 49),
    ("SubjectAge", 49, 49),
    ("ReportingOfficerIdentificationID", 473, "473"),
    ("ReportingOfficerIdentificationID", "007", "007"),
    ("ReportingOfficerIdentificationID", " BWC0441 ", "BWC0441"),
    ("InterventionDateTime", "05/16/2018 04:08:00 AM", datetime(2018, 5, 16, 4, 8)),
    ("InterventionDateTime", "05/16/2018 04:08:00 PM", datetime(2018, 5, 16, 16, 8)),
    ("InterventionDateTime", "2018-05-16T04:08:00", datetime(2018, 5, 16, 4, 8)),
    ("InterventionDateTime", "2018-05-16 04:08:00-04:00", datetime(2018, 5, 16, 4, 8)),
    ("InterventionDateTime", "2018-05-16T08:08:00+00:00", datetime(2018, 5, 16, 4, 8)),  # EDT is UTC-4
    ("InterventionDateTime", "2018-01-16T09:08:00Z", datetime(2018, 1, 16, 4, 8)),  # EST is UTC-5
    ("ResidentIndicator", False, False),
    ("StatuteReason", None, None),
    ("InterventionLocationName", "   ", None),
    ("ReportingOfficerIdentificationID", None, None),
])
def test_values_are_normalised(field, sent, expected):
    record = validate_observation({**EXAMPLE, field: sent})
    assert record[field] == expected
    assert type(record[field]) is type(expected)


@pytest.mark.parametrize("change, field, problem", [
    ({"drop": "SubjectAge"}, "SubjectAge", "is required"),
    ({"drop": "Department Name"}, "Department Name", "is required"),
    ({"Colour": "red"}, "Colour", "is not a field"),
    ({"Department Name": None}, "Department Name", "must not be null"),
    ({"SubjectAge": None}, "SubjectAge", "must not be null"),
    ({"Department Name": "   "}, "Department Name", "must not be empty"),
    ({"SubjectSexCode": 1}, "SubjectSexCode", "must be a string"),
    ({"Department Name": ["Milford"]}, "Department Name", "must be a string"),
    ({"ReportingOfficerIdentificationID": 4.5}, "ReportingOfficerIdentificationID", "must be a string"),
    ({"ResidentIndicator": "true"}, "ResidentIndicator", "must be true or false"),
    ({"TownResidentIndicator": 1}, "TownResidentIndicator", "must be true or false"),
    ({"SubjectAge": True}, "SubjectAge", "must be a number of years"),
    ({"SubjectAge": "49"}, "SubjectAge", "must be a number of years"),
    ({"SubjectAge": math.nan}, "SubjectAge", "whole number"),
    ({"SubjectAge": math.inf}, "SubjectAge", "whole number"),
    ({"SubjectAge": -math.inf}, "SubjectAge", "whole number"),
    ({"SubjectAge": 49.5}, "SubjectAge", "whole number"),
    ({"SubjectAge": 0}, "SubjectAge", "between"),
    ({"SubjectAge": -3}, "SubjectAge", "between"),
    ({"SubjectAge": 150}, "SubjectAge", "between"),
    ({"SubjectAge": 10**30}, "SubjectAge", "between"),
    ({"SubjectRaceCode": "X"}, "SubjectRaceCode", "must be one of"),
    ({"SearchAuthorizationCode": ""}, "SearchAuthorizationCode", "must be one of"),
    ({"InterventionReasonCode": "no"}, "InterventionReasonCode", "must be one of"),
    ({"SubjectEthnicityCode": "HN"}, "SubjectEthnicityCode", "must be one of"),
    ({"Department Name": "New\x00Haven"}, "Department Name", "NUL"),
    ({"StatuteReason": "Stop\x00Sign"}, "StatuteReason", "NUL"),
    ({"InterventionLocationName": "MILFORD \ud800"}, "InterventionLocationName", "surrogate"),
    ({"ReportingOfficerIdentificationID": "\udfff473"}, "ReportingOfficerIdentificationID", "surrogate"),
    ({"Department Name": "x" * 201}, "Department Name", "at most 200"),
    ({"InterventionDateTime": "yesterday"}, "InterventionDateTime", "must be a date"),
    ({"InterventionDateTime": "13/45/2018 04:08:00 AM"}, "InterventionDateTime", "must be a date"),
    ({"InterventionDateTime": "05/16/2018 04:08"}, "InterventionDateTime", "must be a date"),
    ({"InterventionDateTime": 1526458080}, "InterventionDateTime", "must be a string"),
    ({"InterventionDateTime": "01/01/1999 12:00:00 AM"}, "InterventionDateTime", "between"),
    ({"InterventionDateTime": "2150-01-01T00:00:00"}, "InterventionDateTime", "between"),
])
def test_each_problem_is_reported_by_field(change, field, problem):
    raw = copy.deepcopy(EXAMPLE)
    for key, value in change.items():
        if key == "drop":
            del raw[value]
        else:
            raw[key] = value
    with pytest.raises(ValidationError) as caught:
        validate_observation(raw)
    assert set(caught.value.errors) == {field}
    assert problem in caught.value.errors[field]


def test_all_problems_are_reported_at_once():
    raw = {**EXAMPLE, "SubjectAge": True, "SubjectRaceCode": "Z", "InterventionDateTime": "never", "Extra": 1}
    del raw["SubjectSexCode"]
    with pytest.raises(ValidationError) as caught:
        validate_observation(raw)
    assert set(caught.value.errors) == {"SubjectAge", "SubjectRaceCode", "InterventionDateTime", "Extra",
                                        "SubjectSexCode"}


@pytest.mark.parametrize("raw", [[], "observation", 3, None])
def test_a_non_object_is_rejected(raw):
    with pytest.raises(ValidationError) as caught:
        validate_observation(raw)
    assert list(caught.value.errors) == ["observation"]


def _assert_same(cleaned_row: pd.Series, record: dict):
    for name in OBSERVATION_FIELDS:
        expected, got = record[name], cleaned_row[name]
        if expected is None:
            assert pd.isna(got), name
        elif isinstance(expected, datetime):
            assert pd.Timestamp(got) == pd.Timestamp(expected), name
        else:
            assert got == expected, name


def test_clean_frame_agrees_with_validate_observation_on_the_dry_run():
    records = [validate_observation(obs) for obs in DRY_RUN]
    cleaned = clean_frame(pd.DataFrame(DRY_RUN))
    for position, record in enumerate(records):
        _assert_same(cleaned.iloc[position], record)


def test_clean_frame_agrees_when_the_dry_run_is_read_back_from_csv(tmp_path):
    # The training loader reads every column as text; booleans and ages then arrive as "True" and "49.0".
    path = tmp_path / "dry_run.csv"
    pd.DataFrame(DRY_RUN).to_csv(path, index=False)
    cleaned = clean_frame(pd.read_csv(path, dtype=str))
    for position, obs in enumerate(DRY_RUN):
        _assert_same(cleaned.iloc[position], validate_observation(obs))


def _junk_frame() -> pd.DataFrame:
    rows = [dict(EXAMPLE) for _ in range(7)]
    rows[0]["InterventionReasonCode"] = "no"
    rows[1]["SubjectAge"] = "abc"
    rows[2]["SubjectAge"] = 49.5
    rows[3]["SubjectAge"] = 0
    rows[4]["InterventionDateTime"] = "not a date"
    rows[5]["InterventionDateTime"] = "01/01/1990 12:00:00 AM"
    rows[6]["SubjectRaceCode"] = "Q"
    return pd.DataFrame(rows)


@pytest.mark.parametrize("row, field", [
    (0, "InterventionReasonCode"), (1, "SubjectAge"), (2, "SubjectAge"), (3, "SubjectAge"),
    (4, "InterventionDateTime"), (5, "InterventionDateTime"), (6, "SubjectRaceCode"),
])
def test_clean_frame_turns_junk_into_missing_values(row, field):
    cleaned = clean_frame(_junk_frame())
    assert pd.isna(cleaned.loc[row, field])
    others = [name for name in OBSERVATION_FIELDS if name != field]
    assert cleaned.loc[row, others].notna().all(), "one bad cell must cost one value, not the row"


def test_clean_frame_normalises_like_the_api():
    frame = pd.DataFrame([
        {**EXAMPLE, "InterventionLocationName": "WATERTOWN           ", "StatuteReason": "Stop Sign ",
         "SubjectSexCode": "m", "SubjectAge": "49.0", "InterventionDateTime": "2018-05-16T08:08:00+00:00"},
        {**EXAMPLE, "InterventionLocationName": "Glastonbury", "ReportingOfficerIdentificationID": "007",
         "ResidentIndicator": "False", "InterventionDateTime": "05/16/2018 04:08:00 PM"},
    ])
    cleaned = clean_frame(frame)
    assert list(cleaned["InterventionLocationName"]) == ["WATERTOWN", "GLASTONBURY"]
    assert cleaned.loc[0, "StatuteReason"] == "Stop Sign" and cleaned.loc[0, "SubjectSexCode"] == "M"
    assert cleaned.loc[0, "SubjectAge"] == 49
    assert list(cleaned["InterventionDateTime"]) == [pd.Timestamp(2018, 5, 16, 4, 8), pd.Timestamp(2018, 5, 16, 16, 8)]
    assert cleaned.loc[1, "ReportingOfficerIdentificationID"] == "007"
    assert cleaned["ResidentIndicator"].tolist() == [True, False]


@pytest.mark.parametrize("missing", OBSERVATION_FIELDS)
def test_clean_frame_names_a_missing_column(missing):
    frame = pd.DataFrame([EXAMPLE]).drop(columns=[missing])
    with pytest.raises(KeyError, match=missing):
        clean_frame(frame)


def test_age_groups_follow_report_table_6():
    ages = [1, 17, 18, 35, 36, 55, 56, 99]
    expected = ["Youth", "Youth", "Young Adult", "Young Adult", "Adult", "Adult", "Senior", "Senior"]
    assert [age_group(a) for a in ages] == expected
    assert age_group_series(pd.Series(ages + [np.nan], dtype="float32")).tolist() == expected + [None]
    assert set(expected) == set(AGE_GROUPS)


def test_protected_fields_are_the_four_groups_of_the_fairness_rule():
    assert {f.name for f in FIELDS if f.protected} == {
        "SubjectAge", "SubjectEthnicityCode", "SubjectRaceCode", "SubjectSexCode"}


ISO_AND_CT_TIMES = ["05/16/2018 04:08:00 AM", "2018-05-16T04:08:00", "2018-05-16T04:08:00.250000",
                    "2018-05-16 04:08:00-04:00", "2018-05-16T08:08:00+00:00", "2018-01-16T09:08:00Z",
                    "2018-11-04T01:30:00-04:00", "2018-11-04T01:30:00-05:00", "2018-05-16"]


@pytest.mark.parametrize("sent", ISO_AND_CT_TIMES)
def test_clean_frame_reads_times_exactly_like_the_api(sent):
    # Naive ISO times are local, offsets are converted: the API and the training file must agree.
    cleaned = clean_frame(pd.DataFrame([{**EXAMPLE, "InterventionDateTime": sent}]))
    assert cleaned.loc[0, "InterventionDateTime"] == pd.Timestamp(
        validate_observation({**EXAMPLE, "InterventionDateTime": sent})["InterventionDateTime"])


@pytest.mark.parametrize("sent", ["0001-01-01T00:00:00+05:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-05:00"])
def test_dates_at_the_ends_of_the_calendar_are_out_of_range_not_a_crash(sent):
    with pytest.raises(ValidationError) as caught:
        validate_observation({**EXAMPLE, "InterventionDateTime": sent})
    assert "between" in caught.value.errors["InterventionDateTime"]
    cleaned = clean_frame(pd.DataFrame([{**EXAMPLE, "InterventionDateTime": sent}, EXAMPLE]))
    assert pd.isna(cleaned.loc[0, "InterventionDateTime"]) and pd.notna(cleaned.loc[1, "InterventionDateTime"])


def test_ct_times_are_read_exactly_as_strptime_reads_them():
    # The CT shape is parsed by hand (issue 15: strptime cost ~25 µs a request); it must accept and reject alike.
    def strptime(text):
        try:
            return datetime.strptime(text, CT_DATETIME_FORMAT)
        except ValueError:
            return "rejected"

    def ours(text):
        try:
            return validate_observation({**EXAMPLE, "InterventionDateTime": text})["InterventionDateTime"]
        except ValidationError:
            return "rejected"

    for month, day, year, clock in itertools.product(["00", "02", "12", "13"], ["00", "01", "29", "31", "32"],
                                                     ["2016", "2018", "2019"],
                                                     ["00:00:00 AM", "12:00:00 am", "12:30:59 PM", "01:05:09 pM",
                                                      "11:59:59 PM", "13:00:00 PM", "10:60:00 AM",
                                                      "10:00:60 AM", "10:00:61 AM"]):
        text = f"{month}/{day}/{year} {clock}"
        assert ours(text) == strptime(text), text
