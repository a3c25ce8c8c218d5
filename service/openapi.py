"""The OpenAPI 3 description, generated from pipeline.schema.FIELDS so the field list and codes have one source."""
from __future__ import annotations

from functools import lru_cache

from pipeline.schema import FIELDS, MAX_AGE, MAX_TEXT_LENGTH, MIN_AGE
from service.requests import MAX_ID_LENGTH

_KIND_SCHEMAS = {
    "bool": {"type": "boolean"},
    "age": {"type": "number", "minimum": MIN_AGE, "maximum": MAX_AGE, "description": "whole years"},
    "datetime": {"type": "string", "example": "05/16/2018 04:08:00 AM"},
    "text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT_LENGTH},
    "officer": {"oneOf": [{"type": "string", "maxLength": MAX_TEXT_LENGTH}, {"type": "integer"}]},
}


def _field_schema(field) -> dict:
    schema = dict(_KIND_SCHEMAS.get(field.kind, {"type": "string"}))
    if field.kind == "code":
        schema["enum"] = list(field.codes)
        schema["description"] = field.description + " Case-insensitive."
    else:
        schema["description"] = (schema.get("description", "") + " " + field.description).strip()
    if not field.required:
        schema["nullable"] = True
    return schema


def _observation() -> dict:
    return {"type": "object", "additionalProperties": False, "required": [f.name for f in FIELDS],
            "properties": {f.name: _field_schema(f) for f in FIELDS},
            "description": "One CTRP3 stop record. Unseen departments or statute reasons are valid."}


def _id(extra_types=()) -> dict:
    string = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH,
              "description": "Idempotency key: a retry with the same id and observation gets the stored answer."}
    return {"oneOf": [string, *extra_types]} if extra_types else string


def _object(required: list, properties: dict, optional: dict | None = None) -> dict:
    return {"type": "object", "additionalProperties": False, "required": required,
            "properties": {**properties, **(optional or {})}}


_CORRECTION = {"correction": {
    "type": "object", "required": ["reason"], "additionalProperties": False,
    "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT_LENGTH}},
    "description": "Send to change an outcome already recorded; without it a different outcome gets 409. "
                   "Every outcome is kept in the history."}}
_DECISION = {"observation_id": {"type": "string"}, "should_search": {"type": "boolean"},
             "probability": {"type": "number", "minimum": 0, "maximum": 1}, "model_version": {"type": "string"}}
_ERROR = _object(["status", "error", "message", "fields"], {
    "status": {"type": "integer"}, "error": {"type": "string", "description": "short machine-readable code"},
    "message": {"type": "string"},
    "fields": {"type": "object", "additionalProperties": {"type": "string"}, "description": "problem by field"}})

_ERRORS = {
    "400": "Malformed JSON or invalid fields (see `fields`); nothing was recorded.",
    "413": "Body larger than MAX_CONTENT_LENGTH.", "415": "Content-Type is not application/json.",
    "503": "Database unavailable or schema not migrated; nothing was recorded.",
}


def _post(summary: str, request: str, response: str, extra_errors: dict) -> dict:
    responses = {"200": {"description": "OK", "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{response}"}}}}}
    for code, text in {**_ERRORS, **extra_errors}.items():
        responses[code] = {"description": text, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Error"}}}}
    return {"post": {"summary": summary, "responses": responses, "requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{request}"}}}}}}


_REPORT_PARAMETERS = (
    ("since", "string", "first day of received_at to include (YYYY-MM-DD or ISO 8601)"),
    ("until", "string", "last day of received_at to include (a bare date covers the whole day)"),
    ("department", "string", "only this department"), ("model_version", "string", "only this model version"),
    ("min_department", "integer", "fewest outcomes a department needs for a fairness verdict (default 100)"),
    ("min_group", "integer", "fewest outcomes a group needs to be compared (default 20)"),
)


def _report_get(summary: str, media_type: str) -> dict:
    parameters = [{"name": name, "in": "query", "required": False, "schema": {"type": kind}, "description": text}
                  for name, kind, text in _REPORT_PARAMETERS]
    return {"get": {"summary": summary, "parameters": parameters, "responses": {
        "200": {"description": "OK", "content": {media_type: {}}},
        "400": {"description": "Unknown or invalid parameter (see `fields`)", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}}


@lru_cache(maxsize=1)
def openapi_spec() -> dict:
    """The service's OpenAPI 3.0 document."""
    capstone_id = _id(({"type": "integer"},))
    schemas = {
        "Observation": _observation(), "Error": _ERROR,
        "ShouldSearchRequest": _object(["observation_id", "observation"], {
            "observation_id": _id(), "observation": {"$ref": "#/components/schemas/Observation"}}),
        "Decision": _object(list(_DECISION), _DECISION),
        "SearchResultRequest": _object(["observation_id", "contraband_found"], {
            "observation_id": _id(), "contraband_found": {"type": "boolean"}}, _CORRECTION),
        "Outcome": _object([*_DECISION, "contraband_found"], {**_DECISION, "contraband_found": {"type": "boolean"}}),
        "PredictRequest": _object(["id", "observation"], {
            "id": capstone_id, "observation": {"$ref": "#/components/schemas/Observation"}}),
        "PredictResponse": _object(["ContrabandIndicator", "proba"], {
            "ContrabandIndicator": {"type": "boolean"}, "proba": {"type": "number", "minimum": 0, "maximum": 1}}),
        "UpdateRequest": _object(["id", "true_class"], {
            "id": capstone_id, "true_class": {"oneOf": [{"type": "boolean"}, {"type": "integer", "enum": [0, 1]}]}},
            _CORRECTION),
        "UpdateResponse": _object(["id", "observation", "proba", "ContrabandIndicator", "true_class",
                                   "model_version"], {
            "id": {"type": "string"}, "observation": {"$ref": "#/components/schemas/Observation"},
            "proba": {"type": "number"}, "ContrabandIndicator": {"type": "boolean"},
            "true_class": {"type": "integer", "enum": [0, 1]}, "model_version": {"type": "string"}}),
        "Health": {"type": "object", "properties": {"status": {"type": "string"},
                                                    "model_version": {"type": "string"}}},
    }
    conflict = {"422": "This observation id was already used for a different observation."}
    outcome = {"404": "No prediction was logged under this id.",
               "409": "A different outcome is recorded; resend with `correction` to change it."}
    paths = {
        "/should_search": _post("Should this stopped vehicle be searched?", "ShouldSearchRequest", "Decision",
                                conflict),
        "/search_result": _post("Record whether a search found contraband", "SearchResultRequest", "Outcome",
                                outcome),
        "/predict": _post("Capstone alias of /should_search", "PredictRequest", "PredictResponse", conflict),
        "/update": _post("Capstone alias of /search_result", "UpdateRequest", "UpdateResponse", outcome),
        "/health": {"get": {"summary": "Model loaded, database answering, schema current", "responses": {
            "200": {"description": "healthy", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Health"}}}},
            "503": {"description": "unhealthy; `fields` names each failing component", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3"}}}},
        "/report": _report_get("The monitoring report (client report tables 1-6) as JSON", "application/json"),
        "/report.html": _report_get("The monitoring report as a page with tables and charts", "text/html"),
    }
    return {"openapi": "3.0.3",
            "info": {"title": "CTRP3 search recommendation service", "version": "1.0.0",
                     "description": "Decides whether a stopped vehicle should be searched and logs outcomes "
                                    "for performance and fairness monitoring."},
            "paths": paths, "components": {"schemas": schemas}}
