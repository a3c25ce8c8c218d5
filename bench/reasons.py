"""What the reasons of a decision cost beside the probability, per record, for both fast forms (issue 12).

    .venv/bin/python -m bench.reasons [--rows 20000] [--seconds 1]

The committed model (fast linear path) and a HistGradientBoosting pipeline (``build_model`` defaults) fitted here on
``--rows`` generated stops (fast tree path), each over the 223 dry-run records: µs per record of ``predict_one`` and
of ``reasons``, median of passes, as this process's CPU time (``time.process_time``) and as wall time. On a shared
2-core machine the wall figures move several-fold with the load average (printed beside them); the CPU figures much
less, which makes them the ones to compare with the 20 µs target there. ``bench.speed run`` times wall time too.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from bench.speed_micro import _per_record_us, dry_run_records
from pipeline.schema import TARGET, clean_frame
from pipeline.scoring.artifact import Artifact, load_artifact
from pipeline.scoring.contributions import training_reference
from pipeline.scoring.fast_linear import build_scorer
from pipeline.synthetic.generate import generate
from pipeline.training.selection import build_model


def _trees(rows: int) -> Artifact:
    frame, _ = generate(rows, 5)
    clean = clean_frame(frame)
    pipeline = build_model("hist_gradient_boosting").fit(clean, frame[TARGET].astype(bool))
    card = {"version": f"hgb-bench-{rows}", "threshold": 0.5, "reasons": training_reference(pipeline, clean)}
    return Artifact(pipeline=pipeline, card=card, scorer=build_scorer(pipeline))


def _cpu_us(fn, records: list[dict], seconds: float) -> float:
    """Median CPU µs per record over passes through ``records``, for at least ``seconds`` of CPU in all."""
    fn(records[0])
    passes, spent = [], 0
    while len(passes) < 5 or spent < seconds * 1e9:
        began = time.process_time_ns()
        for record in records:
            fn(record)
        passes.append(time.process_time_ns() - began)
        spent += passes[-1]
    return statistics.median(passes) / len(records) / 1e3


def _line(name: str, artifact: Artifact, records: list[dict], seconds: float) -> str:
    model, reasons = (_cpu_us(fn, records, seconds) for fn in (artifact.predict_one, artifact.reasons))
    wall_model = _per_record_us(artifact.predict_one, records, seconds)["us_per_record_median"]
    wall_reasons = _per_record_us(artifact.reasons, records, seconds)["us_per_record_median"]
    return (f"{name:<44} CPU: predict_one {model:7.1f} µs, reasons {reasons:7.1f} µs (x{reasons / model:.2f});  "
            f"wall: {wall_model:7.1f} and {wall_reasons:7.1f} µs;  load {os.getloadavg()[0]:.1f}")


def main(argv=None) -> int:
    """Print the two lines."""
    parser = argparse.ArgumentParser(prog="python -m bench.reasons", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000, help="generated rows to fit the trees on (20000)")
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum seconds per timing (1)")
    args = parser.parse_args(argv)
    _, records = dry_run_records()
    linear = load_artifact()
    print(_line(f"{linear.version} ({linear.scoring_path})", linear, records, args.seconds))
    trees = _trees(args.rows)
    depth = max(p[0].get_max_depth() for p in trees.pipeline.named_steps["model"]._predictors)
    print(_line(f"hgb, {len(trees.pipeline.named_steps['model']._predictors)} trees, depth <= {depth} "
                f"({trees.scoring_path})", trees, records, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
