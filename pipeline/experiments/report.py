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
    left.axvline(officers["clear"], color="firebrick", linestyle="--", label=f"officers' clear breaks ({officers['clear']})")
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


def table_lines(result: dict) -> list[str]:
    """The comparison table in markdown."""
    lines = ["| variant | threshold | precision | recall | AUC | AUC / Bayes | breaks point / clear (evaluated) | "
             "fit s | peak RSS GiB | unsuspected stops searched | precision of those searches | real SAC=N "
             "requests searched |", "|---" * 12 + "|"]
    for r in result["table"]:
        if "infeasible" in r:
            lines.append(f"| {r['variant']} | infeasible: {r['infeasible']} |" + " |" * 10)
            continue
        b, stop = r["breaks"], r.get("every_stop")
        lines.append(
            f"| {r['variant']} | {r['threshold']:.4f} | {_interval(r['precision'])} | {_interval(r['recall'])} | "
            f"{_interval(r['auc'], 4)} | {_interval(r.get('auc_over_bayes'))} | {b['point']} / {b['clear']} "
            f"({b['evaluated']}) | {r['fit_seconds']:.1f} | {r['peak_rss'] / 2**30:.2f} | "
            f"{_pct(stop['share']) if stop else 'n/a'} | {_interval(stop['precision']) if stop else 'n/a'} | "
            f"{r['real_unsuspected']['recommended']} of {r['real_unsuspected']['requests']} |")
    o = result["officers"]
    lines.append(f"| officers' own searches | - | {o['precision']:.3f} | 1 | - | - | {o['breaks']['point']} / "
                 f"{o['breaks']['clear']} ({o['breaks']['evaluated']}) | - | - | - | - | - |")
    return lines


def markdown(result: dict, png_prefix: str = "") -> str:
    """The model card's section (``png_prefix`` is the PNGs' path as seen from the card)."""
    data, default = result["data"], result["default"]
    rows = data["rows"]
    out = ["## Variants compared (`python -m pipeline.experiments`)", "",
           f"Command: `{data['command']}`; wall time {data['wall_seconds']:.0f} s; peak RSS "
           f"{data['peak_rss'] / 2**30:.2f} GiB (the command), {data['peak_rss_children'] / 2**30:.2f} GiB (largest "
           "fitting child).", "",
           f"Rows: {rows['rows_read']:,} read; searched after dropping duplicates {rows['usable']:,}: train "
           f"{rows['train']:,}, validation {rows['validation']:,}, held out {rows['test']:,} (newest, "
           f"{rows['test_dates'][0][:10]} to {rows['test_dates'][1][:10]}); unsearched stops of the held-out period "
           f"{rows['unsearched_held_out'] or 0:,}. Bayes AUC of the held-out rows "
           f"{data['bayes_auc'] or float('nan'):.4f}. Intervals are 95%: Wilson for shares, Hanley-McNeil for AUC; "
           "the precision of searches of unsuspected stops is the mean of the generator's true chance that a search "
           "finds contraband (sidecar `search_hit_probability`), with a normal interval of the realised rate.", "",
           f"Breaks: (department, attribute) pairs whose gap between group precisions exceeds 5 points (min "
           f"{data['fairness']['min_department']} recommended searches per department, {data['fairness']['min_group']} "
           "per group); clear = the 95% Newcombe interval of the gap lies above 5 points. A higher threshold "
           "recommends fewer searches, so fewer departments reach the minimum: read breaks beside the number "
           "evaluated.", ""] + table_lines(result)
    out += ["", f"**Default by the table: `{default['variant']}`** ({default['rule']}). "
            + ("Every target is met by at least one variant." if default["all_targets_met"]
               else "NO variant meets every target; see the checks below."), "",
            "| variant | " + " | ".join(next(iter(default["checks"].values()))) + " |",
            "|---" * (1 + len(next(iter(default["checks"].values())))) + "|"]
    for name, checks in default["checks"].items():
        out.append(f"| {name} | " + " | ".join("yes" if ok else "**no**" for ok in checks.values()) + " |")
    for name in result["curves"]:
        out += ["", f"![{TITLES.get(name, name)}]({png_prefix}tradeoff_{name}.png)"]
    return "\n".join(out) + "\n"


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
