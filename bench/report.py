"""Benchmark: the monitoring report on a Postgres log of 1,000,000 requests and 500,000 outcomes.

    .venv/bin/python -m bench.report                       # defaults: 1,000,000 requests, 500,000 outcomes
    .venv/bin/python -m bench.report --requests 200000 --keep-database

It creates a throwaway database beside --postgres-url, applies the migrations (so the indexes are the service's),
fills the log with one INSERT ... SELECT over generate_series (value mixes close to the client's production week:
SearchAuthorizationCode O/C/I/N ~ 40/36/20/4 %, race W/B/A/I ~ 67/30/2/1 %, ~120 departments of very different
sizes, observation JSON of realistic width), adds one outcome row per labelled request plus 1 % corrections,
VACUUM ANALYZEs as autovacuum would, then times the JSON report (build + serialise) several times and the HTML
page once, prints the figures and per-query times, and saves the page and its Chromium screenshot in bench/out/.
The target is the JSON report in under 5 s. The database is dropped at the end unless --keep-database.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg2

from migrations import apply_migrations
from models import database, database_from_url
from pipeline.report import ReportFilters, build_report, queries, render_page
from pipeline.report.gather import population_jobs
from pipeline.report.population_section import population_fields

OUT = Path(__file__).resolve().parent / "out"
DEFAULT_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
CARD = {"version": "bench", "threshold": 0.5, "population": {
    "SearchAuthorizationCode": {"O": 0.394, "C": 0.358, "I": 0.203, "N": 0.045},
    "SubjectRaceCode": {"W": 0.694, "B": 0.298, "A": 0.006, "I": 0.002},
    "SubjectEthnicityCode": {"N": 0.756, "H": 0.231, "M": 0.012},
    "SubjectSexCode": {"M": 0.821, "F": 0.179},
    "SubjectAge": {"Young Adult": 0.733, "Adult": 0.212, "Senior": 0.037, "Youth": 0.017},
    "StatuteReason": {"Speed Related": 0.3, "Other": 0.2, "Defective Lights": 0.2, "Registration": 0.3},
    "InterventionLocationName": {"DEPARTMENT 000": 0.5, "DEPARTMENT 001": 0.5}},
    "population_rows": 100_000}

FILL_SQL = """
INSERT INTO prediction (observation_id, observation, observation_digest, department, location, intervention_at,
    intervention_reason_code, statute_reason, officer_id, resident, town_resident, search_authorization_code,
    subject_race, subject_ethnicity, subject_sex, subject_age, subject_age_group, probability, should_search,
    threshold, model_version, received_at, contraband_found, outcome_at)
WITH base AS MATERIALIZED (
    SELECT g,
           'Department ' || lpad((floor(120 * power(random(), 2)))::int::text, 3, '0') AS department,
           CASE WHEN random() < 0.40 THEN 'O' WHEN random() < 0.60 THEN 'C' WHEN random() < 0.83 THEN 'I'
                ELSE 'N' END AS sac,
           CASE WHEN random() < 0.67 THEN 'W' WHEN random() < 0.91 THEN 'B' WHEN random() < 0.67 THEN 'A'
                ELSE 'I' END AS race,
           CASE WHEN random() < 0.75 THEN 'N' WHEN random() < 0.96 THEN 'H' ELSE 'M' END AS ethnicity,
           CASE WHEN random() < 0.79 THEN 'M' ELSE 'F' END AS sex,
           (16 + floor(64 * random() * random()))::int AS age,
           (ARRAY['Speed Related', 'Defective Lights', 'Registration', 'Cell Phone', 'Moving Violation',
                  'Stop Sign', 'Traffic Control Signal', 'Seat Belt', 'Equipment Violation', 'Other',
                  'Display of Plates', 'Suspended License', 'Window Tint', 'Unlicensed Operation',
                  'Administrative Offense'])[1 + floor(15 * power(random(), 1.5))::int] AS statute,
           CASE WHEN random() < 0.68 THEN 'V' WHEN random() < 0.75 THEN 'E' ELSE 'I' END AS reason,
           random() < 0.9 AS resident, random() < 0.5 AS town_resident,
           power(random(), 1.4) AS probability,
           random() AS labelled_draw, random() AS outcome_draw,
           timestamp '2026-11-28 00:00' - random() * interval '30 days' AS received_at
    FROM generate_series(1, %(requests)s) AS g)
SELECT 'bench-' || g,
       json_build_object('Department Name', department, 'InterventionDateTime',
                         to_char(received_at - interval '2 hours', 'MM/DD/YYYY HH12:MI:SS AM'),
                         'InterventionLocationName', upper(department), 'InterventionReasonCode', reason,
                         'ReportingOfficerIdentificationID', (1000 + g %% 4000)::text, 'ResidentIndicator', resident,
                         'SearchAuthorizationCode', sac, 'StatuteReason', statute, 'SubjectAge', age,
                         'SubjectEthnicityCode', ethnicity, 'SubjectRaceCode', race, 'SubjectSexCode', sex,
                         'TownResidentIndicator', town_resident)::text,
       md5(g::text) || md5((g + 1)::text),
       department, upper(department), received_at - interval '2 hours', reason, statute, (1000 + g %% 4000)::text,
       resident, town_resident, sac, race, ethnicity, sex, age,
       CASE WHEN age < 18 THEN 'Youth' WHEN age < 36 THEN 'Young Adult' WHEN age < 56 THEN 'Adult'
            ELSE 'Senior' END,
       probability, probability >= 0.5, 0.5, CASE WHEN g %% 5 < 2 THEN 'v1' ELSE 'v2' END, received_at,
       CASE WHEN labelled_draw < %(label_share)s THEN outcome_draw < 0.1 + 0.7 * probability END,
       CASE WHEN labelled_draw < %(label_share)s THEN received_at + interval '1 day' END
FROM base
"""
OUTCOMES_SQL = """
INSERT INTO outcome (prediction_id, contraband_found, is_correction, correction_reason, received_at)
SELECT id, contraband_found, false, NULL, outcome_at FROM prediction WHERE contraband_found IS NOT NULL
UNION ALL
SELECT id, contraband_found, true, 'bench correction', outcome_at + interval '1 hour'
FROM prediction WHERE contraband_found IS NOT NULL AND id % 100 = 0
"""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fill(url: str, requests: int, outcomes: int) -> None:
    """Fill the log with ``requests`` rows, about ``outcomes`` of them labelled, plus their outcome history."""
    connection = psycopg2.connect(url)
    connection.autocommit = True
    cursor = connection.cursor()
    cursor.execute("SELECT setseed(0.42)")
    started = time.perf_counter()
    cursor.execute(FILL_SQL, {"requests": requests, "label_share": outcomes / requests})
    _log(f"  {requests:,} requests inserted in {time.perf_counter() - started:.1f} s")
    cursor.execute(OUTCOMES_SQL)
    cursor.execute("VACUUM ANALYZE prediction")
    cursor.execute("VACUUM ANALYZE outcome")
    cursor.execute("SELECT count(*), count(contraband_found), pg_size_pretty(pg_total_relation_size('prediction')) "
                   "FROM prediction")
    _log("  log: {:,} requests, {:,} labelled, prediction table {}".format(*cursor.fetchone()))
    connection.close()


def time_queries(card: dict) -> dict[str, float]:
    """Seconds per aggregation query of the whole-log report, run one at a time, to show where the time goes."""
    filters, timings = ReportFilters(), {}
    jobs = {"groups": (queries.group_outcome_counts, filters), "volume": (queries.volume_counts, filters),
            "profile": (queries.profile_counts, filters), "bins": (queries.probability_bins, filters),
            "history": (queries.outcome_history, filters),
            **population_jobs(filters, population_fields(card))}
    for name, (function, *args) in jobs.items():
        started = time.perf_counter()
        function(*args)
        timings[name] = time.perf_counter() - started
    return timings


def time_reports(repeats: int) -> tuple[list[float], dict]:
    """Wall seconds of build_report + json.dumps, ``repeats`` times, and the last report."""
    seconds, report = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        report = build_report(card=CARD)
        json.dumps(report, allow_nan=False)
        seconds.append(time.perf_counter() - started)
    return seconds, report


def screenshot(page: Path, png: Path) -> bool:
    """Chromium screenshot of the page; False when chromium is not installed."""
    chromium = shutil.which("chromium")
    if not chromium:
        return False
    profile = OUT / "chromium-profile"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={profile}", f"--screenshot={png}", "--window-size=1280,7000", page.as_uri()],
                   check=True, capture_output=True, timeout=180)
    shutil.rmtree(profile, ignore_errors=True)
    return True


def run(url: str, args) -> float:
    """Fill, time and render on the database at ``url``; returns the median JSON report time."""
    database.initialize(database_from_url(url))
    apply_migrations(database.obj)
    _log(f"filling {url.rsplit('/', 1)[-1]} ...")
    fill(url, args.requests, args.outcomes)
    database.connect(reuse_if_open=True)
    for name, seconds in time_queries(CARD).items():
        print(f"  query {name:<32} {seconds:6.3f} s (alone)")
    seconds, report = time_reports(args.repeats)
    median = statistics.median(seconds)
    print(f"JSON report: median {median:.2f} s, min {min(seconds):.2f} s, max {max(seconds):.2f} s over "
          f"{args.repeats} runs ({report['volume']['requests']:,} requests, {report['volume']['labelled']:,} "
          f"labelled, {report['volume']['outcome_reports']:,} outcome reports); target < 5 s: "
          f"{'met' if median < 5 else 'NOT met'}")
    started = time.perf_counter()
    page = render_page(report)
    print(f"HTML page: charts and markup {time.perf_counter() - started:.2f} s on top of the JSON report")
    database.close()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "report_bench.html").write_text(page, encoding="utf-8")
    if screenshot(OUT / "report_bench.html", OUT / "report_bench.png"):
        print(f"page and screenshot: {OUT / 'report_bench.html'}, {OUT / 'report_bench.png'}")
    return median


def main(argv=None) -> int:
    """Parse options, run in a throwaway database, drop it."""
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres-url", default=DEFAULT_URL, help="an existing database; a throwaway one is made "
                                                                     "beside it (default %(default)s)")
    parser.add_argument("--requests", type=int, default=1_000_000, help="logged requests (default %(default)s)")
    parser.add_argument("--outcomes", type=int, default=500_000, help="labelled requests (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="timed JSON reports (default %(default)s)")
    parser.add_argument("--keep-database", action="store_true", help="do not drop the filled database")
    args = parser.parse_args(argv)
    if not 0 < args.outcomes <= args.requests <= 20_000_000:
        parser.error("need 0 < --outcomes <= --requests <= 20,000,000")
    name = f"h4_bench_report_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(args.postgres_url)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        median = run(args.postgres_url.rsplit("/", 1)[0] + "/" + name, args)
    finally:
        if not database.is_closed():
            database.close()
        if args.keep_database:
            _log(f"kept database {name}")
        else:
            admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    return 0 if median < 5 else 1


if __name__ == "__main__":
    sys.exit(main())
