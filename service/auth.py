"""Who may call what: the route -> roles table, checked before the body is read or a database connection opened.

Missing, malformed, unknown or revoked key -> 401 with ``WWW-Authenticate: Bearer``; a valid key of a role the
endpoint does not admit -> 403. The key checking itself is ``service.keys``; this module is the HTTP side.
"""
from __future__ import annotations

from flask import Flask, current_app, g, request

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
}
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
    allowed = roles_for(request.endpoint)
    keyring = current_app.config["API_KEYRING"]
    if not allowed or keyring is None:  # public endpoint, or API_AUTH_DISABLED=local-development
        return
    # A public path is in /openapi.json for anyone to read, so its 405 (with Allow) gives nothing away.
    if request.endpoint is None and _public_path():
        return
    try:
        key = keyring.authenticate(request.headers.get("Authorization"))
    except KeyRejected as rejected:
        raise ApiError(401, rejected.code, rejected.message, headers={"WWW-Authenticate": "Bearer"}) from None
    g.key_id = key.key_id
    if key.role not in allowed:
        raise ApiError(403, "forbidden_role",
                       f"the {key.role} key {key.key_id} may not call this endpoint; it needs one of the roles: "
                       f"{', '.join(sorted(allowed))}")


def init_app(app: Flask) -> None:
    """Register the check; call it before any before_request that opens a database connection or reads the body."""
    app.before_request(require_key)
