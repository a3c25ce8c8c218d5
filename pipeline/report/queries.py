"""Aggregations of the request log in SQL (GROUP BY), identical on SQLite and Postgres.

Every query returns a small DataFrame (one row per group, never one per request), so the report's cost grows
with the number of groups, not with the size of the log.
"""
from __future__ import annotations

import pandas as pd
from peewee import SQL, Case, fn

from models import STOP_COLUMNS, Outcome, Prediction, database, monitoring_column
from pipeline.evaluation.fairness import AGE_GROUP, ATTRIBUTES
from pipeline.report.filters import ReportFilters

ROC_BINS = 1000

# Every field of the stop record but its time, by the column the report groups it by (models' one map).
POPULATION_COLUMNS = {field: monitoring_column(field) for field in sorted(STOP_COLUMNS)
                      if field != "InterventionDateTime"}
# Protected attribute name in the report (pipeline.evaluation.fairness) -> its column; the age group for the age.
PROTECTED_COLUMNS = {attribute: monitoring_column("SubjectAge" if attribute == AGE_GROUP else attribute)
                     for attribute in ATTRIBUTES}

# Table 6 fields are counted inside the scans the report makes anyway, a few low-cardinality fields per scan (a few
# hundred to a few thousand groups), so the whole report costs a handful of passes over the log, not one per field.
# Department and officer (thousands of values) get a query each (pipeline.report.gather).
PROFILE_FIELDS = ("SearchAuthorizationCode", "SubjectRaceCode", "SubjectEthnicityCode", "SubjectSexCode",
                  "SubjectAge")  # with the decision and outcome: the decision table and the protected fields
VOLUME_FIELDS = ("InterventionReasonCode", "ResidentIndicator", "TownResidentIndicator")  # with day and version
TEXT_FIELDS = ("StatuteReason", "InterventionLocationName")  # many values, but few combinations per town
PROFILE_COLUMNS = {field: POPULATION_COLUMNS[field] for field in PROFILE_FIELDS}
VOLUME_COLUMNS = {field: POPULATION_COLUMNS[field] for field in VOLUME_FIELDS}
TEXT_COLUMNS = {field: POPULATION_COLUMNS[field] for field in TEXT_FIELDS}
ROWS = fn.COUNT(SQL("*"))


def _is_one(condition):
    return fn.SUM(Case(None, [(condition, 1)], 0))


def _where(query, filters: ReportFilters, *extra):
    conditions = filters.conditions() + list(extra)
    return query.where(*conditions) if conditions else query


def _frame(query, columns: list[str]) -> pd.DataFrame:
    rows = list(query.tuples())
    return pd.DataFrame.from_records(rows, columns=columns)


def volume_counts(filters: ReportFilters) -> pd.DataFrame:
    """Requests, labelled requests and recommended searches per UTC day, model version and VOLUME_COLUMNS."""
    day = fn.DATE(Prediction.received_at)
    keys = (day, Prediction.model_version, *VOLUME_COLUMNS.values())
    query = (Prediction
             .select(*keys, ROWS, fn.COUNT(Prediction.contraband_found),
                     _is_one(Prediction.should_search == True))  # noqa: E712 (SQL, not Python, comparison)
             .group_by(*keys))
    columns = ["day", "model_version", *VOLUME_COLUMNS, "requests", "labelled", "recommended"]
    frame = _frame(_where(query, filters), columns)
    # SQLite returns the day as text and Postgres as a date: one form for both.
    frame["day"] = frame["day"].map(lambda value: str(value)[:10]).astype(object)
    return frame


def profile_counts(filters: ReportFilters) -> pd.DataFrame:
    """Requests per combination of the PROFILE_COLUMNS, decision and current outcome (None = no outcome yet)."""
    keys = (*PROFILE_COLUMNS.values(), Prediction.should_search, Prediction.contraband_found)
    query = Prediction.select(*keys, ROWS).group_by(*keys)
    return _frame(_where(query, filters), [*PROFILE_COLUMNS, "should_search", "contraband_found", "count"])


def _probability_bin(bins: int):
    return database.obj.floor_integer(Prediction.probability * float(bins))


def probability_bins(filters: ReportFilters, bins: int = ROC_BINS) -> pd.DataFrame:
    """Labelled requests per probability bin ``floor(p * bins)`` (p = 1 gets bin ``bins``): positives, negatives."""
    bin_ = _probability_bin(bins)
    query = (Prediction
             .select(bin_, _is_one(Prediction.contraband_found == True),  # noqa: E712
                     _is_one(Prediction.contraband_found == False))  # noqa: E712
             .group_by(bin_).order_by(bin_))
    query = _where(query, filters, Prediction.contraband_found.is_null(False))
    return _frame(query, ["bin", "positives", "negatives"])


def group_outcome_counts(filters: ReportFilters) -> pd.DataFrame:
    """Labelled requests per department x protected groups x decision x outcome, for the fairness tables."""
    columns = (Prediction.department, *PROTECTED_COLUMNS.values(), Prediction.should_search,
               Prediction.contraband_found)
    query = Prediction.select(*columns, ROWS).group_by(*columns)
    query = _where(query, filters, Prediction.contraband_found.is_null(False))
    names = ["department", *PROTECTED_COLUMNS, "should_search", "contraband_found", "count"]
    return _frame(query, names)


def value_counts(filters: ReportFilters, fields: list[str]) -> pd.DataFrame:
    """Requests per combination of values of some stop-record fields (None = missing), for table 6."""
    columns = [POPULATION_COLUMNS[field] for field in fields]
    query = Prediction.select(*columns, ROWS).group_by(*columns)
    return _frame(_where(query, filters), [*fields, "count"])


def outcome_history(filters: ReportFilters) -> dict:
    """Outcome reports received for the slice's requests, and how many of them were corrections."""
    query = Outcome.select(ROWS, _is_one(Outcome.is_correction == True))  # noqa: E712
    if filters.conditions():  # the whole log needs no join
        query = _where(query.join(Prediction), filters)
    reports, corrections = query.tuples().get()
    return {"outcome_reports": int(reports or 0), "corrections": int(corrections or 0)}


def shadow_outcome_counts(filters: ReportFilters) -> pd.DataFrame:
    """Requests a shadow version also scored, per shadow version x department x protected groups x both decisions x
    current outcome (None = no outcome yet): the live-against-shadow section's counts and fairness tables."""
    columns = (Prediction.shadow_version, Prediction.department, *PROTECTED_COLUMNS.values(), Prediction.should_search,
               Prediction.shadow_should_search, Prediction.contraband_found)
    query = Prediction.select(*columns, ROWS).group_by(*columns)
    query = _where(query, filters, Prediction.shadow_version.is_null(False))
    names = ["shadow_version", "department", *PROTECTED_COLUMNS, "should_search", "shadow_should_search",
             "contraband_found", "count"]
    return _frame(query, names)


def shadow_probability_bins(filters: ReportFilters, shadow: bool, bins: int = ROC_BINS) -> pd.DataFrame:
    """Labelled shadow-scored requests per shadow version and probability bin of the live (or the shadow) model."""
    probability = Prediction.shadow_probability if shadow else Prediction.probability
    bin_ = database.obj.floor_integer(probability * float(bins))
    query = (Prediction
             .select(Prediction.shadow_version, bin_, _is_one(Prediction.contraband_found == True),  # noqa: E712
                     _is_one(Prediction.contraband_found == False))  # noqa: E712
             .group_by(Prediction.shadow_version, bin_))
    query = _where(query, filters, Prediction.contraband_found.is_null(False), Prediction.shadow_version.is_null(False))
    return _frame(query, ["shadow_version", "bin", "positives", "negatives"])


def sac_none_by_day(filters: ReportFilters) -> pd.DataFrame:
    """Requests per UTC day of receipt, and how many had SearchAuthorizationCode N (no suspicion stated)."""
    day = fn.DATE(Prediction.received_at)
    query = Prediction.select(day, ROWS, _is_one(Prediction.search_authorization_code == "N")).group_by(day)
    frame = _frame(_where(query, filters), ["day", "requests", "sac_n"])
    frame["day"] = frame["day"].map(lambda value: str(value)[:10]).astype(object)
    return frame


def leading_reason_counts(filters: ReportFilters) -> pd.DataFrame:
    """Recommended searches per department x leading reason: requests, labelled ones, and those that found contraband.

    The leading reason is the sentence of the largest factor that raised the probability (None: logged before
    reasons were kept, or nothing raised it).
    """
    keys = (Prediction.department, Prediction.leading_reason)
    query = (Prediction
             .select(*keys, ROWS, fn.COUNT(Prediction.contraband_found),
                     _is_one(Prediction.contraband_found == True))  # noqa: E712
             .group_by(*keys))
    query = _where(query, filters, Prediction.should_search == True)  # noqa: E712
    return _frame(query, ["department", "leading_reason", "recommended", "labelled", "hits"])


def distinct_values(column) -> list[str]:
    """Every value of an indexed column in the whole log, sorted, for the report's filter choices."""
    query = Prediction.select(column).distinct().order_by(column)
    return [value for (value,) in query.tuples() if value is not None]


__all__ = ["ROC_BINS", "POPULATION_COLUMNS", "PROTECTED_COLUMNS", "PROFILE_COLUMNS", "VOLUME_COLUMNS",
           "TEXT_COLUMNS", "volume_counts",
           "profile_counts", "probability_bins", "group_outcome_counts", "value_counts", "distinct_values",
           "outcome_history", "shadow_outcome_counts", "shadow_probability_bins", "sac_none_by_day",
           "leading_reason_counts"]
