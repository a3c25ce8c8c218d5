"""Fairness mitigations that keep protected attributes out of the served decision: where the threshold sits.

Protected attributes are read on the validation rows to choose thresholds; the decision itself uses only the
model's probability and the department (a field of every request). Both return a score transform, so the served
rule stays "recommend when score >= one threshold".
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.evaluation.metrics import classification_report_from_counts, confusion_counts
from pipeline.experiments.measure import model_breaks
from pipeline.schema import TARGET, category_key

GRID_POINTS = 40


def _logit(p):
    p = np.clip(np.asarray(p, dtype=float), 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p))


def operating_point(frame: pd.DataFrame, scores, threshold: float, settings: dict) -> dict:
    """Precision (with Wilson bounds), recall and rule-break counts of one threshold on labelled rows."""
    y = frame[TARGET].to_numpy(bool)
    predicted = np.asarray(scores) >= threshold
    report = classification_report_from_counts(**confusion_counts(y, predicted))
    return {"threshold": float(threshold), "precision": report["precision"]["value"],
            "precision_low": report["precision"]["low"], "recall": report["recall"]["value"],
            "recommended": int(predicted.sum()), **model_breaks(frame, predicted, settings)}


def threshold_grid(scores, start: float, points: int = GRID_POINTS, keep: float = 0.03) -> np.ndarray:
    """``start`` and thresholds above it, evenly spaced in score quantiles up to the one that keeps ``keep`` of
    rows."""
    scores = np.asarray(scores, dtype=float)
    below = float(np.mean(scores < start))
    quantiles = np.linspace(below, max(below, 1 - keep), points)
    return np.unique(np.r_[start, np.quantile(scores, quantiles)[1:]])


def fair_threshold(validation: pd.DataFrame, scores, base_threshold: float, settings: dict,
                   min_precision: float, recall_share: float = 0.8) -> tuple[float, list[dict]]:
    """One threshold for all: among thresholds at or above the precision-chosen one that keep the Wilson lower
    bound of precision >= ``min_precision`` and at least ``recall_share`` of its recall, the one with the fewest
    point-estimate breaks on validation (ties: the lower threshold, more recall). Returns it and the validation
    curve."""
    curve = [operating_point(validation, scores, t, settings) for t in threshold_grid(scores, base_threshold)]
    floor = recall_share * curve[0]["recall"]
    allowed = [p for p in curve if (p["precision_low"] or 0) >= min_precision and p["recall"] >= floor] or curve[:1]
    best = min(allowed, key=lambda p: (p["point"], p["threshold"]))
    return best["threshold"], curve


def _department_keys(frame: pd.DataFrame) -> np.ndarray:
    return np.array([category_key(v) if isinstance(v, str) else None for v in frame["Department Name"]], dtype=object)


def department_thresholds(validation: pd.DataFrame, scores, threshold: float, settings: dict,
                          raises, step: float = 0.01) -> dict:
    """For each largest raise r in ``raises``: {department: its threshold}, the threshold in
    [threshold, threshold + r] with the fewest attributes breaking the 5-point rule on validation (point
    estimates; ties: the lower threshold), among those that keep the department at ``min_department``
    recommended searches or more (so a break is not hidden by making the department too small to judge).
    Departments that need no raise, or are never judged, keep ``threshold`` and are left out."""
    scores = np.asarray(scores, dtype=float)
    keys = _department_keys(validation)
    options = {r: {} for r in raises}
    grid = threshold + np.arange(0, max(raises) + step / 2, step)
    for department in pd.unique(keys[scores >= threshold]):
        rows = keys == department
        part, part_scores = validation[rows], scores[rows]
        candidates = []
        for t in grid:
            predicted = part_scores >= t
            if predicted.sum() < settings["min_department"]:
                break
            table = _department_table(part, predicted, settings)
            candidates.append((sum(e["status"] == "breaks rule" for e in table), float(t)))
            if candidates[-1][0] == 0:
                break  # the lowest threshold without a break is found
        for r in raises:
            allowed = [c for c in candidates if c[1] <= threshold + r + 1e-12]
            if allowed and min(allowed)[1] > threshold:
                options[r][department] = min(allowed)[1]
    return options


def _department_table(part, predicted, settings):
    from pipeline.evaluation.fairness import fairness_table, group_counts
    return fairness_table(group_counts(part, part[TARGET].to_numpy(bool), predicted), **settings)


def shift_scores(frame: pd.DataFrame, scores, thresholds: dict, threshold: float) -> np.ndarray:
    """Scores moved on the log-odds scale so that ``score >= threshold`` applies each department's own threshold."""
    scores = np.asarray(scores, dtype=float)
    if not thresholds:
        return scores
    keys = _department_keys(frame)
    own = np.array([thresholds.get(k, threshold) for k in keys])
    return 1 / (1 + np.exp(-(_logit(scores) - _logit(own) + _logit(threshold))))
