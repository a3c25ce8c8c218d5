"""``python -m demo``: load a generated stream of requests and outcomes into the configured database, through the
service's own validation, scoring and logging (an in-process app with a one-off admin key), with progress."""
from __future__ import annotations

import argparse
import random
import secrets
import sys
import time

from demo.stream import PREFIX, searched_stops
from migrations import COMMAND, pending_migrations
from models import Prediction, database
from pipeline.scoring.artifact import ArtifactError
from service import ConfigError, create_app
from service.keys import new_key

CORRECTION_SHARE = 0.01  # a few outcomes are corrected afterwards, as analysts do, so the report counts some


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options; see --help."""
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description="Send a generated stream of searched stops to the service's code (POST /should_search) and "
                    "report most of their outcomes (POST /search_result), into $DATABASE_URL (default: the embedded "
                    "SQLite file), so that every section of /report.html shows something. Observation ids start "
                    f"with '{PREFIX}'; running it again with the same seed adds nothing.")
    parser.add_argument("--requests", type=int, default=4000,
                        help="searched stops to send (default %(default)s; the report's fairness section needs a "
                             "department with 100 recommended searches with outcomes, which 4000 gives)")
    parser.add_argument("--outcomes", type=float, default=0.8,
                        help="share of requests whose outcome is reported (default %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default %(default)s)")
    parser.add_argument("--allow-real-rows", action="store_true",
                        help="write even though the database already holds rows that are not demo rows (never do "
                             "this to a production database: the demo rows would enter its monitoring)")
    args = parser.parse_args(argv)
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    if not 0 <= args.outcomes <= 1:
        parser.error("--outcomes must be between 0 and 1")
    return args


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _real_rows() -> int:
    """Rows of the log that no demo run wrote."""
    with database.connection_context():
        return Prediction.select().where(~Prediction.observation_id.startswith(PREFIX)).count()


def main(argv=None) -> int:
    """Run the command; returns the exit status."""
    args = parse_args(argv)
    key, entry = new_key("admin", "demo-loader")  # held in memory only, for this process's own app
    try:
        app = create_app({"API_KEYS": entry, "API_KEYS_REVOKED": "", "SESSION_SECRET": secrets.token_urlsafe(32)})
    except (ConfigError, ArtifactError) as error:
        return _fail(str(error))
    where = app.config["DATABASE_URL"].split("@")[-1]
    pending = pending_migrations(database.obj)
    if pending:
        return _fail(f"the database {where} needs its migrations first ({', '.join(pending)}): run `{COMMAND}` "
                     "(or `make migrate`)")
    real = _real_rows()
    if real and not args.allow_real_rows:
        return _fail(f"the database {where} already holds {real:,} requests that are not demo rows; demo data "
                     "would mix with them in the monitoring report. Point DATABASE_URL at another database, or "
                     "pass --allow-real-rows if you mean it.")
    say = lambda message: print(f"demo: {message}", file=sys.stderr, flush=True)  # noqa: E731
    say(f"generating {args.requests:,} searched stops (seed {args.seed}) ...")
    stream = list(searched_stops(args.requests, args.seed, progress=say))
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    rng = random.Random(args.seed)
    counts = {"accepted": 0, "refused": 0, "outcomes": 0}
    started = time.perf_counter()
    say(f"sending {len(stream):,} requests to {where} through the service's code ...")
    for index, item in enumerate(stream, start=1):
        answer = client.post("/should_search", json={"observation_id": item.observation_id,
                                                     "observation": item.observation})
        counts["accepted" if answer.status_code == 200 else "refused"] += 1
        if answer.status_code == 200 and rng.random() < args.outcomes:
            counts["outcomes"] += _report_outcome(client, item, rng)
        if index % 500 == 0 or index == len(stream):
            rate = index / (time.perf_counter() - started)
            say(f"{index:,}/{len(stream):,} requests, {counts['outcomes']:,} outcomes ({rate:,.0f} requests/s)")
    say(f"done: {counts['accepted']:,} requests logged, {counts['refused']:,} refused as invalid (the generator "
        f"writes some malformed values on purpose, as the real file has), {counts['outcomes']:,} outcomes. "
        "Open /report.html (`make run`, then sign in if keys are on).")
    return 0


def _report_outcome(client, item, rng) -> int:
    """POST the outcome (sometimes a wrong one first, then its correction); 1 when an outcome was recorded."""
    body = {"observation_id": item.observation_id, "contraband_found": item.contraband_found}
    if rng.random() < CORRECTION_SHARE:
        first = client.post("/search_result", json={**body, "contraband_found": not item.contraband_found})
        if first.status_code == 200:
            body["correction"] = {"reason": "demo: the first report was wrong; corrected after the lab result"}
    return int(client.post("/search_result", json=body).status_code == 200)


if __name__ == "__main__":
    sys.exit(main())
