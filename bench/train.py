"""Benchmark: train end to end on a full-size generated CTRP3 file; print time, peak memory and quality.

    .venv/bin/python bench/train.py                      # generates 2,473,643 rows, then trains
    .venv/bin/python bench/train.py --data big.csv       # reuses a generated file (needs big.truth.csv)

Generation and training each run as a child process; peak memory is the child's RSS high-water mark
(os.wait4), so the training figure is not inflated by the generator. Quality is measured on the same held-out
newest searched rows the training held out, against the generator's true probabilities (Bayes AUC).
Targets: precision >= 0.50, AUC >= 0.97 x Bayes AUC, training < 10 min, peak < 6 GiB.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.evaluation.metrics import roc_auc  # noqa: E402
from pipeline.evaluation.summary import fairness_rows, quality  # noqa: E402
from pipeline.loading import (  # noqa: E402
    TRUTH_COLUMN,
    load_training_data,
    read_truth,
    truth_path,  # noqa: E402
)
from pipeline.schema import TARGET, validate_observation  # noqa: E402
from pipeline.scoring.artifact import load_artifact  # noqa: E402
from pipeline.training.selection import time_split  # noqa: E402

FULL_ROWS = 2_473_643
DRY_RUN = ROOT / "tests" / "fixtures" / "dry_run.json"


def run_child(command: list[str]) -> tuple[float, float]:
    """Run a command; return (wall seconds, peak RSS in GiB of it and its children)."""
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{command[2]} failed with exit code {process.returncode}")
    return seconds, usage.ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux


def held_out(data: Path, card: dict) -> pd.DataFrame:
    """The test rows of the training run (same loading and split), with their true probabilities."""
    frame = load_training_data(data, quiet=True, truth=read_truth(truth_path(data))).frame
    shares = card["training_data"]["rows"]
    split = time_split(frame["InterventionDateTime"], shares["validation"] / shares["usable"],
                       shares["test"] / shares["usable"])
    return frame.iloc[split.test]


def print_fairness(test: pd.DataFrame, scores: np.ndarray, threshold: float) -> None:
    """The model's fairness table on held-out rows: departments with enough data, per attribute."""
    rows = fairness_rows(test, scores, threshold)
    print("\nfairness on held-out rows (min 100 recommended searches per department, 20 per group, max gap 5pp)")
    print(f"{'attribute':22} {'department':28} {'n':>6} {'gap':>6} {'interval':>15}  status")
    for entry in rows:
        if entry["status"] == "not enough data":
            continue
        print(f"{entry['attribute']:22} {entry['department'][:28]:28} {entry['n']:6d} {entry['max_gap']:6.3f} "
              f"{entry['gap_low']:7.3f}-{entry['gap_high']:6.3f}  {entry['status']}"
              f"{' (clear)' if entry['clear'] else ''}")
    skipped = sum(entry["status"] == "not enough data" for entry in rows)
    print(f"({skipped} department x attribute pairs: not enough data)")


def print_real_check(artifact) -> None:
    """Quality on the real labelled dry-run requests (few, paired duplicates): a sanity check, not a target."""
    rows = [row for row in json.loads(DRY_RUN.read_text())["values"] if row[4] is not None]
    records = [validate_observation(json.loads(row[2])["observation"]) for row in rows]
    truth = np.array([bool(row[4]) for row in rows])
    measured = quality(truth, artifact.predict_proba(records), artifact.threshold)
    p, band = measured["precision"], measured["auc_interval"]
    distinct = len({row[2].split('"observation":', 1)[1] for row in rows})
    print(f"\nreal dry-run labels ({len(rows)} rows, {distinct} distinct stops, hit rate {truth.mean():.3f}): "
          f"precision {p['value']:.3f} [{p['low']:.3f}, {p['high']:.3f}], recall {measured['recall']['value']:.3f}, "
          f"AUC {measured['auc']:.3f} [{band['low']:.3f}, {band['high']:.3f}]")


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options of the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="reuse this generated CSV instead of generating one")
    parser.add_argument("--rows", type=int, default=FULL_ROWS, help=f"rows to generate (default {FULL_ROWS:,})")
    parser.add_argument("--seed", type=int, default=2018, help="generator seed (default 2018)")
    parser.add_argument("--workdir", type=Path, help="where to write the data and artifact (default: a temp dir)")
    parser.add_argument("--train-args", default="", help="extra arguments for pipeline.train, quoted")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Generate (unless --data), train, then print the figures."""
    args = parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-train-"))
    workdir.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    data = args.data
    if data is None:
        data = workdir / f"synthetic-{args.rows}-{args.seed}.csv"
        gen_seconds, gen_peak = run_child([python, "-m", "pipeline.synthetic", "--rows", str(args.rows),
                                           "--seed", str(args.seed), "--out", str(data)])
        print(f"generation: {gen_seconds:.1f} s, peak {gen_peak:.2f} GiB", file=sys.stderr)
    if not truth_path(data).exists():
        raise SystemExit(f"{truth_path(data)} is missing; the benchmark needs the generator's truth sidecar")
    out = workdir / "artifact"
    seconds, peak = run_child([python, "-m", "pipeline.train", "--data", str(data), "--out", str(out),
                               "--synthetic", *args.train_args.split()])
    artifact = load_artifact(out)
    test = held_out(data, artifact.card)
    scores = artifact.pipeline.predict_proba(test)[:, 1]
    measured = quality(test[TARGET], scores, artifact.threshold)
    bayes = roc_auc(test[TARGET].to_numpy(), test[TRUTH_COLUMN].to_numpy())
    rows = artifact.card["training_data"]["rows"]
    print(f"\ndata: {data} ({rows['rows_read']:,} rows, {rows['searched']:,} searched, "
          f"{rows['after_dedup']:,} after dedup; train/validation/test {rows['train']:,}/{rows['validation']:,}/"
          f"{rows['test']:,})")
    print(f"model: {artifact.card['model']['family']}, threshold {artifact.threshold:.4f}")
    print(f"training wall time: {seconds:.1f} s (target < 600 s)")
    print(f"training peak RSS: {peak:.2f} GiB (target < 6 GiB)")
    p, r = measured["precision"], measured["recall"]
    print(f"held-out precision: {p['value']:.4f} [{p['low']:.4f}, {p['high']:.4f}] (target >= 0.50)")
    print(f"held-out recall:    {r['value']:.4f} [{r['low']:.4f}, {r['high']:.4f}]")
    band = measured["auc_interval"]
    print(f"held-out AUC {measured['auc']:.4f} [{band['low']:.4f}, {band['high']:.4f}]; Bayes AUC {bayes:.4f}; "
          f"AUC / Bayes AUC {measured['auc'] / bayes:.4f}"
          " (target >= 0.97)")
    print_real_check(artifact)
    print_fairness(test, scores, artifact.threshold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
