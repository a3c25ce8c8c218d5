"""Assemble the monitoring report (a JSON-ready dict) from the SQL aggregates and the evaluation library."""
from __future__ import annotations

import time
from datetime import datetime, timezone

from models import Prediction
from models.database import long_statements, report_deadline
from pipeline.report import alarm, queries
from pipeline.report.drivers_section import drivers_section
from pipeline.report.fairness_section import fairness_section
from pipeline.report.filters import FairnessParameters, ReportFilters
from pipeline.report.gather import running_queries
from pipeline.report.performance import decision_counts, performance_section, roc_section, sac_section, volume_section
from pipeline.report.population_section import population_fields, population_section
from pipeline.report.shadow_section import shadow_section

REPORT_FORMAT = 2  # 2: the shadow section and the alarm's verdicts


def _model(card: dict | None) -> dict:
    if not card:
        return {"version": None, "threshold": None, "note": "no active model card was given"}
    return {"version": card.get("version"), "threshold": card.get("threshold"),
            "synthetic": card.get("synthetic"), "created_at": card.get("created_at"),
            "population_known": bool(card.get("population"))}


def filter_choices(deadline: float | None = None) -> dict:
    """Departments and model versions present in the log, for the page's filter form; done by ``deadline``."""
    deadline = report_deadline() if deadline is None else deadline
    choices = {}
    for name, column in (("departments", Prediction.department), ("model_versions", Prediction.model_version)):
        with long_statements(deadline=deadline):  # a DISTINCT over the whole log: the report's limit
            choices[name] = queries.distinct_values(column)
    return choices


def build_report(filters: ReportFilters | None = None, fairness: FairnessParameters | None = None,
                 card: dict | None = None, *, minimum_outcomes: int = 30, roc_bins: int = queries.ROC_BINS,
                 deadline: float | None = None) -> dict:
    """The whole report for one slice of the log; ``card`` is the active model's card (may lack "population").

    Every query ends by ``deadline`` (a time.monotonic(); default: the report's limit from now) or fails with the
    database's statement timeout, which the service answers 503 before gunicorn would kill the worker.
    """
    filters, fairness = filters or ReportFilters(), fairness or FairnessParameters()
    started = time.perf_counter()
    deadline = report_deadline() if deadline is None else deadline
    with running_queries(filters, roc_bins, population_fields(card), deadline) as results:
        fairness_part = fairness_section(results["groups"], fairness)
        decisions = decision_counts(results["profile"])
        report = {
            "format": REPORT_FORMAT,
            "generated_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
            "filters": filters.describe(),
            "active_model": _model(card),
            "volume": volume_section(results["volume"], results["history"]),
            "performance": performance_section(decisions, minimum_outcomes=minimum_outcomes),
            "sac_table": sac_section(decisions),
            "roc": roc_section(results["bins"], roc_bins),
            "fairness": fairness_part,
            "population": population_section(card, results),
            "shadow": shadow_section(results["shadow_groups"], results["shadow_bins_live"],
                                     results["shadow_bins_shadow"], fairness, roc_bins),
            "drivers": drivers_section(results["drivers"]),
        }
        report["alarm"] = alarm.checks(report, results["sac_by_day"])
    report["seconds"] = round(time.perf_counter() - started, 3)
    return report
