"""What the report page shows, as plain data for ``templates/report.html``: the answers first, then tables 1, 4,
6 and figures 1, 3-4. No markup here: the template does that, with autoescaping, served or offline."""
from __future__ import annotations

from pipeline.report.filters import DEFAULT_MIN_DEPARTMENT, DEFAULT_MIN_GROUP
from pipeline.report.pages import interval, number, percent, points, render
from pipeline.report.tables import alarm_part, drivers_part, fairness_part, population_part, shadow_part, table

DEFAULT_CLASS = {"yes": "bad", "for some codes": "unknown", "no": "good"}


def verdict_class(verdict: str) -> str:
    """The badge colour of a precision verdict."""
    return {"met": "good", "not met": "bad"}.get(verdict, "unknown")


def _answers(report: dict) -> list[dict]:
    perf, fair, pop, vol = report["performance"], report["fairness"], report["population"], report["volume"]
    verdict = perf["precision_requirement"]
    by_default = perf["search_by_default"]
    clear = [e for e in fair["breaking_rule"] if e["clear"]]
    evaluated = sum(s["evaluated"] for s in fair["model"]["summary"]["by_attribute"].values())
    worst = max(pop["psi"].items(), key=lambda kv: kv[1]["psi"] or 0, default=None)
    shift = (f"largest PSI {number(worst[1]['psi'])} on {worst[0]} ({worst[1]['band']}; noise floor "
             f"{number(worst[1].get('noise_floor'), 4)})" if worst
             else "training population unknown" if not pop["known"] else "no production data")
    return [
        {"question": "Is precision still at least 0.5?", "badge": verdict["verdict"],
         "badge_class": verdict_class(verdict["verdict"]),
         "detail": f"precision {interval(verdict['precision'])}; {verdict['reason']}"},
        {"question": "Is the model answering \"search\" by default?", "badge": by_default["verdict"],
         "badge_class": DEFAULT_CLASS.get(by_default["verdict"], "unknown"),
         "detail": f"it recommended a search for {interval(by_default['overall'])} of requests (per code in "
                   "section 2 and table 4)"},
        {"question": "Is it fair within each department?", "badge": None, "badge_class": None,
         "detail": f"{len(fair['breaking_rule'])} department/attribute pairs break the "
                   f"{points(fair['parameters']['max_gap'], 0)} rule ({len(clear)} clearly) out of {evaluated} "
                   "with enough data"},
        {"question": "Has the population moved away from training?", "badge": None, "badge_class": None,
         "detail": shift},
        {"question": "How much evidence is there?", "badge": None, "badge_class": None,
         "detail": f"{vol['requests']:,} requests, {vol['labelled']:,} with outcomes "
                   f"({percent(vol['label_coverage']['value'])})"},
    ]


def _volume(volume: dict) -> dict:
    headers = ["requests", "with outcome", "label coverage [95% CI]", "search recommended"]

    def rows(entries, key):
        return [[e[key], e["requests"], e["labelled"], interval(e["label_coverage"]), e["recommended"]]
                for e in entries]
    return {"summary": f"{volume['outcome_reports']:,} outcome reports received, {volume['corrections']:,} of them "
                       "corrections. Days are UTC days of receipt.",
            "by_version": table(["model version", *headers], rows(volume["by_model_version"], "model_version")),
            "by_day": table(["day", *headers], rows(volume["by_day"], "day"))}


def _performance(perf: dict) -> dict:
    metrics, verdict = perf["metrics"], perf["precision_requirement"]
    c = metrics["counts"]
    by_default = perf["search_by_default"]
    return {
        "verdict": verdict["verdict"], "verdict_class": verdict_class(verdict["verdict"]),
        "verdict_text": f"Precision requirement (>= {verdict['target']}): {verdict['reason']}.",
        "matrix": table(["", "outcome: no contraband", "outcome: contraband"],
                        [["model: do not search", f"TN {c['tn']:,}", f"FN {c['fn']:,}"],
                         ["model: search", f"FP {c['fp']:,}", f"TP {c['tp']:,}"]], caption="Confusion matrix"),
        "scores": table(["metric", "value", "95% interval", "n"],
                        [[name, number(metrics[key]["value"]),
                          f"{number(metrics[key]['low'])} - {number(metrics[key]['high'])}",
                          metrics[key].get("n", "")]
                         for name, key in (("precision", "precision"), ("recall (among searched stops)", "recall"),
                                           ("F1", "f1"), ("accuracy", "accuracy"))],
                        caption="Table 1: performance on requests with outcomes (Wilson intervals; F1 by "
                                "Bonferroni-derived bounds)"),
        "recall_note": perf["recall_note"],
        "by_default": table(["SearchAuthorizationCode", "search recommended [95% CI]"],
                            [["all", interval(by_default["overall"])]]
                            + [[sac, interval(measured)] for sac, measured in by_default["by_sac"].items()],
                            caption="Is the model answering \"search\" by default? (all requests)"),
        "by_default_note": f"{by_default['note']} Verdict: {by_default['verdict']} ({by_default['rule']}).",
    }


def _sac(rows: list[dict]) -> dict:
    return table(["SAC", "requests", "recommended (all requests)", "predicted True", "predicted False",
                  "outcome True", "outcome False", "model precision", "officers' hit rate"],
                 [[r["sac"], r["requests"], interval(r["recommended"]), r["predicted_true"], r["predicted_false"],
                   r["outcome_true"], r["outcome_false"], interval(r["precision"]), interval(r["hit_rate"])]
                  for r in rows],
                 caption="Table 4 (counts on requests with outcomes unless stated)")


def _roc(roc: dict) -> dict:
    auc = "not computable (needs outcomes of both kinds)" if roc["auc"] is None else number(roc["auc"])
    return {"caption": f"Figure 1: ROC curve; AUC {auc} from {roc['positives']:,} positive and "
                       f"{roc['negatives']:,} negative outcomes.", "binning": roc["binning"]}


def filter_form(action: str, choices: dict, params, json_href: str | None = None) -> dict:
    """The GET filter form's data: where it submits, the choices offered, the values filled in, the JSON link."""
    return {"action": action, "departments": choices["departments"], "model_versions": choices["model_versions"],
            "filled": {name: params.get(name) or "" for name in
                       ("since", "until", "department", "model_version", "min_department", "min_group")},
            "defaults": {"min_department": DEFAULT_MIN_DEPARTMENT, "min_group": DEFAULT_MIN_GROUP},
            "json_href": json_href}


def report_context(report: dict, charts: dict, form: dict | None = None) -> dict:
    """Everything ``templates/report.html`` shows for a report dict and its charts ({name: PNG bytes or None})."""
    filters = {k: v for k, v in report["filters"].items() if v is not None} or {"selection": "the whole log"}
    model = report["active_model"]
    return {"header": [("generated", report["generated_at"]),
                       ("filters", ", ".join(f"{k} = {v}" for k, v in filters.items())),
                       ("active model", f"{model['version']} (threshold {model['threshold']})"),
                       ("computed in", f"{report['seconds']} s")],
            "form": form, "answers": _answers(report), "volume": _volume(report["volume"]),
            "performance": _performance(report["performance"]), "sac": _sac(report["sac_table"]),
            "roc": _roc(report["roc"]), "fairness": fairness_part(report["fairness"]),
            "population": population_part(report["population"]), "shadow": shadow_part(report["shadow"]),
            "drivers": drivers_part(report["drivers"]),
            "alarm": alarm_part(report["alarm"]) if "alarm" in report else None, "charts": charts}


def render_html(report: dict, charts: dict, form: dict | None = None) -> str:
    """The self-contained page of a report, rendered offline (no links to a service)."""
    return render("report.html", **report_context(report, charts, form))
