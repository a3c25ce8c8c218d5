"""The HTTP endpoints: parse, decide or record, answer. The capstone aliases share the same code path."""
from __future__ import annotations

from flask import Blueprint, current_app, request

from service import monitoring, predictions, request_log
from service.errors import error_response
from service.openapi import openapi_spec
from service.requests import observation_request, outcome_request, path_observation_id, read_json
from service.state import current_state as _state

api = Blueprint("api", __name__)


def _body():
    # The request object itself, not its proxy: read_json asks it a dozen things (issue 15: a lookup each).
    return read_json(request._get_current_object(), current_app.config["MAX_JSON_DEPTH"])


def _decide(id_key: str, allow_int: bool) -> predictions.Decision:
    observation_id, raw, record = observation_request(_body(), id_key, allow_int)
    request_log.note_observation_id(observation_id)
    live, shadow = _state().models.current  # read once: this request's live and shadow stay a pair
    decision = predictions.decide(observation_id, raw, record, live, shadow)
    monitoring.current_metrics().decided(decision)
    return decision


def _record(id_key: str, outcome_key: str, allow_int: bool) -> predictions.Decision:
    observation_id, outcome, reason = outcome_request(_body(), id_key, outcome_key, allow_int)
    request_log.note_observation_id(observation_id)
    decision = predictions.record_outcome(observation_id, outcome, reason)
    monitoring.current_metrics().outcome_received(decision.contraband_found)
    return decision


def _decision_body(decision: predictions.Decision) -> dict:
    return {"observation_id": decision.observation_id, "should_search": decision.should_search,
            "probability": decision.probability, "model_version": decision.model_version}


@api.post("/should_search")
def should_search():
    """Decide whether to search, say why, and log the request."""
    decision = _decide("observation_id", allow_int=False)
    return {**_decision_body(decision), "reasons": decision.reasons}


@api.get("/decisions/<path:observation_id>")
def decision(observation_id: str):
    """One stored decision: observation, answer, model version, reasons and outcome history (no listing)."""
    observation_id = path_observation_id(observation_id)
    request_log.note_observation_id(observation_id)
    return predictions.stored_decision(observation_id)


@api.post("/search_result")
def search_result():
    """Record the true outcome of a search (or correct it)."""
    decision = _record("observation_id", "contraband_found", allow_int=False)
    return {**_decision_body(decision), "contraband_found": decision.contraband_found}


@api.post("/predict")
def predict():
    """Capstone alias of /should_search: its exact answer shape (the version is in the row, /update and /decisions)."""
    decision = _decide("id", allow_int=True)
    return {"ContrabandIndicator": decision.should_search, "proba": decision.probability}


@api.post("/update")
def update():
    """Capstone alias of /search_result; answers the stored record."""
    decision = _record("id", "true_class", allow_int=True)
    return {"id": decision.observation_id, "observation": decision.observation, "proba": decision.probability,
            "ContrabandIndicator": decision.should_search, "true_class": int(decision.contraband_found),
            "model_version": decision.model_version}


@api.get("/health")
def health():
    """200 when the model is loaded, the database answers and its schema is current; 503 naming what is not."""
    state = _state()
    problems = state.health()
    if problems:
        monitoring.count_unavailable("unhealthy")
        return error_response(503, "unhealthy", "; ".join(f"{k}: {v}" for k, v in problems.items()), problems)
    live, shadow = state.models.current
    return {"status": "ok", "model_version": live.version, "shadow_version": shadow.version if shadow else None}


@api.get("/metrics")
def metrics():
    """Prometheus metrics of every worker of this instance (text format 0.0.4)."""
    return monitoring.metrics_response()


@api.get("/openapi.json")
def openapi():
    """The OpenAPI 3 description of this service."""
    return openapi_spec()
