"""The floor for bench/speed.py: the minimal app plus the one committed insert, and nothing else.

Each request parses the JSON body, inserts one row shaped like the service's (same table, its indexes, the same
ON CONFLICT ... RETURNING statement, an observation and reasons of the service's sizes) in autocommit on one
psycopg2 connection per worker, and answers a small JSON object: no validation, model, reasons, key check, request
log or metrics. It shows how fast /should_search could be on this machine if everything but its durable write cost
nothing: a service target above this app's figure cannot be met by cutting the service's own work.
``python -m bench.speed run`` serves it beside the others (``--no-floor`` leaves it out), on a throwaway
database of its own (DATABASE_URL).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import psycopg2
from flask import Flask, request

from models import database, database_from_url
from pipeline.schema import validate_observation
from service import predictions

_OBSERVATION = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "observation.json"
# The stored reasons of a typical decision are ~1.4 kB of JSON; the floor's row carries as many bytes.
_REASONS_BYTES = 1400


class _Stand:
    """The model's place in the row: a constant, so the row is built once at start."""

    version, threshold = "floor-constant", 0.5


def _template() -> tuple[str, list, int]:
    """The service's insert statement, a row of the service's shape (values converted once), its id's index."""
    raw = json.loads(_OBSERVATION.read_text())
    record = validate_observation(raw)
    row = predictions._prediction_row("template", raw, record, predictions.observation_digest(record), 0.25,
                                      _Stand(), reasons=None)
    row["reasons"] = json.dumps({"padding": "r" * _REASONS_BYTES})
    database.initialize(database_from_url(os.environ["DATABASE_URL"]))  # peewee writes the statement; no connection
    sql, converters = predictions._insert_statement(type(database.obj), tuple(row))
    return sql, [convert(value) for convert, value in zip(converters, row.values())], list(row).index("observation_id")


def create_app() -> Flask:
    """Parse the body, commit one service-shaped row under its observation_id, answer a small JSON object."""
    app = Flask(__name__)
    sql, values, id_index = _template()
    connection = {}

    def cursor():
        if connection.get("pid") != os.getpid():  # one connection per worker, opened after the fork
            conn = psycopg2.connect(os.environ["DATABASE_URL"])
            conn.autocommit = True
            connection.update(pid=os.getpid(), cursor=conn.cursor())
        return connection["cursor"]

    @app.post("/should_search")
    def should_search():
        body = request.get_json()
        row = list(values)
        row[id_index] = body["observation_id"]
        cur = cursor()
        cur.execute(sql, row)
        cur.fetchall()
        return {"observation_id": body["observation_id"], "should_search": False, "probability": 0.0}

    @app.get("/health")
    def health():
        return {"status": "ok"}

    return app
