"""Production monitoring: the client's report (tables 1, 4, 6 and figures 1, 3-4) computed from the request log.

``build_report`` aggregates the log in SQL (``queries``) and evaluates the aggregates with the shared library
(``pipeline.evaluation``: metrics, fairness, population); ``render_page`` renders the result with
``templates/report.html`` (Jinja2, autoescaped) into a self-contained page with PNG charts. Never imports Flask;
``service.report_views`` serves the same template.
"""
from models.database import report_deadline
from pipeline.report.build import build_report, filter_choices
from pipeline.report.charts import report_charts
from pipeline.report.filters import FairnessParameters, FilterError, ReportFilters, parse_parameters
from pipeline.report.render import filter_form, render_html, report_context


def render_page(report: dict, form: dict | None = None) -> str:
    """The offline HTML page of a report dict, with its charts drawn."""
    return render_html(report, report_charts(report), form)


__all__ = ["build_report", "filter_choices", "report_deadline", "report_charts", "FairnessParameters", "FilterError",
           "ReportFilters", "parse_parameters", "filter_form", "render_html", "render_page", "report_context"]
