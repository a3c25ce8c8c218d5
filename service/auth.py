"""Who may call what: the route -> roles table, checked before the body is read or a database connection opened.

Missing, malformed, unknown or revoked key -> 401 with ``WWW-Authenticate: Bearer``; a valid key of a role the
endpoint does not admit -> 403. The key checking itself is ``service.keys``; this module is the HTTP side.
The report's two GET endpoints also accept an analyst's browser session (``service.sessions``) when no
Authorization header is sent; the page then redirects a browser without one to the sign-in page.
"""
from __future__ import annotations

from urllib.parse import urlencode

from flask import Flask, current_app, g, redirect, request, url_for

from service import sessions
from service.errors import ApiError
from service.keys import ROLES, KeyRejected

PUBLIC = frozenset()  # no key needed
ANALYST = frozenset({"analyst", "admin"})
# Fail closed: an endpoint missing from this table is admin-only (tests/test_auth.py checks every route is listed).
ADMIN_ONLY = frozenset({"admin"})
ROUTE_ROLES: dict[str, frozenset[str]] = {
    "api.health": PUBLIC,
    "api.openapi": PUBLIC,
    "api.should_search": frozenset({"officer", "admin"}),
    "api.predict": frozenset({"officer", "admin"}),
    "api.search_result": ANALYST,
    "api.update": ANALYST,
    "api.decision": ANALYST,
    "report.report_json": ANALYST,
    "report.report_html": ANALYST,
    # The pages: the front page, the API docs and their assets, and the sign-in/out forms (CSRF-protected).
    "pages.index": PUBLIC,
    "pages.docs": PUBLIC,
    "pages.docs_asset": PUBLIC,
    "pages.sign_in": PUBLIC,
    "pages.sign_out": PUBLIC,
    "api.metrics": frozenset({"monitor", "admin"}),
}
# GET endpoints a signed-in browser may read with its session cookie instead of a Bearer header (never a POST:
# the API's writes stay Bearer-only, so a session cannot be ridden into recording outcomes).
SESSION_ENDPOINTS = frozenset({"report.report_json", "report.report_html"})
# Of those, the pages a browser opens directly: without a session it is sent to sign in, then brought back
# (a client that does not ask for text/html keeps the 401).
SIGN_IN_REDIRECTS = frozenset({"report.report_html"})
# A URL no route matches (404) or a wrong method (405): any valid key may learn that, no one without a key, so an
# anonymous caller cannot map the API by probing.
UNROUTED = frozenset(ROLES)


def roles_for(endpoint: str | None) -> frozenset[str]:
    """The roles admitted to an endpoint; PUBLIC (empty) when no key is needed."""
    if endpoint is None:
        return UNROUTED
    return ROUTE_ROLES.get(endpoint, ADMIN_ONLY)


def _public_path() -> bool:
    """Whether the URL is a public endpoint's, called with a method it does not take."""
    return any(rule.rule == request.path and not roles_for(rule.endpoint)
               for rule in current_app.url_map.iter_rules())


def require_key():
    """before_request: refuse the request unless its key's role is admitted; records the key id on ``g``."""
    g.key_id = None
    current = request._get_current_object()  # one context lookup, not one per attribute (issue 15)
    allowed = roles_for(current.endpoint)
    keyring = current_app.config["API_KEYRING"]
    if not allowed or keyring is None:  # public endpoint, or API_AUTH_DISABLED=local-development
        return
    # A public path is in /openapi.json for anyone to read, so its 405 (with Allow) gives nothing away.
    if current.endpoint is None and _public_path():
        return
    authorization = current.headers.get("Authorization")
    if authorization is None and current.endpoint in SESSION_ENDPOINTS:
        key = sessions.session_key(keyring)
        if key is None and current.endpoint in SIGN_IN_REDIRECTS and _browser():
            return redirect(url_for("pages.sign_in", next=_here()))
        if key is None:
            raise ApiError(401, "missing_api_key", "send the header Authorization: Bearer <API key>, or sign in "
                           "with an analyst key at /sign-in", headers={"WWW-Authenticate": "Bearer"})
    else:
        try:
            key = keyring.authenticate(authorization)
        except KeyRejected as rejected:
            raise ApiError(401, rejected.code, rejected.message, headers={"WWW-Authenticate": "Bearer"}) from None
    g.key_id = key.key_id
    if key.role not in allowed:
        raise ApiError(403, "forbidden_role",
                       f"the {key.role} key {key.key_id} may not call this endpoint; it needs one of the roles: "
                       f"{', '.join(sorted(allowed))}")


def _browser() -> bool:
    """A browser asking for a page (it says Accept: text/html); API clients keep their 401 JSON."""
    return request.method == "GET" and "text/html" in request.headers.get("Accept", "")


def _here() -> str:
    """This request's path and query, as the place to come back to after signing in."""
    return request.path + ("?" + urlencode(list(request.args.items(multi=True))) if request.args else "")


def init_app(app: Flask) -> None:
    """Register the check; call it before any before_request that opens a database connection or reads the body."""
    app.before_request(require_key)
