"""Measure the write step of /should_search alone: µs per committed Prediction insert, by way of writing it.

Run: .venv/bin/python -m bench.insert_timing --database-url postgresql://postgres@127.0.0.1:5432/DB --count 3000
(a migrated database; each variant inserts ``count`` rows with fresh ids). Variants, all on one open connection:
- ``peewee_read_then_insert``: the former path: get_or_none pre-read, then Prediction.insert in a transaction;
- ``peewee_on_conflict``: peewee builds INSERT ... ON CONFLICT DO NOTHING RETURNING for every row;
- ``prepared_on_conflict``: the service's path, ``predictions._insert_new`` (SQL built once from the model);
- ``driver_floor``: the same SQL and already-converted values straight on the driver's cursor (the floor).
``insert_variants_us(count)`` returns the figures; bench/ can call it on any initialised ``models.database``.
Wall-clock figures on Postgres are dominated by the commit's disk sync; ``client_cpu_us_median`` (this process's
CPU per insert) and ``--without-disk-sync`` (that session only) show what peewee itself costs.
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
import uuid
from pathlib import Path

from peewee import PostgresqlDatabase

from migrations import apply_migrations
from models import Prediction, database, database_from_url
from pipeline.schema import validate_observation
from service import predictions

OBSERVATION = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "observation.json"


class _Constant:
    """Stands in for the model: the write step alone is timed."""

    version, threshold = "timing-constant", 0.5

    def predict_one(self, record: dict) -> float:
        """Always 0.25."""
        return 0.25


def _template_row() -> dict:
    raw = json.loads(OBSERVATION.read_text())
    record = validate_observation(raw)
    return predictions._prediction_row("template", raw, record, predictions.observation_digest(record), 0.25,
                                       _Constant())


def _variants(row: dict) -> dict:
    sql, converters = predictions._insert_statement(type(database.obj), tuple(row))

    def read_then_insert(values: dict) -> None:
        if Prediction.get_or_none(Prediction.observation_id == values["observation_id"]) is None:
            with database.atomic():
                Prediction.insert(values).execute()

    def peewee_on_conflict(values: dict) -> None:
        (Prediction.insert(values).on_conflict(conflict_target=[Prediction.observation_id], action="NOTHING")
         .returning(Prediction.id).execute())

    def driver_floor(values: dict) -> None:
        cursor = database.connection().cursor()
        cursor.execute(sql, values["converted"])
        cursor.fetchall()

    return {"peewee_read_then_insert": read_then_insert, "peewee_on_conflict": peewee_on_conflict,
            "prepared_on_conflict": predictions._insert_new, "driver_floor": driver_floor}, converters


def insert_variants_us(count: int = 2000, rounds: int = 4, without_disk_sync: bool = False) -> dict:
    """Median and mean µs per committed insert for each variant (wall clock, and this process's CPU), interleaved
    in ``rounds`` so drift hits all alike. ``without_disk_sync``: Postgres session with synchronous_commit off."""
    row = _template_row()
    variants, converters = _variants(row)
    prefix, ids = uuid.uuid4().hex[:8], itertools.count()
    times: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    database.connect(reuse_if_open=True)
    # This session only, to see the CPU and round-trip costs the disk sync otherwise hides.
    if without_disk_sync and isinstance(database.obj, PostgresqlDatabase):
        database.execute_sql("SET synchronous_commit = off")
    for _ in range(rounds):
        for name, insert in variants.items():
            for _ in range(max(1, count // rounds)):
                values = dict(row, observation_id=f"{name}-{prefix}-{next(ids)}")
                if name == "driver_floor":  # converted outside the timed span: the floor is the driver alone
                    values = {"converted": [convert(v) for convert, v in zip(converters, values.values())]}
                begin, begin_cpu = time.perf_counter_ns(), time.process_time_ns()
                insert(values)
                cpu[name].append((time.process_time_ns() - begin_cpu) / 1e3)
                times[name].append((time.perf_counter_ns() - begin) / 1e3)
    return {name: {"us_median": statistics.median(t), "us_mean": statistics.fmean(t),
                   "client_cpu_us_median": statistics.median(cpu[name]), "inserts": len(t)}
            for name, t in times.items()}


def main(argv=None) -> None:
    """Print the figures as JSON for a database URL (migrated first if needed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--without-disk-sync", action="store_true",
                        help="Postgres: synchronous_commit off in the timing session only (never in the service)")
    args = parser.parse_args(argv)
    plain = database_from_url(args.database_url)
    apply_migrations(plain)
    plain.close()
    database.initialize(database_from_url(args.database_url, serving=True))
    print(json.dumps({"database": args.database_url.split(":", 1)[0], "without_disk_sync": args.without_disk_sync,
                      **insert_variants_us(args.count, without_disk_sync=args.without_disk_sync)}, indent=2))


if __name__ == "__main__":
    main()
