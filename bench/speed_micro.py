"""The two steps of /should_search measured alone, in-process: the model step and the database insert.

Model step: µs per record of ``Artifact.predict_one`` (the fast path) against ``Artifact.predict_proba([record])``
(the scikit-learn path), over the 223 validated dry-run observations; and of ``Artifact.reasons`` (issue 12: the
reasons of the decision, computed beside the probability on every request).
Insert: µs per committed insert on Postgres of the service's write function against a plain peewee insert and a
bare psycopg2 INSERT + COMMIT (the floor), each on one open connection, synchronous_commit as the server has it.
"""
from __future__ import annotations

import itertools
import json
import statistics
import time
import uuid
from contextlib import closing

import numpy as np
import psycopg2

from bench.insert_timing import insert_variants_us
from bench.servers import dry_run_observations, log
from models import Prediction, database, database_from_url
from pipeline.schema import validate_observation
from pipeline.scoring.artifact import load_artifact
from service import predictions


def dry_run_records() -> tuple[list[dict], list[dict]]:
    """(raw observations, validated records) of the 223 dry-run requests."""
    raws = [json.loads(body) for body in dry_run_observations()]
    return raws, [validate_observation(raw) for raw in raws]


def _pass_seconds(fn, records: list[dict]) -> float:
    began = time.perf_counter()
    for record in records:
        fn(record)
    return time.perf_counter() - began


def _per_record_us(fn, records: list[dict], min_seconds: float, min_passes: int = 3) -> dict:
    """Median and best µs per record over whole passes through records, for at least min_seconds in all."""
    fn(records[0])  # first-call costs (lazy imports, caches) are not per-record costs
    passes, spent = [], 0.0
    while len(passes) < min_passes or spent < min_seconds:
        passes.append(_pass_seconds(fn, records))
        spent += passes[-1]
    per_record = [p / len(records) * 1e6 for p in passes]
    return {"us_per_record_median": statistics.median(per_record), "us_per_record_best": min(per_record),
            "passes": len(passes), "records_per_pass": len(records)}


def model_step(min_seconds: float) -> dict:
    """Time predict_one against predict_proba([record]) and say how far apart their probabilities are."""
    artifact = load_artifact()
    _, records = dry_run_records()
    log(f"model step: {artifact.version}, {len(records)} records, predict_one then predict_proba ...")
    fast = _per_record_us(artifact.predict_one, records, min_seconds)
    reasons = _per_record_us(artifact.reasons, records, min_seconds) if artifact.explainer is not None else None
    sklearn_path = _per_record_us(lambda r: artifact.predict_proba([r])[0], records, min_seconds)
    one = np.array([artifact.predict_one(r) for r in records])
    batch = artifact.predict_proba(records)
    return {"model_version": artifact.version, "fast_path": fast, "sklearn_path": sklearn_path, "reasons": reasons,
            "speedup": sklearn_path["us_per_record_median"] / fast["us_per_record_median"],
            "max_abs_difference": float(np.max(np.abs(one - batch)))}


class ConstantModel:
    """Stands in for the artifact, so the insert timing holds no model time (its reasons: one real answer's)."""

    version = "bench-constant"
    threshold = 0.5

    def __init__(self, reasons: dict | None = None):
        self._reasons = reasons

    def reasons(self, record: dict) -> dict | None:
        """The same stored-size reasons for every record, computed once."""
        return self._reasons

    def predict_one(self, record: dict) -> float:
        """Always 0.25."""
        return 0.25

    def predict_proba(self, records: list[dict]) -> np.ndarray:
        """Always 0.25 per record."""
        return np.full(len(records), 0.25)


def _timed_us(fn, count: int, ids) -> list[tuple[float, float]]:
    """(wall µs, this process's CPU µs) per call: the CPU is what the write costs a 2-core server besides waiting."""
    times = []
    for _ in range(count):
        n = next(ids)  # outside the timed span
        began, began_cpu = time.perf_counter_ns(), time.process_time_ns()
        fn(n)
        times.append(((time.perf_counter_ns() - began) / 1e3, (time.process_time_ns() - began_cpu) / 1e3))
    return times


def _summary(times: list[tuple[float, float]]) -> dict:
    wall = [t[0] for t in times]
    return {"us_median": statistics.median(wall), "us_mean": statistics.fmean(wall),
            "us_p99": float(np.percentile(wall, 99)), "client_cpu_us_median": statistics.median(t[1] for t in times),
            "inserts": len(times)}


def _server_settings(url: str) -> dict:
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cursor:
        settings = {}
        for name in ("server_version", "synchronous_commit", "fsync", "wal_sync_method", "full_page_writes"):
            cursor.execute(f"SHOW {name}")
            settings[name] = cursor.fetchone()[0]
    return settings


def _psycopg2_insert(url: str, row: dict):
    """A bare autocommit INSERT of the same column values (committed on its own): the floor under any ORM."""
    columns = [c for c in row if c != "id"]
    sql = (f'INSERT INTO prediction ({", ".join(columns)}) VALUES ({", ".join(["%s"] * len(columns))})')
    conn = psycopg2.connect(url)
    conn.autocommit = True  # one round trip, like the service's statement; no BEGIN/COMMIT around it
    prefix = uuid.uuid4().hex[:8]

    def insert(n: int) -> None:
        values = dict(row, observation_id=f"pg-{prefix}-{n}")
        with conn.cursor() as cursor:
            cursor.execute(sql, [values[c] for c in columns])
    return conn, insert


def insert_step(url: str, count: int, rounds: int = 3) -> dict:
    """Per-insert µs of the service's write (predictions.decide, constant model) against peewee and psycopg2.

    The database is opened as the service opens it (pooled, with its timeouts). Also runs the write-path variants
    of bench.insert_timing (read-then-insert, peewee ON CONFLICT, prepared ON CONFLICT, driver floor).
    """
    raws, records = dry_run_records()
    database.initialize(database_from_url(url, serving=True))
    database.connect()
    model, prefix = ConstantModel(load_artifact().reasons(records[0])), uuid.uuid4().hex[:8]
    predictions.decide(f"warm-{prefix}", raws[0], records[0], model)
    template = Prediction.select().dicts().get()
    template.pop("id")

    def service_write(n: int) -> None:
        predictions.decide(f"svc-{prefix}-{n}", raws[n % len(raws)], records[n % len(records)], model)

    def peewee_insert(n: int) -> None:
        with database.atomic():
            Prediction.insert(dict(template, observation_id=f"pw-{prefix}-{n}")).execute()

    pg_conn, pg_insert = _psycopg2_insert(url, template)
    steps = {"service": service_write, "peewee": peewee_insert, "psycopg2": pg_insert}
    ids = {name: itertools.count() for name in steps}
    times = {name: [] for name in steps}
    log(f"insert: {count} committed inserts each for the service's write, peewee and psycopg2, in {rounds} rounds")
    try:
        for _ in range(rounds):  # interleaved, so drift (autovacuum, another job) hits all three alike
            for name, step in steps.items():
                times[name] += _timed_us(step, max(1, count // rounds), ids[name])
        variants = _write_timing_variants(count)
    finally:
        pg_conn.close()
        database.close()
    return {"postgres": _server_settings(url), "write_function": "service.predictions.decide (constant model)",
            **{name: _summary(t) for name, t in times.items()}, "write_timing_variants": variants}


def _write_timing_variants(count: int) -> dict:
    log(f"insert: bench.insert_timing's variants, {count} inserts each ...")
    return insert_variants_us(count)
