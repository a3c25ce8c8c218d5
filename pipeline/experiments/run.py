"""Fit every variant on the same training rows, set each one's threshold on the same validation rows, and
measure all of them on the same held-out newest rows: the comparison table."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import joblib

from pipeline.evaluation.metrics import select_threshold
from pipeline.experiments import thresholds as mitigation
from pipeline.experiments.data import SEARCH_TRUTH, drop_truth
from pipeline.experiments.measure import dry_run_unsuspected, every_stop, measure, officer_breaks
from pipeline.schema import TARGET
from pipeline.training.two_models import set_unsuspected_offset

FITTED = ("baseline", "sac_split", "fairness_weights", "tuned", "shrinkage")
DERIVED = ("fair_threshold", "department_thresholds")  # post-processing of the baseline's scores
VARIANTS = ("baseline", "sac_split", "fairness_weights", "fair_threshold", "department_thresholds", "tuned",
            "shrinkage")
MAX_RAISES = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3)


def fit_in_child(name: str, train_path: Path, workdir: Path, seed: int, quiet: bool, threads: int = 1):
    """Run ``pipeline.experiments.fit`` for one variant; returns (model, stats)."""
    out = workdir / f"{name}.joblib"
    command = [sys.executable, "-m", "pipeline.experiments.fit", "--variant", name, "--train", str(train_path),
               "--out", str(out), "--seed", str(seed)] + (["--quiet"] if quiet else [])
    # One OpenMP thread: the machine is shared, and gradient boosting's threads fighting other jobs for two cores
    # ran several times slower than one thread; fit times are therefore single-threaded figures.
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    subprocess.run(command, check=True, cwd=Path(__file__).resolve().parents[2], env=env)
    return joblib.load(out), json.loads(Path(f"{out}.json").read_text())


def _scores(model, frame):
    return model.predict_proba(frame)[:, 1]


def _threshold(rows, scores, args) -> dict:
    return select_threshold(rows.validation[TARGET].to_numpy(bool), scores, args.min_precision,
                            rows.margin["margin"], "wilson", raise_if_infeasible=False)


class Scored:
    """One model's scores on validation, test, unsearched held-out stops and the real SAC=N requests."""

    def __init__(self, model, rows):
        self.validation = _scores(model, drop_truth(rows.validation))
        self.test = _scores(model, drop_truth(rows.test))
        self.unsearched = None if rows.unsearched is None else _scores(model, drop_truth(rows.unsearched))
        self.dry_run = _scores(model, rows.dry_run)


def _row(rows, scored: Scored, threshold: float, settings: dict, transform=None) -> dict:
    """A table row; ``transform(frame, scores)`` maps raw scores to the decision scale (department thresholds)."""
    move = transform or (lambda frame, scores: scores)
    row = measure(rows.test, move(rows.test, scored.test), threshold, settings, rows.bayes_auc)
    if scored.unsearched is not None:
        row["every_stop"] = every_stop(move(rows.unsearched, scored.unsearched),
                                       rows.unsearched[SEARCH_TRUTH].to_numpy(), threshold)
    dry = move(rows.dry_run, scored.dry_run) >= threshold
    row["real_unsuspected"] = {"requests": int(dry.size), "recommended": int(dry.sum()),
                               "share": float(dry.mean())}
    return row


def _standard(name, model, stats, rows, args, settings) -> dict:
    scored = Scored(model, rows)
    choice = _threshold(rows, scored.validation, args)
    if not choice["feasible"]:
        return {"variant": name, "infeasible": choice["reason"], **_cost(stats)}
    return {"variant": name, **_row(rows, scored, choice["threshold"], settings), **_cost(stats),
            "validation": {k: choice[k] for k in ("precision", "precision_low", "recall")}}


def _cost(stats: dict, extra_seconds: float = 0.0) -> dict:
    return {"fit_seconds": stats["fit_seconds"] + extra_seconds, "peak_rss": stats["peak_rss"],
            "rss_after_loading": stats["rss_after_loading"]}


def _weights_variant(models, stats, rows, args, settings) -> tuple[dict, list]:
    """Each strength with its own validation threshold; the table keeps the strength with the fewest validation
    point breaks (ties: the weaker), the curve shows them all on the test rows."""
    curve, best = [], None
    for strength, model in models.items():
        scored = Scored(model, rows)
        choice = _threshold(rows, scored.validation, args)
        if not choice["feasible"]:
            continue
        on_validation = mitigation.operating_point(rows.validation, scored.validation, choice["threshold"], settings)
        point = dict(mitigation.operating_point(rows.test, scored.test, choice["threshold"], settings),
                     parameter=strength)
        curve.append(point)
        key = (on_validation["point"], strength)
        if best is None or key < best[0]:
            best = (key, strength, scored, choice)
    if best is None:
        return {"variant": "fairness_weights", "infeasible": "no strength reached the precision bar"}, curve
    _, strength, scored, choice = best
    row = _row(rows, scored, choice["threshold"], settings)
    return {"variant": "fairness_weights", **row, **_cost(stats), "parameter": {"strength": strength},
            "weights": stats["info"]["weights"]}, curve


def _fair_threshold_variant(scored, stats, rows, args, settings) -> tuple[dict, list]:
    started = time.perf_counter()
    base = _threshold(rows, scored.validation, args)
    bar = args.min_precision + rows.margin["margin"]
    threshold, _ = mitigation.fair_threshold(rows.validation, scored.validation, base["threshold"], settings, bar)
    seconds = time.perf_counter() - started
    curve = [dict(mitigation.operating_point(rows.test, scored.test, t, settings), parameter=float(t))
             for t in mitigation.threshold_grid(scored.validation, base["threshold"], points=15)]
    return {"variant": "fair_threshold", **_row(rows, scored, threshold, settings), **_cost(stats, seconds),
            "parameter": {"rule": "fewest validation point breaks keeping 80% of the recall and the precision bar"}
            }, curve


def _department_variant(scored, stats, rows, args, settings) -> tuple[dict, list]:
    started = time.perf_counter()
    base = _threshold(rows, scored.validation, args)["threshold"]
    options = mitigation.department_thresholds(rows.validation, scored.validation, base, settings, MAX_RAISES)
    curve, best = [], None
    for raise_, chosen in options.items():
        def move(frame, scores, chosen=chosen):
            return mitigation.shift_scores(frame, scores, chosen, base)

        on_validation = mitigation.operating_point(rows.validation, move(rows.validation, scored.validation), base,
                                                   settings)
        curve.append(dict(mitigation.operating_point(rows.test, move(rows.test, scored.test), base, settings),
                          parameter=raise_, departments_moved=len(chosen)))
        feasible = (on_validation["precision_low"] or 0) >= args.min_precision + rows.margin["margin"]
        key = (on_validation["point"], raise_)
        if feasible and (best is None or key < best[0]):
            best = (key, raise_, chosen, move)
    seconds = time.perf_counter() - started
    _, raise_, chosen, move = best
    return {"variant": "department_thresholds", **_row(rows, scored, base, settings, move), **_cost(stats, seconds),
            "parameter": {"max_raise": raise_, "thresholds": chosen, "base_threshold": base}}, curve


def _router_variant(model, stats, rows, args, settings) -> dict:
    """Each side its own validated threshold (``set_unsuspected_offset``): suspected rows as the baseline's; SAC N
    rows must reach the same precision bar on their own validation rows, else the N side never recommends."""
    scored = Scored(model, rows)
    try:
        found = set_unsuspected_offset(model, rows.validation, scored.validation, args.min_precision,
                                       rows.margin["margin"])
    except ValueError as error:
        return {"variant": "sac_split", "infeasible": str(error), **_cost(stats)}
    scored = Scored(model, rows)
    return {"variant": "sac_split", **_row(rows, scored, found["suspected_threshold"], settings), **_cost(stats),
            "parameter": found}


def run_variants(rows, args, settings, progress) -> dict:
    """All requested variants' table rows, trade-off curves and extra details."""
    rows.dry_run = dry_run_unsuspected()
    wanted = list(args.variants)
    table, curves, details = [], {}, {}
    with tempfile.TemporaryDirectory(prefix="experiments-") as workdir:
        train_path = Path(workdir) / "train.pkl"
        drop_truth(rows.train).to_pickle(train_path)
        fitted = {}
        for name in [v for v in FITTED if v in wanted or (v == "baseline" and set(DERIVED) & set(wanted))]:
            progress(f"fitting {name} in a child process")
            fitted[name] = fit_in_child(name, train_path, Path(workdir), args.seed, args.quiet, args.threads)
            progress(f"{name}: fitted in {fitted[name][1]['fit_seconds']:.1f} s, peak RSS "
                     f"{fitted[name][1]['peak_rss'] / 2**30:.2f} GiB")
    for name in wanted:
        progress(f"measuring {name}")
        if name == "sac_split":
            table.append(_router_variant(*fitted[name], rows, args, settings))
        elif name in ("baseline", "tuned", "shrinkage"):
            model, stats = fitted[name]
            table.append(_standard(name, model, stats, rows, args, settings))
            if stats["info"]:
                details[name] = stats["info"]
        elif name == "fairness_weights":
            row, curves[name] = _weights_variant(*fitted[name], rows, args, settings)
            table.append(row)
        else:
            model, stats = fitted["baseline"]
            scored = Scored(model, rows)
            maker = _fair_threshold_variant if name == "fair_threshold" else _department_variant
            row, curves[name] = maker(scored, stats, rows, args, settings)
            table.append(row)
    officers = officer_breaks(rows.test, settings)
    hit_rate = float(rows.test[TARGET].mean())
    return {"table": table, "officers": {"breaks": officers, "precision": hit_rate}, "curves": curves,
            "details": details}


def choose_default(result: dict, incumbent: str = "baseline", auc_tolerance: float = 0.02,
                   max_unsuspected_share: float = 0.02, min_recall_gain: float = 0.01) -> dict:
    """The default by the table: the incumbent stays while it meets every target, unless a variant meeting every
    target finds more contraband by more than ``min_recall_gain`` of recall (changing the served model changes
    every answer and explanation, so noise-level gains do not justify it). Without the incumbent passing, the
    passing variant with the highest recall; with none passing, the highest recall overall, flagged."""
    rows = [r for r in result["table"] if "infeasible" not in r]
    best_auc = max(r["auc"]["value"] for r in rows)
    officers_clear = result["officers"]["breaks"]["clear"]
    verdicts = {}
    for r in rows:
        fewer = r["breaks"]["clear"] < officers_clear or (r["breaks"]["clear"] == 0 and r["breaks"]["evaluated"] > 0)
        checks = {"precision >= 0.50": r["precision"]["value"] >= 0.5,
                  "fewer clear breaks than the officers (or none)": fewer,
                  f"AUC within {auc_tolerance} of the best": r["auc"]["value"] >= best_auc - auc_tolerance}
        if "every_stop" in r:
            checks[f"search for under {max_unsuspected_share:.0%} of unsuspected stops"] = \
                r["every_stop"]["share"]["value"] < max_unsuspected_share
        verdicts[r["variant"]] = checks
    passing = [r for r in rows if all(verdicts[r["variant"]].values())]
    current = next((r for r in passing if r["variant"] == incumbent), None)
    if current is not None:
        better = [r for r in passing if r["recall"]["value"] > current["recall"]["value"] + min_recall_gain]
        chosen = max(better, key=lambda r: r["recall"]["value"]) if better else current
    else:
        chosen = max(passing or rows, key=lambda r: r["recall"]["value"])
    return {"variant": chosen["variant"], "all_targets_met": bool(passing), "checks": verdicts,
            "changed": chosen["variant"] != incumbent, "incumbent": incumbent, "best_auc": best_auc,
            "rule": f"the incumbent ({incumbent}) stays while it meets every target unless another variant meeting "
                    f"every target has recall higher by more than {min_recall_gain}; otherwise the passing variant "
                    "with the highest recall; if none passes, the highest recall overall, flagged"}
