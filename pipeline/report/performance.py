"""Report sections 1-4 from the SQL aggregates: volume, performance with its verdict, table 4 and the ROC curve."""
from __future__ import annotations

import pandas as pd

from pipeline.evaluation.metrics import (
    classification_report_from_counts,
    precision_verdict,
    rate,
    roc_from_binned_counts,
    sac_table,
)

RECALL_NOTE = ("Outcomes exist only where officers searched and an analyst reported the result, so every figure "
               "here is measured on searched stops. Recall is the share of contraband found among searched stops "
               "that the model recommended; contraband in stops that were never searched is unknown, so true "
               "recall over all stops cannot be measured from this log.")
DEFAULT_NOTE = ("Officers ask only about stops they already suspect. A model that answers \"search\" for nearly "
                "every request, or for every request with a given SearchAuthorizationCode, is repeating the "
                "officer's suspicion instead of predicting contraband (the previous model's failure, report table 4).")
ROC_POINTS = 400
# "By default" thresholds: the previous model recommended ~98% of searched stops (report table 1: 4855 of 4999).
DEFAULT_SHARE, DEFAULT_SHARE_PER_CODE, DEFAULT_MIN_REQUESTS = 0.9, 0.95, 30


def _int(value) -> int:
    return int(value) if pd.notna(value) else 0


def decision_counts(profile: pd.DataFrame) -> pd.DataFrame:
    """Requests per SearchAuthorizationCode x decision x current outcome (None = no outcome yet)."""
    keys = ["SearchAuthorizationCode", "should_search", "contraband_found"]
    summed = profile.groupby(keys, dropna=False, sort=True)["count"].sum().reset_index()
    summed = summed.rename(columns={"SearchAuthorizationCode": "sac"}).astype({"sac": object, "should_search": bool})
    summed["contraband_found"] = summed["contraband_found"].astype(object).where(summed["contraband_found"].notna(),
                                                                                  None)
    return summed


def _volume_rows(frame: pd.DataFrame, key: str) -> list[dict]:
    return [{key: str(row[key]), "requests": _int(row["requests"]), "labelled": _int(row["labelled"]),
             "recommended": _int(row["recommended"]),
             "label_coverage": rate(_int(row["labelled"]), _int(row["requests"]))}
            for _, row in frame.iterrows()]


def volume_section(volume: pd.DataFrame, history: dict) -> dict:
    """Requests and labelled requests per day and per model version, with overall label coverage."""
    by_day = volume.groupby(["day", "model_version"], sort=True)[["requests", "labelled", "recommended"]].sum()
    by_day = by_day.reset_index()
    requests, labelled = _int(by_day["requests"].sum()), _int(by_day["labelled"].sum())
    versions = (by_day.groupby("model_version", sort=True)[["requests", "labelled", "recommended"]].sum()
                .reset_index())
    days = by_day.groupby("day", sort=True)[["requests", "labelled", "recommended"]].sum().reset_index()
    return {"requests": requests, "labelled": labelled, "label_coverage": rate(labelled, requests),
            "outcome_reports": history["outcome_reports"], "corrections": history["corrections"],
            "by_day": _volume_rows(days, "day"), "by_model_version": _volume_rows(versions, "model_version"),
            "by_day_and_model_version": [
                {"day": str(row.day), "model_version": str(row.model_version), "requests": _int(row.requests),
                 "labelled": _int(row.labelled), "recommended": _int(row.recommended)}
                for row in by_day.itertuples(index=False)]}


def _labelled(decisions: pd.DataFrame) -> pd.DataFrame:
    labelled = decisions[decisions["contraband_found"].notna()].copy()
    labelled["contraband_found"] = labelled["contraband_found"].astype(bool)
    labelled["should_search"] = labelled["should_search"].astype(bool)
    return labelled


def confusion(decisions: pd.DataFrame) -> dict:
    """Confusion counts {tn, fp, fn, tp} of the model's decisions against the current outcomes."""
    labelled = _labelled(decisions)
    cells = labelled.groupby(["should_search", "contraband_found"])["count"].sum()
    names = {"tn": (False, False), "fp": (True, False), "fn": (False, True), "tp": (True, True)}
    return {name: int(cells.get(key, 0)) for name, key in names.items()}


def _default_verdict(overall: dict, by_sac: dict) -> str:
    """"yes" when even the interval's low end of the recommended share is >= 90%; "for some codes" when a code
    with enough requests has it >= 95%; "no" otherwise (or "not enough requests yet")."""
    if overall["n"] < DEFAULT_MIN_REQUESTS:
        return "not enough requests yet"
    if overall["low"] >= DEFAULT_SHARE:
        return "yes"
    if any(m["n"] >= DEFAULT_MIN_REQUESTS and m["low"] >= DEFAULT_SHARE_PER_CODE for m in by_sac.values()):
        return "for some codes"
    return "no"


def _search_by_default(decisions: pd.DataFrame) -> dict:
    totals = decisions.groupby("sac", sort=True)["count"].sum()
    recommended = decisions[decisions["should_search"]].groupby("sac")["count"].sum()
    overall = rate(_int(recommended.sum()), _int(totals.sum()))
    by_sac = {str(sac): rate(_int(recommended.get(sac, 0)), _int(total)) for sac, total in totals.items()}
    rule = (f"\"yes\" when the 95% interval of the recommended share lies at or above {DEFAULT_SHARE:.0%}; \"for "
            f"some codes\" when it lies at or above {DEFAULT_SHARE_PER_CODE:.0%} for a code with at least "
            f"{DEFAULT_MIN_REQUESTS} requests")
    return {"overall": overall, "by_sac": by_sac, "verdict": _default_verdict(overall, by_sac), "rule": rule,
            "note": DEFAULT_NOTE}


def performance_section(decisions: pd.DataFrame, minimum_outcomes: int = 30) -> dict:
    """Report table 1 on labelled requests: confusion matrix, metrics with Wilson intervals, precision verdict."""
    decisions = decisions.astype({"should_search": bool})
    counts = confusion(decisions)
    metrics = classification_report_from_counts(**counts)
    verdict = precision_verdict(counts["tp"], counts["fp"], minimum_outcomes=minimum_outcomes)
    return {"metrics": metrics, "precision_requirement": verdict, "recall_note": RECALL_NOTE,
            "search_by_default": _search_by_default(decisions)}


def sac_section(decisions: pd.DataFrame) -> list[dict]:
    """Report table 4 on labelled requests, plus each code's requests and recommended share over all requests."""
    decisions = decisions.astype({"should_search": bool})
    labelled = _labelled(decisions).rename(columns={"should_search": "predicted", "contraband_found": "actual"})
    table = sac_table(labelled[["sac", "predicted", "actual", "count"]])
    totals = decisions.groupby("sac")["count"].sum()
    recommended = decisions[decisions["should_search"]].groupby("sac")["count"].sum()
    for row in table:
        requests = _int(totals.get(row["sac"], 0))
        row["requests"] = requests
        row["recommended"] = rate(_int(recommended.get(row["sac"], 0)), requests)
    return table


def roc_section(bins: pd.DataFrame, n_bins: int) -> dict:
    """ROC curve and AUC on labelled requests from the SQL probability histogram."""
    ordered = bins.sort_values("bin")
    roc = roc_from_binned_counts(ordered["positives"].to_numpy(), ordered["negatives"].to_numpy(),
                                 thresholds=ordered["bin"].to_numpy() / n_bins, max_points=ROC_POINTS)
    roc["binning"] = (f"probabilities are grouped into {n_bins} bins of width 1/{n_bins} in SQL "
                      f"(bin = floor(p x {n_bins}); p = 1 has its own bin); each non-empty bin's lower edge is a "
                      "threshold and ties within a bin count one half in the AUC")
    roc["bins"] = n_bins
    roc["positives"] = _int(ordered["positives"].sum())
    roc["negatives"] = _int(ordered["negatives"].sum())
    return roc
