"""The Flask service: ``create_app`` wires settings, the model, the database and the endpoints together."""
from __future__ import annotations

import logging

from flask import Flask, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.middleware.proxy_fix import ProxyFix

from models import database, database_from_url
from pipeline.report.pages import TEMPLATES_DIR
from pipeline.scoring.artifact import Artifact, load_artifact
from pipeline.scoring.follow import RegistryFollower, ServingModels
from service import auth, json_text, monitoring, pages, request_log, sessions
from service import health as health_checks
from service.config import MAX_JSON_DEPTH, ConfigError, load_config
from service.errors import ApiError, register_error_handlers
from service.keys import ROLES
from service.report_views import report_blueprint
from service.state import EXTENSION, ServiceState, current_state
from service.views import api

__all__ = ["create_app", "ConfigError"]
log = logging.getLogger(__name__)
# None: unrouted URLs (404/405) need no connection; /metrics must answer during an outage.
NO_DATABASE_ENDPOINTS = {"api.openapi", "api.health", "api.metrics", "pages.index", "pages.docs", "pages.docs_asset",
                         "pages.sign_in", "pages.sign_out", None}


class _JsonProvider(DefaultJSONProvider):
    """Flask's JSON answers, the same bytes, written by service.json_text (a decision's: ~25 µs less, issue 15)."""

    def dumps(self, obj, **kwargs) -> str:
        """An answer's compact text (what ``response`` asks for) from json_text; anything else as Flask does."""
        if kwargs != {"separators": (",", ":")}:
            return super().dumps(obj, **kwargs)
        return json_text.dumps(obj, sort_keys=self.sort_keys, ensure_ascii=self.ensure_ascii, default=self.default)


def _open_connection():
    """peewee's Flask pattern: take a pooled connection for the request, refused while the schema is behind."""
    current_state().models.ensure_following()
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


def _serving_models(settings: dict, model) -> ServingModels:
    """A given model (or pair) as is; MODEL_DIR when set explicitly, pinned; else the registry's, followed."""
    if isinstance(model, ServingModels):
        return model
    if model is not None:
        return ServingModels(model)
    if settings["MODEL_DIR_PINNED"]:
        log.info("MODEL_DIR is set: serving %s only; registry promotions are not followed", settings["MODEL_DIR"])
        return ServingModels(load_artifact(settings["MODEL_DIR"]))
    follower = RegistryFollower(database, fallback=lambda: load_artifact(settings["MODEL_DIR"]),
                                connect=lambda: database_from_url(settings["DATABASE_URL"]))
    follower.start_up()
    return follower


def _auth_summary(settings: dict) -> str:
    """The start-up line saying whether authentication is on, with how many keys per role (never the keys)."""
    keyring = settings["API_KEYRING"]
    if keyring is None:
        return "authentication is OFF (API_AUTH_DISABLED=local-development): every endpoint is open"
    active = keyring.active()
    per_role = ", ".join(f"{sum(k.role == role for k in active)} {role}" for role in ROLES)
    return (f"authentication is on: {len(active)} active API key(s) ({per_role}), {len(keyring.revoked)} revoked; "
            f"browser sessions last {sessions.SESSION_LIFETIME.total_seconds() / 3600:g} h; trusting "
            f"{settings['TRUSTED_PROXY_HOPS']} proxy hop(s) for client address and HTTPS")


def create_app(config: dict | None = None, model: Artifact | ServingModels | None = None) -> Flask:
    """Build the app from the environment (``config`` overrides it).

    The models: ``model`` when given (an Artifact, or a ServingModels pair with a shadow); else MODEL_DIR when it is
    set (pinned); else the model registry's live and shadow versions, followed while serving (falling back to the
    committed default while the registry cannot be read). Raises ConfigError or pipeline.scoring.artifact.ArtifactError,
    with a message saying what to fix, when a setting is missing or the artifact does not fit the installed
    scikit-learn. Never creates tables.
    """
    settings = load_config(overrides=config)
    settings.setdefault("MAX_JSON_DEPTH", MAX_JSON_DEPTH)
    database.initialize(database_from_url(settings["DATABASE_URL"], serving=True))
    models = _serving_models(settings, model)
    # No static folder: Flask's default /static/<path> route would be one more unauthenticated-by-default
    # endpoint to reason about; the docs' few files have their own listed route (service.pages).
    app = Flask(__name__, static_folder=None, template_folder=str(TEMPLATES_DIR))
    app.json = _JsonProvider(app)
    app.config.update(settings)
    if settings["TRUSTED_PROXY_HOPS"]:
        # Heroku's router appends the client's address to X-Forwarded-For and sets X-Forwarded-Proto; trust exactly
        # that many hops (the last values), never what a client wrote itself. Host is never taken from a header.
        hops = settings["TRUSTED_PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=0, x_port=0, x_prefix=0)
    sessions.init_app(app, settings["SESSION_SECRET"], on_dyno=settings["ON_DYNO"])
    app.extensions[EXTENSION] = state = ServiceState(models=models, gate=health_checks.SchemaGate(database))
    # Order matters: the log's id and clock first, then the key check, so a refused request opens no connection.
    request_log.init_app(app)
    monitoring.init_app(app, lambda: models.current[0].version, database.obj)
    auth.init_app(app)
    app.before_request(_open_connection)
    app.teardown_request(_close_connection)
    register_error_handlers(app)
    app.register_blueprint(api)
    app.register_blueprint(report_blueprint)
    pages.init_app(app)
    health_checks.log_startup_state(state.gate)
    live, shadow = models.current
    log.info("serving model %s (threshold %.3f)%s", live.version, live.threshold,
             f", shadow {shadow.version}" if shadow else "")
    log.info(_auth_summary(settings))
    return app
