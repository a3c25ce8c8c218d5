"""The Flask service: ``create_app`` wires settings, the model, the database and the endpoints together."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask

from models import database, database_from_url
from pipeline.artifact import Artifact, load_artifact
from service import health as health_checks
from service.config import MAX_JSON_DEPTH, ConfigError, load_config
from service.errors import ApiError, register_error_handlers
from service.views import api

__all__ = ["create_app", "ConfigError"]
log = logging.getLogger(__name__)
NO_DATABASE_ENDPOINTS = {"api.openapi", "api.health", None}  # None: unrouted URLs (404/405) need no connection


@dataclass
class ServiceState:
    """What every request needs: the model, loaded once, and the schema gate of the database."""

    model: Artifact
    gate: health_checks.SchemaGate

    def health(self) -> dict[str, str]:
        """Problems by component; empty when healthy."""
        return health_checks.check(self.model, self.gate)


def _open_connection():
    from flask import request

    if request.endpoint in NO_DATABASE_ENDPOINTS:
        return
    database.connect(reuse_if_open=True)
    problem = current_state().gate.problem()
    if problem:
        raise ApiError(503, "schema_out_of_date", problem)


def _close_connection(exc):
    if not database.is_closed():
        database.close()


def current_state() -> ServiceState:
    """The running app's ServiceState."""
    from flask import current_app

    return current_app.extensions["ctrp3"]


def create_app(config: dict | None = None, model: Artifact | None = None) -> Flask:
    """Build the app from the environment (``config`` overrides it); ``model`` skips loading from MODEL_DIR.

    Raises ConfigError or pipeline.artifact.ArtifactError, with a message saying what to fix, when a setting is
    missing or the artifact does not fit the installed scikit-learn.
    """
    settings = load_config(overrides=config)
    settings.setdefault("MAX_JSON_DEPTH", MAX_JSON_DEPTH)
    model = model if model is not None else load_artifact(settings["MODEL_DIR"])
    database.initialize(database_from_url(settings["DATABASE_URL"]))
    app = Flask(__name__)
    app.config.update(settings)
    app.extensions["ctrp3"] = state = ServiceState(model=model, gate=health_checks.SchemaGate(database))
    app.before_request(_open_connection)
    app.teardown_request(_close_connection)
    register_error_handlers(app)
    app.register_blueprint(api)
    health_checks.log_startup_state(state.gate)
    log.info("serving model %s (threshold %.3f)", model.version, model.threshold)
    return app
