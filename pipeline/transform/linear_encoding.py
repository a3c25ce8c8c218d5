"""One-hot and scaled encoding of ``StopFeatures`` output for linear models, in plain numpy.

It does what a ColumnTransformer of OneHotEncoders, binning and scalers would do without their per-step validation,
which dominates a single-row transform in a per-request service: 0.39 ms for one dry-run record with the committed
model (`min(timeit.repeat(lambda: artifact.pipeline.named_steps["encode"].transform(features), number=200,
repeat=3)) / 200`, where ``features`` is the ``features`` step's output for tests/fixtures/observation.json).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

# Age bands follow the hit-rate-vs-age curve of CALIBRATION.md (steep under 25, flat from 40).
AGE_EDGES = (18, 20, 22, 25, 30, 35, 40, 50, 60)


class LinearEncoding(TransformerMixin, BaseEstimator):
    """Feature frame to a dense float matrix: one-hot levels, age bands, and standardised numbers.

    ``one_hot`` columns hold small non-negative codes (or NaN): each code seen at least ``min_frequency`` times
    gets a column, rarer and unseen codes share an "other" column, NaN gets its own. ``age`` (if present) is
    one-hot banded by ``AGE_EDGES``. ``numeric`` columns are standardised, NaN becoming the training mean (0).
    """

    def __init__(self, one_hot=(), numeric=(), age=None, min_frequency=20):
        self.one_hot = one_hot
        self.numeric = numeric
        self.age = age
        self.min_frequency = min_frequency

    def fit(self, X, y=None):
        """Learn the kept levels of each one-hot column and the mean and scale of each numeric column."""
        self.levels_ = {}
        for name in self.one_hot:
            values = pd.Series(X[name].to_numpy(dtype=float))
            counts = values.value_counts(dropna=True)
            self.levels_[name] = np.sort(counts[counts >= self.min_frequency].index.to_numpy(dtype=float))
        numbers = np.column_stack([X[name].to_numpy(dtype=float) for name in self.numeric]) if self.numeric \
            else np.empty((len(X), 0))
        self.mean_ = np.nanmean(numbers, axis=0) if numbers.size else np.zeros(0)
        scale = np.nanstd(numbers, axis=0) if numbers.size else np.zeros(0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        self.n_features_in_ = X.shape[1]
        return self

    def _one_hot(self, values: np.ndarray, levels: np.ndarray) -> np.ndarray:
        # columns: kept levels, then "other", then "missing"
        out = np.zeros((values.size, levels.size + 2))
        position = np.searchsorted(levels, values)
        if levels.size:
            known = (position < levels.size) & (levels[np.minimum(position, levels.size - 1)] == values)
        else:  # no level reached min_frequency: every value is "other" (or missing)
            known = np.zeros(values.size, dtype=bool)
        column = np.where(np.isnan(values), levels.size + 1, np.where(known, position, levels.size))
        out[np.arange(values.size), column] = 1.0
        return out

    def transform(self, X):
        """Return the encoded matrix (rows x ``len(get_feature_names_out())``)."""
        check_is_fitted(self, "levels_")
        parts = [self._one_hot(X[name].to_numpy(dtype=float), self.levels_[name]) for name in self.one_hot]
        if self.age is not None:
            ages = X[self.age].to_numpy(dtype=float)
            bands = np.where(np.isnan(ages), np.nan, np.searchsorted(np.asarray(AGE_EDGES), ages, side="right"))
            parts.append(self._one_hot(bands, np.arange(len(AGE_EDGES) + 1, dtype=float)))
        if self.numeric:
            numbers = np.column_stack([X[name].to_numpy(dtype=float) for name in self.numeric])
            parts.append(np.nan_to_num((numbers - self.mean_) / self.scale_, nan=0.0))
        return np.hstack(parts) if parts else np.empty((len(X), 0))

    def get_feature_names_out(self, input_features=None):
        """Names like 'Department Name=3', 'Department Name=other', 'SubjectAge<18', 'year'."""
        check_is_fitted(self, "levels_")
        names = []
        for name in self.one_hot:
            names += [f"{name}={level:g}" for level in self.levels_[name]] + [f"{name}=other", f"{name}=missing"]
        if self.age is not None:
            edges = (0,) + AGE_EDGES
            names += [f"{self.age}[{lo},{hi})" for lo, hi in zip(edges, AGE_EDGES)]
            names += [f"{self.age}>={AGE_EDGES[-1]}", f"{self.age}=other", f"{self.age}=missing"]
        return np.asarray(names + list(self.numeric), dtype=object)
