"""Add the rows of a second comparison run on the same rows to a first one (a variant that became available later).

    python -m pipeline.experiments.merge artifacts/experiments OTHER_OUT [--applied VARIANT --reason TEXT]

Refuses unless both runs read the same file (sha256) with the same split and their baseline rows give the same
figures (threshold, precision, recall, AUC, breaks, every-stop counts), so the rows are comparable. The default is
chosen again over the merged table. ``--applied`` records which variant is actually committed as the default when
it is not the table's choice, and why; the card then says so.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.experiments.report import write_outputs
from pipeline.experiments.run import choose_default

SAME = ("threshold", "precision", "recall", "auc", "breaks", "every_stop", "real_unsuspected", "recommended")


def merge(first: dict, second: dict) -> dict:
    """``first`` with ``second``'s variants it lacks appended, and the default chosen again."""
    if first["data"].get("sha256") != second["data"].get("sha256") or first["data"]["rows"] != second["data"]["rows"]:
        raise ValueError("the two runs did not read the same file with the same split")
    rows = {r["variant"]: r for r in first["table"]}
    other = {r["variant"]: r for r in second["table"]}
    if "baseline" not in rows or "baseline" not in other:
        raise ValueError("both runs need the baseline, to show their rows are comparable")
    different = [key for key in SAME if rows["baseline"].get(key) != other["baseline"].get(key)]
    if different:
        raise ValueError(f"the baseline rows differ in {different}; the runs are not comparable")
    merged = dict(first, table=first["table"] + [r for name, r in other.items() if name not in rows])
    merged["details"] = dict(second.get("details", {}), **first.get("details", {}))
    merged["merged_runs"] = first.get("merged_runs", [first["data"]]) + [second["data"]]
    merged["default"] = choose_default(merged, incumbent=first.get("default", {}).get("incumbent", "baseline"))
    return merged


def main(argv=None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.experiments.merge", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path, help="output directory to extend (rewritten)")
    parser.add_argument("second", type=Path, help="output directory of the later run")
    parser.add_argument("--applied", help="the variant actually committed as the default, if not the table's choice")
    parser.add_argument("--reason", default="", help="why the committed default differs from the table's choice")
    args = parser.parse_args(argv)
    read = [json.loads((path / "comparison.json").read_text()) for path in (args.first, args.second)]
    try:
        merged = merge(*read)
    except ValueError as error:
        parser.error(str(error))
    if args.applied:
        merged["default"]["applied"] = {"variant": args.applied, "reason": args.reason}
    write_outputs(merged, args.first)
    return 0


if __name__ == "__main__":
    sys.exit(main())
