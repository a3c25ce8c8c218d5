"""GET /report (JSON) and GET /report.html: the monitoring report computed from the service's own log."""
from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, jsonify, render_template, request, url_for

from pipeline.report import (
    FilterError,
    build_report,
    filter_choices,
    filter_form,
    parse_parameters,
    report_charts,
    report_context,
    report_deadline,
)
from service.errors import ApiError
from service.report_guard import one_at_a_time
from service.state import current_state

report_blueprint = Blueprint("report", __name__)
PARAMETERS = ("since", "until", "department", "model_version", "min_department", "min_group")


def _active_card() -> dict:
    return current_app.extensions["ctrp3"].model.card


def _parameters():
    unknown = sorted(set(request.args) - set(PARAMETERS))
    if unknown:
        raise ApiError(400, "invalid_parameter", f"unknown report parameter(s); use {', '.join(PARAMETERS)}",
                       {name: "is not a report parameter" for name in unknown})
    # Otherwise the first value would win silently (department=A&department=B filtering on A alone).
    repeated = sorted(name for name in request.args if len(request.args.getlist(name)) > 1)
    if repeated:
        raise ApiError(400, "invalid_parameter", "a report parameter is given more than once; give each at most once",
                       {name: "is given more than once" for name in repeated})
    try:
        return parse_parameters(request.args)
    except FilterError as error:
        raise ApiError(400, "invalid_parameter", str(error), {error.field: error.problem}) from None


def _guarded(compute, cacheable: bool = True) -> Response:
    # Parameters are checked first, so a bad request never waits for, nor takes, the report lock.
    filters, fairness = _parameters()
    card = _active_card()
    # A cached report answers only while the same live and shadow models serve.
    versions = "/".join(model.version if model else "-" for model in current_state().models.current)
    return one_at_a_time(lambda: compute(filters, fairness, card), versions, cacheable)


@report_blueprint.get("/report")
def report_json():
    """The monitoring report as JSON; filters since, until, department, model_version, min_department, min_group."""
    return _guarded(lambda filters, fairness, card: jsonify(
        build_report(filters, fairness, card, deadline=report_deadline())))


@report_blueprint.get("/report.html")
def report_html():
    """The monitoring report as a page with tables and charts; same filters as /report."""
    def page(filters, fairness, card):
        deadline = report_deadline()  # one for the page: the report's queries and the form's choices together
        report = build_report(filters, fairness, card, deadline=deadline)
        params = {k: v for k, v in request.args.items() if k in PARAMETERS and v}
        json_href = url_for("report.report_json") + ("?" + urlencode(params) if params else "")
        form = filter_form(url_for("report.report_html"), filter_choices(deadline), request.args, json_href)
        return Response(render_template("report.html", **report_context(report, report_charts(report), form)),
                        mimetype="text/html")
    return _guarded(page, cacheable=False)  # the page names the signed-in user and carries their CSRF token
