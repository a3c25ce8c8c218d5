"""Untrusted request bodies: read within a size limit, parse strict JSON, and check each endpoint's envelope.

The observation inside the envelope is checked by ``pipeline.schema.validate_observation``; this module only
adds the envelope around it, so both share one list of field problems.
"""
from __future__ import annotations

import json
import math
import re

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge

from pipeline.schema import ValidationError, text_problem, validate_observation
from service.errors import ApiError

MAX_ID_LENGTH = 128  # Prediction.observation_id is CHAR(128)
# An unterminated string runs to the end of the text: without ``\Z`` the scan restarts at every quote inside it,
# which is quadratic (a 32 KB body of escaped quotes took 6 s of CPU).
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\Z)|[\[\]{}]')


def _bad_json(message: str) -> ApiError:
    return ApiError(400, "invalid_json", message)


def _reject_constant(name: str):
    raise _bad_json(f"{name} is not valid JSON; send numbers as finite decimals")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _bad_json(f"the number {text[:20]} is too large; send finite numbers")
    return value


def _unique_keys(pairs: list) -> dict:
    unique = dict(pairs)
    if len(unique) != len(pairs):  # the keys are listed only when one repeats (every object of every body comes here)
        keys = [key for key, _ in pairs]
        duplicate = next(key for key in keys if keys.count(key) > 1)
        raise ApiError(400, "invalid_json", "a JSON object repeats a key; send each key once",
                       {duplicate: "appears more than once"})
    return unique


def _check_depth(text: str, max_depth: int) -> None:
    # Counting all brackets bounds the depth from above, so the common small body skips the scan.
    if text.count("[") + text.count("{") <= max_depth:
        return
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > max_depth:
                raise _bad_json(f"the JSON is nested deeper than {max_depth} levels")
        elif token in "]}":
            depth -= 1


def parse_json(data: bytes, max_depth: int):
    """Decode a UTF-8 JSON document strictly: no NaN/Infinity, no duplicate keys, bounded nesting."""
    if not data.strip():
        raise _bad_json("the body is empty; send a JSON object")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad_json("the body is not UTF-8 encoded JSON") from None
    _check_depth(text, max_depth)
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float,
                          object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as error:
        # Some of json's messages end with "at" ("Unterminated string starting at"): one "at" before the position.
        where = f"line {error.lineno} column {error.colno}"
        message = f"{error.msg} {where}" if error.msg.endswith(" at") else f"{error.msg} at {where}"
        raise _bad_json(f"the body is not valid JSON: {message}") from None
    except ValueError as error:  # e.g. an integer with more digits than Python converts
        raise _bad_json(f"the body is not usable JSON: {error}") from None


def read_json(request: Request, max_depth: int):
    """The decoded JSON body of a request; 415 unless it is declared as JSON, 413 past MAX_CONTENT_LENGTH."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type",
                       "send the body as JSON with the header Content-Type: application/json")
    # RFC 9110 15.5.16: a content coding the server does not apply is a 415. Decoding gzip would buy little for
    # bodies under 32 KB and would need its own limit against decompression bombs.
    codings = [c.strip().lower() for c in request.headers.get("Content-Encoding", "").split(",") if c.strip()]
    if any(coding != "identity" for coding in codings):
        raise ApiError(415, "unsupported_content_encoding",
                       "send the body uncompressed, without a Content-Encoding (or with Content-Encoding: identity)",
                       {"Content-Encoding": "is not supported; only identity is"})
    return parse_json(_read_body(request), max_depth)


def _read_body(request: Request) -> bytes:
    # werkzeug's readall() stops silently at max_content_length on a chunked body (no Content-Length), which
    # would truncate instead of refusing; reading in bounded steps makes the limit an error on every path. Behind a
    # server that terminates the input (gunicorn sets wsgi.input_terminated), request.stream is a LimitedStream that
    # raises 413 on any read once max_content_length bytes are read, even when the body ended exactly there; the
    # server's own stream is read instead, which ends with the body (after the Content-Length check werkzeug makes).
    limit = request.max_content_length
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()
    terminated = request.environ.get("wsgi.input_terminated")
    stream, chunks, size = (request.environ["wsgi.input"] if terminated else request.stream), [], 0
    while True:
        chunk = stream.read(min(1 << 16, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise RequestEntityTooLarge()
        chunks.append(chunk)


class _Envelope:
    """Collects every problem of one request body, so the client learns them all at once."""

    def __init__(self, body, required: tuple[str, ...], optional: tuple[str, ...] = ()):
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_request", "the body must be a JSON object",
                           {"body": f"must be an object, not {type(body).__name__}"})
        self.body, self.errors = body, {}
        for key in body:
            if key not in required and key not in optional:
                self.errors[str(key)[:MAX_ID_LENGTH]] = "is not a field of this request"
        for key in required:
            if key not in body:
                self.errors[key] = "is required"

    def observation_id(self, key: str, allow_int: bool = False) -> str | None:
        """The idempotency key: a non-empty printable string up to 128 characters (or an int for capstone)."""
        value = self.body.get(key)
        if allow_int and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if key not in self.body:
            return None
        if not isinstance(value, str):
            return self._fail(key, "must be a string" + (" or an integer" if allow_int else ""))
        if not value.strip():
            return self._fail(key, "must not be empty")
        if len(value) > MAX_ID_LENGTH:
            return self._fail(key, f"must be at most {MAX_ID_LENGTH} characters")
        if any(ch < " " or ch == "\x7f" for ch in value):
            return self._fail(key, "must not contain control characters (NUL, newline, ...)")
        return self._fail(key, text_problem(value)) if text_problem(value) else value

    def observation(self, key: str = "observation"):
        """The raw observation and its normalised record; field problems join the envelope's."""
        raw = self.body.get(key)
        if key not in self.body:
            return None, None
        if not isinstance(raw, dict):
            return self._fail(key, "must be a JSON object with the 13 stop-record fields"), None
        try:
            return raw, validate_observation(raw)
        except ValidationError as error:
            self.errors.update(error.errors)
            return raw, None

    def outcome(self, key: str, allow_int: bool = False) -> bool | None:
        """A boolean outcome; capstone's true_class may also be 0 or 1."""
        value = self.body.get(key)
        if isinstance(value, bool):
            return value
        if allow_int and isinstance(value, int) and value in (0, 1):
            return bool(value)
        if key in self.body:
            self._fail(key, "must be true or false" + (" (or 0 or 1)" if allow_int else ""))
        return None

    def correction_reason(self) -> str | None:
        """The reason of an explicit correction: {"correction": {"reason": "..."}}, or None when absent."""
        if "correction" not in self.body:
            return None
        value = self.body["correction"]
        reason = value.get("reason") if isinstance(value, dict) else None
        if not isinstance(value, dict) or set(value) != {"reason"} or not isinstance(reason, str):
            return self._fail("correction", 'must be {"reason": "why the earlier outcome was wrong"}')
        problem = text_problem(reason) or (None if reason.strip() else "must not be empty")
        return self._fail("correction.reason", problem) if problem else reason.strip()

    def _fail(self, key: str, problem: str):
        self.errors[key] = problem
        return None

    def done(self) -> None:
        """Raise one 400 naming every problem found, if any."""
        if self.errors:
            raise ApiError(400, "invalid_request", "the request has invalid fields; see fields for each problem",
                           self.errors)


def observation_request(body, id_key: str = "observation_id", allow_int: bool = False):
    """(observation id, raw observation, normalised record) of /should_search, or of /predict with id_key='id'."""
    envelope = _Envelope(body, (id_key, "observation"))
    observation_id = envelope.observation_id(id_key, allow_int)
    raw, record = envelope.observation()
    envelope.done()
    return observation_id, raw, record


def outcome_request(body, id_key: str = "observation_id", outcome_key: str = "contraband_found",
                    allow_int: bool = False):
    """(observation id, outcome, correction reason) of /search_result, or of /update with its capstone keys."""
    envelope = _Envelope(body, (id_key, outcome_key), ("correction",))
    observation_id = envelope.observation_id(id_key, allow_int)
    outcome = envelope.outcome(outcome_key, allow_int)
    reason = envelope.correction_reason()
    envelope.done()
    return observation_id, outcome, reason


def path_observation_id(value: str) -> str:
    """An observation id taken from a URL path, held to the same rules as in a request body (400 otherwise)."""
    envelope = _Envelope({"observation_id": value}, ("observation_id",))
    observation_id = envelope.observation_id("observation_id")
    envelope.done()
    return observation_id
