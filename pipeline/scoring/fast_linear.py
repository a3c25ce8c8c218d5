"""Score one validated observation without pandas or scikit-learn: a fitted linear pipeline as lookup tables.

scikit-learn's one-row path costs milliseconds in DataFrame building and validation (issue 6). For the linear
family (StopFeatures -> LinearEncoding -> LogisticRegression) every input field adds its own term to the logit,
so each field becomes a table built once at load: a categorical label maps straight to its one-hot column's
coefficient, a number to ``(x - mean) / scale * coef``. Scoring is a few dict lookups, a sum and a sigmoid.
``build_scorer`` picks this, the flattened trees of ``fast_trees`` for HistGradientBoosting, or None (random
forests keep sklearn's path). The sklearn pipeline stays the source of truth; ``pipeline.scoring.artifact`` checks the
fast scorer against it at load on ``probe_records``.
"""
from __future__ import annotations

import logging
import math
import random
from bisect import bisect_right
from datetime import datetime, timedelta

from pipeline.schema import EARLIEST_STOP, FIELDS, LATEST_STOP, MAX_AGE, MIN_AGE, records_to_frame
from pipeline.scoring.fast_features import NAN, label_of, numeric_values, sigmoid
from pipeline.scoring.fast_router import build_router_scorer
from pipeline.scoring.fast_trees import build_tree_scorer
from pipeline.transform.features import AGE_FIELD, BOOL_FIELDS, DATETIME_FIELD, RARE_CODE, StopFeatures
from pipeline.transform.linear_encoding import AGE_EDGES, LinearEncoding
from pipeline.transform.router import SacRouter
from pipeline.transform.shrunk_features import ShrunkStopFeatures

FAST_LINEAR = "fast-linear"
SKLEARN = "sklearn"

log = logging.getLogger(__name__)


class OneHotTerm:
    """Logit term of a one-hot encoded number: a kept level's coefficient, else "other"; NaN gets "missing"."""

    __slots__ = ("weights", "other", "missing")

    def __init__(self, levels, coefficients):
        self.weights = {float(level): float(c) for level, c in zip(levels, coefficients)}
        self.other, self.missing = float(coefficients[len(levels)]), float(coefficients[len(levels) + 1])

    def __call__(self, value: float) -> float:
        if value != value:
            return self.missing
        return self.weights.get(value, self.other)


class AgeBandTerm(OneHotTerm):
    """Logit term of an age one-hot encoded by ``AGE_EDGES`` bands (every band has its own column)."""

    __slots__ = ()

    def __call__(self, value: float) -> float:
        if value != value:
            return self.missing
        return self.weights.get(float(bisect_right(AGE_EDGES, value)), self.other)


class NumericTerm:
    """Logit term of a standardised number; NaN becomes the training mean, i.e. contributes 0."""

    __slots__ = ("mean", "scale", "coefficient")

    def __init__(self, mean, scale, coefficient):
        self.mean, self.scale, self.coefficient = float(mean), float(scale), float(coefficient)

    def __call__(self, value: float) -> float:
        if value != value:
            return 0.0
        return (value - self.mean) / self.scale * self.coefficient


class FastLinearScorer:
    """P(contraband) of one validated observation from per-field tables of a fitted linear pipeline."""

    path = FAST_LINEAR

    def __init__(self, intercept: float, categorical: list, numeric: list, year_range: tuple[float, float]):
        self.intercept = float(intercept)
        # [(field, {normalised label: logit term}, unseen term, missing term)]
        self.categorical = categorical
        # [(StopFeatures column, term)] for the time, resident and age columns
        self.numeric = numeric
        self.year_low, self.year_high = year_range

    def logit(self, record: dict) -> float:
        """The linear model's decision value for one validated observation."""
        total = self.intercept
        for field, table, unseen, missing in self.categorical:
            key = label_of(record, field)
            total += missing if key is None else table.get(key, unseen)
        values = numeric_values(record, self.year_low, self.year_high)
        for name, term in self.numeric:
            total += term(values[name])
        return total

    def predict_one(self, record: dict) -> float:
        """Probability that a search finds contraband, for one validated observation."""
        return sigmoid(self.logit(record))


def _terms(encode: LinearEncoding, coefficients) -> dict:
    """{StopFeatures column: [term, ...]} in the order of the encoder's output columns."""
    # checked first: too few coefficients would otherwise surface as an IndexError inside a term
    width = len(encode.get_feature_names_out())
    if width != len(coefficients):
        raise ValueError(f"the encoder makes {width} columns but the model has {len(coefficients)} coefficients")
    terms, start = {}, 0
    for name in encode.one_hot:
        levels = encode.levels_[name]
        terms.setdefault(name, []).append(OneHotTerm(levels, coefficients[start:start + len(levels) + 2]))
        start += len(levels) + 2
    if encode.age is not None:
        bands = [float(b) for b in range(len(AGE_EDGES) + 1)]
        terms.setdefault(encode.age, []).append(AgeBandTerm(bands, coefficients[start:start + len(bands) + 2]))
        start += len(bands) + 2
    for name, mean, scale in zip(encode.numeric, encode.mean_, encode.scale_):
        terms.setdefault(name, []).append(NumericTerm(mean, scale, coefficients[start]))
        start += 1
    return terms


def _category_table(field: str, codes: dict, field_terms: list) -> tuple:
    """(field, {label: logit term}, unseen term, missing term) of a coded categorical."""
    table = {label: sum(term(code) for term in field_terms) for label, code in codes.items()}
    return field, table, sum(term(RARE_CODE) for term in field_terms), sum(term(NAN) for term in field_terms)


def _shrunk_terms(features, terms: dict) -> dict:
    """{field: [terms of its shrunk log-odds column]}, popped from ``terms`` (empty without shrinkage)."""
    encoder = getattr(features, "shrinkage_", None)
    if encoder is None:
        return {}
    return {field: terms.pop(name, []) for field, name in zip(encoder.columns, encoder.get_feature_names_out())}


def _merge_shrunk(categorical: list, field: str, encoder, encoded_terms: list) -> list:
    """Add a shrunk field's per-value table to its coded table (or make one): an encoded field is a lookup too.

    The encoder maps a label to its effect (unseen: 0, missing: its own effect); the encoder step then scales
    the effect and the model weighs it, a fixed function per label, so the sum is tabulated once per label.
    """
    def logit_term(effect: float) -> float:
        return sum(term(effect) for term in encoded_terms)

    effects, missing_effect = encoder.effects_[field], encoder.missing_effects_[field]
    existing = [entry for entry in categorical if entry[0] == field]
    _, table, unseen, missing = existing[0] if existing else (field, {}, 0.0, 0.0)
    merged = {label: table.get(label, unseen) + logit_term(effects.get(label, 0.0))
              for label in set(table) | set(effects)}
    entry = (field, merged, unseen + logit_term(0.0), missing + logit_term(missing_effect))
    return [item for item in categorical if item[0] != field] + [entry]


def build_linear_scorer(pipeline) -> FastLinearScorer:
    """Tables of a fitted StopFeatures -> LinearEncoding -> binary LogisticRegression pipeline."""
    features, encode, model = (pipeline.named_steps[step] for step in ("features", "encode", "model"))
    coefficients = [float(c) for c in model.coef_[0]]
    terms = _terms(encode, coefficients)
    unknown = set(terms) - set(features.get_feature_names_out())
    if unknown:
        raise ValueError(f"the encoder reads columns {sorted(unknown)} that StopFeatures does not make")
    categorical = [_category_table(field, codes, terms.pop(field, []))
                   for field, codes in features.codes_.codes_by_label_.items()]
    for field, encoded_terms in _shrunk_terms(features, terms).items():
        categorical = _merge_shrunk(categorical, field, features.shrinkage_, encoded_terms)
    numeric = [(name, term) for name, column_terms in terms.items() for term in column_terms]
    return FastLinearScorer(model.intercept_[0], categorical, numeric, features.year_range_)


def build_scorer(pipeline):
    """The fast scorer for a fitted pipeline, or None when its family has no fast form (use sklearn's path).

    A ValueError means a pipeline of a supported family whose parts do not fit together (a damaged artifact).
    """
    if type(pipeline) is SacRouter:
        return build_router_scorer(pipeline, build_scorer)
    steps = getattr(pipeline, "named_steps", {})
    model = type(steps.get("model")).__name__
    if type(steps.get("features")) not in (StopFeatures, ShrunkStopFeatures):
        return _no_fast_form(model, "its features are not StopFeatures")
    if list(steps) == ["features", "encode", "model"] and type(steps["encode"]) is LinearEncoding \
            and model == "LogisticRegression":
        if len(steps["model"].classes_) != 2:
            return _no_fast_form(model, f"it has {len(steps['model'].classes_)} classes, not 2")
        return build_linear_scorer(pipeline)
    if list(steps) == ["features", "model"] and model == "HistGradientBoostingClassifier":
        if type(steps["features"]) is not StopFeatures:
            return _no_fast_form(model, "the tree scorer reads StopFeatures' codes only, not shrunk encodings")
        if steps["model"].n_trees_per_iteration_ != 1:
            return _no_fast_form(model, f"it grows {steps['model'].n_trees_per_iteration_} trees per iteration "
                                        "(more than 2 classes)")
        return build_tree_scorer(pipeline)
    return _no_fast_form(model, "the fast forms cover linear and gradient-boosting pipelines only")


def _no_fast_form(model: str, reason: str) -> None:
    # logged, because a model that silently loses its fast path costs milliseconds on every request
    log.info("a %s pipeline has no fast single-record form (%s); it scores through scikit-learn", model, reason)
    return None


def _field_domains(features: StopFeatures) -> dict:
    """{field: values to probe}: every kept label of each categorical (and odd spellings of some), an unseen
    value, missing; every age; dates before, inside and after the training years, at midnight and at edges."""
    domains = {field.name: list(field.codes) + [None] if field.kind == "code" else ["probe", None]
               for field in FIELDS if field.kind in ("code", "text", "officer")}
    shrunk = getattr(features, "shrinkage_", None)
    labels_by_field = {name: [str(label) for label in labels] for name, labels in features.codes_.categories_.items()}
    for name, effects in (shrunk.effects_.items() if shrunk is not None else ()):
        labels_by_field[name] = list(dict.fromkeys(labels_by_field.get(name, []) + [str(key) for key in effects]))
    for name, kept in labels_by_field.items():
        domains[name] = kept + [f"  {label.upper()}\t " for label in kept[:3]] + ["zz never seen in training", None]
    domains |= {name: [True, False, None] for name in BOOL_FIELDS}
    domains[AGE_FIELD] = list(range(MIN_AGE, MAX_AGE + 1)) + [None]
    low, high = (int(year) for year in features.year_range_)
    stamps = [EARLIEST_STOP, LATEST_STOP - timedelta(seconds=1), None]
    for year in range(max(EARLIEST_STOP.year, low - 2), min(LATEST_STOP.year - 1, high + 2) + 1):
        stamps += [datetime(year, 1, 1), datetime(year, 1, 1, 0, 0, 59), datetime(year, 2, 28, 0, 1),
                   datetime(year, 7, 4, 12, 0), datetime(year, 12, 31, 23, 59, 59)]
    domains[DATETIME_FIELD] = stamps
    return domains


def probe_records(features: StopFeatures, n_random: int = 300, seed: int = 0) -> list[dict]:
    """Deterministic observations that reach every table entry of a fast scorer, plus seeded random ones."""
    domains = _field_domains(features)
    longest = max(len(values) for values in domains.values())
    records = [{name: values[i % len(values)] for name, values in domains.items()} for i in range(longest)]
    rng = random.Random(seed)
    span_minutes = int((LATEST_STOP - EARLIEST_STOP).total_seconds() // 60)
    for _ in range(n_random):
        record = {name: rng.choice(values) for name, values in domains.items()}
        record[DATETIME_FIELD] = EARLIEST_STOP + timedelta(minutes=rng.randrange(span_minutes))
        records.append(record)
    return records


def pipeline_probes(pipeline) -> list[dict]:
    """``probe_records`` of a fitted pipeline, or of both sides of a SacRouter (each side's own labels)."""
    if type(pipeline) is SacRouter:
        return [record for side in ("suspected", "unsuspected")
                for record in probe_records(pipeline.estimators_[side].named_steps["features"])]
    return probe_records(pipeline.named_steps["features"])


def worst_disagreement(scorer, pipeline, records: list[dict]) -> tuple[float, dict]:
    """(largest |fast - sklearn| probability, the record where it occurs); NaN counts as infinitely wrong."""
    expected = pipeline.predict_proba(records_to_frame(records))[:, 1]
    worst, worst_record = -1.0, None
    for record, reference in zip(records, expected):
        difference = abs(scorer.predict_one(record) - float(reference))
        difference = math.inf if difference != difference else difference
        if difference > worst:
            worst, worst_record = difference, record
    return worst, worst_record
