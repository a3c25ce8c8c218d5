"""Reasons for one decision: which features raised the probability and which lowered it, from the fast scorer.

Every StopFeatures column contributes a term to the model's log-odds (``pipeline.scoring.contributions`` defines
it from sklearn's objects). A reason's ``effect`` is that term minus its average over the training rows, so the
reference, stated in every answer and named in the model card's ``reasons``, is the average training record:
``reference.log_odds + sum(effect of every feature) == the model's log-odds`` (to 1e-9; tests hold it). The answer
shows the three largest effects each way.

The linear family reads its terms from the fast scorer's tables; per categorical label the whole reason (value as
the model saw it, effect, sentence) is built once at load. Trees descend as ``fast_trees`` does, keeping the path,
and each node's step (child value - parent value) goes to its parent's feature (Saabas).
"""
from __future__ import annotations

import logging

import numpy as np

from pipeline.schema import FIELD_BY_NAME
from pipeline.scoring.contributions import feature_field, tree_node_values
from pipeline.scoring.fast_features import NAN, label_of, numeric_values, sigmoid
from pipeline.scoring.fast_trees import tree_columns
from pipeline.scoring.sentences import DAYS, FLAGGED_FIELDS, MISSING, MONTHS, OTHER, sentence
from pipeline.transform.features import AGE_FIELD, BOOL_FIELDS
from pipeline.transform.shrinkage import SUFFIX as SHRUNK_SUFFIX

TOP = 3  # reasons shown each way
# Reasons are built once per (feature, value, effect) and copied per answer (a copy costs ~0.1 us, a sentence ~1.5):
# bounded, because the fractional year and odd categories could otherwise grow it for ever.
CACHE_SIZE = 20_000
log = logging.getLogger(__name__)


def shown_number(feature: str, value: float):
    """A numeric column's value as the model saw it, in a form a person reads (a day name, a whole hour ...)."""
    if value != value:
        return MISSING
    if feature in ("hour", AGE_FIELD):
        return int(value)
    if feature in ("time_missing",) + BOOL_FIELDS:
        return bool(value)
    if feature == "day_of_week":
        return DAYS[int(value)]
    if feature == "month":
        return MONTHS[int(value) - 1]
    return round(float(value), 2)  # the fractional year, clipped to the training years


def _as_seen(field: str, label: str) -> str:
    """A kept category as the model saw it: codes as the dictionary writes them (O), text normalised (milford)."""
    return label.upper() if FIELD_BY_NAME[field].kind == "code" else label


def reason(feature: str, value, effect: float) -> dict:
    """One reason as the API answers it."""
    field = feature_field(feature)
    return {"field": field, "feature": feature, "value": value, "effect": effect,
            "sentence": sentence(field, feature, value, effect),
            "protected": field in FLAGGED_FIELDS}


def _reference(card: dict, base: float, features: list[str]) -> tuple[dict, dict]:
    """({feature: mean contribution}, the answer's reference) from the card; a card without them: zero means."""
    stored = card.get("reasons") or {}
    means = stored.get("feature_means")
    if means is None or set(means) != set(features):
        log.warning("model %s: its card has no training average per feature (card 'reasons'); reasons are "
                    "stated against the model's intercept instead. Add it with `python -m "
                    "pipeline.training.reasons_card --help`", card.get("version"))
        means = dict.fromkeys(features, 0.0)
        description = "the model's intercept (its card records no average training record)"
    else:
        description = f"the average training record (model card {card.get('version')}: reasons)"
    log_odds = base + sum(means[f] for f in features)
    return means, {"log_odds": log_odds, "probability": sigmoid(log_odds), "description": description}


class _Explainer:
    """What both families share: the reference and the choice of the largest effects each way."""

    def __init__(self, card: dict, base: float, features: list[str]):
        self.features = features
        self.means, self.reference = _reference(card, base, features)
        self._cache = {}
        self.categorical_features = set()  # features whose value ``effects`` already gives as the model saw it

    def effects(self, record: dict) -> list[tuple[float, str, object]]:
        """[(effect, feature, value)] for every feature: a category as the model saw it, a number as computed."""
        raise NotImplementedError

    def log_odds(self, record: dict) -> float:
        """The reference's log-odds plus every feature's effect (the model's log-odds, to rounding)."""
        return self.reference["log_odds"] + sum(effect for effect, _, _ in self.effects(record))

    def explain(self, record: dict) -> list[tuple[float, str, object]]:
        """[(effect, feature, value as the model saw it)] for every feature of the model."""
        return [(effect, feature, self._shown(feature, value)) for effect, feature, value in self.effects(record)]

    def _shown(self, feature: str, value):
        return value if feature in self.categorical_features else shown_number(feature, value)

    def _reason(self, effect: float, feature: str, value) -> dict:
        key = (feature, value, effect)
        built = self._cache.get(key)
        if built is None:
            built = reason(feature, self._shown(feature, value), effect)
            if len(self._cache) < CACHE_SIZE:
                self._cache[key] = built
        return dict(built)

    def reasons(self, record: dict) -> dict:
        """The answer's ``reasons``: the reference, and up to TOP features each way, largest effect first."""
        ranked = sorted(self.effects(record))  # by effect; ties by feature name, which is unique
        raising = [self._reason(*item) for item in reversed(ranked[-TOP:]) if item[0] > 0]
        lowering = [self._reason(*item) for item in ranked[:TOP] if item[0] < 0]
        return {"reference": dict(self.reference), "raising": raising, "lowering": lowering}


class LinearExplainer(_Explainer):
    """Effects of a fast linear scorer's terms; a categorical label's value and effect come from one lookup."""

    def __init__(self, scorer, pipeline, card: dict):
        features = [str(f) for f in pipeline.named_steps["features"].get_feature_names_out()]
        super().__init__(card, scorer.intercept, features)
        encode, codes = pipeline.named_steps["encode"], pipeline.named_steps["features"].codes_.codes_by_label_
        self.categorical = []
        for field, table, unseen, missing in scorer.categorical:
            # a shrunk field's table also holds its "<field>:log_odds" column's term (fast_linear merges them)
            mean = self.means.get(field, 0.0) + self.means.get(field + SHRUNK_SUFFIX, 0.0)
            levels = getattr(encode, "levels_", {}).get(field)
            # a label the encoder folds into "other" (too rare for its own column) is shown as the model saw it;
            # a shrunk label keeps its own effect, so it is shown as itself even where its code is "other"
            shrunk = field + SHRUNK_SUFFIX in self.means
            shown = {label: _as_seen(field, label) if levels is None or shrunk
                     or codes.get(field, {}).get(label) in levels else OTHER for label in table}
            labels = {label: (term - mean, shown[label]) for label, term in table.items()}
            self.categorical.append((field, labels, (unseen - mean, OTHER), (missing - mean, MISSING)))
        terms = {}
        for name, term in scorer.numeric:
            terms.setdefault(name, []).append(term)
        self.numeric = [(name, column[0] if len(column) == 1 else _summed(column), self.means[name], {})
                        for name, column in terms.items()]
        self.year_range = (scorer.year_low, scorer.year_high)
        self.categorical_features = {field for field, *_ in self.categorical}

    def effects(self, record: dict) -> list[tuple[float, str, object]]:
        """[(effect, feature, value)] for every feature: a category as the model saw it, a number as computed."""
        out = []
        for field, labels, unseen, missing in self.categorical:
            key = label_of(record, field)
            effect, value = missing if key is None else labels.get(key, unseen)
            out.append((effect, field, value))
        values = numeric_values(record, *self.year_range)
        for name, term, mean, known in self.numeric:
            value = values[name]
            effect = known.get(value)  # hours, days, months and flags take few values: each term is computed once
            if effect is None:
                effect = term(value) - mean
                if len(known) < CACHE_SIZE:
                    known[value] = effect
            out.append((effect, name, value))
        return out


class TreeExplainer(_Explainer):
    """Path-based effects of a fast tree scorer: the trees descend together, each step credited to its feature."""

    def __init__(self, scorer, pipeline, card: dict):
        features = [str(f) for f in pipeline.named_steps["features"].get_feature_names_out()]
        model = pipeline.named_steps["model"]
        self.scorer = scorer
        step, credit, root_total = [], [], 0.0
        columns = [name for name, _ in tree_columns(model, features)] + [None]
        for predictors in model._predictors:
            nodes = predictors[0].nodes
            values = tree_node_values(model, predictors[0])
            root_total += float(values[0])
            parent = np.zeros(len(nodes), dtype=np.intp)
            inner = np.flatnonzero(nodes["is_leaf"] == 0)
            parent[nodes["left"][inner]] = inner
            parent[nodes["right"][inner]] = inner
            change = values - values[parent]
            change[0] = 0.0
            step.append(change)
            # the credited feature of a node is its parent's split feature, as an index into ``features``
            credit.append(np.array([features.index(columns[int(nodes["feature_idx"][p])]) for p in parent]))
        super().__init__(card, scorer.baseline + root_total, features)
        self.step, self.credit = np.concatenate(step), np.concatenate(credit)
        codes = pipeline.named_steps["features"].codes_.codes_by_label_
        self.kept = {field: set(codes[field]) for _, field, *_ in scorer.categorical}
        self.mean_array = np.array([self.means[f] for f in features])
        self.categorical_features = set(self.kept)

    def effects(self, record: dict) -> list[tuple[float, str, object]]:
        """[(effect, feature, value)] for every feature: a category as the model saw it, a number as computed."""
        scorer = self.scorer
        slots = scorer.slots(record)
        node = scorer.roots
        path = [node]
        for _ in range(scorer.steps):
            node = scorer.child[scorer.offset[node] + slots[scorer.feature[node]]]
            path.append(node)
        visited = np.stack(path)
        moved = visited[1:][visited[1:] != visited[:-1]]  # a leaf loops onto itself: count each node once
        totals = np.bincount(self.credit[moved], weights=self.step[moved], minlength=len(self.features))
        effects = (totals - self.mean_array).tolist()
        values = numeric_values(record, scorer.year_low, scorer.year_high)
        out = []
        for index, feature in enumerate(self.features):
            if feature in self.kept:
                key = label_of(record, feature)
                value = MISSING if key is None else _as_seen(feature, key) if key in self.kept[feature] else OTHER
            else:
                value = values.get(feature, NAN)
            out.append((effects[index], feature, value))
        return out


def _summed(terms: list):
    """One term of several for the same column."""
    return lambda value: sum(term(value) for term in terms)


def build_explainer(scorer, pipeline, card: dict):
    """The reasons of a fast scorer's model, or None when it has no fast scorer (sklearn's path)."""
    if scorer is None:
        return None
    if scorer.path.startswith("fast-router"):
        # a two-model router (training --two-models) has no per-side reference in its card yet: say so, answer
        # without reasons rather than with ones stated against the wrong model
        log.warning("model %s is a two-model router; its decisions carry no reasons", card.get("version"))
        return None
    if scorer.path == "fast-linear":
        return LinearExplainer(scorer, pipeline, card)
    return TreeExplainer(scorer, pipeline, card)
