"""Feature transformers: a stop record (training or serving DataFrame) to a numeric model matrix.

Input is either ``schema.clean_frame`` output (category / boolean / float32 / datetime64 columns with missing
values) or ``schema.records_to_frame`` output (str / bool / float32 / datetime64). Both give identical features.
Protected attributes and the officer id are left out unless named in ``protected`` (a measured choice, see the
model card's ``protected_features_check``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from pipeline.schema import category_key

CODE_FIELDS = ("SearchAuthorizationCode", "InterventionReasonCode")
TEXT_FIELDS = ("StatuteReason", "Department Name", "InterventionLocationName")
BOOL_FIELDS = ("ResidentIndicator", "TownResidentIndicator")
DATETIME_FIELD = "InterventionDateTime"
PROTECTED_CODE_FIELDS = ("SubjectRaceCode", "SubjectEthnicityCode", "SubjectSexCode")
AGE_FIELD = "SubjectAge"
TIME_FEATURES = ("hour", "time_missing", "day_of_week", "month", "year")
RARE_CODE = 0.0  # rare and unseen values share one code; missing values stay NaN


def normalised_categories(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Return (per-row integer codes, normalised labels) for a text column; code -1 means missing.

    Normalisation (casefold, collapse whitespace, strip) runs once per distinct value, not per row.
    """
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes, distinct = column.cat.codes.to_numpy(), column.cat.categories
    else:
        codes, distinct = pd.factorize(column, use_na_sentinel=True)
    labels = np.empty(len(distinct), dtype=object)
    labels[:] = [category_key(value) for value in distinct]
    return codes, labels


def _text_values(column: pd.Series) -> pd.Series:
    """Normalised text per row (None when missing), via the per-category normalisation."""
    codes, labels = normalised_categories(column)
    values = np.empty(len(codes), dtype=object)
    present = codes >= 0
    values[present] = labels[codes[present]]
    return pd.Series(values, index=column.index, dtype=object)


class CategoryCodes(TransformerMixin, BaseEstimator):
    """Messy text columns to integer codes: kept values 1..K, rare/unseen 0, missing NaN.

    A value is kept when it occurs at least ``min_count`` times in training, at most ``max_categories`` per
    column (the most frequent), so codes fit HistGradientBoosting's native categorical support (< 255).
    """

    def __init__(self, columns=TEXT_FIELDS, min_count=30, max_categories=250):
        self.columns = columns
        self.min_count = min_count
        self.max_categories = max_categories

    def fit(self, X, y=None):
        """Learn the kept values of each column from training rows."""
        _require_columns(X, self.columns)
        self.categories_ = {}
        for name in self.columns:
            counts = _text_values(X[name]).value_counts(dropna=True)
            kept = counts[counts >= self.min_count].head(self.max_categories)
            self.categories_[name] = kept.index.to_numpy(dtype=object)
        self.codes_by_label_ = {name: {label: i + 1.0 for i, label in enumerate(kept)}
                                for name, kept in self.categories_.items()}
        self.n_features_in_ = len(self.columns)
        return self

    def code_arrays(self, X) -> dict:
        """{column: float32 codes} without building a DataFrame (the fast path for StopFeatures)."""
        check_is_fitted(self, "categories_")
        _require_columns(X, self.columns)
        out = {}
        for name in self.columns:
            codes, labels = normalised_categories(X[name])
            lookup = self.codes_by_label_[name]
            # map distinct labels once, then broadcast to rows by their code; code -1 picks the trailing NaN
            per_label = np.array([np.nan if label is None else lookup.get(label, RARE_CODE) for label in labels]
                                 + [np.nan], dtype=np.float32)
            out[name] = per_label[codes]
        return out

    def transform(self, X):
        """Return a float32 DataFrame of codes, one column per input column."""
        return pd.DataFrame(self.code_arrays(X), index=X.index, columns=list(self.columns))

    def get_feature_names_out(self, input_features=None):
        """Names of the output columns (the input column names)."""
        check_is_fitted(self, "categories_")
        return np.asarray(self.columns, dtype=object)


def time_features(stamps: pd.Series) -> dict:
    """{name: float32 array}: hour, a flag for the over-represented 12:00:00 AM 'time missing' value, day of
    week, month, and the fractional year (hit rates drift: 33% in training, 36% in the 2018 production stream)."""
    index = pd.DatetimeIndex(pd.to_datetime(stamps))
    missing = index.isna()
    hour = index.hour.to_numpy(dtype=np.float32, na_value=np.nan)
    midnight = ((hour == 0) & (index.minute.to_numpy(dtype=np.float32, na_value=np.nan) == 0)).astype(np.float32)
    midnight[missing] = np.nan
    year = index.year.to_numpy(dtype=np.float32, na_value=np.nan)
    day = index.day_of_year.to_numpy(dtype=np.float32, na_value=np.nan)
    return {"hour": hour, "time_missing": midnight,
            "day_of_week": index.day_of_week.to_numpy(dtype=np.float32, na_value=np.nan),
            "month": index.month.to_numpy(dtype=np.float32, na_value=np.nan),
            "year": (year + (day - 1) / np.float32(365.25)).astype(np.float32)}


def _bool_column(column: pd.Series) -> np.ndarray:
    return column.astype("boolean").to_numpy(dtype=np.float32, na_value=np.nan)


def _require_columns(X, columns):
    if not isinstance(X, pd.DataFrame):
        raise TypeError("expected a pandas DataFrame from schema.clean_frame or schema.records_to_frame")
    missing = [c for c in columns if c not in X.columns]
    if missing:
        raise KeyError(f"columns {missing} are missing; build the frame with pipeline.schema")


class StopFeatures(TransformerMixin, BaseEstimator):
    """A stop record to model features: coded categoricals, time of stop and resident flags.

    Categorical columns (see ``categorical_features``) carry integer codes for native categorical models;
    the others are numeric. ``protected`` names the protected attributes to use as features (default none).
    """

    def __init__(self, min_count=30, max_categories=250, protected=()):
        self.min_count = min_count
        self.max_categories = max_categories
        self.protected = protected

    def _protected(self):
        unknown = set(self.protected) - set(PROTECTED_CODE_FIELDS + (AGE_FIELD,))
        if unknown:
            raise ValueError(f"protected={sorted(unknown)} are not protected fields; choose from "
                             f"{list(PROTECTED_CODE_FIELDS + (AGE_FIELD,))}")
        return tuple(f for f in PROTECTED_CODE_FIELDS if f in self.protected), AGE_FIELD in self.protected

    def _categorical_inputs(self):
        return CODE_FIELDS + TEXT_FIELDS + self._protected()[0]

    def fit(self, X, y=None):
        """Learn the kept categories of every categorical input."""
        self.codes_ = CategoryCodes(self._categorical_inputs(), self.min_count, self.max_categories).fit(X)
        _require_columns(X, (DATETIME_FIELD,) + BOOL_FIELDS)
        years = time_features(X[DATETIME_FIELD])["year"]
        self.year_range_ = (float(np.nanmin(years)), float(np.nanmax(years)))
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        """Return the float32 feature DataFrame (NaN where an input is missing)."""
        check_is_fitted(self, "codes_")
        columns = self.codes_.code_arrays(X) | time_features(X[DATETIME_FIELD])
        # A linear model would extrapolate the training years' trend to every later stop (a request dated 2026
        # would be told "search" more often than one from 2018); later stops get the newest period seen instead.
        columns["year"] = np.clip(columns["year"], *self.year_range_).astype(np.float32)
        columns |= {name: _bool_column(X[name]) for name in BOOL_FIELDS}
        if self._protected()[1]:
            columns[AGE_FIELD] = pd.to_numeric(X[AGE_FIELD]).to_numpy(dtype=np.float32, na_value=np.nan)
        return pd.DataFrame(columns, index=X.index, columns=list(self.get_feature_names_out()))

    def categorical_features(self):
        """Names of the output columns that hold category codes (known before fitting)."""
        return list(self._categorical_inputs())

    def get_feature_names_out(self, input_features=None):
        """Names of the output columns, in order."""
        check_is_fitted(self, "codes_")
        extra = (AGE_FIELD,) if self._protected()[1] else ()
        return np.asarray(self.categorical_features() + list(TIME_FEATURES) + list(BOOL_FIELDS) + list(extra),
                          dtype=object)
