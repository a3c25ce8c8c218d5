"""Candidate against live model on the same held-out stops: the card's machine-readable ``comparison`` block.

The registry's ``promote`` reads ``at_least_as_good`` (layout agreed in /work/notes/interface-10.md, issue 10):
each model is measured at its own threshold (precision, recall with Wilson intervals), by AUC (Hanley-McNeil
interval) and by the fairness summary; the AUC difference is DeLong's paired test on the same stops.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import norm, rankdata

from pipeline.evaluation.summary import fairness, quality
from pipeline.schema import TARGET

# Fewer held-out outcomes of either kind than this and no verdict is given (null): promotion then needs --force.
# On bench.learn's stream, 100 outcomes (20 held out) gave a candidate 0.05 AUC worse on the following weeks
# whose 20 held-out rows happened to rank better than the live model's.
MIN_HELD_OUT_EACH = 30
VERDICT_RULE = ("none (null) when the held-out stops hold fewer than 30 hits or 30 misses; worse: the "
                "candidate's AUC on the held-out stops is below the live model's (paired difference < 0), "
                "or its held-out precision is below min_precision while the live model's is not; better: the 95% "
                "interval of the paired AUC difference lies wholly above 0 and the candidate's precision >= "
                "min_precision; similar: otherwise (at least as good, not significantly better)")


def _placements(positives: np.ndarray, negatives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components: per positive the share of negatives it outranks, and per negative the
    share of positives that outrank it (ties count one half)."""
    combined = rankdata(np.concatenate([positives, negatives]))
    m, n = positives.size, negatives.size
    v10 = (combined[:m] - rankdata(positives)) / n
    v01 = 1.0 - (combined[m:] - rankdata(negatives)) / m
    return v10, v01


def delong_difference(y_true, scores_a, scores_b, confidence: float = 0.95) -> dict | None:
    """AUC(a) - AUC(b) on the same rows with DeLong's (1988) paired interval; None when a class is absent."""
    truth = np.asarray(y_true, dtype=bool)
    m, n = int(truth.sum()), int((~truth).sum())
    if m < 2 or n < 2:
        return None
    components = [_placements(np.asarray(s, dtype=float)[truth], np.asarray(s, dtype=float)[~truth])
                  for s in (scores_a, scores_b)]
    aucs = [float(v10.mean()) for v10, _ in components]
    s10 = np.cov(np.vstack([c[0] for c in components]))
    s01 = np.cov(np.vstack([c[1] for c in components]))
    variance = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    difference = aucs[0] - aucs[1]
    half = float(norm.ppf(0.5 + confidence / 2)) * math.sqrt(max(variance, 0.0))
    return {"value": difference, "interval": [difference - half, difference + half], "method": "DeLong paired",
            "auc_a": aucs[0], "auc_b": aucs[1]}


def model_block(frame: pd.DataFrame, scores, threshold: float, min_department: int, min_group: int) -> dict:
    """One model's held-out figures at its own threshold, in the comparison block's layout."""
    measured = quality(frame[TARGET].to_numpy(dtype=bool), scores, threshold)
    summary = fairness(frame, scores, threshold, min_department, min_group)["model"]
    interval = measured["auc_interval"]
    return {
        "threshold": float(threshold),
        "auc": measured["auc"], "auc_interval": [interval["low"], interval["high"]] if interval else None,
        "precision": measured["precision"]["value"],
        "precision_interval": [measured["precision"]["low"], measured["precision"]["high"]],
        "recall": measured["recall"]["value"],
        "recall_interval": [measured["recall"]["low"], measured["recall"]["high"]],
        "predicted_positive": measured["counts"]["tp"] + measured["counts"]["fp"],
        "counts": measured["counts"],
        "fairness": {"pairs_evaluated": summary["evaluated"],
                     "pairs_breaking_rule": sum(a["breaks_rule"] for a in summary["by_attribute"].values()),
                     "mean_max_gap_per_department": summary["mean_max_gap"],
                     "min_department": min_department, "min_group": min_group},
    }


def verdict(candidate: dict, live: dict | None, difference: dict | None, min_precision: float) -> str | None:
    """"better", "similar" or "worse" by ``VERDICT_RULE``; None without a live model to compare with, or with too
    few held-out outcomes to compare on.

    "At least as good" is read literally: a candidate whose held-out AUC is below the live model's is "worse"
    even when the interval cannot tell them apart, because a few hundred held-out rows never can, and a candidate
    that is worse on later weeks must not be promoted without --force (on the generated stream of bench.learn, the
    interval rule let candidates 0.02 AUC worse through as "similar").
    """
    counts = candidate["counts"]
    if live is None or min(counts["tp"] + counts["fn"], counts["tn"] + counts["fp"]) < MIN_HELD_OUT_EACH:
        return None
    precision, live_precision = candidate["precision"], live["precision"]
    below = precision is None or precision < min_precision
    if difference is None or difference["value"] < 0 or \
            (below and live_precision is not None and live_precision >= min_precision):
        return "worse"
    if difference["interval"][0] > 0 and not below:
        return "better"
    return "similar"


def compare(held_out: pd.DataFrame, candidate_scores, candidate_threshold: float, live, live_error: str | None,
            min_precision: float = 0.5, min_department: int = 100, min_group: int = 20) -> dict:
    """The ``comparison`` block: ``live`` is a loaded Artifact or None (then ``live_error`` says why)."""
    settings = {"min_department": min_department, "min_group": min_group}
    truth = held_out[TARGET].to_numpy(dtype=bool)
    candidate = model_block(held_out, candidate_scores, candidate_threshold, **settings)
    live_block, difference = None, None
    if live is not None:
        live_scores = live.pipeline.predict_proba(held_out)[:, 1]
        live_block = model_block(held_out, live_scores, live.threshold, **settings)
        difference = delong_difference(truth, candidate_scores, live_scores)
        if difference is not None:
            difference = {key: difference[key] for key in ("value", "interval", "method")}
    stamps = held_out["InterventionDateTime"]
    decided = verdict(candidate, live_block, difference, min_precision)
    return {
        "held_out": int(len(held_out)),
        "held_out_dates": {"first": stamps.min().isoformat(), "last": stamps.max().isoformat()},
        "held_out_base_rate": float(truth.mean()),
        "min_precision": min_precision,
        "live_version": None if live is None else live.version,
        "live_error": live_error,
        "candidate": candidate,
        "live": live_block,
        "auc_difference": difference,
        "verdict": decided,
        "at_least_as_good": decided in ("better", "similar"),
        "verdict_rule": VERDICT_RULE,
    }
