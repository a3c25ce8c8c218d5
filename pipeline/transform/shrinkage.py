"""Shrinkage (empirical-Bayes target) encoding: each value of a categorical column becomes its log-odds effect,
pulled towards the overall rate by as much as its number of outcomes warrants.

Why: department, location and statute carry much of the real signal, but most values have few outcomes. One-hot
coding either drops the rare values (grouped as "other") or fits each on a handful of rows. Here a value with
``n`` outcomes, ``k`` of them positive, gets the posterior mean rate of a beta-binomial model,

    rate = (k + m * p) / (n + m),        effect = logit(rate) - logit(p),

where ``p`` is the overall rate and ``m`` the prior strength (in pseudo-outcomes). A value with 3 outcomes moves
the score a little, one with 300 a lot; a value never seen in training (and missing, if never seen missing) gets
effect 0, the prior. With ``prior_strength="auto"`` (the default) ``m`` is estimated per column by the method of
moments: the between-value variance of the true rates is what the spread of observed rates shows beyond binomial
noise, ``s2 = (sum n_v (r_v - p)^2 - (V - 1) p (1 - p)) / (N - sum n_v^2 / N)``, and ``m = p (1 - p) / s2 - 1``.
A column whose values do not differ beyond noise gets ``m = inf``: every effect 0.

Leakage: a row's own label must not be inside its own encoding when the next step learns how much to trust the
encoding, or a rare value would look perfectly predictive. So ``fit_transform`` (what ``Pipeline.fit`` calls) is
cross-fitted like scikit-learn's ``TargetEncoder``: each row is encoded by an encoder fitted on the other folds.
``fit(X, y).transform(X)`` uses the encoder fitted on every row, as scoring does. Labels are matched after
``schema.category_key`` (case and spacing do not matter), as everywhere else in the pipeline.

API, the scikit-learn rules: ``__init__`` only stores parameters; ``fit(X, y, sample_weight=None)`` returns self;
learned attributes end in ``_``; ``transform`` before ``fit`` raises ``NotFittedError``; clone and pickle work;
``get_feature_names_out`` names the outputs ``"<column>:log_odds"``. Input is a DataFrame holding ``columns``;
output a float64 array with one column per input column. For scorers without scikit-learn, ``effects_``,
``missing_effects_`` are plain dicts: ``effect_of(column, label)`` is the whole lookup.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import KFold
from sklearn.utils.validation import check_is_fitted

from pipeline.schema import category_key
from pipeline.transform.features import normalised_categories

SUFFIX = ":log_odds"


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def prior_strength_by_moments(n: np.ndarray, k: np.ndarray) -> float:
    """Beta-binomial prior strength ``m`` from per-value outcome counts ``n`` and positives ``k`` (inf: no signal)."""
    n, k = np.asarray(n, dtype=float), np.asarray(k, dtype=float)
    total = n.sum()
    if n.size < 2 or total <= 0:
        return math.inf
    p = k.sum() / total
    if p <= 0 or p >= 1:
        return math.inf
    spread = float(np.sum(n * (k / np.where(n > 0, n, 1) - p) ** 2))
    denominator = total - float(np.sum(n * n)) / total
    between = (spread - (n.size - 1) * p * (1 - p)) / denominator if denominator > 0 else 0.0
    if not between > 0:
        return math.inf
    return max(p * (1 - p) / between - 1.0, 1.0)  # >= 1: no value is trusted beyond its own outcomes plus one


class ShrinkageEncoder(TransformerMixin, BaseEstimator):
    """Categorical columns to shrunk log-odds effects against the overall rate (empirical-Bayes target encoding).

    Parameters: ``columns``, the DataFrame columns to encode; ``prior_strength``, "auto" (method of moments per
    column) or a number of pseudo-outcomes ``m`` >= 0 shared by every column; ``cv``, the folds of the
    cross-fitted ``fit_transform`` (>= 2); ``random_state``, the seed of the fold shuffle.

    Fitted: ``prior_`` (overall rate), ``strength_`` {column: m}, ``effects_`` {column: {label: effect}},
    ``missing_effects_`` {column: effect of a missing value}, ``counts_`` {column: {label: outcomes}},
    ``n_features_in_``, ``feature_names_in_``.
    """

    def __init__(self, columns=(), prior_strength="auto", cv=5, random_state=0):
        self.columns = columns
        self.prior_strength = prior_strength
        self.cv = cv
        self.random_state = random_state

    def _check_params(self, X):
        if not isinstance(X, pd.DataFrame):
            raise TypeError("ShrinkageEncoder expects a pandas DataFrame holding the columns to encode")
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            raise KeyError(f"columns {missing} are not in the input")
        if self.prior_strength != "auto" and not (isinstance(self.prior_strength, (int, float))
                                                  and self.prior_strength >= 0):
            raise ValueError(f"prior_strength must be 'auto' or a number >= 0, not {self.prior_strength!r}")
        if not isinstance(self.cv, int) or self.cv < 2:
            raise ValueError(f"cv must be an integer >= 2, not {self.cv!r}")

    def fit(self, X, y, sample_weight=None):
        """Learn every column's value effects from the labels ``y`` (bool or 0/1), optionally weighted."""
        self._check_params(X)
        target, weight = _target_and_weight(y, sample_weight, len(X))
        total = weight.sum()
        if total <= 0:
            raise ValueError("ShrinkageEncoder needs at least one row of positive weight")
        self.prior_ = float(np.dot(weight, target) / total)
        self.strength_, self.effects_, self.missing_effects_, self.counts_ = {}, {}, {}, {}
        for name in self.columns:
            self._fit_column(name, X[name], target, weight)
        self.n_features_in_ = len(X.columns)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def _fit_column(self, name, column, target, weight):
        codes, labels = normalised_categories(column)
        # code -1 (missing) becomes the last slot; labels that normalise alike (" a", "A") are merged below
        slots = np.where(codes < 0, len(labels), codes)
        n = np.bincount(slots, weights=weight, minlength=len(labels) + 1)
        k = np.bincount(slots, weights=weight * target, minlength=len(labels) + 1)
        merged_n, merged_k = {}, {}
        for label, n_v, k_v in zip(list(labels) + [None], n, k):
            if n_v > 0:
                merged_n[label] = merged_n.get(label, 0.0) + n_v
                merged_k[label] = merged_k.get(label, 0.0) + k_v
        keys = list(merged_n)
        n_all = np.array([merged_n[key] for key in keys])
        k_all = np.array([merged_k[key] for key in keys])
        m = prior_strength_by_moments(n_all, k_all) if self.prior_strength == "auto" else float(self.prior_strength)
        effects = dict(zip(keys, self._effects(n_all, k_all, m)))
        self.strength_[name] = float(m)
        self.missing_effects_[name] = effects.pop(None, 0.0)
        self.effects_[name] = effects
        self.counts_[name] = {key: float(merged_n[key]) for key in keys if key is not None}

    def _effects(self, n, k, m) -> list[float]:
        p = self.prior_
        if math.isinf(m) or p <= 0 or p >= 1:
            return [0.0] * len(n)
        rates = (k + m * p) / (n + m)
        if m == 0:  # no shrinkage: keep the log-odds finite for values seen with one class only
            rates = np.clip(rates, 1e-6, 1 - 1e-6)
        return [float(v) for v in np.log(rates / (1 - rates)) - _logit(p)]

    def effect_of(self, column: str, label) -> float:
        """The effect of one raw value (any spelling; None for missing) of a fitted column."""
        check_is_fitted(self, "effects_")
        key = None if label is None else category_key(label)
        if key is None:
            return self.missing_effects_[column]
        return self.effects_[column].get(key, 0.0)

    def transform(self, X):
        """Each row's effect per column, from the encoder fitted on every training row (float64 array)."""
        check_is_fitted(self, "effects_")
        if not isinstance(X, pd.DataFrame):
            raise TypeError("ShrinkageEncoder expects a pandas DataFrame holding the columns to encode")
        out = np.zeros((len(X), len(self.columns)))
        for j, name in enumerate(self.columns):
            codes, labels = normalised_categories(X[name])
            table = self.effects_[name]
            # distinct labels are looked up once; code -1 picks the trailing missing effect
            missing = self.missing_effects_[name]
            per_label = np.array([missing if label is None else table.get(label, 0.0) for label in labels]
                                 + [missing])
            out[:, j] = per_label[codes]
        return out

    def fit_transform(self, X, y, sample_weight=None):
        """Fit on every row (for later ``transform``) and return cross-fitted encodings of the training rows."""
        self.fit(X, y, sample_weight)
        rows = len(X)
        folds = min(self.cv, rows)
        if folds < 2:
            return self.transform(X)
        target, weight = _target_and_weight(y, sample_weight, rows)
        out = np.zeros((rows, len(self.columns)))
        splitter = KFold(n_splits=folds, shuffle=True, random_state=self.random_state)
        for fit_rows, encode_rows in splitter.split(np.zeros(rows)):
            if weight[fit_rows].sum() <= 0:
                continue  # all-zero-weight folds leave the prior (0)
            fold = ShrinkageEncoder(self.columns, self.prior_strength, self.cv, self.random_state)
            fold.fit(X.iloc[fit_rows], target[fit_rows], weight[fit_rows])
            out[encode_rows] = fold.transform(X.iloc[encode_rows])
        return out

    def get_feature_names_out(self, input_features=None):
        """``"<column>:log_odds"`` for each encoded column."""
        check_is_fitted(self, "effects_")
        return np.asarray([f"{name}{SUFFIX}" for name in self.columns], dtype=object)


def _target_and_weight(y, sample_weight, rows: int) -> tuple[np.ndarray, np.ndarray]:
    target = np.asarray(y, dtype=float).ravel()
    if target.size != rows:
        raise ValueError(f"y has {target.size} values for {rows} rows")
    if np.isnan(target).any() or not np.isin(target, (0.0, 1.0)).all():
        raise ValueError("y must be binary (bool or 0/1) without missing values")
    weight = np.ones(rows) if sample_weight is None else np.asarray(sample_weight, dtype=float).ravel()
    if weight.size != rows or (weight < 0).any() or not np.isfinite(weight).all():
        raise ValueError("sample_weight must hold one finite, non-negative weight per row")
    return target, weight
