"""The request log: one JSON line per request on the logger "service.requests", and the request id.

Each line holds exactly ``FIELDS``: values the service chose or validated (request id, key id of a key that
authenticated, a known method, the URL rule, status, latency, a validated observation id). Never the body, the
key, a header value other than a well-formed X-Request-ID, the query string or the raw path: those carry
protected attributes and free text the log must not keep.
"""
from __future__ import annotations

import json
import logging
import re
import time
import uuid

from flask import Flask, g, request

log = logging.getLogger("service.requests")
FIELDS = ("request_id", "key_id", "method", "route", "status", "latency_ms", "observation_id")
REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Any token is a valid HTTP method, so an unknown one would let a client write arbitrary text into the log.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps would build this encoder for every line


def _request_id() -> str:
    # A caller's id lets its logs and ours be joined; anything else is replaced, never logged.
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    return offered if _SAFE_REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex


def start_request() -> None:
    """before_request (register first): the request id and the start time."""
    g.request_started = time.perf_counter()
    g.request_id = _request_id()


def note_observation_id(observation_id: str) -> None:
    """Record the observation id of a request whose envelope validated, for its log line."""
    g.observation_id = observation_id


def finish_request(response):
    """after_request: write the request's line and echo its id to the client."""
    # Each name of g or request goes through a context lookup: the objects are looked up once (issue 15).
    state, current = g._get_current_object(), request._get_current_object()
    started = state.get("request_started")
    request_id = state.get("request_id") or _request_id()
    rule = current.url_rule
    line = {
        "request_id": request_id,
        "key_id": state.get("key_id"),
        "method": current.method if current.method in _METHODS else "OTHER",
        "route": rule.rule if rule is not None else None,
        "status": response.status_code,
        "latency_ms": round((time.perf_counter() - started) * 1000, 3) if started is not None else None,
        "observation_id": state.get("observation_id"),
    }
    if log.isEnabledFor(logging.INFO):
        # log.info, less its search of the stack for the caller's file and line, which the bare line never shows.
        log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, _ENCODE(line), None, None))
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


def init_app(app: Flask) -> None:
    """Register the log's hooks; call before any other before_request so every request gets an id and a line."""
    # peewee logs every query WITH its parameters at DEBUG: the observation's protected attributes would reach the
    # log whenever the root level is DEBUG. The service never wants those lines, whatever LOG_LEVEL says.
    logging.getLogger("peewee").setLevel(logging.INFO)
    app.before_request(start_request)
    app.after_request(finish_request)
