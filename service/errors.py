"""The one JSON error shape, and the handlers that turn every failure into it.

Every error body is ``{"status": int, "error": short-code, "message": text, "fields": {field: problem}}``,
built only by ``error_response``.
"""
from __future__ import annotations

import logging
import traceback

from flask import Flask, current_app, g, jsonify
from peewee import InterfaceError, InternalError, OperationalError
from werkzeug.exceptions import HTTPException

from models import database
from service import predictions
from service.health import first_line
from service.monitoring import cause_of, count_unavailable

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A request the service refuses, with its HTTP status, short code, message and per-field problems."""

    def __init__(self, status: int, error: str, message: str, fields: dict | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.error, self.message = status, error, message
        self.fields = fields or {}
        self.headers = headers or {}


def _printable(text) -> str:
    # Field names echo client input, which may hold NULs or lone surrogates; escape them so the body stays valid.
    text = str(text)
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def error_body(status: int, error: str, message: str, fields: dict | None = None) -> dict:
    """THE error shape; error_response sends it from Flask, service.gunicorn_worker before Flask is reached."""
    return {"status": status, "error": error, "message": message,
            "fields": {_printable(k): _printable(v) for k, v in (fields or {}).items()}}


def error_response(status: int, error: str, message: str, fields: dict | None = None, headers: dict | None = None):
    """Build THE error response; every error the service returns goes through here."""
    response = jsonify(error_body(status, error, message, fields))
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _http_error(exc: HTTPException):
    code = exc.code or 500
    short = (exc.name or "error").lower().replace(" ", "_")
    headers = {k: v for k, v in exc.get_headers() if k.lower() in ("allow", "retry-after")}
    message = exc.description or exc.name
    if code == 413:
        message = f"the body is larger than the limit of {current_app.config['MAX_CONTENT_LENGTH']} bytes"
    return error_response(code, short, message, headers=headers)


def _database_unavailable(exc: Exception):
    # Down, restarting, killed mid-request, a statement or lock timeout, SQLite's "database is locked": all
    # transient. Retry-After 1 s brings clients back right after recovery (the pool reconnects by itself). Only the
    # first line of the driver's message is logged: later lines (DETAIL, CONTEXT) may quote row values.
    log.error("database unavailable: %s", first_line(exc))
    count_unavailable(cause_of(exc))
    return error_response(503, "database_unavailable",
                          "The database is unavailable or too slow; retry in a second with the same id. A write "
                          "either committed whole or not at all: if it did, the retry returns the stored answer.",
                          headers={"Retry-After": "1"})


# SQLSTATE classes of a server that is refusing for now, not of a bug. psycopg2 raises some of them as
# InternalError: 25006 read_only_sql_transaction (a failover to a replica, a read-only maintenance window) and
# 25P03 idle_in_transaction_session_timeout; 57 (operator intervention: shutdown, cancel), 53 (out of
# connections, disk full), 40 (deadlock, serialisation) and 08 (connection lost) usually come as OperationalError.
TRANSIENT_SQLSTATE_CLASSES = ("08", "25", "40", "53", "57")


def _internal_error(exc: InternalError):
    code = getattr(getattr(exc, "orig", None), "pgcode", None) or ""
    if not code.startswith(TRANSIENT_SQLSTATE_CLASSES):
        return _unexpected(exc)
    # The session may keep the state that refused (a read-only default outlives the server's reset): never reuse it.
    database.obj.discard()
    return _database_unavailable(exc)


def _unexpected(exc: Exception):
    # The type and the frames (file, line, function) locate the bug. The message is left out because it may quote
    # request values (a protected attribute, free text), and so are the path, the query and each frame's source
    # line (it can hold a literal message).
    frames = "\n".join(f'  File "{f.filename}", line {f.lineno}, in {f.name}'
                       for f in traceback.extract_tb(exc.__traceback__))
    log.error("unhandled %s.%s in request %s (message withheld: it may hold request values)\n%s",
              type(exc).__module__, type(exc).__qualname__, g.get("request_id"), frames)
    return error_response(500, "internal_error", "Unexpected server error; it has been logged.")


def _api_error(exc: ApiError):
    if exc.status == 503:  # schema_out_of_date
        count_unavailable(exc.error)
    return error_response(exc.status, exc.error, exc.message, exc.fields, exc.headers)


_DOMAIN_ERRORS = {
    predictions.UnknownObservation: (404, "unknown_observation"),
    predictions.ObservationConflict: (422, "observation_conflict"),
    predictions.OutcomeConflict: (409, "outcome_conflict"),
}


def _domain_error(exc: predictions.PredictionError):
    status, code = _DOMAIN_ERRORS[type(exc)]
    return error_response(status, code, str(exc), exc.fields)


def register_error_handlers(app: Flask) -> None:
    """Route every error, expected or not, through ``error_response``."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(predictions.PredictionError, _domain_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(OperationalError, _database_unavailable)
    app.register_error_handler(InterfaceError, _database_unavailable)
    app.register_error_handler(InternalError, _internal_error)
    app.register_error_handler(Exception, _unexpected)
