"""Metrics on counts: Wilson intervals, the report's table 1, verdicts, ROC/AUC, threshold selection, table 4."""
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from pipeline.evaluation.metrics import (
    ThresholdError,
    auc_interval,
    classification_report_from_counts,
    confusion_counts,
    precision_verdict,
    roc_auc,
    roc_curve_points,
    roc_from_binned_counts,
    sac_counts,
    sac_table,
    select_threshold,
    wilson_interval,
)

Z95 = 1.959963984540054


def wilson_by_formula(k, n, z=Z95):
    """Wilson's formula written out independently of the module."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_wilson_matches_hand_computation():
    # 5 of 10: centre 0.5, half-width 1.96 * sqrt(0.025 + 0.0096036) / 1.384146 = 0.263407
    assert wilson_interval(5, 10) == pytest.approx((0.236593, 0.763407), abs=1e-6)
    # 0 of 10: the lower end is 0 and the upper z^2/n / (1 + z^2/n) = 0.384146 / 1.384146
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.277533), abs=1e-6)
    assert wilson_interval(0, 100)[0] == 0.0 and wilson_interval(100, 100)[1] == 1.0  # exact, not 3e-18 off
    assert wilson_interval(37, 113, 0.9) == pytest.approx(wilson_by_formula(37, 113, 1.6448536269514722))


def test_wilson_is_nan_without_trials_and_vectorised():
    low, high = wilson_interval(0, 0)
    assert math.isnan(low) and math.isnan(high)
    lows, highs = wilson_interval(np.array([5, 0, 3]), np.array([10, 0, 7]))
    assert lows[0] == pytest.approx(0.236593, abs=1e-6) and math.isnan(lows[1])
    assert (lows[2], highs[2]) == pytest.approx(wilson_by_formula(3, 7))


def test_confusion_counts():
    counts = confusion_counts([1, 1, 0, 0, 1, 0], [1, 0, 1, 0, 1, 1])
    assert counts == {"tn": 1, "fp": 2, "fn": 1, "tp": 2}
    with pytest.raises(ValueError):
        confusion_counts([1, 0], [1])


def test_report_table_1_from_counts():
    report = classification_report_from_counts(tn=108, fp=3097, fn=36, tp=1758)
    assert round(report["precision"]["value"], 2) == 0.36
    assert round(report["recall"]["value"], 2) == 0.98
    assert round(report["accuracy"]["value"], 2) == 0.37
    assert round(report["f1"]["value"], 2) == 0.53
    assert report["precision"]["n"] == 3097 + 1758 and report["recall"]["n"] == 1758 + 36
    assert (report["precision"]["low"], report["precision"]["high"]) == pytest.approx(
        wilson_by_formula(1758, 1758 + 3097))
    f1 = report["f1"]
    assert f1["low"] < f1["value"] < f1["high"]
    # F1 bounds come from the 97.5% precision and recall bounds, so they are wider than the 95% ones would give
    p, r = report["precision"], report["recall"]
    assert f1["low"] <= 2 * p["low"] * r["low"] / (p["low"] + r["low"])


def test_report_is_safe_with_zero_denominators():
    report = classification_report_from_counts(tn=10, fp=0, fn=0, tp=0)
    assert report["precision"] == {"value": None, "low": None, "high": None, "n": 0}
    assert report["recall"]["value"] is None and report["f1"]["value"] is None
    assert report["accuracy"]["value"] == 1.0


@pytest.mark.parametrize("tp, fp, verdict", [
    (10, 5, "not enough outcomes yet"),   # below the minimum number of outcomes
    (600, 400, "met"),                    # 0.60, interval 0.57-0.63
    (400, 600, "not met"),                # 0.40, interval 0.37-0.43
    (52, 48, "not enough outcomes yet"),  # 0.52 but the interval straddles 0.5
])
def test_precision_verdict(tp, fp, verdict):
    result = precision_verdict(tp, fp, minimum_outcomes=30, target=0.5)
    assert result["verdict"] == verdict
    assert result["reason"]
    low, high = wilson_by_formula(tp, tp + fp)
    assert result["precision"]["low"] == pytest.approx(low)
    if verdict == "met":
        assert low >= 0.5
    if verdict == "not met":
        assert high < 0.5


LABELS = np.array([1, 1, 0, 1, 0, 0, 1, 0])
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
# predicting score >= t gives precision: 0.9 1/1, 0.8 2/2, 0.7 2/3, 0.6 3/4, 0.5 3/5, 0.4 3/6, 0.3 4/7, 0.2 4/8


def test_roc_matches_an_independent_implementation_with_ties():
    rng = np.random.default_rng(3)
    labels = rng.random(500) < 0.35
    scores = np.round(rng.random(500) * 0.6 + labels * 0.3, 2)  # rounding creates ties
    curve = roc_curve_points(labels, scores)
    assert curve["auc"] == pytest.approx(roc_auc_score(labels, scores))
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    assert np.allclose(curve["fpr"], fpr) and np.allclose(curve["tpr"], tpr)
    assert roc_auc(LABELS, SCORES) == pytest.approx(12 / 16)  # 12 of 16 positive/negative pairs ordered right


def test_roc_from_binned_counts_equals_row_level_and_thins():
    # bins from low to high score: the same data as LABELS/SCORES grouped in four bins of two
    binned = roc_from_binned_counts([1, 0, 1, 2], [1, 2, 1, 0], thresholds=[0.2, 0.4, 0.6, 0.8])
    assert binned["tpr"] == pytest.approx([0, 0.5, 0.75, 0.75, 1.0])
    assert binned["fpr"] == pytest.approx([0, 0, 0.25, 0.75, 1.0])
    assert binned["thresholds"][1:] == [0.8, 0.6, 0.4, 0.2]
    assert binned["auc"] == pytest.approx(0.5 * 0.25 * (0.5 + 0.75) + 0.5 * 0.75 + 0.25 * (0.75 + 1) / 2)
    thinned = roc_from_binned_counts(np.arange(100), np.arange(100)[::-1], max_points=10)
    assert len(thinned["fpr"]) == 10 and thinned["fpr"][0] == 0 and thinned["fpr"][-1] == 1
    assert roc_from_binned_counts([3, 2], [0, 0])["auc"] is None


def test_select_threshold_maximises_recall_under_the_precision_constraint():
    result = select_threshold(LABELS, SCORES, min_precision=0.5)
    # recall 1 is reached at 0.3 (4/7) and 0.2 (4/8): the tie goes to the higher threshold
    assert result["feasible"] and result["threshold"] == 0.3
    assert result["recall"] == 1.0 and result["precision"] == pytest.approx(4 / 7)
    assert result["counts"] == {"tn": 1, "fp": 3, "fn": 0, "tp": 4}
    stricter = select_threshold(LABELS, SCORES, min_precision=0.6)
    assert stricter["threshold"] == 0.6 and stricter["recall"] == 0.75
    with_margin = select_threshold(LABELS, SCORES, min_precision=0.5, margin=0.1)
    assert with_margin["threshold"] == stricter["threshold"]


def test_select_threshold_with_the_wilson_criterion():
    labels, scores = np.tile(LABELS, 100), np.tile(SCORES, 100)
    # 400/700 has Wilson lower bound 0.534; 400/800 has 0.465, so 0.3 is kept and 0.2 refused
    result = select_threshold(labels, scores, min_precision=0.5, criterion="wilson")
    assert result["threshold"] == 0.3 and result["precision_low"] >= 0.5
    with pytest.raises(ThresholdError, match="Wilson lower bound"):
        select_threshold(LABELS, SCORES, min_precision=0.5, criterion="wilson")  # 8 rows prove nothing


def test_select_threshold_reports_infeasibility():
    labels = np.array([0, 1, 0, 0, 1, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    with pytest.raises(ThresholdError):
        select_threshold(labels, scores, min_precision=0.6)
    result = select_threshold(labels, scores, min_precision=0.6, raise_if_infeasible=False)
    assert result["feasible"] is False and result["threshold"] is None
    assert result["best_precision"] == pytest.approx(0.5)
    wilson = select_threshold(labels, scores, min_precision=0.6, criterion="wilson", raise_if_infeasible=False)
    assert wilson["best_precision"] == pytest.approx(max(wilson_by_formula(1, 2)[0], wilson_by_formula(2, 5)[0]))


def test_sac_table_counts_predictions_and_outcomes_per_code():
    sac = ["C", "C", "C", "O", "O", "N", "I", None]
    truth = [1, 0, 0, 1, 1, 0, 0, 1]
    predicted = [1, 1, 0, 1, 0, 0, 0, 1]
    rows = {row["sac"]: row for row in sac_table(sac_counts(sac, truth, predicted))}
    assert list(rows) == ["C", "I", "N", "O", "(missing)"]
    assert (rows["C"]["predicted_true"], rows["C"]["predicted_false"]) == (2, 1)
    assert (rows["C"]["outcome_true"], rows["C"]["outcome_false"]) == (1, 2)
    assert rows["C"]["precision"]["value"] == 0.5
    assert (rows["O"]["predicted_true"], rows["O"]["outcome_true"], rows["O"]["n"]) == (1, 2, 2)
    assert rows["I"]["predicted_true"] == 0 and rows["I"]["precision"]["value"] is None
    assert sum(row["n"] for row in rows.values()) == len(sac)


def test_sac_table_accepts_sql_style_records():
    records = [{"sac": "O", "predicted": True, "actual": True, "count": 7},
               {"sac": "O", "predicted": True, "actual": False, "count": 3}]
    row = next(r for r in sac_table(records) if r["sac"] == "O")
    assert row["predicted_true"] == 10 and row["hit_rate"]["value"] == 0.7
    with_null = records + [{"sac": None, "predicted": False, "actual": True, "count": 2}]
    assert next(r for r in sac_table(with_null) if r["sac"] == "(missing)")["outcome_true"] == 2
    with pytest.raises(ValueError, match="outcome"):
        sac_table([{"sac": "C", "predicted": True, "actual": None, "count": 1}])


def test_auc_interval_contains_the_auc_and_narrows_with_more_rows():
    small, large = auc_interval(0.75, 50, 100), auc_interval(0.75, 5000, 10000)
    assert small["low"] < 0.75 < small["high"] and large["low"] < 0.75 < large["high"]
    assert large["high"] - large["low"] < small["high"] - small["low"]
    assert auc_interval(None, 10, 10) is None and auc_interval(0.7, 0, 10) is None
    # By hand (Hanley & McNeil 1982): Q1 = 0.75/1.25 = 0.6, Q2 = 2*0.5625/1.75 = 0.642857,
    # var = (0.1875 + 49*(0.6-0.5625) + 99*(0.642857-0.5625)) / (50*100) = 0.0019961, half = 1.959964*0.044678
    assert small["high"] - 0.75 == pytest.approx(0.087566, abs=1e-5)
