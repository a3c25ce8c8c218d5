"""Logging decisions and outcomes, one transaction each, with the observation id as the idempotency key.

Framework-free on purpose (no Flask): a batch scorer or a queue consumer can reuse it unchanged.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from functools import lru_cache

from peewee import OperationalError, __exception_wrapper__

from models import AGE_GROUP_COLUMN, STOP_COLUMNS, Outcome, Prediction, database
from pipeline.schema import age_group
from service import json_text


class PredictionError(Exception):
    """A request that is well formed but cannot be honoured; ``fields`` names the culprit."""

    def __init__(self, message: str, fields: dict | None = None):
        super().__init__(message)
        self.fields = fields or {}


class UnknownObservation(PredictionError):
    """No prediction was logged under this observation id."""


class ObservationConflict(PredictionError):
    """The observation id was already used for a different observation."""


class OutcomeConflict(PredictionError):
    """A different outcome was already recorded and this one is not marked as a correction."""


@dataclass(frozen=True)
class Decision:
    """What the service answered for one observation, plus its current outcome."""

    observation_id: str
    observation: dict
    should_search: bool
    probability: float
    model_version: str
    contraband_found: bool | None
    reasons: dict | None = None
    # For the metrics only, not part of the answer (so not compared): answered from the log for a retried id; the
    # shadow model's version and answer when one scored a new decision (never returned to clients).
    replayed: bool = field(default=False, compare=False)
    shadow_version: str | None = field(default=None, compare=False)
    shadow_should_search: bool | None = field(default=None, compare=False)

    @classmethod
    def from_row(cls, row: Prediction) -> "Decision":
        """The decision as stored, so that retries get byte-identical answers."""
        return cls(row.observation_id, json.loads(row.observation), bool(row.should_search),
                   float(row.probability), row.model_version, row.contraband_found,
                   None if row.reasons is None else json.loads(row.reasons))


def _jsonable(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def observation_digest(record: dict) -> str:
    """sha256 of the canonical JSON of a normalised record: equal records, equal digests, whatever the spelling."""
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), default=_jsonable)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _prediction_row(observation_id: str, raw: dict, record: dict, digest: str, probability: float, model,
                    shadow=None, reasons: dict | None = None) -> dict:
    row = {
        "observation_id": observation_id,
        "observation": json_text.dumps(raw, ensure_ascii=False),
        "observation_digest": digest,
    }
    row.update({column.name: record[field] for field, column in STOP_COLUMNS.items()})
    row.update({
        AGE_GROUP_COLUMN.name: age_group(record["SubjectAge"]),
        "probability": probability,
        "should_search": probability >= model.threshold,
        "threshold": model.threshold,
        "model_version": model.version,
        "received_at": _utcnow(),
        **_shadow_columns(record, shadow),
        "reasons": None if reasons is None else json_text.dumps(reasons, ensure_ascii=False),
        "leading_reason": reasons["raising"][0]["sentence"] if reasons and reasons["raising"] else None,
    })
    return row


def _shadow_columns(record: dict, shadow) -> dict:
    """The shadow version's answer (its fast path: ~5 us); all None without one, so the insert keeps one shape."""
    if shadow is None:
        return {"shadow_version": None, "shadow_probability": None, "shadow_should_search": None}
    probability = shadow.predict_one(record)
    return {"shadow_version": shadow.version, "shadow_probability": probability,
            "shadow_should_search": probability >= shadow.threshold}


@lru_cache(maxsize=8)
def _insert_statement(database_class: type, columns: tuple[str, ...]) -> tuple[str, tuple]:
    """(SQL, converters) of INSERT ... ON CONFLICT (observation_id) DO NOTHING RETURNING id, built once by peewee.

    Building the query is most of peewee's per-insert overhead, so it is built once per database class and row shape
    from the Prediction model itself; each insert then only converts its values with the field converters peewee
    itself would apply. Measured, the insert alone on Postgres 15 with synchronous_commit on (median wall / client
    CPU per insert, 900 inserts each; ``.venv/bin/python -m bench.speed run``, bench/results/
    speed-20261128T194009Z.json): peewee read-then-insert 2526 / 1689 us; peewee ON CONFLICT 908 / 487 us; this
    prepared ON CONFLICT 497 / 117 us; bare psycopg2 (the floor) 489 / 106 us.
    """
    fields = [Prediction._meta.fields[name] for name in columns]
    query = (Prediction.insert_many([tuple(None for _ in fields)], fields=fields)
             .on_conflict(conflict_target=[Prediction.observation_id], action="NOTHING")
             .returning(Prediction.id))
    sql, params = query.sql()
    if len(params) != len(fields):  # peewee added a column (a field default): the values would be misaligned
        raise RuntimeError(f"the prepared Prediction insert expects {len(params)} values, not {len(fields)}")
    return sql, tuple(field.db_value for field in fields)


def _insert_new(row: dict) -> bool:
    """Insert the row unless its observation id is taken; True when it was inserted. One statement, one round trip.

    The statement runs alone in autocommit mode, so it is its own transaction: when it returns, the row is committed
    (synchronous_commit as the server has it: on) or nothing was written.
    """
    sql, converters = _insert_statement(type(database.obj), tuple(row))
    cursor = database.execute_sql(sql, [convert(value) for convert, value in zip(converters, row.values())])
    with __exception_wrapper__:  # SQLite finishes (and commits) the statement only once its RETURNING row is read
        return bool(cursor.fetchall())


def _stored_answer(row: Prediction, digest: str) -> Decision:
    if row.observation_digest != digest:
        raise ObservationConflict(
            f"observation id {row.observation_id!r} was already used for a different observation; "
            "send a new id for a new stop", {"observation_id": "already used for a different observation"})
    return replace(Decision.from_row(row), replayed=True)


def decide(observation_id: str, raw: dict, record: dict, model, shadow=None) -> Decision:
    """Score a validated record and log it, or return the stored answer when this id was seen with it before.

    The insert is one statement: a failure before its commit leaves no row and answers 503. A connection lost
    after the server committed but before the answer arrived is the one ambiguous case; the client's retry with
    the same id then lands on the conflict branch and gets the stored answer, so nothing is lost or doubled.
    The insert costs ~0.5 ms on Postgres (figures in ``_insert_statement``), within 2% of bare psycopg2.
    ``shadow``, when given, scores the same record; its answer is stored on the row, never returned.
    """
    digest = observation_digest(record)
    probability = model.predict_one(record)
    reasons = model.reasons(record)
    row = _prediction_row(observation_id, raw, record, digest, probability, model, shadow, reasons)
    if _insert_new(row):
        return Decision(observation_id, raw, row["should_search"], probability, model.version, None, reasons,
                        shadow_version=row["shadow_version"], shadow_should_search=row["shadow_should_search"])
    # The id is taken (a retry, a concurrent twin, or a conflict). ON CONFLICT waited for the other writer's
    # commit, so the row is visible now.
    existing = Prediction.get_or_none(Prediction.observation_id == observation_id)
    if existing is None:  # rows are never deleted by the service; only an operator could cause this
        raise OperationalError(f"the row holding observation id {observation_id!r} vanished during the request")
    return _stored_answer(existing, digest)


def _locked_prediction(observation_id: str) -> Prediction:
    query = Prediction.select().where(Prediction.observation_id == observation_id)
    row = database.obj.locking_rows(query).get_or_none()
    if row is None:
        raise UnknownObservation(f"no prediction was logged with observation id {observation_id!r}; "
                                 "send the observation to /should_search first",
                                 {"observation_id": "unknown"})
    return row


def record_outcome(observation_id: str, contraband_found: bool, correction_reason: str | None = None) -> Decision:
    """Append an outcome and make it current; a change needs ``correction_reason``, a repeat changes nothing."""
    with database.obj.write_transaction():
        row = _locked_prediction(observation_id)
        if row.contraband_found == contraband_found:
            return Decision.from_row(row)
        if row.contraband_found is not None and correction_reason is None:
            raise OutcomeConflict(
                f"observation {observation_id!r} already has contraband_found={str(row.contraband_found).lower()}; "
                'to change it send {"correction": {"reason": "..."}} with the new value',
                {"contraband_found": "differs from the recorded outcome"})
        is_correction = row.contraband_found is not None
        now = _utcnow()
        Outcome.insert(prediction=row.id, contraband_found=contraband_found, is_correction=is_correction,
                       correction_reason=correction_reason if is_correction else None, received_at=now).execute()
        Prediction.update(contraband_found=contraband_found, outcome_at=now).where(
            Prediction.id == row.id).execute()
        row.contraband_found, row.outcome_at = contraband_found, now
    return Decision.from_row(row)


def _stamp(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat() + "Z"  # stored as naive UTC


def stored_decision(observation_id: str) -> dict:
    """One logged decision as stored: observation, answer, model version, reasons, and the outcome's history.

    Read-only: one SELECT of the row and one of its outcomes, oldest first (corrections follow what they correct).
    """
    row = Prediction.get_or_none(Prediction.observation_id == observation_id)
    if row is None:
        raise UnknownObservation(f"no decision was logged with observation id {observation_id!r}",
                                 {"observation_id": "unknown"})
    history = [{"contraband_found": outcome.contraband_found, "is_correction": outcome.is_correction,
                "correction_reason": outcome.correction_reason, "received_at": _stamp(outcome.received_at)}
               for outcome in row.outcomes.order_by(Outcome.received_at, Outcome.id)]
    decision = Decision.from_row(row)
    return {"observation_id": decision.observation_id, "observation": decision.observation,
            "should_search": decision.should_search, "probability": decision.probability,
            "threshold": float(row.threshold), "model_version": decision.model_version,
            "received_at": _stamp(row.received_at), "reasons": decision.reasons,
            "outcome": {"contraband_found": row.contraband_found, "recorded_at": _stamp(row.outcome_at),
                        "history": history}}
