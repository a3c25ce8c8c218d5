"""Measure the model variants side by side on one CTRP3 file and write the comparison table.

    python -m pipeline.experiments --data synthetic.csv --out artifacts/experiments

Variants (all on the same searched rows, split by time: oldest train, next validation, newest held out):
  baseline               the single searched-only model with one-hot codes (the default until 2026-11-29)
  sac_split              two models routed on SearchAuthorizationCode = N, each with its own features
  fairness_weights       the baseline refitted with the client's penalty weights (several strengths)
  fair_threshold         the baseline with one threshold chosen under a fairness constraint
  department_thresholds  the baseline with a threshold per department, raised where validation gaps break the rule
  tuned                  the best of a logistic-regression grid and gradient-boosting random draws (time-series CV)
  shrinkage              issue 10's shrunk department/location/statute model: the committed default (the incumbent)
Each variant's threshold is chosen on the validation rows as training does (Wilson lower bound of precision >=
0.5 + the drift margin). Writes comparison.json, comparison.md (the model card's section) and one trade-off PNG
per mitigation into --out. Progress goes to stderr.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

from pipeline.experiments.data import load_shared_rows
from pipeline.experiments.report import write_outputs
from pipeline.experiments.run import VARIANTS, choose_default, run_variants
from pipeline.loading import truth_path
from pipeline.progress import Progress
from pipeline.scoring.artifact import file_sha256


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options of ``python -m pipeline.experiments``."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="CTRP3 CSV with the 15 training columns")
    parser.add_argument("--truth", type=Path, help="the generator's sidecar (default: <stem>.truth.csv beside --data)")
    parser.add_argument("--out", type=Path, default=Path("artifacts/experiments"),
                        help="directory for comparison.json, comparison.md and the PNGs (default %(default)s)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS),
                        help="variants to measure (default: all)")
    parser.add_argument("--incumbent", choices=VARIANTS, default="shrinkage",
                        help="the variant the committed default is, which the table's rule keeps unless another beats "
                             "it (default %(default)s; 'baseline' until 2026-11-29)")
    parser.add_argument("--validation", type=float, default=0.1, help="share of rows validating (default 0.1)")
    parser.add_argument("--test", type=float, default=0.1, help="share of newest rows held out (default 0.1)")
    parser.add_argument("--min-precision", type=float, default=0.5)
    parser.add_argument("--fairness-min-department", type=int, default=100)
    parser.add_argument("--fairness-min-group", type=int, default=20)
    parser.add_argument("--max-unsearched", type=int, default=0,
                        help="score at most this many unsearched held-out stops, a seeded sample (default 0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="OpenMP threads of each fitting process (default 1: fit times are single-threaded)")
    parser.add_argument("--chunksize", type=int, default=500_000, help="CSV rows read at a time")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        parser.error(f"--data {args.data} is not a file (generate one with `python -m pipeline.synthetic`)")
    if args.truth is None and truth_path(args.data).is_file():
        args.truth = truth_path(args.data)
    if args.truth is not None and not args.truth.is_file():
        parser.error(f"--truth {args.truth} is not a file")
    return args


def main(argv=None) -> int:
    """Entry point."""
    args = parse_args(argv)
    say = Progress(args.quiet)
    started = time.perf_counter()
    rows = load_shared_rows(args, say)
    settings = {"min_department": args.fairness_min_department, "min_group": args.fairness_min_group}
    result = run_variants(rows, args, settings, say)
    result["default"] = choose_default(result, incumbent=args.incumbent)
    result["data"] = {"file": str(args.data), "sha256": file_sha256(args.data), "rows": rows.counts,
                      "bayes_auc": rows.bayes_auc, "load_average": os.getloadavg(),
                      "margin": rows.margin, "fairness": dict(settings, max_gap=0.05),
                      "wall_seconds": time.perf_counter() - started,
                      "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "peak_rss_children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
                      "command": "python -m pipeline.experiments " + " ".join(sys.argv[1:] if argv is None else argv)}
    write_outputs(result, args.out)
    say(f"default by the table: {result['default']['variant']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
