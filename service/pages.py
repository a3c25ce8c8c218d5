"""The pages a person opens: the front page, the interactive API docs, and the analysts' sign-in and sign-out.

Rendered from the one templates folder (``pipeline.report.pages.TEMPLATES_DIR``) by Flask's Jinja2 with
autoescaping. None of them needs the database. Form errors answer as pages (a person reads them); the API's
JSON error shape stays for the API.
"""
from __future__ import annotations

import logging
from pathlib import Path

import swagger_ui_bundle
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)

from pipeline.report.pages import FILTERS
from service import sessions
from service.keys import KeyRejected
from service.state import current_state

pages = Blueprint("pages", __name__)
log = logging.getLogger("service.sign_in")
SWAGGER_UI_DIR = Path(swagger_ui_bundle.swagger_ui_path)
DOCS_ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png"})
# Pages may load only this site's scripts; images may be data: URIs (the report's charts are embedded PNGs).
PAGE_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                               "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY",
}


def _keyring():
    return current_app.config["API_KEYRING"]


def _card_summary(card: dict) -> dict:
    """The model card's headline: what it is, when and on what it was trained, and its held-out figures."""
    test = (card.get("metrics") or {}).get("test") or {}
    fairness = ((card.get("fairness") or {}).get("model") or {}).get("by_attribute") or {}
    return {"version": card.get("version"), "family": (card.get("model") or {}).get("family"),
            "created_at": card.get("created_at"), "threshold": card.get("threshold"),
            "synthetic": card.get("synthetic"), "notice": card.get("notice"),
            "rows": ((card.get("training_data") or {}).get("rows") or {}).get("train"),
            "precision": (test.get("precision") or {}).get("value"), "recall": (test.get("recall") or {}).get("value"),
            "breaking": sum(a.get("breaks_rule", 0) for a in fairness.values()),
            "evaluated": sum(a.get("evaluated", 0) for a in fairness.values())}


@pages.get("/")
def index():
    """The front page: what the service is, the live (and shadow) model and its card, and where to go next."""
    models = current_state().models
    live, shadow = models.current
    return render_template("index.html", card=_card_summary(live.card), shadow=shadow.version if shadow else None,
                           following=models.following)


@pages.get("/docs")
def docs():
    """Interactive API docs (Swagger UI, served from the installed swagger-ui-bundle) of /openapi.json."""
    return render_template("docs.html")


@pages.get("/docs/assets/<name>")
def docs_asset(name: str):
    """Swagger UI's files and the page's start-up script; nothing is fetched from the internet."""
    if name == "start.js":
        return Response(render_template("docs_start.js", spec_url=url_for("api.openapi")),
                        mimetype="text/javascript")
    if name not in DOCS_ASSETS:
        abort(404)
    return send_from_directory(SWAGGER_UI_DIR, name, max_age=86400)


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (never another host), else the report."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("report.report_html")


def _sign_in_page(status: int = 200, error: str | None = None, headers: dict | None = None):
    return render_template("sign_in.html", error=error, next=request.values.get("next", ""),
                           signed_out="signed_out" in request.args), status, headers or {}


def _refuse(address: str, reason: str, status: int, message: str):
    """A failed sign-in: counted against the address, logged without the key, answered with the form again."""
    failures = sessions.throttle().failed(address)
    log.warning("sign-in refused (%s) for client %s: %d failure(s) in the last %d s", reason, address, failures,
                sessions.throttle().window)
    return _sign_in_page(status, message)


@pages.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    """GET: the form. POST: an analyst or admin key starts a browser session; officer keys cannot sign in."""
    if _keyring() is None:
        return render_template("sign_in.html", error=None, next="", signed_out=False, auth_off=True)
    if request.method == "GET":
        sessions.csrf_token()
        return _sign_in_page()
    address = request.remote_addr or "unknown"
    wait = sessions.throttle().retry_after(address)
    if wait:
        log.warning("sign-in throttled for client %s: retry after %d s", address, wait)
        return _sign_in_page(429, f"Too many failed sign-ins from your address; try again in {wait} s.",
                             {"Retry-After": str(wait)})
    if not sessions.csrf_valid():
        return _refuse(address, "csrf", 403, "The form expired or did not come from this site; reload it and "
                                             "sign in again.")
    try:
        key = _keyring().verify(request.form.get("key", ""))
    except KeyRejected as rejected:
        return _refuse(address, rejected.code, 401, "That key is not valid here." if rejected.code != "revoked_api_key"
                       else "That key has been revoked; ask for a new one.")
    if key.role not in sessions.SESSION_ROLES:
        log.warning("sign-in refused (role %s) for key %s from client %s", key.role, key.key_id, address)
        return _sign_in_page(403, f"A {key.role} key cannot sign in here: the report is for analysts. Officers' "
                                  "apps send their key with each request instead.")
    sessions.sign_in(key)
    log.info("signed in: key %s (%s) from client %s", key.key_id, key.role, address)
    return redirect(_safe_next(request.form.get("next")), 303)


@pages.post("/sign-out")
def sign_out():
    """End the browser session (the form carries the CSRF token)."""
    if _keyring() is None:  # authentication off: there are no sessions to end
        return redirect(url_for("pages.index"), 303)
    if not sessions.csrf_valid():
        return _sign_in_page(403, "The sign-out form expired or did not come from this site; nothing was changed.")
    sessions.sign_out()
    return redirect(url_for("pages.sign_in", signed_out=1), 303)


def _page_context() -> dict:
    """What the layout needs on every served page: links, the signed-in key, the CSRF token of the forms."""
    keyring = _keyring()
    user = sessions.session_key(keyring) if keyring is not None else None
    return {"served": True, "auth_on": keyring is not None,
            "user": {"key_id": user.key_id, "role": user.role} if user else None,
            "csrf_token": sessions.csrf_token,  # called by a form that needs it, so other pages set no cookie
            "links": {"home": url_for("pages.index"), "report": url_for("report.report_html"),
                      "docs": url_for("pages.docs"), "sign_in": url_for("pages.sign_in"),
                      "sign_out": url_for("pages.sign_out"), "openapi": url_for("api.openapi"),
                      "health": url_for("api.health"), "report_json": url_for("report.report_json")}}


def _security_headers(response):
    if response.mimetype == "text/html":
        for name, value in PAGE_SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
    return response


def init_app(app: Flask) -> None:
    """The report's filters, the layout's context, the pages' security headers and routes (the app is made with
    ``template_folder=pipeline.report.pages.TEMPLATES_DIR``)."""
    app.jinja_options = {**app.jinja_options, "trim_blocks": True, "lstrip_blocks": True}
    app.jinja_env.filters.update(FILTERS)
    app.context_processor(_page_context)
    app.after_request(_security_headers)
    app.register_blueprint(pages)
