"""Report section 5: precision per protected group within each department, for the model and the officers."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.evaluation.fairness import (
    ATTRIBUTES,
    MISSING,
    fairness_summary,
    fairness_table,
    gap_distribution,
    gap_histogram,
)
from pipeline.report.filters import FairnessParameters

BASELINE_NOTE = ("Officers' baseline: every logged request is a stop the officer chose to search, so the officers' "
                 "precision for a group is the share of its searches that found contraband.")

BREAKING_NOTE = ("Departments and attributes whose largest precision gap exceeds the allowed gap, among those with "
                 "enough data (the minimum counts above). \"clear\" means the 95% interval of the gap lies wholly "
                 "above the allowed gap, so the breach is not explained by chance.")


def count_tables(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Long count tables (department, attribute, group, tp, fp, fn, tn) for the model and for the officers."""
    found = rows["contraband_found"].astype(bool).to_numpy()
    predicted = rows["should_search"].astype(bool).to_numpy()
    count = rows["count"].to_numpy(dtype=np.int64)
    model = pd.DataFrame({"tp": count * (predicted & found), "fp": count * (predicted & ~found),
                          "fn": count * (~predicted & found), "tn": count * (~predicted & ~found)})
    officers = pd.DataFrame({"tp": count * found, "fp": count * ~found, "fn": 0, "tn": 0})
    return _long(rows, model), _long(rows, officers)


def _long(rows: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    department = rows["department"].astype(object).fillna(MISSING).astype(str).to_numpy()
    parts = []
    for attribute in ATTRIBUTES:
        group = rows[attribute].astype(object).fillna(MISSING).astype(str).to_numpy()
        keyed = cells.assign(department=department, group=group)
        summed = keyed.groupby(["department", "group"], sort=True)[["tp", "fp", "fn", "tn"]].sum().reset_index()
        parts.append(summed.assign(attribute=attribute))
    columns = ["department", "attribute", "group", "tp", "fp", "fn", "tn"]
    return pd.concat(parts, ignore_index=True)[columns] if len(rows) else pd.DataFrame(columns=columns)


def _side(counts: pd.DataFrame, parameters: FairnessParameters) -> dict:
    table = fairness_table(counts, min_department=parameters.min_department, min_group=parameters.min_group,
                           max_gap=parameters.max_gap)
    gaps = gap_distribution(table, pairwise=True)
    return {"table": table, "gaps": gaps, "gap_histogram": gap_histogram(gaps),
            "summary": fairness_summary(table, parameters.min_department, parameters.min_group, parameters.max_gap,
                                        0.95)}


def _breaking(table: list[dict]) -> list[dict]:
    return [{"department": entry["department"], "attribute": entry["attribute"], "max_gap": entry["max_gap"],
             "highest_group": entry["highest_group"], "lowest_group": entry["lowest_group"],
             "gap_low": entry["gap_low"], "gap_high": entry["gap_high"], "n": entry["n"],
             "clear": entry["clear"]}
            for entry in table if entry["status"] == "breaks rule"]


def fairness_section(rows: pd.DataFrame, parameters: FairnessParameters) -> dict:
    """Fairness tables, gap distributions and the departments breaking the rule, for the model and the officers."""
    model_counts, officer_counts = count_tables(rows)
    model, officers = _side(model_counts, parameters), _side(officer_counts, parameters)
    breaking = _breaking(model["table"])
    return {"parameters": {"min_department": parameters.min_department, "min_group": parameters.min_group,
                           "max_gap": parameters.max_gap, "confidence": 0.95,
                           "counted": "recommended searches with outcomes (tp + fp) per department and group"},
            "model": model, "officers": officers, "baseline_note": BASELINE_NOTE,
            "breaking_rule": sorted(breaking, key=lambda e: (not e["clear"], -e["max_gap"])),
            "breaking_note": BREAKING_NOTE}
