"""The report as one self-contained HTML page: the answers first, then tables 1, 4, 6 and figures 1, 3-4."""
from __future__ import annotations

from pipeline.report.htmlkit import Raw, definition_list, element, figure, interval, number, percent, points, table
from pipeline.report.render_shadow import alarm_item, shadow_html
from pipeline.report.render_tables import fairness_html, population_html
from pipeline.report.style import PAGE_STYLE

DEFAULT_CLASS = {"yes": "bad", "for some codes": "unknown", "no": "good"}


def _section(anchor: str, title: str, *children) -> Raw:
    return element("section", element("h2", title), *children, id=anchor)


def _verdict_class(verdict: str) -> str:
    return {"met": "good", "not met": "bad"}.get(verdict, "unknown")


def _answers(report: dict) -> Raw:
    perf, fair, pop, vol = report["performance"], report["fairness"], report["population"], report["volume"]
    verdict = perf["precision_requirement"]
    by_default = perf["search_by_default"]
    default = by_default["overall"]
    clear = [e for e in fair["breaking_rule"] if e["clear"]]
    evaluated = sum(s["evaluated"] for s in fair["model"]["summary"]["by_attribute"].values())
    worst = max(pop["psi"].items(), key=lambda kv: kv[1]["psi"] or 0, default=None)
    shift = (f"largest PSI {number(worst[1]['psi'])} on {worst[0]} ({worst[1]['band']}; noise floor "
             f"{number(worst[1].get('noise_floor'), 4)})" if worst
             else "training population unknown" if not pop["known"] else "no production data")
    items = [
        ("Is precision still at least 0.5?",
         element("span", verdict["verdict"], class_=_verdict_class(verdict["verdict"])),
         f" precision {interval(verdict['precision'])}; {verdict['reason']}"),
        ("Is the model answering \"search\" by default?",
         element("span", by_default["verdict"], class_=DEFAULT_CLASS.get(by_default["verdict"], "unknown")),
         f" it recommended a search for {interval(default)} of requests (per code in section 2 and table 4)"),
        ("Is it fair within each department?", "",
         f"{len(fair['breaking_rule'])} department/attribute pairs break the "
         f"{points(fair['parameters']['max_gap'], 0)} rule ({len(clear)} clearly) out of {evaluated} with enough data"),
        ("Has the population moved away from training?", "", shift),
        ("How much evidence is there?", "",
         f"{vol['requests']} requests, {vol['labelled']} with outcomes ({percent(vol['label_coverage']['value'])})"),
    ]
    rows = [element("li", element("strong", q), " ", badge, detail) for q, badge, detail in items]
    if "alarm" in report:
        rows.append(alarm_item(report["alarm"]))
    return element("ul", *rows, class_="answers")


def _volume_rows(entries: list[dict], key: str) -> list[list]:
    return [[e[key], e["requests"], e["labelled"], interval(e["label_coverage"]), e["recommended"]] for e in entries]


def _volume(volume: dict) -> Raw:
    headers = ["requests", "with outcome", "label coverage [95% CI]", "search recommended"]
    return _section("volume", "1. Volume and label coverage",
                    element("p", f"{volume['outcome_reports']} outcome reports received, "
                                 f"{volume['corrections']} of them corrections. Days are UTC days of receipt."),
                    table(["model version", *headers], _volume_rows(volume["by_model_version"], "model_version")),
                    table(["day", *headers], _volume_rows(volume["by_day"], "day")))


def _performance(perf: dict) -> Raw:
    metrics, verdict = perf["metrics"], perf["precision_requirement"]
    c = metrics["counts"]
    matrix = table(["", "outcome: no contraband", "outcome: contraband"],
                   [["model: do not search", f"TN {c['tn']}", f"FN {c['fn']}"],
                    ["model: search", f"FP {c['fp']}", f"TP {c['tp']}"]], caption="Confusion matrix")
    scores = table(["metric", "value", "95% interval", "n"],
                   [[name, number(metrics[key]["value"]),
                     f"{number(metrics[key]['low'])} - {number(metrics[key]['high'])}", metrics[key].get("n", "")]
                    for name, key in (("precision", "precision"), ("recall (among searched stops)", "recall"),
                                      ("F1", "f1"), ("accuracy", "accuracy"))],
                   caption="Table 1: performance on requests with outcomes (Wilson intervals; F1 by "
                           "Bonferroni-derived bounds)")
    by_sac = perf["search_by_default"]["by_sac"]
    default = table(["SearchAuthorizationCode", "search recommended [95% CI]"],
                    [["all", interval(perf["search_by_default"]["overall"])]] +
                    [[sac, interval(measured)] for sac, measured in by_sac.items()],
                    caption="Is the model answering \"search\" by default? (all requests)")
    return _section("performance", "2. Performance on requests with outcomes",
                    element("p", element("span", verdict["verdict"], class_=_verdict_class(verdict["verdict"])),
                            f" Precision requirement (>= {verdict['target']}): {verdict['reason']}.", class_="verdict"),
                    element("div", matrix, scores, class_="row"),
                    element("p", perf["recall_note"], class_="note"),
                    default, element("p", perf["search_by_default"]["note"], " Verdict: ",
                                     perf["search_by_default"]["verdict"], " (", perf["search_by_default"]["rule"],
                                     ").", class_="note"))


def _sac(rows: list[dict]) -> Raw:
    body = [[r["sac"], r["requests"], interval(r["recommended"]), r["predicted_true"], r["predicted_false"],
             r["outcome_true"], r["outcome_false"], interval(r["precision"]), interval(r["hit_rate"])]
            for r in rows]
    return _section("sac", "3. Predictions against outcomes per SearchAuthorizationCode",
                    table(["SAC", "requests", "recommended (all requests)", "predicted True", "predicted False",
                           "outcome True", "outcome False", "model precision", "officers' hit rate"], body,
                          caption="Table 4 (counts on requests with outcomes unless stated)"))


def _roc(roc: dict, png: bytes | None) -> Raw:
    auc = "not computable (needs outcomes of both kinds)" if roc["auc"] is None else number(roc["auc"])
    return _section("roc", "4. ROC curve on outcomes",
                    figure(png, "ROC curve", f"Figure 1: ROC curve; AUC {auc} from {roc['positives']} positive "
                                             f"and {roc['negatives']} negative outcomes."),
                    element("p", "Binning: ", roc["binning"], ".", class_="note"))


def render_html(report: dict, charts: dict, form: Raw | None = None) -> str:
    """The page for a report dict and its charts ({name: PNG bytes or None}); ``form`` adds the filter form."""
    filters = {k: v for k, v in report["filters"].items() if v is not None} or {"selection": "the whole log"}
    model = report["active_model"]
    header = element("header", element("h1", "Search recommendations: production monitoring"),
                     definition_list([("generated", report["generated_at"]),
                                      ("filters", ", ".join(f"{k} = {v}" for k, v in filters.items())),
                                      ("active model", f"{model['version']} (threshold {model['threshold']})"),
                                      ("computed in", f"{report['seconds']} s")]),
                     form or "")
    body = element("main", header, _answers(report), _volume(report["volume"]), _performance(report["performance"]),
                   _sac(report["sac_table"]), _roc(report["roc"], charts.get("roc")),
                   fairness_html(report["fairness"], charts.get("gaps")),
                   population_html(report["population"], charts.get("population")),
                   shadow_html(report["shadow"]) if "shadow" in report else "")
    head = element("head", Raw('<meta charset="utf-8">'), element("title", "CTRP3 search model monitoring"),
                   element("style", Raw(PAGE_STYLE)))
    return "<!DOCTYPE html>\n" + element("html", head, element("body", body), lang="en")
