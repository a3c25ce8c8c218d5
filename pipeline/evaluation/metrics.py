"""Classification metrics built on counts, so row-level arrays and SQL aggregates share one implementation.

Conventions used everywhere in this module:
- a case is predicted positive ("search") when ``score >= threshold``;
- undefined values (a rate with a zero denominator, an AUC with one class) are ``None`` in returned dicts, so the
  results go straight into JSON; ``wilson_interval`` itself returns NaNs, as a numeric primitive.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
from scipy.stats import norm

SAC_CODES = ("C", "I", "N", "O")


class ThresholdError(ValueError):
    """No threshold satisfies the precision constraint; the message says what the best achievable was."""


@functools.lru_cache(maxsize=None)  # the report asks for the same z thousands of times
def _z(confidence: float) -> float:
    return float(norm.ppf(0.5 + confidence / 2))


def _clean(value):
    """A float, or None for NaN/inf, so results are JSON-safe."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def wilson_interval(successes, trials, confidence=0.95):
    """Wilson score interval (low, high) of a proportion; NaNs where trials == 0. Accepts scalars or arrays."""
    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    z = _z(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denominator = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denominator
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # the bounds are exactly 0 at k = 0 and 1 at k = n; rounding would otherwise leave 3e-18 there
    low = np.where(n > 0, np.where(k <= 0, 0.0, np.clip(centre - half, 0.0, 1.0)), np.nan)
    high = np.where(n > 0, np.where(k >= n, 1.0, np.clip(centre + half, 0.0, 1.0)), np.nan)
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


def rate(successes, trials, confidence=0.95) -> dict:
    """A proportion as {"value", "low", "high", "n"} with its Wilson interval; None values when trials == 0."""
    trials = int(trials)
    low, high = wilson_interval(successes, trials, confidence)
    value = successes / trials if trials else None
    return {"value": _clean(value), "low": _clean(low), "high": _clean(high), "n": trials}


def confusion_counts(y_true, y_pred) -> dict:
    """Counts {"tn", "fp", "fn", "tp"} of boolean truth against boolean predictions."""
    truth = np.asarray(y_true, dtype=bool)
    predicted = np.asarray(y_pred, dtype=bool)
    if truth.shape != predicted.shape:
        raise ValueError(f"y_true has shape {truth.shape} but y_pred has {predicted.shape}")
    tp = int(np.count_nonzero(truth & predicted))
    fp = int(np.count_nonzero(~truth & predicted))
    fn = int(np.count_nonzero(truth & ~predicted))
    return {"tn": int(truth.size) - tp - fp - fn, "fp": fp, "fn": fn, "tp": tp}


def _f1(precision, recall):
    if precision is None or recall is None or precision + recall == 0:
        return None
    return 2 * precision * recall / (precision + recall)


def classification_report_from_counts(tn, fp, fn, tp, confidence=0.95) -> dict:
    """Precision, recall, accuracy (Wilson intervals) and F1 from a confusion matrix.

    F1 interval method, "bonferroni-derived bounds": F1 = 2PR/(P+R) increases in both P and R, so
    [F1(P_low, R_low), F1(P_high, R_high)] contains F1 whenever both intervals do. Taking the Wilson intervals of
    P and R at confidence 1 - (1 - confidence)/2 each makes that joint event, hence the F1 interval, hold with
    probability >= ``confidence`` (Bonferroni). It is conservative, never too narrow.
    """
    tn, fp, fn, tp = (int(v) for v in (tn, fp, fn, tp))
    precision = rate(tp, tp + fp, confidence)
    recall = rate(tp, tp + fn, confidence)
    accuracy = rate(tp + tn, tp + tn + fp + fn, confidence)
    joint = 1 - (1 - confidence) / 2
    p_low, p_high = wilson_interval(tp, tp + fp, joint)
    r_low, r_high = wilson_interval(tp, tp + fn, joint)
    f1 = {"value": _clean(_f1(precision["value"], recall["value"])),
          "low": _clean(_f1(_clean(p_low), _clean(r_low))),
          "high": _clean(_f1(_clean(p_high), _clean(r_high))),
          "method": "bonferroni-derived bounds from Wilson intervals of precision and recall"}
    return {"counts": {"tn": tn, "fp": fp, "fn": fn, "tp": tp}, "n": tn + fp + fn + tp,
            "precision": precision, "recall": recall, "f1": f1, "accuracy": accuracy,
            "predicted_positive_rate": rate(tp + fp, tn + fp + fn + tp, confidence),
            "confidence": confidence}


def precision_verdict(tp, fp, minimum_outcomes=30, target=0.5, confidence=0.95) -> dict:
    """Verdict on "precision >= target" from the outcomes of recommended searches (tp hits, fp misses).

    Rule, with n = tp + fp and (low, high) the Wilson interval of tp / n:
    - "not enough outcomes yet" when n < minimum_outcomes (the interval is unreliable for tiny n);
    - "met" when low >= target;
    - "not met" when high < target;
    - otherwise "not enough outcomes yet": the interval straddles the target, so the data cannot tell.
    A verdict therefore changes only when the evidence moves the whole interval across the target, never because
    the point estimate wobbles around it.
    """
    n = int(tp) + int(fp)
    measured = rate(int(tp), n, confidence)
    result = {"target": target, "precision": measured, "minimum_outcomes": minimum_outcomes,
              "confidence": confidence}
    if n < minimum_outcomes:
        reason = f"only {n} recommended searches have outcomes; at least {minimum_outcomes} are needed"
        return dict(result, verdict="not enough outcomes yet", reason=reason)
    low, high = measured["low"], measured["high"]
    interval = f"{confidence:.0%} interval {low:.3f}-{high:.3f} from {n} outcomes"
    if low >= target:
        return dict(result, verdict="met", reason=f"{interval} lies at or above {target}")
    if high < target:
        return dict(result, verdict="not met", reason=f"{interval} lies below {target}")
    return dict(result, verdict="not enough outcomes yet", reason=f"{interval} straddles {target}")


def operating_points(positives_per_bin, negatives_per_bin, thresholds=None) -> pd.DataFrame:
    """Cumulative counts when predicting positive for bins at or above each bin, from the top bin down.

    Bins are ordered from the lowest score to the highest; ``thresholds`` are their lower edges (default: bin
    index). Returns one row per bin, highest threshold first, with tp, fp, fn, tn.
    """
    positives = np.asarray(positives_per_bin, dtype=np.int64)[::-1]
    negatives = np.asarray(negatives_per_bin, dtype=np.int64)[::-1]
    if positives.shape != negatives.shape:
        raise ValueError("positives_per_bin and negatives_per_bin must have the same length")
    edges = np.arange(positives.size) if thresholds is None else np.asarray(thresholds, dtype=float)
    tp, fp = np.cumsum(positives), np.cumsum(negatives)
    return pd.DataFrame({"threshold": edges[::-1], "tp": tp, "fp": fp,
                         "fn": positives.sum() - tp, "tn": negatives.sum() - fp})


def _per_score_counts(y_true, scores):
    truth = np.asarray(y_true, dtype=bool)
    values, inverse = np.unique(np.asarray(scores, dtype=float), return_inverse=True)
    positives = np.bincount(inverse, weights=truth, minlength=values.size).astype(np.int64)
    totals = np.bincount(inverse, minlength=values.size)
    return values, positives, totals - positives


def _thin(n_points: int, max_points: int | None) -> np.ndarray:
    if max_points is None or n_points <= max_points:
        return np.arange(n_points)
    return np.unique(np.linspace(0, n_points - 1, max_points).round().astype(int))


def roc_from_binned_counts(positives_per_bin, negatives_per_bin, thresholds=None, max_points=None) -> dict:
    """ROC curve and AUC from per-bin counts (bins from lowest to highest score), e.g. a SQL histogram.

    Returns {"fpr", "tpr", "thresholds", "auc"}; the curve starts at (0, 0). AUC is the trapezoid area, which equals
    the Mann-Whitney statistic with ties within a bin counted as one half; None when a class is absent.
    ``max_points`` thins the returned curve for plotting; the AUC always uses every bin.
    """
    table = operating_points(positives_per_bin, negatives_per_bin, thresholds)
    n_pos, n_neg = int(table["tp"].iloc[-1]) if len(table) else 0, int(table["fp"].iloc[-1]) if len(table) else 0
    if n_pos == 0 or n_neg == 0:
        return {"fpr": [], "tpr": [], "thresholds": [], "auc": None}
    tpr = np.concatenate([[0.0], table["tp"].to_numpy() / n_pos])
    fpr = np.concatenate([[0.0], table["fp"].to_numpy() / n_neg])
    edges = np.concatenate([[np.inf], table["threshold"].to_numpy(dtype=float)])
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    keep = _thin(fpr.size, max_points)
    return {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist(),
            "thresholds": [_clean(t) for t in edges[keep]], "auc": auc}


def roc_curve_points(y_true, scores, max_points=None) -> dict:
    """ROC curve and AUC from row-level truth and scores (every distinct score is a threshold)."""
    values, positives, negatives = _per_score_counts(y_true, scores)
    return roc_from_binned_counts(positives, negatives, values, max_points)


def auc_interval(auc, positives: int, negatives: int, confidence=0.95) -> dict | None:
    """Normal-approximation interval of a ROC AUC with the Hanley & McNeil (1982) standard error."""
    if auc is None or not positives or not negatives:
        return None
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (
        positives * negatives)
    half = _z(confidence) * math.sqrt(max(variance, 0.0))
    return {"low": max(auc - half, 0.0), "high": min(auc + half, 1.0), "method": "Hanley-McNeil normal approximation"}


def roc_auc(y_true, scores):
    """Area under the ROC curve (ties count one half), or None when only one class is present."""
    return roc_curve_points(y_true, scores)["auc"]


def _constrained_precision(table, criterion, confidence):
    """Per threshold, the precision the constraint is applied to: the point value or its Wilson lower bound."""
    predicted = (table["tp"] + table["fp"]).to_numpy()
    if criterion == "point":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(predicted > 0, table["tp"] / predicted, np.nan)
    if criterion == "wilson":
        return wilson_interval(table["tp"].to_numpy(), predicted, confidence)[0]
    raise ValueError(f"criterion must be 'point' or 'wilson', not {criterion!r}")


def select_threshold(y_true, scores, min_precision=0.5, margin=0.0, criterion="point", confidence=0.95,
                     raise_if_infeasible=True) -> dict:
    """The threshold that maximises recall subject to a precision constraint on (validation) data.

    Feasible thresholds satisfy, with ``criterion``:
    - "point": precision >= min_precision + margin (margin absorbs the drop expected on new data);
    - "wilson": the Wilson lower bound (at ``confidence``) of precision >= min_precision + margin, which is
      stricter when few searches are recommended.
    Among feasible thresholds the one with the highest recall wins; ties go to the higher threshold (same hits,
    fewer searches). Predictions are positive when ``score >= threshold``. When none is feasible this raises
    ThresholdError, or with ``raise_if_infeasible=False`` returns ``feasible=False``, ``threshold=None`` and
    ``best_precision``, the best value of the constrained measure (point precision or its Wilson lower bound).
    """
    values, positives, negatives = _per_score_counts(y_true, scores)
    table = operating_points(positives, negatives, values)
    constrained = _constrained_precision(table, criterion, confidence)
    ok = np.nan_to_num(constrained, nan=-1.0) >= min_precision + margin
    settings = {"min_precision": min_precision, "margin": margin, "criterion": criterion, "confidence": confidence}
    if not ok.any():
        best = float(np.nanmax(constrained)) if np.isfinite(constrained).any() else None
        measure = "precision" if criterion == "point" else f"{confidence:.0%} Wilson lower bound of precision"
        message = (f"no threshold reaches precision {min_precision} + margin {margin}: the best {measure} at any "
                   f"threshold is {best}. Lower the margin, use more validation data or improve the model.")
        if raise_if_infeasible:
            raise ThresholdError(message)
        return dict(settings, feasible=False, threshold=None, reason=message, best_precision=best)
    tp = table["tp"].to_numpy()
    best_tp = tp[ok].max()
    index = int(np.flatnonzero(ok & (tp == best_tp))[0])  # rows run from the highest threshold down
    row = table.iloc[index]
    report = classification_report_from_counts(row["tn"], row["fp"], row["fn"], row["tp"], confidence)
    return dict(settings, feasible=True, threshold=float(row["threshold"]),
                precision=report["precision"]["value"], precision_low=report["precision"]["low"],
                recall=report["recall"]["value"], predicted_positive=int(row["tp"] + row["fp"]),
                counts=report["counts"])


def sac_counts(sac, y_true, y_pred) -> pd.DataFrame:
    """Count table (sac, predicted, actual, count) from row-level arrays; SQL can build the same with GROUP BY."""
    frame = pd.DataFrame({"sac": pd.Series(sac, dtype="object").fillna("(missing)").astype(str).to_numpy(),
                          "predicted": np.asarray(y_pred, dtype=bool), "actual": np.asarray(y_true, dtype=bool)})
    return frame.groupby(["sac", "predicted", "actual"]).size().rename("count").reset_index()


def sac_table(counts, confidence=0.95) -> list[dict]:
    """Report table 4: per SearchAuthorizationCode, predicted True/False and true outcome True/False counts.

    ``counts`` is a DataFrame or records with columns sac, predicted, actual, count. Each row also gives the hit
    rate (true outcome rate) and the precision of the model's recommendations for that code, with intervals.
    """
    frame = pd.DataFrame(counts, columns=["sac", "predicted", "actual", "count"])
    if frame[["predicted", "actual"]].isna().any().any():
        raise ValueError("sac_table needs rows with an outcome: predicted and actual must not be null")
    frame["sac"] = frame["sac"].astype(object).fillna("(missing)")
    frame["predicted"] = frame["predicted"].astype(bool)
    frame["actual"] = frame["actual"].astype(bool)
    cells = frame.groupby(["sac", "predicted", "actual"])["count"].sum()
    codes = list(SAC_CODES) + sorted(set(frame["sac"]) - set(SAC_CODES))
    rows = []
    for code in codes:
        tp, fp, fn, tn = (int(cells.get((code, predicted, actual), 0))
                          for predicted, actual in ((True, True), (True, False), (False, True), (False, False)))
        rows.append({"sac": code, "predicted_true": tp + fp, "predicted_false": fn + tn,
                     "outcome_true": tp + fn, "outcome_false": fp + tn, "n": tp + fp + fn + tn,
                     "hit_rate": rate(tp + fn, tp + fp + fn + tn, confidence),
                     "precision": rate(tp, tp + fp, confidence)})
    return rows
