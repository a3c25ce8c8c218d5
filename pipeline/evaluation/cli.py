"""Evaluate a trained artifact on a CTRP3 file the way the client's report did, and save JSON and charts.

Keeps searched rows (exact duplicates dropped, as in training), optionally only those since a date (to mirror
production), scores them, and prints: the confusion matrix; precision, recall, F1, accuracy and ROC AUC with 95%
intervals and the precision verdict; report table 4 (per SearchAuthorizationCode); fairness by department and
protected attribute for the model and for the officers; report table 6 against the card's training population;
and, given the generator's truth sidecar, the Bayes AUC. Writes evaluation.json, roc.png, fairness_gaps.png and
population.png into --out. A stop is recommended for search when probability >= the card's threshold.

Example:  python -m pipeline.evaluate --artifact artifacts/default --data held_out.csv --out eval/
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.evaluation import fairness, metrics, plots, population
from pipeline.loading import TRUTH_COLUMN, TRUTH_NAMES, load_training_data, read_truth, truth_path
from pipeline.progress import Progress
from pipeline.schema import OBSERVATION_FIELDS, TARGET
from pipeline.scoring.artifact import DEFAULT_ARTIFACT_DIR, ArtifactError, load_artifact

SCORE_BATCH = 200_000
# Fields with too many values to read as a table or bars; their shift shows in the PSI and unseen-rate table.
MANY_VALUED = ("Department Name", "InterventionLocationName")


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options of ``python -m pipeline.evaluate``."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", type=Path, default=DEFAULT_ARTIFACT_DIR, help="artifact directory")
    parser.add_argument("--data", type=Path, required=True, help="CTRP3 CSV with the 15 columns")
    parser.add_argument("--truth", type=Path,
                        help="CSV of true contraband probabilities, one row per --data row, for the Bayes AUC "
                             "(default: <stem>.truth.csv next to --data, as pipeline.synthetic writes it)")
    parser.add_argument("--truth-column", help=f"column of --truth to use (default: its only column or one of "
                                               f"{', '.join(TRUTH_NAMES)})")
    parser.add_argument("--out", type=Path, required=True, help="directory for evaluation.json and the PNGs")
    parser.add_argument("--since", type=datetime.fromisoformat,
                        help="keep stops on or after this date (YYYY-MM-DD), e.g. the card's test period")
    parser.add_argument("--min-department", type=int, default=100, help="fairness: minimum per department")
    parser.add_argument("--min-group", type=int, default=20, help="fairness: minimum per group")
    parser.add_argument("--max-gap", type=float, default=0.05, help="fairness: largest allowed gap (default 0.05)")
    parser.add_argument("--min-outcomes", type=int, default=30, help="precision verdict: minimum outcomes")
    parser.add_argument("--chunksize", type=int, default=500_000, help="CSV rows read at a time")
    parser.add_argument("--quiet", action="store_true", help="no progress output on stderr")
    args = parser.parse_args(argv)
    sidecar = truth_path(args.data)
    if args.truth is None and sidecar.is_file():
        args.truth = sidecar  # pipeline.synthetic writes it next to the data
    for name in ("data", "truth"):
        path = getattr(args, name)
        if path is not None and not path.is_file():
            parser.error(f"--{name} {path} is not a file")
    return args


def load_rows(args, progress) -> tuple[pd.DataFrame, dict]:
    """Searched, deduplicated, cleaned, labelled rows (with the true probability when --truth is given)."""
    truth = read_truth(args.truth, args.truth_column) if args.truth else None
    loaded = load_training_data(args.data, args.chunksize, truth=truth, progress=progress)
    frame = loaded.frame
    if args.since is not None:
        frame = frame[frame["InterventionDateTime"] >= args.since]
    frame = frame.reset_index(drop=True)
    if not len(frame):
        raise ValueError(f"no searched, labelled rows in {args.data}" + (f" since {args.since}" if args.since else ""))
    return frame, dict(loaded.counts, evaluated=len(frame))


def score(artifact, frame: pd.DataFrame, progress) -> np.ndarray:
    """The artifact's probabilities for every row, in batches so progress shows on big files."""
    parts = []
    for start in range(0, len(frame), SCORE_BATCH):
        batch = frame.iloc[start:start + SCORE_BATCH][list(OBSERVATION_FIELDS)]
        parts.append(artifact.pipeline.predict_proba(batch)[:, 1])
        progress(f"scored {min(start + SCORE_BATCH, len(frame)):,} of {len(frame):,} rows")
    return np.concatenate(parts)


def _fairness_part(counts, args) -> dict:
    table = fairness.fairness_table(counts, args.min_department, args.min_group, args.max_gap)
    gaps = fairness.gap_distribution(table)
    return {"summary": fairness.fairness_summary(table, args.min_department, args.min_group, args.max_gap, 0.95),
            "table": table, "pairwise_gaps": gaps, "histogram": fairness.gap_histogram(gaps)}


def _population_part(card: dict, frame: pd.DataFrame) -> dict:
    training = card.get("population") or {}
    fields = [f for f in training if f in frame] or list(population.POPULATION_FIELDS)
    counts = population.value_counts(frame, fields)
    shares = population.shares_from_counts(counts)
    if not training:
        rows = [dict(row, training_pct=None, production_pct=row["training_pct"])
                for row in population.population_table(shares, {})]
        return {"known": False, "note": "the card has no training population; shares of the evaluated rows only",
                "rows": rows, "psi": {}, "unseen_rate": {}}
    return {"known": True, "rows": population.population_table(training, shares),
            "psi": population.psi_by_field(training, shares, training_rows=card.get("population_rows"),
                                           production_rows=len(frame)),
            "unseen_rate": population.unseen_rate(training, counts)}


def evaluate(artifact, frame: pd.DataFrame, scores: np.ndarray, args) -> dict:
    """Every figure of the evaluation as one JSON-serialisable dict."""
    truth = frame[TARGET].to_numpy(dtype=bool)
    predicted = scores >= artifact.threshold
    counts = metrics.confusion_counts(truth, predicted)
    roc = metrics.roc_curve_points(truth, scores, max_points=500)
    result = {
        "performance": metrics.classification_report_from_counts(**counts),
        "verdict": metrics.precision_verdict(counts["tp"], counts["fp"], minimum_outcomes=args.min_outcomes),
        "auc": roc["auc"], "roc": roc, "base_rate": float(truth.mean()),
        "sac_table": metrics.sac_table(metrics.sac_counts(frame["SearchAuthorizationCode"], truth, predicted)),
        "fairness": {"model": _fairness_part(fairness.group_counts(frame, truth, predicted), args),
                     "officers": _fairness_part(fairness.officer_counts(frame, truth), args)},
        "population": _population_part(artifact.card, frame), "bayes": None}
    if TRUTH_COLUMN in frame:
        bayes = metrics.roc_curve_points(truth, frame[TRUTH_COLUMN].to_numpy(), max_points=500)
        ratio = roc["auc"] / bayes["auc"] if bayes["auc"] and roc["auc"] is not None else None
        result["bayes"] = {"auc": bayes["auc"], "ratio": ratio, "roc": bayes}
    return result


def _fmt(value, digits=3) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _print_table(title: str, header: list[str], rows: list[list]) -> None:
    cells = [header] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for index, row in enumerate(cells):
        print("  " + "  ".join(cell.rjust(width) for cell, width in zip(row, widths)))
        if index == 0:
            print("  " + "  ".join("-" * width for width in widths))


def print_report(result: dict) -> None:
    """The evaluation as readable text tables on stdout."""
    perf, c = result["performance"], result["performance"]["counts"]
    _print_table("Confusion matrix (rows: true outcome)", ["", "predicted no", "predicted yes"],
                 [["contraband no", c["tn"], c["fp"]], ["contraband yes", c["fn"], c["tp"]]])
    _print_table("Performance (95% intervals)", ["metric", "value", "low", "high", "n"],
                 [[name, perf[name]["value"], perf[name]["low"], perf[name]["high"], perf[name].get("n", "")]
                  for name in ("precision", "recall", "f1", "accuracy")] + [["roc auc", result["auc"], "", "", ""]])
    print(f"\nPrecision requirement: {result['verdict']['verdict']} ({result['verdict']['reason']})")
    if result["bayes"]:
        print(f"Bayes AUC {_fmt(result['bayes']['auc'])}; model AUC / Bayes AUC = {_fmt(result['bayes']['ratio'])}")
    _print_table("Report table 4: predictions and outcomes by SearchAuthorizationCode",
                 ["SAC", "pred True", "pred False", "outcome True", "outcome False", "hit rate", "precision"],
                 [[r["sac"], r["predicted_true"], r["predicted_false"], r["outcome_true"], r["outcome_false"],
                   r["hit_rate"]["value"], r["precision"]["value"]] for r in result["sac_table"]])
    for who, part in result["fairness"].items():
        summary = part["summary"]
        settings = ", ".join(f"{key}={value}" for key, value in summary["parameters"].items())
        _print_table(f"Fairness of the {who} ({settings}; 'clearly': the gap's 95% interval is above the limit)",
                     ["attribute", "departments", "ok", "breaks rule", "clearly", "not enough data", "largest gap"],
                     [[a, s["departments"], s["ok"], s["breaks_rule"], s["breaks_rule_clear"], s["not_enough_data"],
                       s["largest_gap"]] for a, s in summary["by_attribute"].items()])
    breaking = [e for e in result["fairness"]["model"]["table"] if e["status"] == "breaks rule"]
    _print_table("Departments where the model breaks the 5-point rule", ["department", "attribute", "gap",
                 "highest", "lowest", "gap interval", "clear"],
                 [[e["department"], e["attribute"], e["max_gap"], e["highest_group"], e["lowest_group"],
                   f"{e['gap_low']:.3f}..{e['gap_high']:.3f}", e["clear"]] for e in breaking])
    pop = result["population"]
    if not pop["known"]:
        print(f"\nNote: {pop['note']}")
    _print_table("Report table 6: population, training vs this file (%)", ["field", "value", "training", "here"],
                 [[r["field"], r["value"], r["training_pct"], r["production_pct"]] for r in pop["rows"]
                  if r["field"] not in MANY_VALUED])
    _print_table("Population stability per field (noise floor: PSI expected from sampling alone)",
                 ["field", "PSI", "band", "noise floor", "unseen rate"],
                 [[f, v["psi"], v["band"], v["noise_floor"], pop["unseen_rate"].get(f)] for f, v in pop["psi"].items()])


def save_outputs(result: dict, out: Path) -> None:
    """evaluation.json (strict JSON, no NaN) and the three PNGs."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
    curves = [dict(result["roc"], label="model")]
    if result["bayes"]:
        curves.append(dict(result["bayes"]["roc"], label="true probability (Bayes)"))
    plots.roc_png(curves, out / "roc.png", title="ROC curve on the evaluated rows")
    series = {who: part["pairwise_gaps"] for who, part in result["fairness"].items()}
    plots.gap_histogram_png(series, path=out / "fairness_gaps.png")
    rows = [row for row in result["population"]["rows"] if row["field"] not in MANY_VALUED]
    plots.population_png(rows, out / "population.png", labels=("training", "evaluated"),
                         title="Population: training (model card) vs evaluated rows")


def main(argv=None) -> int:
    """Run the evaluation CLI; returns the process exit status."""
    args = parse_args(argv)
    progress = Progress(args.quiet)
    try:
        artifact = load_artifact(args.artifact)
        frame, counts = load_rows(args, progress)
    except (ArtifactError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    progress(f"{counts['evaluated']:,} searched, labelled rows to evaluate with model {artifact.version}")
    result = evaluate(artifact, frame, score(artifact, frame, progress), args)
    result = {"artifact": {"directory": str(args.artifact), "version": artifact.version,
                           "threshold": artifact.threshold, "synthetic": artifact.card.get("synthetic")},
              "data": {"file": str(args.data), "since": args.since.isoformat() if args.since else None,
                       "rows": counts},
              **result}
    print_report(result)
    save_outputs(result, args.out)
    progress(f"wrote evaluation.json, roc.png, fairness_gaps.png and population.png to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
