"""The client's fairness idea as training weights: penalise the model more for the fruitless searches of groups
that a department searches with lower precision than its own average.

A model that does not see a protected attribute still learns from the stops that resemble a group's (same
department, places, hours, statutes). Where a department's searches of a group find contraband less often than
its searches overall, the officers' own "yes" was too easy for that group; weighting that group's fruitless
searches up teaches the model to demand more before it recommends a stop like theirs, which is the direction that
narrows the within-department precision gap of the client's 5-point rule. Protected attributes are used here, at
training time only; the fitted model never sees them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.evaluation.fairness import ATTRIBUTES, MISSING, _attribute_values, officer_counts


def group_shortfalls(frame: pd.DataFrame, y, min_department: int = 100, min_group: int = 20,
                     attributes=ATTRIBUTES, department_col: str = "Department Name") -> pd.DataFrame:
    """Per (department, attribute, group): searches, hits, the group's and the department's hit rate, and the
    shortfall max(0, department rate - group rate); zero where the department has fewer than ``min_department``
    searches, the group fewer than ``min_group`` or is missing (the fairness rule's minimum counts)."""
    counts = officer_counts(frame, y, department_col, attributes)
    counts["searches"] = counts["tp"] + counts["fp"]
    first = counts[counts["attribute"] == attributes[0]]  # every attribute's groups sum to the department's rows
    department = first.groupby("department")[["tp", "searches"]].sum()
    counts["department_searches"] = counts["department"].map(department["searches"])
    counts["department_rate"] = counts["department"].map(department["tp"] / department["searches"])
    counts["group_rate"] = counts["tp"] / counts["searches"]
    eligible = ((counts["department_searches"] >= min_department) & (counts["searches"] >= min_group)
                & (counts["group"] != MISSING))
    counts["shortfall"] = np.where(eligible, np.maximum(counts["department_rate"] - counts["group_rate"], 0.0), 0.0)
    return counts[["department", "attribute", "group", "searches", "tp", "group_rate", "department_searches",
                   "department_rate", "shortfall"]]


def fairness_penalty_weights(frame: pd.DataFrame, y, strength: float = 1.0, min_department: int = 100,
                             min_group: int = 20, attributes=ATTRIBUTES,
                             department_col: str = "Department Name") -> np.ndarray:
    """One training weight per row: 1 + strength x (sum over attributes of its group's shortfall) for a search
    that found nothing, 1 for one that found contraband; then scaled to mean 1 so regularisation is unchanged.

    Example: a department with 200 searches at 40%, its white drivers 50 of 100 and black drivers 30 of 100:
    black drivers' shortfall is 0.10, so with strength 2 their 70 fruitless searches weigh 1.2 before scaling.
    """
    if strength < 0:
        raise ValueError("strength must be >= 0")
    y = np.asarray(y, dtype=bool)
    if len(y) != len(frame):
        raise ValueError(f"y has {len(y)} rows but frame has {len(frame)}")
    table = group_shortfalls(frame, y, min_department, min_group, attributes, department_col)
    department = pd.Series(frame[department_col], dtype="object").fillna(MISSING).astype(str).to_numpy()
    total = np.zeros(len(frame))
    for attribute in attributes:
        rows = table[table["attribute"] == attribute]
        lookup = dict(zip(zip(rows["department"], rows["group"]), rows["shortfall"]))
        groups = _attribute_values(frame, attribute).to_numpy()
        total += np.array([lookup.get(key, 0.0) for key in zip(department, groups)])
    weights = np.where(y, 1.0, 1.0 + strength * total)
    return weights / weights.mean()
