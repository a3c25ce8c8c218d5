"""What drives recommendations: the most frequent leading reasons of recommended searches, with their precision.

A recommended search's leading reason is the largest factor that raised its probability (pipeline.scoring.reasons).
Counting them shows what the model leans on, overall and per department; each reason's precision on the stops with
an outcome (Wilson interval) shows whether searches it leads to find contraband. A reason that leads most of a
department's recommendations at low precision is where an analyst should look first.
"""
from __future__ import annotations

import pandas as pd

from pipeline.evaluation.metrics import rate

TOP_OVERALL, TOP_PER_DEPARTMENT = 10, 3
NOTE = ("Leading reason: the largest factor that raised the probability of a recommended search, against the "
        "average training record. Precision is measured on the recommended searches that have an outcome; a "
        "recommendation logged before reasons were kept (or that nothing raised above the reference) has none and "
        "is counted apart.")
RAISES = " raises the probability."


def _entries(frame: pd.DataFrame, top: int) -> list[dict]:
    """The ``top`` reasons by recommended searches (ties by name), each with its precision on labelled stops."""
    summed = frame.groupby("leading_reason", sort=True)[["recommended", "labelled", "hits"]].sum().reset_index()
    summed = summed.sort_values(["recommended", "leading_reason"], ascending=[False, True], kind="stable").head(top)
    return [{"reason": row.leading_reason, "recommended": int(row.recommended), "labelled": int(row.labelled),
             "contraband_found": int(row.hits), "precision": rate(int(row.hits), int(row.labelled))}
            for row in summed.itertuples()]


def drivers_section(counts: pd.DataFrame, top: int = TOP_OVERALL, per_department: int = TOP_PER_DEPARTMENT) -> dict:
    """The section from ``queries.leading_reason_counts``: top reasons overall and per department."""
    counts = counts.astype({"recommended": int, "labelled": int, "hits": int})
    # the stored sentence without its verb: "Inventory search (I) raises the probability." -> "Inventory search (I)"
    counts["leading_reason"] = counts["leading_reason"].map(lambda text: text.replace(RAISES, "", 1)
                                                            if isinstance(text, str) else None)
    with_reason = counts[counts["leading_reason"].notna()]
    departments = (with_reason.groupby("department", sort=True)["recommended"].sum()
                   .sort_values(ascending=False, kind="stable"))
    return {"recommended": int(counts["recommended"].sum()),
            "without_reasons": int(counts.loc[counts["leading_reason"].isna(), "recommended"].sum()),
            "overall": _entries(with_reason, top),
            "by_department": [{"department": department, "recommended": int(total),
                               "reasons": _entries(with_reason[with_reason["department"] == department],
                                                   per_department)}
                              for department, total in departments.items()],
            "note": NOTE}
