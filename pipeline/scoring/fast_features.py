"""StopFeatures' columns for ONE validated observation, in plain Python (no pandas), for the fast scorers.

The values match ``StopFeatures.transform`` bit for bit: time features are float32 like pandas' (the fractional
year is float32 arithmetic, then clipped to the training years), resident flags 1.0/0.0, the age a float32,
and NaN wherever the input is missing. Categorical labels are normalised by ``schema.category_key`` as in training.
"""
from __future__ import annotations

import math
import struct
from datetime import date

from pipeline.schema import category_key
from pipeline.transform.features import AGE_FIELD, BOOL_FIELDS, DATETIME_FIELD, TIME_FEATURES

NAN = float("nan")
_FLOAT32 = struct.Struct("f")


def f32(value: float) -> float:
    """Round a float to the nearest float32, as numpy's float32 arithmetic does (exact for + and / of float32s:
    a double holds more than twice float32's precision, so rounding twice gives the once-rounded result)."""
    return _FLOAT32.unpack(_FLOAT32.pack(value))[0]


_DAYS_PER_YEAR = f32(365.25)


def label_of(record: dict, field: str) -> str | None:
    """The normalised category label of a record's field (None when missing or blank)."""
    value = record.get(field)
    return None if value is None else category_key(value)


def numeric_values(record: dict, year_low: float, year_high: float) -> dict:
    """{column: float} for StopFeatures' time, resident and age columns of one record (NaN when missing)."""
    stamp = record.get(DATETIME_FIELD)
    if stamp is None:
        values = dict.fromkeys(TIME_FEATURES, NAN)
    else:
        day = stamp.toordinal() - date(stamp.year, 1, 1).toordinal()  # day of year minus one
        year = f32(float(stamp.year) + f32(day / _DAYS_PER_YEAR))
        values = {"hour": float(stamp.hour), "time_missing": float(stamp.hour == 0 and stamp.minute == 0),
                  "day_of_week": float(stamp.weekday()), "month": float(stamp.month),
                  "year": min(max(year, year_low), year_high)}
    for name in BOOL_FIELDS:
        flag = record.get(name)
        values[name] = NAN if flag is None else float(flag)
    age = record.get(AGE_FIELD)
    values[AGE_FIELD] = NAN if age is None else f32(float(age))
    return values


def sigmoid(z: float) -> float:
    """The logistic function, without overflow in exp for large |z|."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)
