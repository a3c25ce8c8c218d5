"""The Flask service: ``create_app`` wires settings, the model, the database and the endpoints together."""
from __future__ import annotations

import logging

from flask import Flask, request

from models import database, database_from_url
from pipeline.scoring.artifact import Artifact, load_artifact
from service import auth, request_log
from service import health as health_checks
from service.config import MAX_JSON_DEPTH, ConfigError, load_config
from service.errors import ApiError, register_error_handlers
from service.report_views import report_blueprint
from service.state import EXTENSION, ServiceState, current_state
from service.views import api

__all__ = ["create_app", "ConfigError"]
log = logging.getLogger(__name__)
NO_DATABASE_ENDPOINTS = {"api.openapi", "api.health", None}  # None: unrouted URLs (404/405) need no connection


def _open_connection():
    """peewee's Flask pattern: take a pooled connection for the request, refused while the schema is behind."""
    if request.endpoint in NO_DATABASE_ENDPOINTS:
        return
    database.connect(reuse_if_open=True)
    problem = current_state().gate.problem()
    if problem:
        raise ApiError(503, "schema_out_of_date", problem)


def _close_connection(exc):
    # Returns the connection to the pool; one the request found broken is discarded there, never handed out again.
    if not database.is_closed():
        database.close()


def create_app(config: dict | None = None, model: Artifact | None = None) -> Flask:
    """Build the app from the environment (``config`` overrides it); ``model`` skips loading from MODEL_DIR.

    Raises ConfigError or pipeline.scoring.artifact.ArtifactError, with a message saying what to fix, when a setting is
    missing or the artifact does not fit the installed scikit-learn. Never creates tables.
    """
    settings = load_config(overrides=config)
    settings.setdefault("MAX_JSON_DEPTH", MAX_JSON_DEPTH)
    model = model if model is not None else load_artifact(settings["MODEL_DIR"])
    database.initialize(database_from_url(settings["DATABASE_URL"], serving=True))
    # No static folder: the service serves no files, and Flask's default /static/<path> route would be one more
    # unauthenticated-by-default endpoint to reason about.
    app = Flask(__name__, static_folder=None)
    app.config.update(settings)
    app.extensions[EXTENSION] = state = ServiceState(model=model, gate=health_checks.SchemaGate(database))
    # Order matters: the log's id and clock first, then the key check, so a refused request opens no connection.
    request_log.init_app(app)
    auth.init_app(app)
    app.before_request(_open_connection)
    app.teardown_request(_close_connection)
    register_error_handlers(app)
    app.register_blueprint(api)
    app.register_blueprint(report_blueprint)
    health_checks.log_startup_state(state.gate)
    log.info("serving model %s (threshold %.3f)", model.version, model.threshold)
    return app
