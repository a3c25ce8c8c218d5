"""``python -m pipeline.report``: write the monitoring report of a database as an HTML page or JSON, offline."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from peewee import DatabaseError

from migrations import COMMAND, pending_migrations
from models import DEFAULT_SQLITE_URL, database, database_from_url
from pipeline.report import FilterError, build_report, parse_parameters, render_page
from pipeline.report.filters import DEFAULT_MIN_DEPARTMENT, DEFAULT_MIN_GROUP
from pipeline.scoring.artifact import DEFAULT_ARTIFACT_DIR, ArtifactError, read_card


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options; see --help."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.report",
        description="Compute the production monitoring report (performance, table 4, ROC, fairness, population "
                    "shift) from the service's request and outcome log.")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or DEFAULT_SQLITE_URL,
                        help="postgresql://... or sqlite:///path (default: $DATABASE_URL, else the embedded SQLite)")
    parser.add_argument("--out", required=True, type=Path,
                        help="output file; its suffix chooses the format: .html (page with charts) or .json")
    parser.add_argument("--since", help="first day or instant received, UTC (YYYY-MM-DD or ISO 8601)")
    parser.add_argument("--until", help="last day received, inclusive (YYYY-MM-DD), or an exclusive ISO instant")
    parser.add_argument("--department", help="only this department (exact name as logged)")
    parser.add_argument("--model-version", help="only requests answered by this model version")
    parser.add_argument("--min-department", type=int, default=DEFAULT_MIN_DEPARTMENT,
                        help="recommended searches with outcomes a department needs for a fairness verdict "
                             "(default %(default)s)")
    parser.add_argument("--min-group", type=int, default=DEFAULT_MIN_GROUP,
                        help="recommended searches with outcomes a group needs to be compared (default %(default)s)")
    parser.add_argument("--artifact", type=Path, default=DEFAULT_ARTIFACT_DIR,
                        help="directory of the active model, whose card gives the training population "
                             "(default %(default)s)")
    args = parser.parse_args(argv)
    if args.out.suffix.lower() not in (".html", ".json"):
        parser.error(f"--out must end in .html or .json, not {args.out.name!r}")
    return args


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    """Run the command; returns the exit status."""
    args = parse_args(argv)
    try:
        filters, fairness = parse_parameters({"since": args.since, "until": args.until, "department": args.department,
                                              "model_version": args.model_version,
                                              "min_department": args.min_department, "min_group": args.min_group})
        card = read_card(args.artifact)
    except (FilterError, ArtifactError) as error:
        return _fail(str(error))
    database.initialize(database_from_url(args.database_url))
    try:
        pending = pending_migrations(database.obj)
        if pending:
            return _fail(f"the database schema is behind ({', '.join(pending)} pending); run `{COMMAND}` first")
        print("aggregating the log...", file=sys.stderr)
        report = build_report(filters, fairness, card)
    except DatabaseError as error:
        return _fail(f"cannot read the log at {args.database_url.split('@')[-1]}: {str(error).strip()}")
    finally:
        database.close()
    if args.out.suffix.lower() == ".json":
        args.out.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    else:
        print("drawing charts...", file=sys.stderr)
        args.out.write_text(render_page(report), encoding="utf-8")
    print(f"wrote {args.out} ({report['volume']['requests']} requests, {report['seconds']} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
