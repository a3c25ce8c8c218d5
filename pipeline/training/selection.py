"""Candidate model families, the time split and the time-aware cross-validated comparison."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import TimeSeriesSplit
from sklearn.pipeline import Pipeline

from pipeline.evaluation.metrics import roc_auc
from pipeline.schema import TARGET
from pipeline.training.log_model import build_log_model
from pipeline.transform.features import AGE_FIELD, BOOL_FIELDS, StopFeatures
from pipeline.transform.linear_encoding import LinearEncoding

DATETIME_FIELD = "InterventionDateTime"


@dataclass
class TimeSplit:
    """Row positions of the train, validation and test parts, oldest to newest."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def time_split(stamps: pd.Series, validation: float = 0.1, test: float = 0.1) -> TimeSplit:
    """Oldest rows train, the next ``validation`` share validates, the newest ``test`` share is held out."""
    if not 0 < validation < 1 or not 0 < test < 1 or validation + test >= 1:
        raise ValueError("validation and test must be shares in (0, 1) that leave rows for training")
    order = np.argsort(stamps.to_numpy(), kind="stable")
    n = len(order)
    n_test, n_validation = int(round(n * test)), int(round(n * validation))
    n_train = n - n_test - n_validation
    if min(n_train, n_validation, n_test) < 1:
        raise ValueError(f"{n} rows are too few to split into train/validation/test")
    return TimeSplit(train=order[:n_train], validation=order[n_train:n_train + n_validation],
                     test=order[n_train + n_validation:])


def drift_margin(y_train, block_size: int, min_precision: float = 0.5) -> dict:
    """Precision margin that absorbs the largest fall in hit rate seen between consecutive periods of training.

    Under label shift, precision's log-odds move one for one with the base rate's log-odds. So a threshold whose
    precision is min_precision on validation keeps it on the next period if validation demands
    sigmoid(logit(min_precision) + d), where d is the largest drop in log-odds of the hit rate between consecutive
    blocks of ``block_size`` training rows (time order), blocks as large as the validation set.
    """
    y = np.asarray(y_train, dtype=float)
    rates = np.array([y[i:i + block_size].mean() for i in range(0, y.size - block_size + 1, block_size)])
    rates = np.clip(rates, 1e-6, 1 - 1e-6)
    drops = -np.diff(np.log(rates / (1 - rates)))
    largest = float(max(drops.max(initial=0.0), 0.0))
    target = 1 / (1 + np.exp(-(np.log(min_precision / (1 - min_precision)) + largest)))
    return {"margin": float(target - min_precision), "largest_logit_drop": largest,
            "block_size": int(block_size), "block_hit_rates": [float(r) for r in rates]}


def _hist_gradient_boosting(features: StopFeatures, seed: int) -> Pipeline:
    model = HistGradientBoostingClassifier(
        learning_rate=0.08, max_iter=400, max_leaf_nodes=31, min_samples_leaf=40, l2_regularization=1.0,
        categorical_features=features.categorical_features(), early_stopping=True, validation_fraction=0.1,
        n_iter_no_change=20, random_state=seed)
    return Pipeline([("features", features), ("model", model)])


def _logistic_regression(features: StopFeatures, seed: int) -> Pipeline:
    encode = LinearEncoding(one_hot=(*features.categorical_features(), "hour", "day_of_week", "month"),
                            numeric=("time_missing", "year", *BOOL_FIELDS),
                            age=AGE_FIELD if AGE_FIELD in features.protected else None, min_frequency=20)
    model = LogisticRegression(C=0.5, max_iter=2000, random_state=seed)
    return Pipeline([("features", features), ("encode", encode), ("model", model)])


def _random_forest(features: StopFeatures, seed: int) -> Pipeline:
    model = RandomForestClassifier(n_estimators=150, min_samples_leaf=50, max_features=0.5, n_jobs=2,
                                   random_state=seed)
    return Pipeline([("features", features), ("model", model)])


def _shrinkage_logistic_regression(features: StopFeatures, seed: int) -> Pipeline:
    # Department, location and statute as shrunk log-odds, no weekday, month or year (pipeline.training.log_model):
    # the variant the comparison table of issue 11 chose (MODEL_CARD.md, "Variants compared").
    return build_log_model(seed, min_frequency=features.min_count, protected=features.protected)


FAMILIES = {
    "hist_gradient_boosting": _hist_gradient_boosting,
    "logistic_regression": _logistic_regression,
    "random_forest": _random_forest,
    "shrinkage_logistic_regression": _shrinkage_logistic_regression,
}


def build_model(family: str, seed: int = 0, protected=(), min_count: int = 30) -> Pipeline:
    """An unfitted pipeline (features + model) of one family."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; choose from {sorted(FAMILIES)}")
    return FAMILIES[family](StopFeatures(min_count=min_count, protected=tuple(protected)), seed)


def describe(pipeline: Pipeline) -> dict:
    """The model step's class and JSON-safe parameters, for the card."""
    model = pipeline.named_steps["model"]
    params = {k: v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)
              for k, v in model.get_params(deep=False).items()}
    return {"class": type(model).__name__, "params": params,
            "features": pipeline.named_steps["features"].get_params()}


def cross_validate(pipeline: Pipeline, frame: pd.DataFrame, n_splits: int = 3) -> dict:
    """Time-aware CV ROC AUC: each fold trains on older rows and scores the rows right after them."""
    ordered = frame.sort_values(DATETIME_FIELD, kind="stable")
    aucs, seconds = [], []
    for fit_rows, score_rows in TimeSeriesSplit(n_splits=n_splits).split(ordered):
        started = time.perf_counter()
        fitted = clone(pipeline).fit(ordered.iloc[fit_rows], ordered[TARGET].iloc[fit_rows])
        scores = fitted.predict_proba(ordered.iloc[score_rows])[:, 1]
        seconds.append(time.perf_counter() - started)
        aucs.append(roc_auc(ordered[TARGET].iloc[score_rows].to_numpy(), scores))
    return {"auc_mean": float(np.mean(aucs)), "auc_std": float(np.std(aucs)), "auc_folds": aucs,
            "fit_seconds_mean": float(np.mean(seconds)), "folds": n_splits}


def compare_families(frame: pd.DataFrame, families, n_splits: int = 3, seed: int = 0, min_count: int = 30,
                     quiet: bool = False, protected=()) -> dict:
    """Cross-validate each family on the training rows; returns {family: cv result} in the given order."""
    results = {}
    for family in families:
        results[family] = cross_validate(build_model(family, seed, protected, min_count), frame, n_splits)
        if not quiet:
            print(f"  {family}: CV AUC {results[family]['auc_mean']:.4f} +/- {results[family]['auc_std']:.4f}",
                  file=sys.stderr, flush=True)
    return results
