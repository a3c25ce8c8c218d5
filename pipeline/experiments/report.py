"""The comparison as files: comparison.json, comparison.md (the model card's section) and trade-off PNGs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PARAMETERS = {"fairness_weights": "penalty strength", "fair_threshold": "threshold",
              "department_thresholds": "largest raise of a department's threshold"}
TITLES = {"fairness_weights": "Client's penalty weights (parameter: strength)",
          "fair_threshold": "One threshold under a fairness constraint (parameter: threshold)",
          "department_thresholds": "A threshold per department (parameter: largest raise)"}


def tradeoff_png(name: str, curve: list[dict], officers: dict, path: Path) -> None:
    """Left: held-out precision and recall against clear 5-point breaks, one point per parameter value (labelled).
    Right: the same against the parameter, with point-estimate and clear breaks and the pairs evaluated."""
    figure = Figure(figsize=(11, 4.4))
    FigureCanvasAgg(figure)
    left, right = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    clear = np.array([p["clear"] for p in curve], dtype=float)
    offsets = np.linspace(-0.2, 0.2, len(curve)) if len(curve) > 1 else np.zeros(1)  # points sharing a count
    for measure, marker in (("precision", "o"), ("recall", "s")):
        left.plot(clear + offsets, [p[measure] for p in curve], marker=marker, label=measure)
    for p, x in zip(curve, clear + offsets):
        left.annotate(f"{p['parameter']:.3g}", (x, p["recall"]), fontsize=7, xytext=(2, -10),
                      textcoords="offset points", color="0.3")
    left.axvline(officers["clear"], color="firebrick", linestyle="--",
                 label=f"officers' clear breaks ({officers['clear']})")
    left.axhline(0.5, color="0.6", linestyle=":", label="precision 0.50")
    top = int(max(clear.max(), officers["clear"])) + 1
    left.set_xticks(range(top + 1))
    left.set_xlim(-0.5, top + 0.5)
    left.set_xlabel("(department, attribute) pairs breaking the 5-point rule clearly (95%)")
    left.set_ylabel("held-out precision / recall")
    left.set_ylim(0, 1)
    left.legend(fontsize=8, loc="lower left")
    x = np.arange(len(curve))
    right.plot(x, [p["precision"] for p in curve], marker="o", label="precision")
    right.plot(x, [p["recall"] for p in curve], marker="s", label="recall")
    right.set_ylim(0, 1)
    right.set_ylabel("held-out precision / recall")
    counts = right.twinx()
    counts.step(x, [p["point"] for p in curve], where="mid", color="darkorange", linestyle="--",
                label=f"breaks, point estimate (officers {officers['point']})")
    counts.step(x, [p["clear"] for p in curve], where="mid", color="firebrick",
                label=f"breaks, clear (officers {officers['clear']})")
    counts.step(x, [p["evaluated"] for p in curve], where="mid", color="0.5", linestyle=":",
                label=f"pairs evaluated (officers {officers['evaluated']})")
    counts.set_ylabel("(department, attribute) pairs")
    counts.set_ylim(bottom=0)
    right.set_xticks(x, [f"{p['parameter']:.3g}" for p in curve], rotation=60, fontsize=7)
    right.set_xlabel(PARAMETERS.get(name, "parameter"))
    handles = right.get_legend_handles_labels()
    extra = counts.get_legend_handles_labels()
    right.legend(handles[0] + extra[0], handles[1] + extra[1], fontsize=7, loc="upper right")
    figure.suptitle(TITLES.get(name, name) + " - held-out rows", fontsize=10)
    figure.savefig(path, dpi=100, bbox_inches="tight")


def _interval(entry: dict, digits: int = 3) -> str:
    if entry is None or entry.get("value") is None:
        return "n/a"
    return f"{entry['value']:.{digits}f} [{entry['low']:.{digits}f}, {entry['high']:.{digits}f}]"


def _pct(entry: dict) -> str:
    if entry is None or entry.get("value") is None:
        return "n/a"
    return f"{100 * entry['value']:.2f}% [{100 * entry['low']:.2f}, {100 * entry['high']:.2f}]"


def mixed_precision(row: dict) -> float | None:
    """Precision of all recommended searches if officers sent every stop of the held-out period: the held-out
    searched rows' recommendations (their outcomes) and the unsearched stops' (their true hit chances) together."""
    stop = row.get("every_stop")
    if not stop or not stop["recommended"]:
        return row["precision"]["value"]
    n_searched = row["precision"]["n"]
    hits = row["precision"]["value"] * n_searched + stop["precision"]["value"] * stop["recommended"]
    return hits / (n_searched + stop["recommended"])


def _mixed(row: dict) -> float:
    value = mixed_precision(row)
    return float("nan") if value is None else value


def table_lines(result: dict) -> list[str]:
    """The comparison table in markdown."""
    lines = ["| variant | threshold | precision | recall | AUC | AUC / Bayes | breaks point / clear (evaluated) | "
             "fit s | peak RSS GiB | unsuspected stops searched | precision of those searches | precision if every "
             "stop were sent | real SAC=N requests searched |", "|---" * 13 + "|"]
    for r in result["table"]:
        if "infeasible" in r:
            lines.append(f"| {r['variant']} | infeasible: {r['infeasible']} |" + " |" * 11)
            continue
        b, stop = r["breaks"], r.get("every_stop")
        lines.append(
            f"| {r['variant']} | {r['threshold']:.4f} | {_interval(r['precision'])} | {_interval(r['recall'])} | "
            f"{_interval(r['auc'], 4)} | {_interval(r.get('auc_over_bayes'))} | {b['point']} / {b['clear']} "
            f"({b['evaluated']}) | {r['fit_seconds']:.1f} | {r['peak_rss'] / 2**30:.2f} | "
            f"{_pct(stop['share']) if stop else 'n/a'} | {_interval(stop['precision']) if stop else 'n/a'} | "
            f"{_mixed(r):.3f} | {r['real_unsuspected']['recommended']} of {r['real_unsuspected']['requests']} |")
    o = result["officers"]
    lines.append(f"| officers' own searches | - | {o['precision']:.3f} | 1 | - | - | {o['breaks']['point']} / "
                 f"{o['breaks']['clear']} ({o['breaks']['evaluated']}) | - | - | - | - | - | - |")
    return lines


def _by_name(result: dict) -> dict:
    return {r["variant"]: r for r in result["table"] if "infeasible" not in r}


def findings(result: dict) -> list[str]:
    """What the table says about each idea, in sentences whose figures come from the JSON."""
    rows, officers = _by_name(result), result["officers"]["breaks"]
    base, out = rows.get("baseline"), []
    if base is None:
        return out
    b = base["breaks"]
    clear = [name for name, r in rows.items() if r["breaks"]["clear"]]
    out.append(f"- **Fairness.** The officers' own searches break the 5-point rule in {officers['point']} of "
               f"{officers['evaluated']} (department, attribute) pairs, {officers['clear']} clearly; the baseline in "
               f"{b['point']} of {b['evaluated']}, {b['clear']} clearly. "
               + (f"Variants with a clear break: {', '.join(clear)}. " if clear else
                  "No variant has a clear break, so the clear count cannot tell them apart at this size. ")
               + "Point counts move with how many departments reach 100 recommended searches ('evaluated'), "
               "so a lower count is a gain only where 'evaluated' holds.")
    if "fairness_weights" in rows:
        w = rows["fairness_weights"]
        strengths = ", ".join(f"{p['parameter']:g}" for p in result["curves"].get("fairness_weights", []))
        out.append(f"- **The client's penalty weights** (strength {w['parameter']['strength']:g}, the one with the "
                   f"fewest validation point breaks among {strengths}): "
                   f"{w['breaks']['point']} point breaks of {w['breaks']['evaluated']} (baseline {b['point']} of "
                   f"{b['evaluated']}), recall {w['recall']['value']:.3f} (baseline {base['recall']['value']:.3f}), "
                   f"AUC {w['auc']['value']:.4f}. A model without protected features can act only through "
                   "their proxies (department, place, hour, statute), which bounds what any weighting can do.")
    if "department_thresholds" in rows:
        d = rows["department_thresholds"]
        moved = d["parameter"]["thresholds"]
        out.append(f"- **A threshold per department** (largest raise {d['parameter']['max_raise']:g}; moved: "
                   + (", ".join(f"{k} to {v:.3f}" for k, v in moved.items()) or "none") + f"): "
                   f"{d['breaks']['point']} point breaks of {d['breaks']['evaluated']} evaluated, recall "
                   f"{d['recall']['value']:.3f}. Raising a department's threshold also shrinks it below the "
                   "minimum count, which hides its gaps rather than closing them; read it with the curve.")
    if "fair_threshold" in rows:
        f = rows["fair_threshold"]
        out.append(f"- **One threshold under a fairness constraint**: validation chose {f['threshold']:.4f} "
                   f"(baseline {base['threshold']:.4f}); the curve shows what higher thresholds buy on the held-out "
                   "rows: fewer point breaks, with fewer departments evaluated, for recall.")
    details = result.get("details", {}).get("tuned")
    if details and "tuned" in rows:
        t, best = rows["tuned"], details["best"]
        grid = details["searched"]["logistic_regression"]
        space = details["searched"]["hist_gradient_boosting"]
        out.append(f"- **Tuning** ({details['cv']}): logistic regression over "
                   + ", ".join(f"{k.split('__')[1]} {v}" for k, v in grid.items())
                   + f" ({len(details['results']) - space['random_draws']} settings), and {space['random_draws']} "
                   "random draws of gradient boosting over "
                   + ", ".join(f"{k.split('__')[1]} {v}" for k, v in space["space"].items())
                   + f". Best: {best['family']} {best['params']}, CV AUC {best['cv_auc']:.4f} against "
                   f"{details['default_cv_auc'][best['family']]:.4f} with default settings; held out: AUC "
                   f"{t['auc']['value']:.4f} vs {base['auc']['value']:.4f}, recall {t['recall']['value']:.3f} vs "
                   f"{base['recall']['value']:.3f}: within the intervals. Peak memory of the whole search "
                   f"{t['peak_rss'] / 2**30:.2f} GiB (target < 6 GiB), {t['fit_seconds']:.0f} s.")
    if "shrinkage" in rows:
        r = rows["shrinkage"]
        out.append(f"- **Shrinkage encodings** (issue 10's model: department, location and statute as shrunk "
                   f"log-odds, no weekday, month or year): AUC {r['auc']['value']:.4f} (baseline "
                   f"{base['auc']['value']:.4f}), recall {r['recall']['value']:.3f} ({base['recall']['value']:.3f}), "
                   f"precision {r['precision']['value']:.3f} ({base['precision']['value']:.3f}); unsuspected stops "
                   f"searched {100 * r['every_stop']['share']['value']:.2f}% at precision "
                   f"{r['every_stop']['precision']['value']:.3f}; fitted in {r['fit_seconds']:.1f} s."
                   if "every_stop" in r else f"- **Shrinkage encodings**: AUC {r['auc']['value']:.4f}.")
    if "sac_split" in rows:
        r, stop, base_stop = rows["sac_split"], rows["sac_split"].get("every_stop"), base.get("every_stop")
        routing = r.get("parameter", {})
        text = (f"- **Two models on SAC = N**: the N model's best validation threshold reaches a precision lower "
                f"bound of {routing.get('unsuspected_best_precision', float('nan')):.3f} on "
                f"{routing.get('validation_unsuspected_rows')} validation rows, far from 0.5, so its side never "
                "recommends a search" if routing.get("unsuspected_never_recommended") else
                "- **Two models on SAC = N**: the N side has its own validated threshold")
        if stop and base_stop:
            text += (f". Sent every unsuspected stop of the held-out period, it recommends "
                     f"{100 * stop['share']['value']:.2f}% (baseline {100 * base_stop['share']['value']:.2f}%), "
                     f"whose searches would find contraband {stop['precision']['value']:.1%} of the time (baseline "
                     f"{base_stop['precision']['value']:.1%}); pooled with the searched stops, precision "
                     f"{mixed_precision(r):.3f} against the baseline's {mixed_precision(base):.3f}. On searched stops "
                     f"it keeps precision {r['precision']['value']:.3f} and recall {r['recall']['value']:.3f}.")
        out.append(text)
    return out


def _every_stop_caveat(result: dict) -> list[str]:
    """A loud line when the chosen default would fall below 0.50 precision if officers sent every stop while a
    variant meeting every target would not."""
    rows = _by_name(result)
    chosen = (result["default"].get("applied") or result["default"])["variant"]
    if chosen not in rows or "every_stop" not in rows[chosen] or mixed_precision(rows[chosen]) >= 0.5:
        return []
    better = [name for name, checks in result["default"]["checks"].items()
              if all(checks.values()) and name in rows and mixed_precision(rows[name]) >= 0.5]
    if not better:
        return [f"**Caveat:** if officers sent every stop, `{chosen}`'s searches would find contraband "
                f"{mixed_precision(rows[chosen]):.3%} of the time, and no variant stays at 50% then."]
    return [f"**Caveat, for the client to decide:** the targets above count unsuspected stops only by the share "
            f"searched. If officers sent every stop, `{chosen}`'s recommended searches would find contraband "
            f"{mixed_precision(rows[chosen]):.3%} of the time (below the 50% requirement), while "
            + ", ".join(f"`{n}`'s would {mixed_precision(rows[n]):.3%}" for n in better)
            + ". `python -m pipeline.train --two-models` trains the two-model default (its fast path is checked at "
            "load); it was not adopted because the stated targets do not separate it from the chosen default, and its "
            "decisions carry no reasons yet."]


def markdown(result: dict, png_prefix: str = "") -> str:
    """The model card's section (``png_prefix`` is the PNGs' path as seen from the card)."""
    data, default = result["data"], result["default"]
    rows = data["rows"]
    out = ["## Variants compared (`python -m pipeline.experiments`)", "",
           f"Command: `{data['command']}`; wall time {data['wall_seconds']:.0f} s; peak RSS "
           f"{data['peak_rss'] / 2**30:.2f} GiB (the command), {data['peak_rss_children'] / 2**30:.2f} GiB (largest "
           "fitting child)" + (f"; machine load {data['load_average']} (2 cores shared with other jobs; each "
                                "fitting process ran one thread)" if data.get("load_average") else "") + ".", "",
           *[line for run in result.get("merged_runs", [])[1:] for line in (
               f"Added later from a second run on the same file and split (its baseline row identical): "
               f"`{run['command']}`, wall time {run['wall_seconds']:.0f} s, peak RSS {run['peak_rss'] / 2**30:.2f} "
               "GiB.", "")],
           f"Data: `{Path(data['file']).name}`" + (f", sha256 `{data['sha256']}`" if data.get("sha256") else "")
           + ".", "",
           f"Rows: {rows['rows_read']:,} read; searched after dropping duplicates {rows['usable']:,}: train "
           f"{rows['train']:,}, validation {rows['validation']:,}, held out {rows['test']:,} (newest, "
           f"{rows['test_dates'][0][:10]} to {rows['test_dates'][1][:10]}); unsearched stops of the held-out period "
           f"{rows['unsearched_held_out'] or 0:,}. Bayes AUC of the held-out rows "
           f"{data['bayes_auc'] or float('nan'):.4f}. Intervals are 95%: Wilson for shares, Hanley-McNeil for AUC; "
           "the precision of searches of unsuspected stops is the mean of the generator's true chance that a search "
           "finds contraband (sidecar `search_hit_probability`), with a normal interval of the realised rate; "
           "'precision if every stop were sent' pools those searches with the held-out searched rows' "
           "recommendations (same period), as if officers sent the service every stop.", "",
           f"Breaks: (department, attribute) pairs whose gap between group precisions exceeds 5 points (min "
           f"{data['fairness']['min_department']} recommended searches per department, {data['fairness']['min_group']} "
           "per group); clear = the 95% Newcombe interval of the gap lies above 5 points. A higher threshold "
           "recommends fewer searches, so fewer departments reach the minimum: read breaks beside the number "
           "evaluated.", ""] + table_lines(result)
    out += ["", "What the table says:", ""] + findings(result)
    out += ["", f"**Default by the table: `{default['variant']}`** ({default['rule']}). "
            + ("Every target is met by at least one variant." if default["all_targets_met"]
               else "NO variant meets every target; see the checks below."), "",
            "| variant | " + " | ".join(next(iter(default["checks"].values()))) + " |",
            "|---" * (1 + len(next(iter(default["checks"].values())))) + "|"]
    for name, checks in default["checks"].items():
        out.append(f"| {name} | " + " | ".join("yes" if ok else "**no**" for ok in checks.values()) + " |")
    applied = default.get("applied")
    if applied and applied["variant"] != default["variant"]:
        out += ["", f"**NOT APPLIED: the committed default is still `{applied['variant']}`.** {applied['reason']}"]
    elif applied:
        version = f", version `{applied['version']}`" if applied.get("version") else ""
        out += ["", f"**Applied:** the committed default (artifacts/default) is this variant{version}. "
                    f"{applied['reason']}"]
    out += [""] + _every_stop_caveat(result)
    for name in result["curves"]:
        out += ["", f"![{TITLES.get(name, name)}]({png_prefix}tradeoff_{name}.png)"]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    """Re-render comparison.md and the PNGs of an output directory from its comparison.json."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pipeline.experiments.report", description=main.__doc__)
    parser.add_argument("out", type=Path, help="output directory of `python -m pipeline.experiments`")
    args = parser.parse_args(argv)
    write_outputs(json.loads((args.out / "comparison.json").read_text()), args.out)
    return 0


def write_outputs(result: dict, out: Path) -> None:
    """comparison.json, comparison.md and tradeoff_<variant>.png in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for name, curve in result["curves"].items():
        if curve:
            tradeoff_png(name, curve, result["officers"]["breaks"], out / f"tradeoff_{name}.png")
    (out / "comparison.json").write_text(json.dumps(result, indent=1, default=_json_default) + "\n")
    (out / "comparison.md").write_text(markdown(result, png_prefix=f"{out.as_posix().rstrip('/')}/"))


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


if __name__ == "__main__":
    raise SystemExit(main())
