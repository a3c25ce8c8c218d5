"""The OpenAPI 3 description, generated from pipeline.schema.FIELDS so the field list and codes have one source.

Every value the document calls valid is accepted and every value it calls invalid is refused: the patterns below
describe pipeline.schema's and service.requests' checks exactly, and tests/test_fuzz_openapi.py holds them to it.
"""
from __future__ import annotations

import re
from functools import lru_cache

from pipeline.schema import CONTROL_CHARACTERS, FIELDS, MAX_AGE, MAX_TEXT_LENGTH, MIN_AGE, WHITESPACE
from service.requests import MAX_ID_LENGTH

_BLANK = f"[{WHITESPACE}]"
_TEXT = f"[^\\x00{CONTROL_CHARACTERS}]"  # a character text fields accept
_SOLID = f"[^\\x00{CONTROL_CHARACTERS}{WHITESPACE}]"  # ... that is not whitespace either
TEXT_PATTERN = f"^{_TEXT}*{_SOLID}{_TEXT}*$"
BLANK_OR_TEXT_PATTERN = f"^{_TEXT}*$"  # optional text: blank means null
# Observation ids refuse every C0 control, tab and line feed included, as well as the C1 controls.
_ID_CHAR = "[^\\x00-\\x1f\\x7f-\\x9f]"
ID_PATTERN = f"^{_ID_CHAR}*[^\\x00-\\x1f\\x7f-\\x9f{WHITESPACE}]{_ID_CHAR}*$"


_MONTH_DAYS = (("(0[13578]|1[02])", "(0[1-9]|[12][0-9]|3[01])"), ("(0[469]|11)", "(0[1-9]|[12][0-9]|30)"),
               ("02", "(0[1-9]|1[0-9]|2[0-8])"))
_YEAR, _LEAP_YEAR = "20[0-9][0-9]", "20([02468][048]|[13579][26])"  # 2000-2099, where every 4th year is leap
_HOUR, _MINUTE = "([01][0-9]|2[0-3])", "[0-5][0-9]"
ISO_DATE = "(" + "|".join(f"{_YEAR}-{m}-{d}" for m, d in _MONTH_DAYS) + f"|{_LEAP_YEAR}-02-29)"
ISO_TIME = f"{_HOUR}:{_MINUTE}(:{_MINUTE}(\\.[0-9]{{1,6}})?)?(Z|[+-]{_HOUR}:{_MINUTE})?"


def _datetime_pattern() -> str:
    """Real calendar dates of 2000-2099, as CT '05/16/2018 04:08:00 AM' or ISO 8601, whitespace around ignored."""
    ct_date = "(" + "|".join(f"{m}/{d}/{_YEAR}" for m, d in _MONTH_DAYS) + f"|02/29/{_LEAP_YEAR})"
    ct_time = f"(0[1-9]|1[0-2]):{_MINUTE}:{_MINUTE}{_BLANK}+[AaPp][Mm]"
    return f"^{_BLANK}*({ct_date}{_BLANK}+{ct_time}|{ISO_DATE}((T|{_BLANK}+){ISO_TIME})?){_BLANK}*$"


def _integer_of_at_most(digits: int) -> dict:
    # An integer id is stored as its decimal text, so its length (with the minus sign) is what is bounded.
    return {"type": "integer", "minimum": -(10 ** (digits - 1) - 1), "maximum": 10 ** digits - 1}


def _text(pattern: str, max_length: int, description: str) -> dict:
    return {"type": "string", "pattern": pattern, "maxLength": max_length, "description": description}


_NO_CONTROLS = "No NUL or other control characters except tab, CR and LF; runs of whitespace count as one space."
_KIND_SCHEMAS = {
    "bool": {"type": "boolean"},
    "age": {"type": "number", "multipleOf": 1, "minimum": MIN_AGE, "maximum": MAX_AGE,
            "description": "whole years (49 or 49.0)"},
    "datetime": {"type": "string", "pattern": _datetime_pattern(), "example": "05/16/2018 04:08:00 AM",
                 "description": "A real date in 2000-2099 as written (an offset is then converted to Connecticut "
                                "time); 'MM/DD/YYYY hh:mm:ss AM' or ISO 8601 'YYYY-MM-DD[Thh:mm[:ss[.ffffff]]"
                                "[Z|+hh:mm]]'; surrounding whitespace is ignored."},
}


def code_pattern(codes) -> str:
    """What pipeline.schema accepts for a code field: a code in any case of its ASCII letters, blanks around it."""
    # schema.py strips WHITESPACE and upper-cases ASCII only, so "ı" or a full-width "Ｖ" is not "I" or "V"
    spelled = ("".join(f"[{c.upper()}{c.lower()}]" if c.isascii() and c.isalpha() else re.escape(c) for c in code)
               for code in codes)
    return f"^{_BLANK}*({'|'.join(spelled)}){_BLANK}*$"


def _field_schema(field) -> dict:
    if field.kind == "code":
        # a pattern, not an enum: an enum would call the " v " the validators accept invalid
        schema = {"type": "string", "pattern": code_pattern(field.codes), "maxLength": MAX_TEXT_LENGTH,
                  "example": field.codes[0], "description": f"{field.description} One of {', '.join(field.codes)}; "
                  "case-insensitive (ASCII letters), surrounding whitespace ignored."}
    elif field.kind in _KIND_SCHEMAS:
        schema = dict(_KIND_SCHEMAS[field.kind])
        schema["description"] = (schema.get("description", "") + " " + field.description).strip()
    else:
        text = _text(TEXT_PATTERN if field.required else BLANK_OR_TEXT_PATTERN, MAX_TEXT_LENGTH,
                     f"{field.description} {_NO_CONTROLS}" + ("" if field.required else
                                                              " Null, empty or blank means unknown."))
        schema = text if field.kind == "text" else {
            "description": text["description"],
            "oneOf": [{**text, "description": "as text (leading zeros kept)"},
                      {**_integer_of_at_most(MAX_TEXT_LENGTH), "description": "as an integer"}]}
    if field.name == "InterventionLocationName":  # a length no pattern can state; the validator checks it
        schema["description"] += f" Stored upper-cased, which must also fit {MAX_TEXT_LENGTH} characters ('ß' -> 'SS')."
    if not field.required:
        (schema["oneOf"][0] if "oneOf" in schema else schema)["nullable"] = True
    return schema


def _observation() -> dict:
    return {"type": "object", "additionalProperties": False, "required": [f.name for f in FIELDS],
            "properties": {f.name: _field_schema(f) for f in FIELDS},
            "description": "One CTRP3 stop record. Unseen departments or statute reasons are valid."}


def _id(allow_int: bool = False) -> dict:
    string = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH, "pattern": ID_PATTERN,
              "description": "Idempotency key: a retry with the same id and observation gets the stored answer. "
                             "Not blank; no control characters (tab and line feed included)."}
    return {"oneOf": [string, _integer_of_at_most(MAX_ID_LENGTH)]} if allow_int else string


def _object(required: list, properties: dict, optional: dict | None = None) -> dict:
    return {"type": "object", "additionalProperties": False, "required": required,
            "properties": {**properties, **(optional or {})}}


_CORRECTION = {"correction": {
    "type": "object", "required": ["reason"], "additionalProperties": False,
    "properties": {"reason": _text(TEXT_PATTERN, MAX_TEXT_LENGTH, f"Not blank. {_NO_CONTROLS}")},
    "description": "Send to change an outcome already recorded; without it a different outcome gets 409. "
                   "Every outcome is kept in the history."}}
_DECISION = {"observation_id": {"type": "string"}, "should_search": {"type": "boolean"},
             "probability": {"type": "number", "minimum": 0, "maximum": 1}, "model_version": {"type": "string"}}
_NUMBER = {"type": "number"}
_REASON = _object(["field", "feature", "value", "effect", "sentence", "protected"], {
    "field": {"type": "string", "enum": [f.name for f in FIELDS], "description": "the input field"},
    "feature": {"type": "string", "description": "the model's feature from that field (the field itself, or "
                                                 "hour, time_missing, day_of_week, month, year of the stop time)"},
    "value": {"oneOf": [{"type": "string"}, _NUMBER, {"type": "boolean"}],
              "description": "the value as the model saw it: a category normalised (an unseen one is 'other', none "
                             "is 'missing'), a code as in the data dictionary, a time feature as read"},
    "effect": {**_NUMBER, "description": "change in log-odds against the reference (the average training record)"},
    "sentence": {"type": "string", "description": "the reason in words, from the data dictionary's code meanings"},
    "protected": {"type": "boolean", "description": "true only for a model variant that uses a protected "
                                                    "attribute or the officer id (the default model uses "
                                                    "neither); the sentence then says so"}})
_REASONS = {**_object(["reference", "raising", "lowering"], {
    "reference": _object(["log_odds", "probability", "description"], {
        "log_odds": _NUMBER, "probability": {"type": "number", "minimum": 0, "maximum": 1},
        "description": {"type": "string", "description": "what the reference is; the model card's `reasons` "
                                                         "holds each feature's training average"}}),
    "raising": {"type": "array", "maxItems": 3, "items": {"$ref": "#/components/schemas/Reason"},
                "description": "up to three features that raised the probability, largest effect first"},
    "lowering": {"type": "array", "maxItems": 3, "items": {"$ref": "#/components/schemas/Reason"},
                 "description": "up to three features that lowered it, largest effect first"}}),
    "nullable": True,
    "description": "Why: reference.log_odds plus every feature's effect (all of them, not only the six shown) is "
                   "the model's log-odds. Null for a model without a fast scoring form (random forest)."}
_ERROR = _object(["status", "error", "message", "fields"], {
    "status": {"type": "integer"}, "error": {"type": "string", "description": "short machine-readable code"},
    "message": {"type": "string"},
    "fields": {"type": "object", "additionalProperties": {"type": "string"}, "description": "problem by field"}})


def _error(text: str) -> dict:
    return {"description": text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


_DATABASE_ERROR = {"503": "Database unavailable or schema not migrated; nothing was recorded. Retry later."}
_BODY_ERRORS = {
    "400": "Malformed JSON or invalid fields (see `fields`); nothing was recorded.",
    "413": "Body larger than MAX_CONTENT_LENGTH.",
    "415": "Content-Type is not application/json, or a Content-Encoding other than identity.",
    **_DATABASE_ERROR,
}


def _operation(roles: tuple[str, ...], operation: dict, errors: dict) -> dict:
    """An operation that needs a key of one of ``roles``: its security requirement and every error it can answer."""
    responses = {**operation.pop("responses"), **{code: _error(text) for code, text in errors.items()}}
    responses["401"] = _error("No key, a malformed, unknown or revoked key (`WWW-Authenticate: Bearer`).")
    responses["403"] = _error(f"A valid key whose role may not call this; needs {' or '.join(roles)}.")
    return {**operation, "security": [{"bearerKey": []}], "responses": responses,
            "description": f"Needs an API key of role {' or '.join(roles)}."}


def _post(summary: str, roles: tuple[str, ...], request: str, response: str, extra_errors: dict) -> dict:
    return {"post": _operation(roles, {
        "summary": summary,
        "responses": {"200": {"description": "OK", "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{response}"}}}}},
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{request}"}}}}}, {**_BODY_ERRORS, **extra_errors})}


# What str.strip() removes around a report parameter: the whitespace above and the controls that count as space.
_STRIPPED = f"[{WHITESPACE}\\x0b\\x0c\\x1c-\\x1f\\x85]"
_INSTANT = {"type": "string", "pattern": f"^{_STRIPPED}*({ISO_DATE}((T| ){ISO_TIME})?)?{_STRIPPED}*$"}
_FILTER_TEXT = _text(BLANK_OR_TEXT_PATTERN, MAX_TEXT_LENGTH, "blank means no filter")
_REPORT_PARAMETERS = (
    ("since", _INSTANT, "first day of received_at to include (YYYY-MM-DD or ISO 8601, 2000-2099); before until"),
    ("until", _INSTANT, "last day of received_at to include (a bare date covers the whole day); after since"),
    ("department", _FILTER_TEXT, "only this department"),
    ("model_version", _FILTER_TEXT, "only this model version"),
    ("min_department", {"type": "integer", "minimum": 1},
     "fewest outcomes a department needs for a fairness verdict (default 100)"),
    ("min_group", {"type": "integer", "minimum": 1}, "fewest outcomes a group needs to be compared (default 20)"),
)
_ANALYST = ("analyst", "admin")


def _report_get(summary: str, media_type: str) -> dict:
    # allowEmptyValue: the report's filter form submits every field, blank when unused, and blank means the default.
    parameters = [{"name": name, "in": "query", "required": False, "schema": schema, "description": text,
                   "allowEmptyValue": True} for name, schema, text in _REPORT_PARAMETERS]
    return {"get": _operation(_ANALYST, {
        "summary": summary, "parameters": parameters,
        "responses": {"200": {"description": "OK", "content": {media_type: {}}}}}, {
        "400": "Unknown, invalid or repeated parameter (see `fields`)",
        "503": "Database unavailable, schema not migrated, or another report being computed on this server "
               "(`report_busy`); retry after `Retry-After` seconds."})}


def _public_get(summary: str, responses: dict) -> dict:
    return {"get": {"summary": summary, "security": [], "responses": responses}}


def _schemas() -> dict:
    """The document's component schemas: the observation, each request and response body, and the error."""
    return {
        "Observation": _observation(), "Error": _ERROR,
        "ShouldSearchRequest": _object(["observation_id", "observation"], {
            "observation_id": _id(), "observation": {"$ref": "#/components/schemas/Observation"}}),
        "Decision": _object(list(_DECISION), _DECISION),
        "Reason": _REASON, "Reasons": _REASONS,
        "Answer": _object([*_DECISION, "reasons"], {**_DECISION, "reasons": {"$ref": "#/components/schemas/Reasons"}}),
        "StoredDecision": _stored_decision(),
        "SearchResultRequest": _object(["observation_id", "contraband_found"], {
            "observation_id": _id(), "contraband_found": {"type": "boolean"}}, _CORRECTION),
        "Outcome": _object([*_DECISION, "contraband_found"], {**_DECISION, "contraband_found": {"type": "boolean"}}),
        "PredictRequest": _object(["id", "observation"], {
            "id": _id(allow_int=True), "observation": {"$ref": "#/components/schemas/Observation"}}),
        "PredictResponse": _object(["ContrabandIndicator", "proba"], {
            "ContrabandIndicator": {"type": "boolean"}, "proba": {"type": "number", "minimum": 0, "maximum": 1}}),
        "UpdateRequest": _object(["id", "true_class"], {
            "id": _id(allow_int=True),
            "true_class": {"oneOf": [{"type": "boolean"}, {"type": "integer", "enum": [0, 1]}]}}, _CORRECTION),
        "UpdateResponse": _object(["id", "observation", "proba", "ContrabandIndicator", "true_class",
                                   "model_version"], {
            "id": {"type": "string"}, "observation": {"$ref": "#/components/schemas/Observation"},
            "proba": {"type": "number"}, "ContrabandIndicator": {"type": "boolean"},
            "true_class": {"type": "integer", "enum": [0, 1]}, "model_version": {"type": "string"}}),
        "Health": {"type": "object", "properties": {
            "status": {"type": "string"}, "model_version": {"type": "string", "description": "the live version"},
            "shadow_version": {"type": "string", "nullable": True,
                               "description": "the version scoring beside it, its answers only logged"}}},
    }


def _stored_decision() -> dict:
    stamp = {"type": "string", "format": "date-time", "description": "UTC"}
    history = _object(["contraband_found", "is_correction", "correction_reason", "received_at"], {
        "contraband_found": {"type": "boolean"}, "is_correction": {"type": "boolean"},
        "correction_reason": {"type": "string", "nullable": True}, "received_at": stamp})
    return _object(["observation_id", "observation", "should_search", "probability", "threshold", "model_version",
                    "received_at", "reasons", "outcome"], {
        "observation_id": {"type": "string"}, "observation": {"$ref": "#/components/schemas/Observation"},
        "should_search": {"type": "boolean"}, "probability": {"type": "number", "minimum": 0, "maximum": 1},
        "threshold": {"type": "number", "minimum": 0, "maximum": 1}, "model_version": {"type": "string"},
        "received_at": stamp, "reasons": {"$ref": "#/components/schemas/Reasons"},
        "outcome": _object(["contraband_found", "recorded_at", "history"], {
            "contraband_found": {"type": "boolean", "nullable": True, "description": "the current outcome"},
            "recorded_at": {**stamp, "nullable": True},
            "history": {"type": "array", "items": history, "description": "every outcome report, oldest first; "
                                                                          "corrections follow what they correct"}})})


def _decision_get() -> dict:
    return {"get": _operation(_ANALYST, {
        "summary": "One stored decision: observation, answer, model version, reasons and outcome history",
        "parameters": [{"name": "observation_id", "in": "path", "required": True, "schema": _id(),
                        "description": "the id the decision was logged under (percent-encoded)"}],
        "responses": {"200": {"description": "OK", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/StoredDecision"}}}}}}, {
        "400": "The id is not a valid observation id (see `fields`).",
        "404": "No decision was logged under this id.", **_DATABASE_ERROR})}


def _paths() -> dict:
    """Every route with its operation: who may call it, what it takes, and every status it can answer."""
    conflict = {"422": "This observation id was already used for a different observation."}
    outcome = {"404": "No prediction was logged under this id.",
               "409": "A different outcome is recorded; resend with `correction` to change it."}
    officer = ("officer", "admin")
    return {
        "/should_search": _post("Should this stopped vehicle be searched, and why?", officer,
                                "ShouldSearchRequest", "Answer", conflict),
        "/decisions/{observation_id}": _decision_get(),
        "/search_result": _post("Record whether a search found contraband", _ANALYST, "SearchResultRequest",
                                "Outcome", outcome),
        "/predict": _post("Capstone alias of /should_search", officer, "PredictRequest", "PredictResponse",
                          conflict),
        "/update": _post("Capstone alias of /search_result", _ANALYST, "UpdateRequest", "UpdateResponse", outcome),
        "/health": _public_get("Model loaded, database answering, schema current", {
            "200": {"description": "healthy", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Health"}}}},
            "503": _error("unhealthy; `fields` names each failing component")}),
        "/openapi.json": _public_get("This document", {"200": {"description": "OpenAPI 3", "content": {
            "application/json": {"schema": {"type": "object"}}}}}),
        "/metrics": {"get": _operation(("monitor", "admin"), {
            "summary": "Prometheus metrics of every worker of this instance",
            "responses": {"200": {"description": "Prometheus text format 0.0.4", "content": {
                "text/plain": {"schema": {"type": "string"}}}}}}, {})},
        "/report": _report_get("The monitoring report (client report tables 1-6) as JSON", "application/json"),
        "/report.html": _report_get("The monitoring report as a page with tables and charts", "text/html"),
    }


@lru_cache(maxsize=1)
def openapi_spec() -> dict:
    """The service's OpenAPI 3.0 document."""
    return {"openapi": "3.0.3",
            "info": {"title": "CTRP3 search recommendation service", "version": "1.0.0",
                     "description": "Decides whether a stopped vehicle should be searched and logs outcomes "
                                    "for performance and fairness monitoring. Every error has the shape of "
                                    "`Error`. Keys are created with `python -m service.keys create --role ROLE`."},
            "paths": _paths(),
            "components": {"schemas": _schemas(), "securitySchemes": {"bearerKey": {
                "type": "http", "scheme": "bearer", "bearerFormat": "<key_id>.<secret>",
                "description": "An API key; roles: officer (/should_search, /predict), analyst (/search_result, "
                               "/update, /decisions/{id}, the report), monitor (/metrics), admin (everything)."}}}}
