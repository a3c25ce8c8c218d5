"""``StopFeatures`` plus shrinkage-encoded columns: the features of the model retrained from the service's log.

The base columns are exactly ``StopFeatures``' (codes, time of stop, resident flags); after them come one float64
column per field of ``shrink`` holding its value's shrunk log-odds effect (``pipeline.transform.shrinkage``),
cross-fitted while fitting. The officer id is not in the default ``shrink``: issue 12 keeps the officer and the
protected attributes out of the default model (see ``OFFICER_FIELD``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from pipeline.transform.features import StopFeatures
from pipeline.transform.shrinkage import SUFFIX, ShrinkageEncoder

SHRINK_FIELDS = ("Department Name", "InterventionLocationName", "StatuteReason")
OFFICER_FIELD = "ReportingOfficerIdentificationID"


class ShrunkStopFeatures(StopFeatures):
    """A stop record to ``StopFeatures``' columns followed by the shrunk log-odds effect of each ``shrink`` field.

    ``prior_strength``, ``cv`` and ``random_state`` go to the ``ShrinkageEncoder`` (fitted as ``shrinkage_``).
    """

    def __init__(self, min_count=30, max_categories=250, protected=(), shrink=SHRINK_FIELDS,
                 prior_strength="auto", cv=5, random_state=0):
        super().__init__(min_count=min_count, max_categories=max_categories, protected=protected)
        self.shrink = shrink
        self.prior_strength = prior_strength
        self.cv = cv
        self.random_state = random_state

    def _encoder(self) -> ShrinkageEncoder:
        return ShrinkageEncoder(tuple(self.shrink), self.prior_strength, self.cv, self.random_state)

    def fit(self, X, y=None, sample_weight=None):
        """Fit the base features and the shrinkage encoder (which needs the labels ``y``)."""
        if y is None:
            raise ValueError("ShrunkStopFeatures needs the labels y to learn its shrinkage encodings")
        super().fit(X)
        self.shrinkage_ = self._encoder().fit(X, y, sample_weight)
        return self

    def fit_transform(self, X, y=None, sample_weight=None):
        """Fit, and return the training rows' features with cross-fitted (leak-free) encodings."""
        if y is None:
            raise ValueError("ShrunkStopFeatures needs the labels y to learn its shrinkage encodings")
        super().fit(X)
        self.shrinkage_ = self._encoder()
        return self._with_encodings(X, self.shrinkage_.fit_transform(X, y, sample_weight))

    def transform(self, X):
        """The float feature DataFrame: StopFeatures' float32 columns, then the float64 encodings."""
        check_is_fitted(self, "shrinkage_")
        return self._with_encodings(X, self.shrinkage_.transform(X))

    def _with_encodings(self, X, encoded: np.ndarray) -> pd.DataFrame:
        base = StopFeatures.transform(self, X)[list(self._base_names())]
        names = self.shrinkage_.get_feature_names_out()
        return pd.concat([base, pd.DataFrame(encoded, index=X.index, columns=names)], axis=1)

    def _base_names(self):
        return StopFeatures.get_feature_names_out(self)

    def shrunk_features(self) -> list[str]:
        """Names of the encoded output columns (known before fitting)."""
        return [f"{name}{SUFFIX}" for name in self.shrink]

    def get_feature_names_out(self, input_features=None):
        """StopFeatures' names, then ``"<field>:log_odds"`` per shrunk field."""
        check_is_fitted(self, "shrinkage_")
        return np.asarray(list(self._base_names()) + self.shrunk_features(), dtype=object)
