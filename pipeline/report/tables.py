"""The fairness (5), population (6), shadow (7) and drivers (8) parts of the report page and the alarm's verdicts
as plain data, and the table shape ``templates/_macros.html`` draws."""
from __future__ import annotations

from pipeline.report.pages import EM_DASH, interval, number, percent, points

ATTRIBUTE_LABELS = {"SubjectRaceCode": "race", "SubjectEthnicityCode": "ethnicity", "SubjectSexCode": "sex",
                    "SubjectAgeGroup": "age group"}
# Fewer gaps than this per series make a histogram of shares misleading (4 gaps drawn as 75% / 25% bars).
MIN_GAPS_FOR_SHARES = 20
ALARM_CLASS = {"breach": "bad", "ok": "good", "unknown": "unknown"}
CHECK_LABELS = {"precision": "precision >= 0.5", "fairness": "5-point rule", "sac_none": "SAC=N share",
                "population": "population drift"}
# Table 6: a field with more values than this (departments, statutes) starts folded, showing its largest values.
FOLD_VALUES_OVER = 12


def table(headers: list, rows: list[list], caption: str | None = None, numeric_from: int = 1,
          numeric_to: int | None = None) -> dict:
    """A table for the template: columns ``numeric_from`` to ``numeric_to`` (exclusive) are right-aligned."""
    return {"headers": headers, "rows": rows, "caption": caption, "numeric_from": numeric_from,
            "numeric_to": len(headers) if numeric_to is None else numeric_to}


def _label(attribute: str) -> str:
    return ATTRIBUTE_LABELS.get(attribute, attribute)


def _groups(entry: dict) -> str:
    return "; ".join(f"{g['group']} {percent(g['precision'])} [{percent(g['low'])}, {percent(g['high'])}] "
                     f"n={g['n']:,}{'' if g['eligible'] else ' (too few)'}" for g in entry["groups"])


def _gap_interval(entry: dict) -> str:
    if entry["gap_low"] is None:
        return EM_DASH
    return f"{100 * entry['gap_low']:.1f} to {100 * entry['gap_high']:.1f} pts"


def _entries(entries: list[dict], caption: str) -> dict:
    rows = [[e["department"], _label(e["attribute"]), e["status"], e["n"], points(e["max_gap"]), _gap_interval(e),
             _groups(e)] for e in entries]
    return table(["department", "attribute", "status", "n", "largest gap", "gap 95% interval",
                  "precision per group [95% CI] n"], rows, caption=caption, numeric_from=3, numeric_to=6)


def _summary(fairness: dict) -> dict:
    rows = [[side, _label(attribute), s["departments"], s["evaluated"], s["ok"], s["breaks_rule"],
             s["breaks_rule_clear"], s["not_enough_data"], points(s["largest_gap"])]
            for side in ("model", "officers") for attribute, s in fairness[side]["summary"]["by_attribute"].items()]
    return table(["decisions of", "attribute", "departments", "with enough data", "ok", "break rule",
                  "break rule clearly", "not enough data", "largest gap"], rows, numeric_from=2,
                 caption="Departments per attribute and status")


def _breaking(entries: list[dict], caption: str | None = None) -> dict:
    rows = [[b["department"], _label(b["attribute"]), b["n"], points(b["max_gap"]), _gap_interval(b),
             f"{b['highest_group']} vs {b['lowest_group']}"] for b in entries]
    return table(["department", "attribute", "n", "largest gap", "gap 95% interval", "groups"], rows,
                 caption=caption, numeric_from=2, numeric_to=5)


def gap_warning(fairness: dict) -> str | None:
    """A sentence when a gap histogram rests on too few gaps to read its bars as a distribution."""
    few = {side: len(fairness[side]["gaps"]) for side in ("model", "officers")
           if 0 < len(fairness[side]["gaps"]) < MIN_GAPS_FOR_SHARES}
    if not few:
        return None
    counts = " and ".join(f"{n} gaps for the {side}" for side, n in few.items())
    return (f"Only {counts}: each bar is a share of so few gaps that one gap moves it by "
            f"{100 // min(few.values())} points or more. Read the gaps in the tables below, not the bars.")


def fairness_part(fairness: dict) -> dict:
    """Section 5: departments breaking the rule, the status summary, figures 3-4 and the detailed tables."""
    params = fairness["parameters"]
    table_ = fairness["model"]["table"]
    evaluated = [e for e in table_ if e["status"] != "not enough data"]
    lacking = [e for e in table_ if e["status"] == "not enough data"]
    clear = [b for b in fairness["breaking_rule"] if b["clear"]]
    unclear = [b for b in fairness["breaking_rule"] if not b["clear"]]
    return {
        "rule": f"Rule: within a department, precision of the groups of each protected attribute differs by at most "
                f"{points(params['max_gap'], 0)}. Counted: {params['counted']}; a department needs "
                f"{params['min_department']:,} and a group {params['min_group']:,} (query parameters min_department "
                f"and min_group). {fairness['baseline_note']}",
        "clear_table": _breaking(clear, "Departments breaking the rule, with enough data to say so (the gap's interval "
                                  "lies above the allowed gap)"),
        "unclear_table": _breaking(unclear), "unclear_count": len(unclear),
        "breaking_note": fairness["breaking_note"], "summary": _summary(fairness),
        "gap_warning": gap_warning(fairness),
        "evaluated": _entries(evaluated, "Model: departments and attributes with enough data"),
        "evaluated_count": len(evaluated),
        "lacking": _entries(lacking, "Model: not enough data"), "lacking_count": len(lacking),
        "officers": _entries([e for e in fairness["officers"]["table"] if e["status"] != "not enough data"],
                             "Officers: departments and attributes with enough data"),
    }


def _shares_by_field(rows: list[dict]) -> list[dict]:
    fields: dict[str, list] = {}
    for r in rows:
        fields.setdefault(r["field"], []).append([r["value"], number(r["training_pct"], 1),
                                                  number(r["production_pct"], 1)])
    return [{"field": field, "count": len(values), "open": len(values) <= FOLD_VALUES_OVER,
             "table": table(["value", "training %", "production %"], values)}
            for field, values in fields.items()]


def population_part(population: dict) -> dict:
    """Section 6: PSI and unseen rate per field, and table 6 folded per field (long fields start closed)."""
    psi = population["psi"]
    shift = [[field, number(psi.get(field, {}).get("psi")), number(psi.get(field, {}).get("noise_floor"), 4),
              psi.get(field, {}).get("band") or EM_DASH, percent(population["unseen_rate"].get(field), 2)]
             for field in population["fields"]]
    return {"known": population["known"], "note": population["note"], "requests": population["requests"],
            "shift": table(["field", "PSI", "noise floor", "reading", "unseen categories"], shift,
                           caption="Shift per field", numeric_to=3),
            "fields": _shares_by_field(population["rows"]), "fold_over": FOLD_VALUES_OVER}


def alarm_part(alarm: dict) -> dict:
    """The summary box's alarm line: one verdict per check, as `python -m pipeline.report --check` decides them."""
    return {"status": alarm["status"], "status_class": ALARM_CLASS.get(alarm["status"], "unknown"),
            "checks": [{"label": CHECK_LABELS.get(name, name), "status": verdict["status"],
                        "status_class": ALARM_CLASS.get(verdict["status"], "unknown"), "message": verdict["message"]}
                       for name, verdict in alarm["checks"].items()]}


def _auc(side: dict) -> str:
    auc = side["auc"]
    if auc["value"] is None:
        return EM_DASH
    bounds = auc["interval"]
    return f"{number(auc['value'])} [{number(bounds['low'])}, {number(bounds['high'])}]" if bounds else \
        number(auc["value"])


def _shadow_fairness(side: dict) -> str:
    fair = side["fairness"]
    largest = EM_DASH if fair["largest_gap"] is None else f"{100 * fair['largest_gap']:.1f} pts"
    return (f"{fair['breaks_rule']} of {fair['evaluated']} break ({fair['breaks_rule_clear']} clearly); "
            f"largest {largest}")


def _shadow_version(entry: dict) -> dict:
    rows = [[name, interval(side["precision"]), interval(side["recall"]), _auc(side), interval(side["recommended"]),
             _shadow_fairness(side)] for name, side in (("live (decided)", entry["live"]),
                                                        (f"shadow {entry['shadow_version']}", entry["shadow"]))]
    return {"table": table(["model", "precision [95% CI]", "recall [95% CI]", "AUC [95% CI]", "recommended",
                            "fairness: pairs breaking the rule"], rows, numeric_from=1, numeric_to=4,
                           caption=f"Shadow {entry['shadow_version']}: {entry['requests']:,} requests scored by "
                                   f"both, {entry['labelled']:,} with outcomes"),
            "agreement": f"The two decisions agree on {interval(entry['agreement'])} of all these requests and on "
                         f"{interval(entry['agreement_labelled'])} of those with outcomes."}


def shadow_part(shadow: dict) -> dict:
    """Section 7: each shadow version against the live decisions on the same requests."""
    return {"versions": [_shadow_version(entry) for entry in shadow["versions"]], "note": shadow["note"]}


def _driver_rows(entries: list[dict]) -> list[list]:
    return [[e["reason"], e["recommended"], e["labelled"], e["contraband_found"], interval(e["precision"])]
            for e in entries]


def drivers_part(drivers: dict) -> dict:
    """Section 8: the most frequent leading reasons of recommended searches, overall and per department."""
    headers = ["leading reason", "searches recommended", "with outcome", "contraband found", "precision [95% CI]"]
    per_department = [[d["department"], *row] for d in drivers["by_department"] for row in _driver_rows(d["reasons"])]
    return {"summary": f"{drivers['recommended']:,} searches recommended; {drivers['without_reasons']:,} of them "
                       "without a leading reason (see the note).",
            "overall": table(headers, _driver_rows(drivers["overall"]), caption="Most frequent leading reasons"),
            "by_department": table(["department", *headers], per_department, numeric_from=2,
                                   caption="Leading reasons per department (its three most frequent)"),
            "note": drivers["note"]}
