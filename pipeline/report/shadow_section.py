"""Report section 7: the live model against each shadow version on the same requests and the same outcomes.

A shadow version scores every request beside the live one (migration 0003 stores its answer on the row), so both
are measured on exactly the same stops: precision and recall at each model's own threshold, AUC, each with a 95%
interval, how often the two decisions agree, and the fairness rule for both. An analyst promotes on this evidence.
"""
from __future__ import annotations

import pandas as pd

from pipeline.evaluation.fairness import fairness_summary, fairness_table
from pipeline.evaluation.metrics import auc_interval, classification_report_from_counts, rate, roc_from_binned_counts
from pipeline.report.fairness_section import count_tables
from pipeline.report.filters import FairnessParameters

MAX_VERSIONS = 3  # the shadow versions with the most requests in the slice; normally there is one
NOTE = ("Both models answered every request counted here (the live one decided, the shadow's answer was only "
        "logged). Precision and recall are at each model's own threshold, on the requests with outcomes; agreement "
        "is the share of all shadow-scored requests where both gave the same decision. Intervals: Wilson for "
        "rates, Hanley-McNeil for AUC.")


def _confusion(rows: pd.DataFrame, decision: str) -> dict:
    predicted, found, count = rows[decision].astype(bool), rows["contraband_found"].astype(bool), rows["count"]
    return {"tp": int(count[predicted & found].sum()), "fp": int(count[predicted & ~found].sum()),
            "fn": int(count[~predicted & found].sum()), "tn": int(count[~predicted & ~found].sum())}


def _auc(bins: pd.DataFrame, n_bins: int) -> dict:
    ordered = bins.groupby("bin", sort=True)[["positives", "negatives"]].sum().reset_index()
    roc = roc_from_binned_counts(ordered["positives"].to_numpy(), ordered["negatives"].to_numpy(),
                                 thresholds=ordered["bin"].to_numpy() / n_bins)
    positives, negatives = int(ordered["positives"].sum()), int(ordered["negatives"].sum())
    return {"value": roc["auc"], "interval": auc_interval(roc["auc"], positives, negatives), "positives": positives,
            "negatives": negatives}


def _fairness(rows: pd.DataFrame, decision: str, parameters: FairnessParameters) -> dict:
    model_counts, _ = count_tables(rows.assign(should_search=rows[decision]))
    table = fairness_table(model_counts, min_department=parameters.min_department, min_group=parameters.min_group,
                           max_gap=parameters.max_gap)
    summary = fairness_summary(table, parameters.min_department, parameters.min_group, parameters.max_gap, 0.95)
    attributes = summary["by_attribute"].values()
    return {"evaluated": sum(a["evaluated"] for a in attributes),
            "breaks_rule": sum(a["breaks_rule"] for a in attributes),
            "breaks_rule_clear": sum(a["breaks_rule_clear"] for a in attributes),
            "largest_gap": max((a["largest_gap"] for a in attributes if a["largest_gap"] is not None), default=None)}


def _side(labelled: pd.DataFrame, decision: str, bins: pd.DataFrame, n_bins: int,
          parameters: FairnessParameters) -> dict:
    counts = _confusion(labelled, decision)
    metrics = classification_report_from_counts(**counts)
    return {"counts": counts, "precision": metrics["precision"], "recall": metrics["recall"],
            "recommended": rate(counts["tp"] + counts["fp"], sum(counts.values())),
            "auc": _auc(bins, n_bins), "fairness": _fairness(labelled, decision, parameters)}


def _bins_of(frame: pd.DataFrame, version: str) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame({"bin": [], "positives": [], "negatives": []})
    return frame[frame["shadow_version"] == version]


def shadow_section(groups: pd.DataFrame, live_bins: pd.DataFrame, shadow_bins: pd.DataFrame,
                   parameters: FairnessParameters, n_bins: int) -> dict:
    """Live against each shadow version (most requests first), on the requests both scored."""
    versions = []
    if not groups.empty:
        totals = groups.groupby("shadow_version")["count"].sum().sort_values(ascending=False)
        for version in list(totals.index)[:MAX_VERSIONS]:
            rows = groups[groups["shadow_version"] == version]
            same = rows["should_search"].astype(bool) == rows["shadow_should_search"].astype(bool)
            labelled = rows[rows["contraband_found"].notna()]
            labelled_same = same[rows["contraband_found"].notna()]
            versions.append({
                "shadow_version": str(version), "requests": int(rows["count"].sum()),
                "labelled": int(labelled["count"].sum()),
                "agreement": rate(int(rows["count"][same].sum()), int(rows["count"].sum())),
                "agreement_labelled": rate(int(labelled["count"][labelled_same].sum()), int(labelled["count"].sum())),
                "live": _side(labelled, "should_search", _bins_of(live_bins, version), n_bins, parameters),
                "shadow": _side(labelled, "shadow_should_search", _bins_of(shadow_bins, version), n_bins, parameters),
            })
    return {"versions": versions, "note": NOTE}
