"""The report's figures as PNG bytes, drawn by ``pipeline.evaluation.plots`` from a built report dict."""
from __future__ import annotations

from pipeline.evaluation import plots

# Department and statute names have too many values to read as bars; their shift is in the PSI table.
CHART_FIELDS_EXCLUDED = ("Department Name", "InterventionLocationName", "StatuteReason",
                         "ReportingOfficerIdentificationID")


def report_charts(report: dict) -> dict[str, bytes | None]:
    """{"roc", "gaps", "population"}: figure 1, figures 3-4 (model vs officers) and the table 6 bars."""
    roc = report["roc"]
    fairness = report["fairness"]
    gaps = {"model, production": fairness["model"]["gaps"], "officers, production": fairness["officers"]["gaps"]}
    rows = [row for row in report["population"]["rows"] if row["field"] not in CHART_FIELDS_EXCLUDED]
    title = ("Population: training vs production" if report["population"]["known"]
             else "Population in production (training population unknown)")
    return {"roc": plots.roc_png({"label": "model on outcomes", "fpr": roc["fpr"], "tpr": roc["tpr"],
                                  "auc": roc["auc"]}, title="Figure 1: ROC curve on production outcomes"),
            "gaps": plots.gap_histogram_png(gaps, title="Figures 3-4: precision gaps within departments"),
            "population": plots.population_png(rows, title=title)}
