"""Held-out quality and fairness figures of a fitted model, in the JSON shape the model card stores."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.evaluation.fairness import (
    fairness_summary,
    fairness_table,
    gap_distribution,
    group_counts,
    officer_counts,
)
from pipeline.evaluation.metrics import auc_interval, classification_report_from_counts, confusion_counts, roc_auc
from pipeline.schema import TARGET


def quality(y_true, scores, threshold: float) -> dict:
    """Confusion matrix, precision/recall/F1/accuracy and ROC AUC with intervals, and the base rate, at a threshold."""
    truth = np.asarray(y_true, dtype=bool)
    counts = confusion_counts(truth, np.asarray(scores) >= threshold)
    report = classification_report_from_counts(**counts)
    auc = roc_auc(truth, scores)
    positives = int(truth.sum())
    return dict(report, auc=auc, auc_interval=auc_interval(auc, positives, truth.size - positives),
                base_rate=float(truth.mean()) if truth.size else None, threshold=threshold)


def fairness(frame: pd.DataFrame, scores, threshold: float, min_department=100, min_group=20,
             max_gap=0.05) -> dict:
    """Fairness summary of the model and of the officers' own searches on the same rows, plus mean gaps."""
    truth = frame[TARGET].to_numpy(dtype=bool)
    predicted = np.asarray(scores) >= threshold
    settings = {"min_department": min_department, "min_group": min_group, "max_gap": max_gap}
    out = {}
    for name, counts in (("model", group_counts(frame, truth, predicted)),
                         ("officers", officer_counts(frame, truth))):
        table = fairness_table(counts, **settings)
        gaps = gap_distribution(table, pairwise=False)
        out[name] = dict(fairness_summary(table, confidence=0.95, **settings),
                         mean_max_gap=float(np.mean(gaps)) if gaps else None, evaluated=len(gaps))
    return out


def fairness_rows(frame: pd.DataFrame, scores, threshold: float, min_department=100, min_group=20,
                  max_gap=0.05) -> list[dict]:
    """The full fairness table of the model (one entry per department and attribute)."""
    truth = frame[TARGET].to_numpy(dtype=bool)
    counts = group_counts(frame, truth, np.asarray(scores) >= threshold)
    return fairness_table(counts, min_department=min_department, min_group=min_group, max_gap=max_gap)


def pooled_gaps(frame: pd.DataFrame, scores, threshold: float, min_group=20) -> dict:
    """Largest precision gap between groups of each protected attribute, all departments pooled."""
    truth = frame[TARGET].to_numpy(dtype=bool)
    pooled = frame.assign(**{"Department Name": "(all departments)"})
    counts = group_counts(pooled, truth, np.asarray(scores) >= threshold)
    table = fairness_table(counts, min_department=0, min_group=min_group)
    return {entry["attribute"]: entry["max_gap"] for entry in table}


def fairness_comparison(frame: pd.DataFrame, scores, threshold: float, min_department=100, min_group=20) -> dict:
    """The figures that decide whether a variant is fairer: AUC, rule breaks, mean and pooled gaps."""
    summary = fairness(frame, scores, threshold, min_department, min_group)["model"]
    measured = quality(frame[TARGET], scores, threshold)
    return {"auc": measured["auc"], "threshold": threshold,
            "precision_at_threshold": measured["precision"]["value"],
            "recall_at_threshold": measured["recall"]["value"],
            "pairs_evaluated": summary["evaluated"],
            "pairs_breaking_rule": sum(a["breaks_rule"] for a in summary["by_attribute"].values()),
            "mean_max_gap_per_department": summary["mean_max_gap"],
            "pooled_min_group": min_department,
            "pooled_max_gap": pooled_gaps(frame, scores, threshold, min_group=min_department)}
