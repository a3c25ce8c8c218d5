"""The one definition of a CTRP3 stop record, shared by training, the API and the reports.

Two entry points read the same field table:
- ``validate_observation`` checks one untrusted JSON observation and reports every problem at once, by field;
- ``clean_frame`` normalises a whole training file, vectorised, turning unusable values into missing ones.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

CT_DATETIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
CT_TIMEZONE = ZoneInfo("America/New_York")
EARLIEST_STOP = datetime(2000, 1, 1)
LATEST_STOP = datetime(2100, 1, 1)
MIN_AGE, MAX_AGE = 1, 110  # the training file spans 1..99; anything outside this range is a typo
MAX_TEXT_LENGTH = 200

TARGET = "ContrabandIndicator"
SEARCHED = "VehicleSearchedIndicator"


@dataclass(frozen=True)
class Field:
    """One field of a stop record: its JSON type, allowed codes and whether it may be null."""

    name: str
    kind: str  # "code", "text", "bool", "age", "datetime" or "officer"
    required: bool = True
    codes: tuple[str, ...] = ()
    protected: bool = False
    description: str = ""


FIELDS: tuple[Field, ...] = (
    Field("Department Name", "text", description="Reporting police department, e.g. 'New Haven', 'CSP Troop C'."),
    Field("InterventionDateTime", "datetime",
          description="Stop date and time, CT format '05/16/2018 04:08:00 AM' or ISO 8601."),
    Field("InterventionLocationName", "text", required=False, description="Town or place of the stop."),
    Field("InterventionReasonCode", "code", codes=("V", "E", "I"),
          description="V violation, E equipment, I investigation."),
    Field("ReportingOfficerIdentificationID", "officer", required=False,
          description="Officer id; a string (leading zeros kept) or an integer."),
    Field("ResidentIndicator", "bool", description="Subject is a Connecticut resident."),
    Field("SearchAuthorizationCode", "code", codes=("C", "I", "N", "O"),
          description="C consent, I inventory, N none, O other (probable cause)."),
    Field("StatuteReason", "text", required=False, description="Statute category, e.g. 'Speed Related'."),
    Field("SubjectAge", "age", protected=True, description="Age in whole years (49 or 49.0)."),
    Field("SubjectEthnicityCode", "code", codes=("H", "M", "N"), protected=True,
          description="H Hispanic, M Middle Eastern, N not Hispanic."),
    Field("SubjectRaceCode", "code", codes=("A", "B", "I", "W"), protected=True,
          description="A Asian/Pacific Islander, B Black, I American Indian/Alaska Native, W White."),
    Field("SubjectSexCode", "code", codes=("F", "M"), protected=True, description="F female, M male."),
    Field("TownResidentIndicator", "bool", description="Subject lives in the town of the stop."),
)
FIELD_BY_NAME = {f.name: f for f in FIELDS}
OBSERVATION_FIELDS = tuple(f.name for f in FIELDS)
PROTECTED_FIELDS = tuple(f.name for f in FIELDS if f.protected)
# Column order of the client's train.csv (CALIBRATION.md, issue 2): Department Name comes last.
TRAINING_COLUMNS = OBSERVATION_FIELDS[1:] + (SEARCHED, TARGET, OBSERVATION_FIELDS[0])

# Report table 6 bins; Young Adult 18-35 matches its 47.9% share given the file's median age of 36.
AGE_GROUP_EDGES = (0, 18, 36, 56, 200)
AGE_GROUPS = ("Youth", "Young Adult", "Adult", "Senior")

_SPACES = re.compile(r"\s+")
# C0 and C1 controls and DEL: invisible in logs and reports, so two ids that look equal could differ. Tab, line feed
# and carriage return are kept: they are whitespace, which text fields collapse to one space. Both are regex class
# bodies that the OpenAPI patterns reuse; WHITESPACE is what str.isspace() accepts, less the refused controls.
CONTROL_CHARACTERS = r"\x01-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f"
WHITESPACE = r"\t\n\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")


class ValidationError(ValueError):
    """An observation with one or more invalid fields; ``errors`` maps each field to its problem."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def text_problem(value: str) -> str | None:
    """Return why a string cannot be stored (NUL, control characters, lone surrogate, length), or None if it can."""
    if "\x00" in value:
        return "must not contain NUL characters"
    if _CONTROL.search(value):
        return "must not contain control characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (no lone surrogates)"
    if len(value) > MAX_TEXT_LENGTH:
        return f"must be at most {MAX_TEXT_LENGTH} characters"
    return None


def category_key(value) -> str | None:
    """The identity of a category whatever its spelling: case-folded, whitespace collapsed (None when empty).

    The model's features and the report's comparison with the training population both match values this way,
    so "MILFORD " and "Milford" are one department everywhere.
    """
    text = " ".join(str(value).split()).casefold()
    return text or None


def _normalise_text(value):
    return _SPACES.sub(" ", value).strip()


# The two documented shapes (checked on normalised text); strptime and fromisoformat would accept far more, such as
# "5/6/2018 4:8:0 am" or "2018-W20-3", which the OpenAPI document cannot describe. The report's filters use ISO_SHAPE.
_CT_SHAPE = re.compile(r"([0-9]{2})/([0-9]{2})/([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([AaPp])[Mm]")
ISO_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
                        r"(Z|[+-][0-9]{2}:[0-9]{2})?)?")


class _OutOfRange(ValueError):
    """A real date, but outside EARLIEST_STOP..LATEST_STOP."""


def _ct_datetime(match: re.Match) -> datetime:
    """What strptime(CT_DATETIME_FORMAT) reads from a _CT_SHAPE match, without its ~25 µs per request (issue 15)."""
    month, day, year, hour, minute, second = (int(number) for number in match.groups()[:6])
    if not 1 <= hour <= 12:
        raise ValueError(f"hour {hour} is not on a 12-hour clock")
    # 12 AM is midnight and 12 PM noon, as %I with %p reads them.
    return datetime(year, month, day, hour % 12 + (12 if match[7] in "Pp" else 0), minute, second)


def _parse_datetime(value: str) -> datetime:
    """Parse a CT or ISO 8601 time to naive Connecticut time; the year range applies to the time as written."""
    text = value.strip()
    ct = _CT_SHAPE.fullmatch(text)
    if ct:
        parsed = _ct_datetime(ct)  # raises ValueError when not a real date or time
    elif ISO_SHAPE.fullmatch(text):
        parsed = datetime.fromisoformat(text)
    else:
        raise ValueError(f"{text[:40]!r} is neither a CT nor an ISO 8601 time")
    # As written, so that an offset cannot move a valid time out of range (or past datetime's own limits).
    if not EARLIEST_STOP <= parsed.replace(tzinfo=None) < LATEST_STOP:
        raise _OutOfRange(f"must be between {EARLIEST_STOP.year} and {LATEST_STOP.year}")
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(CT_TIMEZONE).replace(tzinfo=None)
    return parsed


def _check_value(field: Field, value):
    """Return (normalised value, problem); exactly one of them is meaningful."""
    kind = field.kind
    if kind == "bool":
        return (value, None) if isinstance(value, bool) else (None, "must be true or false")
    if kind == "age":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None, "must be a number of years"
        # Floats only: np.isfinite raises on ints beyond int64, which JSON allows (e.g. 10**30).
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            return None, "must be a whole number of years"
        if not MIN_AGE <= value <= MAX_AGE:
            return None, f"must be between {MIN_AGE} and {MAX_AGE}"
        return int(value), None
    if kind == "officer" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None, "must be a string"
    problem = text_problem(value)
    if problem:
        return None, problem
    text = _normalise_text(value)
    if kind == "code":
        text = text.upper() if text.isascii() else text  # else "ı" would pass as I: only ASCII letters fold
        if text not in field.codes:
            return None, f"must be one of {', '.join(field.codes)}"
        return text, None
    if kind == "datetime":
        try:
            return _parse_datetime(text), None
        except _OutOfRange as error:
            return None, str(error)
        except ValueError:
            return None, "must be a date like '05/16/2018 04:08:00 AM' or ISO 8601"
    if not text:
        return None, "must not be empty"
    if field.name == "InterventionLocationName":
        text = text.upper()  # may lengthen the text ("ß" -> "SS"), so the length is checked again below
        if len(text) > MAX_TEXT_LENGTH:
            return None, f"must be at most {MAX_TEXT_LENGTH} characters once upper-cased"
    return text, None


def validate_observation(raw) -> dict:
    """Normalise one observation (a decoded JSON object) or raise ValidationError naming every bad field."""
    if not isinstance(raw, dict):
        raise ValidationError({"observation": "must be a JSON object"})
    errors: dict[str, str] = {}
    record: dict = {}
    for key in raw:
        if key not in FIELD_BY_NAME:
            errors[str(key)[:MAX_TEXT_LENGTH]] = "is not a field of a stop record"
    for field in FIELDS:
        if field.name not in raw:
            errors[field.name] = "is required"
            continue
        value = raw[field.name]
        if value is None or (isinstance(value, str) and not field.required and not value.strip()
                             and not text_problem(value)):  # blank is unknown, but control characters never pass
            if field.required:
                errors[field.name] = "must not be null"
            record[field.name] = None
            continue
        normalised, problem = _check_value(field, value)
        if problem:
            errors[field.name] = problem
        record[field.name] = normalised
    if errors:
        raise ValidationError(errors)
    return record


def age_group(age) -> str | None:
    """Report table 6 age group of one age (None when missing)."""
    if age is None or age != age:
        return None
    for low, high, name in zip(AGE_GROUP_EDGES, AGE_GROUP_EDGES[1:], AGE_GROUPS):
        if low <= age < high:
            return name
    return None


def age_group_series(ages: pd.Series) -> pd.Series:
    """Vectorised ``age_group`` for a column of ages."""
    groups = pd.cut(ages, bins=list(AGE_GROUP_EDGES), right=False, labels=list(AGE_GROUPS))
    return groups.astype("object").where(groups.notna(), None)


def _clean_text_column(column: pd.Series) -> pd.Series:
    text = column.astype("string").str.replace(_SPACES, " ", regex=True).str.strip()
    return text.mask(text == "")


def _clean_bool_column(column: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(column):
        return column.astype("boolean")
    text = column.astype("string").str.strip().str.lower()
    mapping = {"true": True, "false": False, "1": True, "0": False, "t": True, "f": False,
               "yes": True, "no": False, "y": True, "n": False}
    return text.map(mapping).astype("boolean")


def _parse_or_none(value: str):
    try:
        return _parse_datetime(value)
    except ValueError:
        return None


def _clean_datetime_column(column: pd.Series) -> pd.Series:
    text = column.astype("string").str.strip()
    # One resolution whatever the values: an all-NaT parse would otherwise be datetime64[s] and truncate ISO times.
    parsed = pd.to_datetime(text, format=CT_DATETIME_FORMAT, errors="coerce").astype("datetime64[us]")
    # CT times carry no offset, so as written is local; other times are range-checked as written by the API's parser.
    parsed = parsed.where((parsed >= EARLIEST_STOP) & (parsed < LATEST_STOP))
    missing = parsed.isna() & text.notna()
    if missing.any():
        # Other formats go through the API's own parser, once per distinct value, so that naive ISO times stay
        # local and offsets convert exactly as in validate_observation (CTRP3 files rarely hold any).
        others = text[missing]
        lookup = {value: _parse_or_none(value) for value in others.unique()}
        parsed[missing] = pd.to_datetime(others.map(lookup).astype(object), errors="coerce").astype(parsed.dtype)
    return parsed


def clean_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Normalise a CTRP3 file's columns in place of the originals; unusable values become missing.

    Applies the same rules as ``validate_observation`` (codes, case, padding, age range, both date formats),
    but leniently, because a training file's bad cell should cost one value, not the whole file.
    """
    out = pd.DataFrame(index=frame.index)
    for field in FIELDS:
        if field.name not in frame:
            raise KeyError(f"column {field.name!r} is missing; expected the CTRP3 columns {list(TRAINING_COLUMNS)}")
        column = frame[field.name]
        if field.kind == "bool":
            out[field.name] = _clean_bool_column(column)
        elif field.kind == "age":
            age = pd.to_numeric(column, errors="coerce").astype("float32")
            out[field.name] = age.where((age >= MIN_AGE) & (age <= MAX_AGE) & (age == np.floor(age)))
        elif field.kind == "datetime":
            out[field.name] = _clean_datetime_column(column)
        else:
            text = _clean_text_column(column)
            if field.kind == "code":
                text = text.str.upper()
                text = text.where(text.isin(field.codes))
            elif field.name == "InterventionLocationName":
                text = text.str.upper()
            out[field.name] = text.astype("category")
    for name in (SEARCHED, TARGET):
        if name in frame:
            out[name] = _clean_bool_column(frame[name])
    return out


def records_to_frame(records: list[dict]) -> pd.DataFrame:
    """Turn validated observations into the DataFrame the fitted pipeline expects."""
    frame = pd.DataFrame.from_records(records, columns=list(OBSERVATION_FIELDS))
    frame["SubjectAge"] = frame["SubjectAge"].astype("float32")
    frame["InterventionDateTime"] = pd.to_datetime(frame["InterventionDateTime"])
    return frame
