"""The fast single-record form of ``SacRouter``: route on SearchAuthorizationCode, then the side's own fast scorer.

Routing matches ``SacRouter.route`` (labels normalised by ``schema.category_key``; a missing code is suspected),
and the unsuspected side's decision offset is applied on the log-odds exactly as ``SacRouter.predict_proba`` does.
"""
from __future__ import annotations

import math

from pipeline.schema import category_key
from pipeline.scoring.fast_features import label_of, sigmoid

FAST_ROUTER = "fast-router"
_EPSILON = 1e-15  # the clip SacRouter applies before taking log-odds


class FastRouterScorer:
    """P(contraband) of one validated observation from the fast scorer of its side."""

    def __init__(self, suspected, unsuspected, unsuspected_codes, column: str, offset: float):
        self.suspected, self.unsuspected = suspected, unsuspected
        self.codes = frozenset(category_key(code) for code in unsuspected_codes)
        self.column, self.offset = column, float(offset)
        self.path = f"{FAST_ROUTER}({suspected.path}, {unsuspected.path})"

    def predict_one(self, record: dict) -> float:
        """Probability (a decision score on the unsuspected side when it has an offset)."""
        if label_of(record, self.column) not in self.codes:
            return self.suspected.predict_one(record)
        probability = self.unsuspected.predict_one(record)
        if not self.offset:
            return probability
        if self.offset == -math.inf:
            return 0.0
        p = min(max(probability, _EPSILON), 1 - _EPSILON)
        return sigmoid(math.log(p / (1 - p)) + self.offset)


def build_router_scorer(router, build_scorer):
    """A FastRouterScorer from a fitted SacRouter, or None when either side has no fast form."""
    sides = [build_scorer(router.estimators_[side]) for side in ("suspected", "unsuspected")]
    if None in sides:
        return None
    return FastRouterScorer(*sides, router.unsuspected_codes, router.column, router.unsuspected_offset)
