"""Fit one variant in its own process, so its wall time and peak memory are its own.

    python -m pipeline.experiments.fit --variant baseline --train train.pkl --out baseline.joblib

Writes the fitted model (joblib) and ``<out>.json``: fit seconds, peak RSS of the process (ru_maxrss), the RSS
after loading the training rows (so the fit's own increment is peak minus that), and the variant's own details.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import joblib
import pandas as pd

from pipeline.experiments.variants import fit_variant
from pipeline.progress import Progress


def current_rss() -> int:
    """Resident set size of this process now, in bytes (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def main(argv=None) -> int:
    """Entry point: fit, dump the model and the measurements."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.experiments.fit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--train", type=Path, required=True, help="pickled training rows (DataFrame)")
    parser.add_argument("--out", type=Path, required=True, help="joblib path of the fitted model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    say = Progress(args.quiet)
    train = pd.read_pickle(args.train)
    loaded_rss = current_rss()
    started = time.perf_counter()
    model, info = fit_variant(args.variant, train, args.seed, progress=lambda m: say(f"  {args.variant}: {m}"))
    seconds = time.perf_counter() - started
    joblib.dump(model, args.out)
    stats = {"variant": args.variant, "fit_seconds": seconds, "rows": len(train), "rss_after_loading": loaded_rss,
             "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "info": info}
    Path(f"{args.out}.json").write_text(json.dumps(stats, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
