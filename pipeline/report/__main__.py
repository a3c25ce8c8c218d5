"""``python -m pipeline.report``: write the monitoring report of a database as an HTML page or JSON, offline; or,
with ``--check``, exit non-zero naming each requirement that clearly breaks (pipeline/report/alarm.py)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from peewee import DatabaseError

from migrations import COMMAND, pending_migrations
from models import DatabaseUrlError, database, database_from_url, resolve_database_url
from pipeline.report import FilterError, alarm, build_report, parse_parameters, render_page
from pipeline.report.filters import DEFAULT_MIN_DEPARTMENT, DEFAULT_MIN_GROUP
from pipeline.scoring import registry
from pipeline.scoring.artifact import DEFAULT_ARTIFACT_DIR, ArtifactError, read_card

CHECK_DAYS = 28  # --check looks at the last four weeks of requests unless --since says otherwise


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options; see --help."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.report",
        description="Compute the production monitoring report (performance, table 4, ROC, fairness, population "
                    "shift, live against shadow) from the service's request and outcome log. With --check (for "
                    "Heroku Scheduler or cron): exit 1 naming each requirement that clearly breaks, else 0 with a "
                    "one-line summary.")
    parser.add_argument("--database-url",
                        help="postgresql://... or sqlite:///path (default, as the service: $DATABASE_URL, else the "
                             "embedded SQLite file instance/ctrp3.sqlite3)")
    parser.add_argument("--out", type=Path,
                        help="output file; its suffix chooses the format: .html (page with charts) or .json "
                             "(required unless --check)")
    parser.add_argument("--check", action="store_true",
                        help="the alarm: exit 1 when precision's interval lies below 0.5, a department breaks the "
                             "fairness rule clearly, the SAC=N share jumps, or the population drifts past PSI "
                             f"{alarm.PSI_ALARM}; 0 otherwise. Covers the last {CHECK_DAYS} days unless --since")
    parser.add_argument("--since", help="first day or instant received, UTC (YYYY-MM-DD or ISO 8601)")
    parser.add_argument("--until", help="last day received, inclusive (YYYY-MM-DD), or an exclusive ISO instant")
    parser.add_argument("--department", help="only this department (exact name as logged)")
    parser.add_argument("--model-version", help="only requests answered by this model version")
    parser.add_argument("--min-department", type=int, default=DEFAULT_MIN_DEPARTMENT,
                        help="recommended searches with outcomes a department needs for a fairness verdict "
                             "(default %(default)s)")
    parser.add_argument("--min-group", type=int, default=DEFAULT_MIN_GROUP,
                        help="recommended searches with outcomes a group needs to be compared (default %(default)s)")
    parser.add_argument("--artifact", type=Path,
                        help="directory of the active model, whose card gives the training population (default, as "
                             "the service: $MODEL_DIR, else the registry's live version, else artifacts/default)")
    args = parser.parse_args(argv)
    if args.out is None and not args.check:
        parser.error("give --out FILE (.html or .json), or --check")
    if args.check and args.since is None:
        args.since = (datetime.now(timezone.utc) - timedelta(days=CHECK_DAYS)).strftime("%Y-%m-%dT%H:%M:%S")
    if args.out is not None and args.out.suffix.lower() not in (".html", ".json"):
        parser.error(f"--out must end in .html or .json, not {args.out.name!r}")
    return args


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _database_url(given: str | None) -> str:
    """The service's choice: --database-url, else $DATABASE_URL, else the embedded SQLite file (empty = unset)."""
    return resolve_database_url(given or None, {k: v for k, v in os.environ.items() if k != "DATABASE_URL" or v})


def _given_card(given: Path | None) -> dict | None:
    """The service's choice of card, as far as it needs no database: --artifact, else $MODEL_DIR, else None."""
    directory = given if given and str(given) else os.environ.get("MODEL_DIR")
    return read_card(Path(directory)) if directory else None


def _live_card(db) -> dict:
    """The registry's live card (no unpickling), else the committed default's."""
    try:
        version = registry.live_version(db)
        if version is not None:
            return registry.version_detail(db, version)[1]
    except DatabaseError:
        pass
    return read_card(DEFAULT_ARTIFACT_DIR)


def _write(report: dict, out: Path) -> None:
    if out.suffix.lower() == ".json":
        out.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    else:
        print("drawing charts...", file=sys.stderr)
        out.write_text(render_page(report), encoding="utf-8")
    print(f"wrote {out} ({report['volume']['requests']:,} requests, {report['seconds']} s)", file=sys.stderr)


def _check(report: dict) -> int:
    verdicts = report["alarm"]
    if verdicts["status"] != "breach":
        print(alarm.summary_line(verdicts))
        return 0
    for name, verdict in verdicts["checks"].items():
        if verdict["status"] == "breach":
            print(f"BREACH {name}: {verdict['message']}")
    return 1


def main(argv=None) -> int:
    """Run the command; returns the exit status. Every failure is one sentence on stderr, never a traceback."""
    args = parse_args(argv)
    try:
        filters, fairness = parse_parameters({"since": args.since, "until": args.until, "department": args.department,
                                              "model_version": args.model_version,
                                              "min_department": args.min_department, "min_group": args.min_group})
        url = _database_url(args.database_url)
        card = _given_card(args.artifact)
    except (FilterError, ArtifactError, DatabaseUrlError) as error:
        return _fail(str(error))
    where = url.split("@")[-1]
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        return _fail(f"there is no database at {where} yet: start the service once (`make run`) or load demo data "
                     "(`make demo`), or give --database-url")
    database.initialize(database_from_url(url))
    try:
        pending = pending_migrations(database.obj)
        if pending:
            return _fail(f"the database schema is behind ({', '.join(pending)} pending); run `{COMMAND}` first")
        card = card or _live_card(database.obj)
        print(f"aggregating the log at {where} (model card {card.get('version')})...", file=sys.stderr)
        report = build_report(filters, fairness, card)
    except DatabaseError as error:
        return _fail(f"cannot read the log at {where}: {str(error).strip().splitlines()[0]}")
    finally:
        database.close()
    if args.out is not None:
        try:
            _write(report, args.out)
        except OSError as error:
            return _fail(f"cannot write {args.out}: {error.strerror or error}")
    return _check(report) if args.check else 0


if __name__ == "__main__":
    sys.exit(main())
