"""Browser sessions for analysts: a signed cookie proving a key was presented at sign-in, CSRF tokens for the
pages' POST forms, and the sign-in throttle. API clients never use any of this: they send Bearer keys.

The cookie (Flask's signed session, keyed by SESSION_SECRET so every worker and dyno accepts it) is HttpOnly,
SameSite=Strict, Secure on a dyno or behind HTTPS, and holds the key id, its role, a fingerprint of the key's
configured hash, the sign-in time and the CSRF token: never the key. It is accepted only while that same key is
configured, unrevoked and of a role that may sign in, and for at most SESSION_LIFETIME after sign-in, whatever
the cookie's own expiry says.
"""
from __future__ import annotations

import collections
import hashlib
import hmac
import secrets
import threading
import time
from datetime import timedelta

from flask import Flask, current_app, request, session
from flask.sessions import SecureCookieSessionInterface

from service.keys import ApiKey, Keyring

SESSION_LIFETIME = timedelta(hours=8)  # a working day; then the analyst signs in again
SESSION_ROLES = frozenset({"analyst", "admin"})  # officers' apps use Bearer keys, never a browser session
COOKIE_NAME = "ctrp3_session"
CSRF_FIELD = "csrf_token"
MIN_SECRET_LENGTH = 32


def now() -> float:
    """The clock of session ages (a function, so tests can move it)."""
    return time.time()


class SessionCookies(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the Secure flag also set whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        """Secure when configured (on a dyno) or when this request is HTTPS (X-Forwarded-Proto via ProxyFix)."""
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure

    def open_session(self, app: Flask, request):
        """Flask's, but a request with no session cookie (every API call) gets its empty session at once.

        Flask builds the signing serializer (itsdangerous, hashlib) before it looks for the cookie: ~4% of a
        /should_search's CPU in issue 15's profile (bench/README.md). The answer is the same: no secret, no session;
        no cookie, an empty one. No Cookie header at all is seen without parsing one (~20 µs, issue 15).
        """
        if app.secret_key and ("HTTP_COOKIE" not in request.environ
                               or not request.cookies.get(self.get_cookie_name(app))):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session, response) -> None:
        """Flask's, but a session left empty and untouched (every API call) returns before the cookie settings.

        Flask works out all seven cookie settings (HTTPS included) first, then does nothing for such a session.
        """
        if not session and not session.modified and not session.accessed:
            return
        super().save_session(app, session, response)


def configure(app: Flask, secret: str | None, on_dyno: bool) -> None:
    """Cookie settings of the app; without a secret (authentication off) Flask keeps no session at all."""
    app.session_interface = SessionCookies()
    app.config.update(SECRET_KEY=secret, SESSION_COOKIE_NAME=COOKIE_NAME, SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_SECURE=on_dyno,
                      PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME, SESSION_REFRESH_EACH_REQUEST=False)


def fingerprint(key: ApiKey) -> str:
    """Identifies the key's configured hash, so a key id re-issued with a new secret ends the old sessions."""
    return hashlib.sha256(key.salt + key.digest).hexdigest()[:32]


def csrf_token() -> str:
    """The session's CSRF token, created on first use (before sign-in too: the sign-in form is protected)."""
    token = session.get("c")
    if not token:
        token = session["c"] = secrets.token_urlsafe(32)
    return token


def csrf_valid() -> bool:
    """Whether a POST carries the session's CSRF token and, when the browser says, comes from this site."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != request.host_url.rstrip("/"):
        return False
    expected, sent = session.get("c"), request.form.get(CSRF_FIELD, "")
    return bool(expected) and hmac.compare_digest(expected.encode(), sent.encode())


def sign_in(key: ApiKey) -> None:
    """Start a fresh session for ``key`` (a new CSRF token too, so nothing from before sign-in carries over)."""
    session.clear()
    session.permanent = True
    session.update({"k": key.key_id, "r": key.role, "f": fingerprint(key), "t": int(now()),
                    "c": secrets.token_urlsafe(32)})


def sign_out() -> None:
    """End the session: the browser gets an expired, empty cookie."""
    session.clear()


def session_key(keyring: Keyring) -> ApiKey | None:
    """The key this request's session was signed in with, if the session is still valid; None otherwise."""
    key_id = session.get("k")
    if not key_id:
        return None
    key = keyring.keys.get(key_id)
    started = session.get("t")
    valid = (key is not None and key_id not in keyring.revoked and key.role == session.get("r")
             and key.role in SESSION_ROLES and hmac.compare_digest(fingerprint(key), str(session.get("f", "")))
             and isinstance(started, int) and 0 <= now() - started < SESSION_LIFETIME.total_seconds())
    if not valid:
        session.clear()  # revoked, replaced, expired or tampered: the browser drops the cookie with this answer
        return None
    return key


class SignInThrottle:
    """Failed sign-ins per client address in a sliding window; over the limit, sign-in answers 429.

    In memory, per worker process: with W workers a client gets at most W x ``limit`` tries per window. That is
    enough, since a key is 256 random bits; the throttle keeps guessing and log floods cheap to refuse.
    """

    def __init__(self, limit: int = 10, window: float = 300.0, max_addresses: int = 10_000):
        self.limit, self.window, self.max_addresses = limit, window, max_addresses
        self._failures: collections.OrderedDict[str, collections.deque] = collections.OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, address: str, at: float) -> collections.deque:
        failures = self._failures.get(address, collections.deque())
        while failures and failures[0] <= at - self.window:
            failures.popleft()
        return failures

    def retry_after(self, address: str) -> int:
        """Seconds until ``address`` may try again; 0 when it may now."""
        at = now()
        with self._lock:
            failures = self._recent(address, at)
            if len(failures) < self.limit:
                return 0
            return max(1, int(failures[0] + self.window - at + 0.999))

    def failed(self, address: str) -> int:
        """Record a failure; returns the failures of ``address`` in the window, this one included."""
        at = now()
        with self._lock:
            failures = self._recent(address, at)
            failures.append(at)
            self._failures[address] = failures
            self._failures.move_to_end(address)
            while len(self._failures) > self.max_addresses:
                self._failures.popitem(last=False)
            return len(failures)


def throttle() -> SignInThrottle:
    """The app's sign-in throttle."""
    return current_app.extensions["ctrp3.sign_in_throttle"]


def init_app(app: Flask, secret: str | None, on_dyno: bool) -> None:
    """Cookie settings and the throttle."""
    configure(app, secret, on_dyno)
    app.extensions["ctrp3.sign_in_throttle"] = SignInThrottle()
