"""Fairness of search recommendations: precision per protected group within each police department.

The core works on a long COUNT TABLE, one row per (department, attribute, group), with columns
``department, attribute, group, tp, fp, fn, tn`` (tp = recommended and contraband found, fp = recommended and
nothing found, fn/tn the same for stops not recommended). ``group_counts`` builds it from rows; the production
report builds the same table in SQL. Precision of a group is tp / (tp + fp).

The officers' baseline is the same table with every searched stop predicted positive (``officer_counts``): their
precision is the hit rate of their searches.
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from pipeline.evaluation.metrics import rate
from pipeline.schema import age_group_series

AGE_GROUP = "SubjectAgeGroup"
ATTRIBUTES = ("SubjectRaceCode", "SubjectEthnicityCode", "SubjectSexCode", AGE_GROUP)
MISSING = "(missing)"
COUNT_COLUMNS = ("tp", "fp", "fn", "tn")
TABLE_COLUMNS = ("department", "attribute", "group") + COUNT_COLUMNS


def _attribute_values(frame: pd.DataFrame, attribute: str) -> pd.Series:
    if attribute == AGE_GROUP and AGE_GROUP not in frame:
        values = age_group_series(frame["SubjectAge"])
    else:
        values = frame[attribute]
    return pd.Series(values, index=frame.index, dtype="object").fillna(MISSING).astype(str)


def group_counts(frame, y_true, y_pred, department_col="Department Name", attributes=ATTRIBUTES) -> pd.DataFrame:
    """Long count table (department, attribute, group, tp, fp, fn, tn) from row-level data.

    ``attributes`` are column names of ``frame``; "SubjectAgeGroup" is derived from SubjectAge when absent.
    Missing values form the group "(missing)", which is counted but never compared.
    """
    truth = np.asarray(y_true, dtype=bool)
    predicted = np.asarray(y_pred, dtype=bool)
    cells = pd.DataFrame({"tp": predicted & truth, "fp": predicted & ~truth,
                          "fn": ~predicted & truth, "tn": ~predicted & ~truth}, index=frame.index).astype(np.int64)
    department = pd.Series(frame[department_col], dtype="object").fillna(MISSING).astype(str)
    parts = []
    for attribute in attributes:
        keyed = cells.assign(department=department, group=_attribute_values(frame, attribute))
        summed = keyed.groupby(["department", "group"], sort=True)[list(COUNT_COLUMNS)].sum().reset_index()
        parts.append(summed.assign(attribute=attribute))
    if not parts:
        return pd.DataFrame(columns=list(TABLE_COLUMNS))
    return pd.concat(parts, ignore_index=True)[list(TABLE_COLUMNS)]


def officer_counts(frame, y_true, department_col="Department Name", attributes=ATTRIBUTES) -> pd.DataFrame:
    """The officers' baseline count table: every searched stop was their "yes"."""
    return group_counts(frame, y_true, np.ones(len(frame), dtype=bool), department_col, attributes)


def _as_table(counts) -> pd.DataFrame:
    table = pd.DataFrame(counts)
    for column in COUNT_COLUMNS:
        if column not in table:
            table[column] = 0  # SQL may give only predicted-positive counts; fn/tn are then unknown zeros
    missing = {"department", "attribute", "group"} - set(table.columns)
    if missing:
        raise KeyError(f"count table lacks columns {sorted(missing)}; expected {list(TABLE_COLUMNS)}")
    table = table.astype({c: np.int64 for c in COUNT_COLUMNS})
    table = table.astype({"department": object, "attribute": object, "group": object})
    # SQL gives NULL for a missing value; it must land in the uncompared bucket, not vanish in a groupby
    return table.fillna({"department": MISSING, "group": MISSING})


def _newcombe_difference(high_group: dict, low_group: dict):
    """Newcombe's hybrid Wilson interval (method 10) of p_high - p_low."""
    p1, l1, u1 = high_group["precision"], high_group["low"], high_group["high"]
    p2, l2, u2 = low_group["precision"], low_group["low"], low_group["high"]
    difference = p1 - p2
    return (difference - float(np.hypot(p1 - l1, u2 - p2)), difference + float(np.hypot(u1 - p1, p2 - l2)))


def _group_rows(rows: pd.DataFrame, min_group: int, confidence: float) -> list[dict]:
    groups = []
    for row in rows.itertuples(index=False):
        measured = rate(row.tp, row.tp + row.fp, confidence)
        eligible = row.group != MISSING and measured["n"] >= min_group
        groups.append({"group": row.group, "n": measured["n"], "hits": int(row.tp), "precision": measured["value"],
                       "low": measured["low"], "high": measured["high"], "eligible": bool(eligible)})
    return sorted(groups, key=lambda g: (g["group"] == MISSING, g["group"]))


def _assess(department, attribute, groups, min_department, max_gap) -> dict:
    """Status of one department and attribute from its groups (see ``fairness_table``)."""
    n = sum(g["n"] for g in groups)
    eligible = [g for g in groups if g["eligible"]]
    result = {"department": department, "attribute": attribute, "n": n, "groups": groups,
              "eligible_groups": len(eligible), "max_gap": None, "highest_group": None, "lowest_group": None,
              "gap_low": None, "gap_high": None, "clear": None}
    if n < min_department:
        return dict(result, status="not enough data",
                    reason=f"{n} recommended searches with outcomes; the minimum per department is {min_department}")
    if len(eligible) < 2:
        return dict(result, status="not enough data",
                    reason=f"{len(eligible)} group(s) reach the minimum per group; two are needed to compare")
    high = max(eligible, key=lambda g: g["precision"])
    low = min(eligible, key=lambda g: g["precision"])
    gap = round(high["precision"] - low["precision"], 12)  # so 0.55 - 0.50 is exactly on the 0.05 boundary
    gap_low, gap_high = _newcombe_difference(high, low)
    breaks = gap > max_gap
    clear = gap_low > max_gap if breaks else gap_high <= max_gap
    status = "breaks rule" if breaks else "ok"
    reason = (f"gap {gap:.3f} between {high['group']} and {low['group']} "
              f"({'>' if breaks else '<='} {max_gap}); interval of the gap {gap_low:.3f}-{gap_high:.3f}")
    return dict(result, max_gap=gap, highest_group=high["group"], lowest_group=low["group"], gap_low=gap_low,
                gap_high=gap_high, clear=bool(clear), status=status, reason=reason)


def fairness_table(counts, min_department=100, min_group=20, max_gap=0.05, confidence=0.95) -> list[dict]:
    """Per department and attribute: group precisions with Wilson intervals, the largest gap and a status.

    Counts are of recommended searches with outcomes (tp + fp), the denominator of precision:
    - a group is eligible when it is not "(missing)" and has at least ``min_group`` of them;
    - status "not enough data" when the department has fewer than ``min_department`` (summed over the
      attribute's groups) or fewer than two groups are eligible; never passed silently;
    - otherwise the gap is the highest minus the lowest eligible precision: "breaks rule" when gap > max_gap,
      else "ok".
    ``clear`` says whether the data are enough to say so: for "breaks rule", the lower end of the Newcombe
    (hybrid Wilson) interval of the gap exceeds max_gap; for "ok", its upper end is at most max_gap. The two
    extreme groups are chosen after looking, so with many groups ``clear`` is slightly optimistic.
    """
    table = _as_table(counts)
    results = []
    for (department, attribute), rows in table.groupby(["department", "attribute"], sort=True):
        groups = _group_rows(rows, min_group, confidence)
        results.append(_assess(department, attribute, groups, min_department, max_gap))
    return results


def gap_distribution(table: list[dict], pairwise=True, attributes=None) -> list[float]:
    """Gaps (fractions) between eligible groups of departments that were evaluated, for report figures 3-4.

    With ``pairwise`` every pair of eligible groups within a department and attribute gives |p_a - p_b| (what
    the client's figures counted); otherwise one max gap per department and attribute.
    """
    gaps = []
    for entry in table:
        if entry["status"] == "not enough data" or (attributes and entry["attribute"] not in attributes):
            continue
        if not pairwise:
            gaps.append(entry["max_gap"])
            continue
        values = [g["precision"] for g in entry["groups"] if g["eligible"]]
        gaps.extend(round(abs(a - b), 12) for a, b in itertools.combinations(values, 2))
    return gaps


def gap_histogram(gaps, bin_width=0.05, upper=1.0) -> list[dict]:
    """Counts and shares of gaps in bins [0, w), [w, 2w), ... up to ``upper`` (the last bin is closed)."""
    edges = np.linspace(0.0, upper, int(round(upper / bin_width)) + 1).round(12)
    # rounding puts float noise such as 0.6 - 0.55 = 0.04999... in the bin a reader expects
    counts, _ = np.histogram(np.asarray(gaps, dtype=float).round(12), bins=edges)
    total = int(counts.sum())
    return [{"low": float(lo), "high": float(hi), "count": int(c),
             "share": (float(c) / total if total else None)}
            for lo, hi, c in zip(edges, edges[1:], counts)]


def fairness_summary(table: list[dict], min_department=None, min_group=None, max_gap=None,
                     confidence=None) -> dict:
    """Compact counts of statuses per attribute, for the model card and the report header."""
    summary = {"parameters": {"min_department": min_department, "min_group": min_group, "max_gap": max_gap,
                              "confidence": confidence}, "by_attribute": {}}
    for attribute in sorted({entry["attribute"] for entry in table}):
        entries = [e for e in table if e["attribute"] == attribute]
        evaluated = [e for e in entries if e["status"] != "not enough data"]
        breaking = [e for e in evaluated if e["status"] == "breaks rule"]
        summary["by_attribute"][attribute] = {
            "departments": len(entries), "evaluated": len(evaluated),
            "ok": len(evaluated) - len(breaking), "breaks_rule": len(breaking),
            "breaks_rule_clear": sum(bool(e["clear"]) for e in breaking),
            "not_enough_data": len(entries) - len(evaluated),
            "largest_gap": max((e["max_gap"] for e in evaluated), default=None),
            "breaking_departments": sorted(e["department"] for e in breaking)}
    return summary
