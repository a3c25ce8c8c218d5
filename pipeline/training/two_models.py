"""The two-model form of the search model (``python -m pipeline.train --two-models``): a ``SacRouter`` whose
suspected side is the chosen family and whose SAC = N side is a small, strongly regularised linear model; and how
the N side's decision is validated on its own rows."""
from __future__ import annotations

import math

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from pipeline.evaluation.metrics import select_threshold
from pipeline.schema import TARGET
from pipeline.training.selection import build_model, describe
from pipeline.transform.features import BOOL_FIELDS, StopFeatures
from pipeline.transform.linear_encoding import LinearEncoding
from pipeline.transform.router import SacRouter


def unsuspected_model(seed: int = 0) -> Pipeline:
    """For stops with SAC N (about 4% of searches): fewer levels and stronger regularisation, and no location,
    weekday or month, which a few thousand rows cannot estimate per level."""
    features = StopFeatures(min_count=50)
    encode = LinearEncoding(one_hot=("InterventionReasonCode", "StatuteReason", "Department Name", "hour"),
                            numeric=("time_missing", "year", *BOOL_FIELDS), min_frequency=50)
    return Pipeline([("features", features), ("encode", encode),
                     ("model", LogisticRegression(C=0.1, max_iter=2000, random_state=seed))])


def build_two_models(family: str, seed: int = 0, protected=(), min_count: int = 30) -> SacRouter:
    """Unfitted router: ``family`` (with ``protected`` features) for suspected stops, ``unsuspected_model`` for N."""
    return SacRouter(suspected=build_model(family, seed, protected, min_count), unsuspected=unsuspected_model(seed))


def set_unsuspected_offset(router: SacRouter, validation, scores, min_precision: float, margin: float,
                           criterion: str = "wilson") -> dict:
    """Give the N side its own validated threshold: the threshold each side would get from its own validation
    rows under the same precision rule; the offset makes one served threshold apply both. When no threshold of
    the N side reaches the bar, the N side never recommends a search (offset -inf). Sets the router's
    ``unsuspected_offset`` (``scores`` must come from the router with offset 0) and returns what was found."""
    unsuspected = router.route(validation)
    y = validation[TARGET].to_numpy(bool)
    scores = np.asarray(scores, dtype=float)
    bar = {"min_precision": min_precision, "margin": margin, "criterion": criterion, "raise_if_infeasible": False}
    suspected = select_threshold(y[~unsuspected], scores[~unsuspected], **bar)
    own = select_threshold(y[unsuspected], scores[unsuspected], **bar) if unsuspected.any() else {"feasible": False}
    if not suspected["feasible"]:
        raise ValueError(f"the suspected side reaches no threshold: {suspected['reason']}")
    if own["feasible"]:
        offset = math.log(suspected["threshold"] / (1 - suspected["threshold"])) - \
            math.log(own["threshold"] / (1 - own["threshold"]))
    else:
        offset = -math.inf
    router.set_params(unsuspected_offset=offset)
    return {"validation_unsuspected_rows": int(unsuspected.sum()), "suspected_threshold": suspected["threshold"],
            "unsuspected_threshold": own.get("threshold"),
            "unsuspected_offset": offset if math.isfinite(offset) else None,
            "unsuspected_never_recommended": not math.isfinite(offset),
            "unsuspected_best_precision": own.get("best_precision", own.get("precision_low"))}


def describe_two_models(router: SacRouter) -> dict:
    """The card's model description: the router and each side's own pipeline."""
    return {"class": "SacRouter", "params": {"unsuspected_codes": list(router.unsuspected_codes),
                                             "column": router.column,
                                             "unsuspected_offset": router.unsuspected_offset
                                             if math.isfinite(router.unsuspected_offset) else "-inf"},
            "sides": {side: describe(router.estimators_[side]) for side in ("suspected", "unsuspected")},
            "features": describe(router.estimators_["suspected"])["features"]}
