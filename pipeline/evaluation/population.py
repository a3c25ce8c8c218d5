"""Population shift between training and production: value shares, PSI, report table 6 and unseen categories.

Shares are plain dicts ``{field: {value: share}}`` so a model card can store the training population as JSON and
the production report can build the same dict from SQL counts. Values are strings; booleans are "True"/"False";
missing values fall in the bucket "(missing)"; SubjectAge is bucketed into the report's age groups.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pipeline.schema import PROTECTED_FIELDS, age_group_series, category_key

MISSING = "(missing)"
POPULATION_FIELDS = PROTECTED_FIELDS + ("InterventionReasonCode", "SearchAuthorizationCode", "StatuteReason",
                                        "ResidentIndicator", "TownResidentIndicator", "Department Name")
PSI_BANDS = ((0.1, "stable"), (0.25, "moderate shift"), (math.inf, "major shift"))


def _column_values(frame: pd.DataFrame, field: str) -> pd.Series:
    column = age_group_series(frame[field]) if field == "SubjectAge" else frame[field]
    return pd.Series(column, index=frame.index, dtype="object").fillna(MISSING).astype(str)


def value_counts(frame: pd.DataFrame, fields=POPULATION_FIELDS) -> dict:
    """{field: {value: count}} of a DataFrame of stop records (as from ``schema.clean_frame``)."""
    return {field: {str(k): int(v) for k, v in _column_values(frame, field).value_counts(sort=True).items()}
            for field in fields}


def shares_from_counts(counts: dict) -> dict:
    """Normalise {field: {value: count}} to {field: {value: share}}; a field with no rows gets {}."""
    shares = {}
    for field, values in counts.items():
        total = sum(values.values())
        shares[field] = {str(k): v / total for k, v in values.items()} if total else {}
    return shares


def value_shares(frame_or_counts, fields=POPULATION_FIELDS) -> dict:
    """{field: {value: share}} from a DataFrame of stop records or from {field: {value: count}}."""
    if isinstance(frame_or_counts, pd.DataFrame):
        return shares_from_counts(value_counts(frame_or_counts, fields))
    return shares_from_counts({f: frame_or_counts[f] for f in fields if f in frame_or_counts})


def population_stability_index(expected_shares: dict, actual_shares: dict, epsilon=1e-4) -> float | None:
    """PSI = sum over values of (actual - expected) * ln(actual / expected) for one field.

    Shares of zero (a value seen on one side only) are replaced by ``epsilon`` so the sum stays finite; a value
    new in production then contributes about share * ln(share / epsilon), a large but honest penalty.
    Usual reading: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift (see ``psi_band``).
    None when either side is empty.
    """
    if not expected_shares or not actual_shares:
        return None
    values = sorted(set(expected_shares) | set(actual_shares))
    expected = np.maximum([expected_shares.get(v, 0.0) for v in values], epsilon)
    actual = np.maximum([actual_shares.get(v, 0.0) for v in values], epsilon)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def psi_band(psi) -> str | None:
    """Interpretation band of a PSI: "stable" (< 0.1), "moderate shift" (0.1-0.25) or "major shift" (> 0.25)."""
    if psi is None:
        return None
    return next(name for limit, name in PSI_BANDS if psi < limit)


def psi_noise_floor(values: int, expected_rows: int, actual_rows: int) -> float | None:
    """PSI expected from sampling alone when both samples come from the same population.

    PSI is the symmetric (Jeffreys) divergence, so under no shift n * PSI, with 1/n = 1/expected_rows +
    1/actual_rows, is approximately chi-squared with values - 1 degrees of freedom: its mean is
    (values - 1) * (1/expected_rows + 1/actual_rows). A PSI near this floor is noise, whatever its band;
    fields with many values (departments, locations) and small samples have a high floor.
    """
    if values < 1 or not expected_rows or not actual_rows:
        return None
    return (values - 1) * (1 / expected_rows + 1 / actual_rows)


def psi_by_field(training_shares: dict, production_shares: dict, epsilon=1e-4, training_rows=None,
                 production_rows=None) -> dict:
    """{field: {"psi", "band", "noise_floor"}} for every field present on both sides.

    ``noise_floor`` (see ``psi_noise_floor``) needs the row counts behind the shares: ``training_rows`` (an int,
    e.g. the card's population_rows) and ``production_rows`` (an int or {field: rows}); otherwise it is None.
    """
    result = {}
    for field in training_shares:
        if field in production_shares:
            psi = population_stability_index(training_shares[field], production_shares[field], epsilon)
            rows = production_rows.get(field) if isinstance(production_rows, dict) else production_rows
            values = len(set(training_shares[field]) | set(production_shares[field]))
            result[field] = {"psi": psi, "band": psi_band(psi),
                             "noise_floor": psi_noise_floor(values, training_rows, rows)}
    return result


def population_table(training_shares: dict, production_shares: dict) -> list[dict]:
    """Report table 6: rows of field, value, training % and production % (None when a side lacks the value).

    Values are ordered by training share, then values seen only in production.
    """
    rows = []
    for field in training_shares:
        train = training_shares.get(field, {})
        prod = production_shares.get(field, {})
        ordered = sorted(train, key=lambda v: -train[v]) + sorted(set(prod) - set(train), key=lambda v: -prod[v])
        for value in ordered:
            rows.append({"field": field, "value": value,
                         "training_pct": 100 * train[value] if value in train else None,
                         "production_pct": 100 * prod[value] if value in prod else None})
    return rows


def align_to_training(training_shares: dict, production_counts: dict) -> dict:
    """Production counts with each value spelled as in training when the two differ only in case or spacing.

    The model matches categories by ``schema.category_key``; without this, "MILFORD" logged in production would
    count as a department unseen in training (inflating PSI and the unseen rate) although the model knows it.
    """
    aligned = {}
    for field, counts in production_counts.items():
        spelling = {category_key(value): value for value in training_shares.get(field, {})}
        merged: dict = {}
        for value, count in counts.items():
            key = value if value == MISSING else spelling.get(category_key(value), value)
            merged[key] = merged.get(key, 0) + count
        aligned[field] = merged
    return aligned


def unseen_rate(training_shares: dict, production_counts: dict) -> dict:
    """{field: share of production rows whose value never occurred in training}; None for an empty field.

    Missing values are not categories, so "(missing)" is never counted as unseen (it stays in the denominator).
    """
    rates = {}
    for field, counts in production_counts.items():
        total = sum(counts.values())
        if field not in training_shares or not total:
            rates[field] = None
            continue
        seen = training_shares[field]
        unseen = sum(c for v, c in counts.items() if v != MISSING and v not in seen)
        rates[field] = unseen / total
    return rates
