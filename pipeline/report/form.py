"""The filter form at the top of the served page (GET, so every filtered view has a shareable URL)."""
from __future__ import annotations

from pipeline.report.filters import DEFAULT_MIN_DEPARTMENT, DEFAULT_MIN_GROUP
from pipeline.report.htmlkit import Raw, element

DATE_HELP = "YYYY-MM-DD or ISO 8601, UTC"


def _select(name: str, label: str, options: list[str], current: str | None) -> Raw:
    choices = [element("option", "all", value="")]
    choices += [element("option", option, value=option, selected=option == current) for option in options]
    return element("label", label, element("select", *choices, name=name))


def _input(name: str, label: str, value, placeholder: str, kind: str = "text") -> Raw:
    return element("label", label, Raw(element("input", name=name, type=kind, value=value, placeholder=placeholder)
                                       .replace("></input>", ">")))


def filter_form(action: str, choices: dict, params, json_href: str | None = None) -> Raw:
    """A GET form for since/until/department/model version/minimum counts, pre-filled with ``params``."""
    return element(
        "form",
        _input("since", "received since", params.get("since"), DATE_HELP),
        _input("until", "received until (inclusive day)", params.get("until"), DATE_HELP),
        _select("department", "department", choices["departments"], params.get("department")),
        _select("model_version", "model version", choices["model_versions"], params.get("model_version")),
        _input("min_department", "min. outcomes per department", params.get("min_department"),
               str(DEFAULT_MIN_DEPARTMENT), "number"),
        _input("min_group", "min. outcomes per group", params.get("min_group"), str(DEFAULT_MIN_GROUP),
               "number"),
        element("button", "Show", type="submit"),
        element("a", "this report as JSON", href=json_href) if json_href else "",
        action=action, method="get")
