"""The figures of one variant on the held-out rows: one row of the comparison table."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.evaluation.fairness import fairness_table, group_counts, officer_counts
from pipeline.evaluation.metrics import auc_interval, classification_report_from_counts, confusion_counts, rate, roc_auc
from pipeline.schema import TARGET, records_to_frame, validate_observation

DRY_RUN = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "dry_run.json"


def break_counts(table: list[dict]) -> dict:
    """Pairs evaluated, breaking the 5-point rule on point estimates, and breaking it clearly (95%)."""
    evaluated = [e for e in table if e["status"] != "not enough data"]
    breaking = [e for e in evaluated if e["status"] == "breaks rule"]
    return {"evaluated": len(evaluated), "point": len(breaking), "clear": sum(bool(e["clear"]) for e in breaking)}


def judged_breaks(counts: pd.DataFrame, settings: dict) -> dict:
    """``break_counts`` of a count table, judging only departments that reach ``min_department`` (the others are
    "not enough data" and count nowhere; skipping them first makes a threshold sweep affordable)."""
    searches = counts.assign(n=counts["tp"] + counts["fp"])
    first = searches[searches["attribute"] == searches["attribute"].iloc[0]] if len(searches) else searches
    totals = first.groupby("department")["n"].sum()
    judged = totals.index[totals >= settings["min_department"]]
    return break_counts(fairness_table(counts[counts["department"].isin(judged)], **settings))


def model_breaks(frame: pd.DataFrame, predicted, settings: dict) -> dict:
    """Break counts of a model's recommendations on searched rows with outcomes."""
    return judged_breaks(group_counts(frame, frame[TARGET].to_numpy(bool), np.asarray(predicted, bool)), settings)


def officer_breaks(frame: pd.DataFrame, settings: dict) -> dict:
    """Break counts of the officers' own searches (every searched row was their yes)."""
    return judged_breaks(officer_counts(frame, frame[TARGET].to_numpy(bool)), settings)


def expected_precision(probabilities) -> dict:
    """Mean of true hit probabilities with a 95% normal interval of the realised precision (Poisson-binomial)."""
    p = np.asarray(probabilities, dtype=float)
    if not p.size:
        return {"value": None, "low": None, "high": None, "n": 0}
    half = 1.96 * np.sqrt((p * (1 - p)).sum()) / p.size
    mean = float(p.mean())
    return {"value": mean, "low": max(0.0, mean - half), "high": min(1.0, mean + half), "n": int(p.size)}


def every_stop(scores, search_truth, threshold: float) -> dict:
    """Unsearched stops sent to the model: share recommended (Wilson) and what those searches would find."""
    recommended = np.asarray(scores) >= threshold
    return {"stops": int(recommended.size), "recommended": int(recommended.sum()),
            "share": rate(int(recommended.sum()), int(recommended.size)),
            "precision": expected_precision(np.asarray(search_truth)[recommended])}


def dry_run_unsuspected() -> pd.DataFrame:
    """The 223 real production requests with SearchAuthorizationCode set to N, as the service would frame them."""
    data = json.loads(DRY_RUN.read_text())
    records = []
    for row in data["values"]:
        observation = dict(json.loads(dict(zip(data["fields"], row))["observation"])["observation"])
        observation["SearchAuthorizationCode"] = "N"
        records.append(validate_observation(observation))
    return records_to_frame(records)


def measure(test: pd.DataFrame, scores, threshold: float, settings: dict, bayes_auc: float | None) -> dict:
    """Precision, recall (Wilson), AUC (Hanley-McNeil), AUC / Bayes AUC and rule breaks at ``threshold``."""
    y = test[TARGET].to_numpy(bool)
    predicted = np.asarray(scores) >= threshold
    report = classification_report_from_counts(**confusion_counts(y, predicted))
    auc = roc_auc(y, scores)
    interval = auc_interval(auc, int(y.sum()), int((~y).sum()))
    row = {"threshold": float(threshold), "precision": report["precision"], "recall": report["recall"],
           "recommended": int(predicted.sum()), "auc": {"value": auc, "low": interval["low"], "high": interval["high"]},
           "breaks": model_breaks(test, predicted, settings)}
    if bayes_auc:
        row["auc_over_bayes"] = {key: row["auc"][key] / bayes_auc for key in ("value", "low", "high")}
    return row
