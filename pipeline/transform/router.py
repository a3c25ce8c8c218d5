"""Two models in one estimator: stops with SearchAuthorizationCode N (no stated suspicion) go to one, the rest to
the other (the client's "bulletproof" idea: an officer who sends every stop gets answers from a model that knows
most unsuspected stops find nothing, not from one trained on suspected stops).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted

from pipeline.schema import category_key
from pipeline.transform.features import normalised_categories

SAC_FIELD = "SearchAuthorizationCode"


class SacRouter(ClassifierMixin, BaseEstimator):
    """Route each stop by its SearchAuthorizationCode: codes in ``unsuspected_codes`` to ``unsuspected``, every
    other code (and a missing one) to ``suspected``. Both are fitted clones, each on its own rows only.

    Each sub-model is any binary classifier taking the stop DataFrame (e.g. a features + model pipeline), so
    each side can have its own features and family. Codes are matched as the features match them (case and
    whitespace ignored), so " n" routes like "N".

    ``unsuspected_offset`` is added to the unsuspected side's log-odds so that ONE served threshold applies each
    side's own validated threshold (-inf: never recommend a search without stated suspicion). With an offset the
    unsuspected side's output is a decision score, not a calibrated probability. It is read at prediction time,
    so it can be set after fitting, once validation rows have chosen it.
    """

    def __init__(self, suspected=None, unsuspected=None, unsuspected_codes=("N",), column=SAC_FIELD,
                 unsuspected_offset=0.0):
        self.suspected = suspected
        self.unsuspected = unsuspected
        self.unsuspected_codes = unsuspected_codes
        self.column = column
        self.unsuspected_offset = unsuspected_offset

    def route(self, X) -> np.ndarray:
        """Boolean mask of the rows that go to the ``unsuspected`` model."""
        if not isinstance(X, pd.DataFrame) or self.column not in X:
            raise KeyError(f"SacRouter needs a DataFrame with the column {self.column!r}")
        codes, labels = normalised_categories(X[self.column])
        wanted = {category_key(code) for code in self.unsuspected_codes}
        per_label = np.array([label in wanted for label in labels] + [False], dtype=bool)  # -1 (missing) -> False
        return per_label[codes]

    def fit(self, X, y, sample_weight=None):
        """Fit a clone of each sub-model on its own rows; both sides need both outcomes."""
        if self.suspected is None or self.unsuspected is None:
            raise ValueError("SacRouter needs both a suspected and an unsuspected estimator")
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        if self.classes_.size != 2:
            raise ValueError(f"SacRouter is a binary classifier; y has classes {self.classes_.tolist()}")
        unsuspected = self.route(X)
        self.estimators_ = {}
        for side, rows, template in (("suspected", ~unsuspected, self.suspected),
                                     ("unsuspected", unsuspected, self.unsuspected)):
            if np.unique(y[rows]).size < 2:
                raise ValueError(f"the {side} rows ({int(rows.sum())}) do not hold both outcomes; a model cannot "
                                 "be fitted on them")
            kwargs = {} if sample_weight is None else _weight_kwargs(template, np.asarray(sample_weight)[rows])
            self.estimators_[side] = clone(template).fit(X[rows], y[rows], **kwargs)
            if not np.array_equal(self.estimators_[side].classes_, self.classes_):
                raise ValueError(f"the {side} model learned classes {self.estimators_[side].classes_.tolist()}")
        self.n_features_in_ = X.shape[1]
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def predict_proba(self, X):
        """Class probabilities, each row from the model of its side."""
        check_is_fitted(self, "estimators_")
        unsuspected = self.route(X)
        out = np.empty((len(X), self.classes_.size))
        for side, rows in (("suspected", ~unsuspected), ("unsuspected", unsuspected)):
            if rows.any():
                out[rows] = self.estimators_[side].predict_proba(X[rows])
        if self.unsuspected_offset and unsuspected.any():
            positive = np.clip(out[unsuspected, 1], 1e-15, 1 - 1e-15)
            with np.errstate(over="ignore"):
                moved = 1 / (1 + np.exp(-(np.log(positive / (1 - positive)) + self.unsuspected_offset)))
            out[unsuspected, 1], out[unsuspected, 0] = moved, 1 - moved
        return out

    def predict(self, X):
        """The more probable class of each row."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _weight_kwargs(estimator, weights) -> dict:
    """``sample_weight`` routed to the last step of a Pipeline, or passed straight to a plain estimator."""
    steps = getattr(estimator, "steps", None)
    return {f"{steps[-1][0]}__sample_weight": weights} if steps else {"sample_weight": weights}
