"""HTML for the fairness (section 5) and population (section 6) parts of the report page."""
from __future__ import annotations

from pipeline.report.htmlkit import Raw, element, figure, number, percent, points, table

ATTRIBUTE_LABELS = {"SubjectRaceCode": "race", "SubjectEthnicityCode": "ethnicity", "SubjectSexCode": "sex",
                    "SubjectAgeGroup": "age group"}


def _groups(entry: dict) -> str:
    return "; ".join(f"{g['group']} {percent(g['precision'])} [{percent(g['low'])}, {percent(g['high'])}] "
                     f"n={g['n']:,}{'' if g['eligible'] else ' (too few)'}" for g in entry["groups"])


def _gap_interval(entry: dict) -> str:
    if entry["gap_low"] is None:
        return "\u2014"
    return f"{100 * entry['gap_low']:.1f} to {100 * entry['gap_high']:.1f} pts"


def _entries(entries: list[dict], caption: str) -> Raw:
    rows = [[e["department"], ATTRIBUTE_LABELS.get(e["attribute"], e["attribute"]), e["status"], e["n"],
             points(e["max_gap"]), _gap_interval(e), _groups(e)]
            for e in entries]
    return table(["department", "attribute", "status", "n", "largest gap", "gap 95% interval",
                  "precision per group [95% CI] n"], rows, caption=caption, numeric_from=3, numeric_to=6)


def _summary(fairness: dict) -> Raw:
    rows = []
    for side in ("model", "officers"):
        for attribute, s in fairness[side]["summary"]["by_attribute"].items():
            rows.append([side, ATTRIBUTE_LABELS.get(attribute, attribute), s["departments"], s["evaluated"],
                         s["ok"], s["breaks_rule"], s["breaks_rule_clear"], s["not_enough_data"],
                         points(s["largest_gap"])])
    return table(["decisions of", "attribute", "departments", "with enough data", "ok", "break rule",
                  "break rule clearly", "not enough data", "largest gap"], rows, numeric_from=2,
                 caption="Departments per attribute and status")


def _breaking_rows(entries: list[dict]) -> list[list]:
    return [[b["department"], ATTRIBUTE_LABELS.get(b["attribute"], b["attribute"]), b["n"], points(b["max_gap"]),
             _gap_interval(b), f"{b['highest_group']} vs {b['lowest_group']}"] for b in entries]


def _breaking_tables(breaking: list[dict]) -> Raw:
    """Clear breaches in a table; breaches whose interval still reaches the allowed gap folded below it."""
    headers = ["department", "attribute", "n", "largest gap", "gap 95% interval", "groups"]
    clear = [b for b in breaking if b["clear"]]
    unclear = [b for b in breaking if not b["clear"]]
    return Raw(table(headers, _breaking_rows(clear), numeric_from=2, numeric_to=5,
                     caption="Departments breaking the rule, with enough data to say so (the gap's interval lies "
                             "above the allowed gap)")
               + element("details", element("summary", f"{len(unclear)} more department/attribute pairs whose gap "
                                                       "exceeds the allowed gap, but whose interval still reaches "
                                                       "below it"),
                         table(headers, _breaking_rows(unclear), numeric_from=2, numeric_to=5)))


def fairness_html(fairness: dict, png: bytes | None) -> Raw:
    """Section 5: departments breaking the rule, the status summary, figure 3-4 and the detailed tables."""
    params = fairness["parameters"]
    evaluated = [e for e in fairness["model"]["table"] if e["status"] != "not enough data"]
    lacking = len(fairness["model"]["table"]) - len(evaluated)
    return element(
        "section", element("h2", "5. Fairness within each department"),
        element("p", f"Rule: within a department, precision of the groups of each protected attribute differs by at "
                     f"most {points(params['max_gap'], 0)}. Counted: {params['counted']}; a department needs "
                     f"{params['min_department']} and a group {params['min_group']} (query parameters "
                     "min_department and min_group). ", fairness["baseline_note"], class_="note"),
        _breaking_tables(fairness["breaking_rule"]),
        element("p", fairness["breaking_note"], class_="note"),
        _summary(fairness),
        figure(png, "gap distributions", "Figures 3-4: distribution of precision gaps between groups of the same "
                                         "department (every pair of groups with enough data), the model's "
                                         "recommendations against the officers' own searches."),
        element("details", element("summary", f"Model: the {len(evaluated)} department/attribute pairs with enough "
                                              "data, with every group's precision"),
                _entries(evaluated, "Model: departments and attributes with enough data")),
        element("details", element("summary", f"{lacking} department/attribute pairs with not enough data"),
                _entries([e for e in fairness["model"]["table"] if e["status"] == "not enough data"],
                         "Model: not enough data")),
        element("details", element("summary", "Officers' baseline, per department and attribute"),
                _entries([e for e in fairness["officers"]["table"] if e["status"] != "not enough data"],
                         "Officers: departments and attributes with enough data")),
        id="fairness")


def population_html(population: dict, png: bytes | None) -> Raw:
    """Section 6: PSI and unseen rate per field, table 6 and the population chart."""
    fields = [[field, number(population["psi"].get(field, {}).get("psi")),
               number(population["psi"].get(field, {}).get("noise_floor"), 4),
               population["psi"].get(field, {}).get("band") or "\u2014",
               percent(population["unseen_rate"].get(field), 2)]
              for field in population["fields"]]
    rows = [[r["field"], r["value"], number(r["training_pct"], 1), number(r["production_pct"], 1)]
            for r in population["rows"]]
    return element(
        "section", element("h2", "6. Population shift against the training population"),
        element("p", population["note"], class_="note" if population["known"] else "note warn"),
        table(["field", "PSI", "noise floor", "reading", "unseen categories"], fields, caption="Shift per field",
              numeric_to=3)
        if population["known"] else "",
        figure(png, "population shares", "Shares of each value, training against production."),
        table(["field", "value", "training %", "production %"], rows, numeric_from=2,
              caption=f"Table 6: value shares ({population['requests']} production requests)"),
        id="population")
