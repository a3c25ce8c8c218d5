"""How each variant is built and fitted on the training rows (run in a child process, see ``fit``)."""
from __future__ import annotations

import itertools
import time

import numpy as np
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from pipeline.experiments.weights import fairness_penalty_weights
from pipeline.schema import TARGET
from pipeline.training.log_model import build_log_model
from pipeline.training.selection import build_model, cross_validate
from pipeline.training.two_models import build_two_models
from pipeline.transform.router import SacRouter

BASELINE_FAMILY = "logistic_regression"  # the committed default's family (won the card's time-series CV)
WEIGHT_STRENGTHS = (0.5, 1.0, 2.0, 4.0, 8.0)
LOGISTIC_GRID = {"model__C": (0.05, 0.1, 0.2, 0.5, 1.0, 2.0), "encode__min_frequency": (5, 20, 50)}
BOOSTING_SPACE = {"model__learning_rate": (0.03, 0.05, 0.1), "model__max_leaf_nodes": (15, 31, 63),
                  "model__min_samples_leaf": (20, 50, 100, 200), "model__l2_regularization": (0.0, 1.0, 5.0)}
BOOSTING_DRAWS = 6


def baseline(seed: int = 0) -> Pipeline:
    """Today's model: one searched-only pipeline of the default's family, default settings."""
    return build_model(BASELINE_FAMILY, seed)


def sac_split(seed: int = 0) -> SacRouter:
    """Two models: the baseline's pipeline for suspected stops, ``unsuspected_model`` for SAC N."""
    return build_two_models(BASELINE_FAMILY, seed)


def fit_fairness_weights(train, seed: int = 0, strengths=WEIGHT_STRENGTHS, settings=None) -> tuple[dict, dict]:
    """The baseline refitted with the client's penalty weights, once per strength: {strength: model}."""
    settings = settings or {"min_department": 100, "min_group": 20}
    y = train[TARGET].to_numpy(bool)
    models, info = {}, {"strengths": list(strengths), "weights": {}}
    for strength in strengths:
        weights = fairness_penalty_weights(train, y, strength, **settings)
        models[strength] = baseline(seed).fit(train, y, model__sample_weight=weights)
        info["weights"][str(strength)] = {"max": float(weights.max()), "min": float(weights.min()),
                                          "share_above_1": float((weights > weights.min()).mean())}
    return models, info


def _candidates(seed: int):
    rng = np.random.default_rng(seed)
    keys = list(LOGISTIC_GRID)
    for values in itertools.product(*LOGISTIC_GRID.values()):
        yield "logistic_regression", dict(zip(keys, values))
    keys = list(BOOSTING_SPACE)
    for _ in range(BOOSTING_DRAWS):
        yield "hist_gradient_boosting", {k: BOOSTING_SPACE[k][rng.integers(len(BOOSTING_SPACE[k]))] for k in keys}


def fit_tuned(train, seed: int = 0, folds: int = 3, progress=print) -> tuple[Pipeline, dict]:
    """Grid over logistic regression and random draws of gradient boosting, scored by the same time-series CV
    the training command uses; the best configuration of either family is refitted on all training rows."""
    results = []
    defaults = {family: cross_validate(build_model(family, seed), train, folds)["auc_mean"]
                for family in ("logistic_regression", "hist_gradient_boosting")}
    for family, params in _candidates(seed):
        started = time.perf_counter()
        cv = cross_validate(build_model(family, seed).set_params(**params), train, folds)
        results.append({"family": family, "params": params, "cv_auc": cv["auc_mean"], "cv_sd": cv["auc_std"],
                        "seconds": time.perf_counter() - started})
        progress(f"tuning {family} {params}: CV AUC {cv['auc_mean']:.4f}")
    best = max(results, key=lambda r: r["cv_auc"])
    model = clone(build_model(best["family"], seed).set_params(**best["params"]))
    model.fit(train, train[TARGET].to_numpy(bool))
    info = {"searched": {"logistic_regression": {k: list(v) for k, v in LOGISTIC_GRID.items()},
                         "hist_gradient_boosting": {"space": {k: list(v) for k, v in BOOSTING_SPACE.items()},
                                                    "random_draws": BOOSTING_DRAWS}},
            "cv": f"{folds}-fold TimeSeriesSplit on the training rows, ROC AUC", "default_cv_auc": defaults,
            "best": best, "results": results}
    return model, info


def fit_variant(name: str, train, seed: int = 0, progress=print):
    """Fit one variant on the training rows; returns (model or {strength: model}, info)."""
    y = train[TARGET].to_numpy(bool)
    if name == "baseline":
        return baseline(seed).fit(train, y), {}
    if name == "sac_split":
        return sac_split(seed).fit(train, y), {}
    if name == "fairness_weights":
        return fit_fairness_weights(train, seed)
    if name == "tuned":
        return fit_tuned(train, seed, progress=progress)
    if name == "shrinkage":
        return build_log_model(seed).fit(train, y), {"builder": "pipeline.training.log_model.build_log_model"}
    raise ValueError(f"unknown variant {name!r}")
