"""The model retrained from the log: a logistic regression on stop features plus shrunk department, location and
statute effects (``ShrunkStopFeatures``), served by the fast linear scorer like the shipped model.

Why linear: on the real stream a plain logistic regression fitted on ~900 labelled stops beat the shipped model
by 0.05 AUC (issue 10); with hundreds to tens of thousands of outcomes a regularised linear model with shrunk
categorical effects is what the data can support, and it keeps the per-field tables the fast path and the
reasons of issue 12 read.
"""
from __future__ import annotations

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from pipeline.transform.features import AGE_FIELD, BOOL_FIELDS, CODE_FIELDS, PROTECTED_CODE_FIELDS
from pipeline.transform.linear_encoding import LinearEncoding
from pipeline.transform.shrinkage import SUFFIX
from pipeline.transform.shrunk_features import OFFICER_FIELD, SHRINK_FIELDS, ShrunkStopFeatures

FAMILY = "shrinkage_logistic_regression"
DEFAULT_C = 0.5


def build_log_model(seed: int = 0, include_officer: bool = False, C: float = DEFAULT_C,
                    min_frequency: int = 20, protected=()) -> Pipeline:
    """An unfitted pipeline: ShrunkStopFeatures -> LinearEncoding -> LogisticRegression.

    The SearchAuthorizationCode, reason and hour are one-hot (levels seen ``min_frequency`` times); department,
    location and statute enter as their shrunk log-odds, standardised. Weekday, month and year are left out: on a
    generated stream (world 7) they cost 0.003-0.008 AUC at 300-3,000 outcomes and gained nothing at 10,000
    (bench/README.md, "Learning from the log"). ``include_officer`` adds the
    officer id's shrunk effect: measured only, never the default (issue 12). ``protected`` names protected
    attributes to use as features (one-hot codes, age in bands), as ``pipeline.train --protected-features`` does for
    the card's comparison; none by default.
    """
    shrink = SHRINK_FIELDS + ((OFFICER_FIELD,) if include_officer else ())
    protected = tuple(protected)
    features = ShrunkStopFeatures(min_count=min_frequency, shrink=shrink, random_state=seed, protected=protected)
    encode = LinearEncoding(one_hot=(*CODE_FIELDS, *(f for f in PROTECTED_CODE_FIELDS if f in protected), "hour"),
                            numeric=("time_missing", *BOOL_FIELDS, *(f"{f}{SUFFIX}" for f in shrink)),
                            age=AGE_FIELD if AGE_FIELD in protected else None, min_frequency=min_frequency)
    model = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    return Pipeline([("features", features), ("encode", encode), ("model", model)])
