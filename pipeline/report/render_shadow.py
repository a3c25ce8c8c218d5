"""HTML for the alarm's verdicts (in the summary box) and section 7, the live model against its shadow."""
from __future__ import annotations

from pipeline.report.htmlkit import Raw, element, interval, number, table

ALARM_CLASS = {"breach": "bad", "ok": "good", "unknown": "unknown"}
CHECK_LABELS = {"precision": "precision >= 0.5", "fairness": "5-point rule", "sac_none": "SAC=N share",
                "population": "population drift"}


def alarm_item(alarm: dict) -> Raw:
    """One summary-box line per verdict, as `python -m pipeline.report --check` decides them."""
    badges = [element("li", element("span", verdict["status"], class_=ALARM_CLASS[verdict["status"]]), " ",
                      CHECK_LABELS.get(name, name), ": ", verdict["message"])
              for name, verdict in alarm["checks"].items()]
    return element("li", element("strong", "Alarm (the same verdicts as `python -m pipeline.report --check`): "),
                   element("span", alarm["status"], class_=ALARM_CLASS.get(alarm["status"], "unknown")),
                   element("ul", *badges))


def _auc(side: dict) -> str:
    auc = side["auc"]
    if auc["value"] is None:
        return "\u2014"
    bounds = auc["interval"]
    return f"{number(auc['value'])} [{number(bounds['low'])}, {number(bounds['high'])}]" if bounds else \
        number(auc["value"])


def _fairness(side: dict) -> str:
    fair = side["fairness"]
    largest = "\u2014" if fair["largest_gap"] is None else f"{100 * fair['largest_gap']:.1f} pts"
    return (f"{fair['breaks_rule']} of {fair['evaluated']} break ({fair['breaks_rule_clear']} clearly); "
            f"largest {largest}")


def _version(entry: dict) -> Raw:
    rows = [[name, interval(side["precision"]), interval(side["recall"]), _auc(side), interval(side["recommended"]),
             _fairness(side)] for name, side in (("live (decided)", entry["live"]),
                                                 (f"shadow {entry['shadow_version']}", entry["shadow"]))]
    return element("div",
                   table(["model", "precision [95% CI]", "recall [95% CI]", "AUC [95% CI]", "recommended",
                          "fairness: pairs breaking the rule"], rows, numeric_from=1, numeric_to=4,
                         caption=f"Shadow {entry['shadow_version']}: {entry['requests']} requests scored by both, "
                                 f"{entry['labelled']} with outcomes"),
                   element("p", f"The two decisions agree on {interval(entry['agreement'])} of all these requests "
                                f"and on {interval(entry['agreement_labelled'])} of those with outcomes."))


def shadow_html(shadow: dict) -> Raw:
    """Section 7: each shadow version against the live decisions on the same requests."""
    body = [_version(entry) for entry in shadow["versions"]] or [
        element("p", "No request in this slice was scored by a shadow version; start one with "
                     "`python -m pipeline.registry shadow VERSION`.", class_="empty")]
    return element("section", element("h2", "7. Live model against the shadow model"), *body,
                   element("p", shadow["note"], class_="note"), id="shadow")
