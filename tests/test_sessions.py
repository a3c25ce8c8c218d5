"""Analysts' browser sessions: the cookie's flags and contents, its expiry, revocation ending it, CSRF refusals,
the sign-in throttle, officer keys refused, the session never admitted to the API's writes, and the settings."""
from __future__ import annotations

import base64
import json
import re
import zlib

import pytest

from pipeline.scoring.signing import new_key_entry
from service import ConfigError, create_app, sessions
from service.keys import new_key

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
HTML = {"Accept": "text/html,application/xhtml+xml"}


def _token(client, path: str = "/sign-in") -> str:
    return CSRF.search(client.get(path, headers=HTML).get_data(as_text=True)).group(1)


def _sign_in(client, key: str, **extra):
    return client.post("/sign-in", data={"csrf_token": _token(client), "key": key, **extra}, **extra.pop("kw", {}))


def _set_cookie(response) -> str:
    cookies = [value for name, value in response.headers.items() if name == "Set-Cookie"
               and value.startswith(sessions.COOKIE_NAME + "=")]
    assert len(cookies) == 1, response.headers
    return cookies[0]


def _payload(cookie: str) -> dict:
    """The session data inside Flask's signed cookie (signed, not encrypted: anyone holding it can read it)."""
    value = cookie.split(";")[0].split("=", 1)[1]
    compressed = value.startswith(".")
    data = value.lstrip(".").split(".")[0]
    raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    return json.loads(zlib.decompress(raw) if compressed else raw)


@pytest.fixture
def browser(app, client_as):
    """A test client with no Authorization header, keeping cookies like a browser."""
    return client_as(app, None)


def test_sign_in_sets_a_strict_httponly_cookie_without_the_key(browser, api_keys):
    """The cookie: HttpOnly, SameSite=Strict, Path=/, expires in 8 h, not Secure over plain http; holds no secret."""
    response = _sign_in(browser, api_keys["analyst"])
    assert response.status_code == 303 and response.headers["Location"] == "/report.html"
    cookie = _set_cookie(response)
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "path", "expires", "samesite"} <= flags and "secure" not in flags
    assert "SameSite=Strict" in cookie and "Path=/" in cookie
    data = _payload(cookie)
    assert data["k"] == "test-analyst" and data["r"] == "analyst"
    assert api_keys["analyst"].split(".")[1] not in cookie and api_keys["analyst"].split(".")[1] not in json.dumps(data)
    assert browser.get("/report.html", headers=HTML).status_code == 200
    assert browser.get("/report").status_code == 200


def test_cookie_is_secure_behind_https_and_on_a_dyno(make_app, artifact, migrated_database_url, client_as, api_keys,
                                                     monkeypatch):
    """X-Forwarded-Proto: https from a trusted proxy makes it Secure; a client's own header does not; a dyno always."""
    behind = client_as(make_app({"DATABASE_URL": migrated_database_url, "TRUSTED_PROXY_HOPS": "1"},
                                model=artifact), None)
    https = {"X-Forwarded-Proto": "https"}
    token = CSRF.search(behind.get("/sign-in", headers={**HTML, **https}).get_data(as_text=True)).group(1)
    response = behind.post("/sign-in", data={"csrf_token": token, "key": api_keys["analyst"]}, headers=https)
    assert response.status_code == 303 and "; Secure" in _set_cookie(response)
    direct = client_as(make_app({"DATABASE_URL": migrated_database_url}, model=artifact), None)
    token = CSRF.search(direct.get("/sign-in", headers={**HTML, **https}).get_data(as_text=True)).group(1)
    response = direct.post("/sign-in", data={"csrf_token": token, "key": api_keys["analyst"]}, headers=https)
    assert "; Secure" not in _set_cookie(response)  # no proxy trusted: the header is the client's own word
    monkeypatch.setenv("DYNO", "web.1")
    monkeypatch.setenv("MODEL_SIGNING_KEYS", new_key_entry("dyno"))  # a dyno verifies every model it loads
    dyno = client_as(make_app({"DATABASE_URL": migrated_database_url}, model=artifact), None)
    response = _sign_in(dyno, api_keys["admin"])
    assert response.status_code == 303 and "; Secure" in _set_cookie(response)


def test_session_expires_after_a_working_day(browser, api_keys, monkeypatch):
    """Past 8 hours after sign-in the session is refused (and the cookie cleared), whatever the browser keeps."""
    started = sessions.now()
    _sign_in(browser, api_keys["analyst"])
    monkeypatch.setattr(sessions, "now", lambda: started + 8 * 3600 - 60)
    assert browser.get("/report").status_code == 200
    monkeypatch.setattr(sessions, "now", lambda: started + 8 * 3600 + 1)
    assert browser.get("/report").status_code == 401
    response = browser.get("/report.html", headers=HTML)
    assert response.status_code == 302 and response.headers["Location"].startswith("/sign-in?next=")


def test_revoking_or_replacing_the_key_ends_its_sessions(app, make_app, artifact, migrated_database_url, client_as,
                                                         api_keys, api_key_settings, monkeypatch):
    """The same cookie on an app restarted with the key revoked, or re-issued under the same id, is refused."""
    browser = client_as(app, None)
    _sign_in(browser, api_keys["analyst"])
    cookie = browser.get_cookie(sessions.COOKIE_NAME).value
    assert browser.get("/report").status_code == 200

    def with_cookie(settings: dict):
        other = client_as(make_app({"DATABASE_URL": migrated_database_url, **settings}, model=artifact), None)
        other.set_cookie(sessions.COOKIE_NAME, cookie)
        return other.get("/report")

    assert with_cookie(api_key_settings).status_code == 200  # another worker or dyno with the same settings
    revoked = {**api_key_settings, "API_KEYS_REVOKED": "test-revoked,test-analyst"}
    assert with_cookie(revoked).status_code == 401
    _, reissued = new_key("analyst", "test-analyst")
    entries = [e for e in api_key_settings["API_KEYS"].split(",") if not e.startswith("test-analyst:")]
    assert with_cookie({**api_key_settings, "API_KEYS": ",".join(entries + [reissued])}).status_code == 401
    assert with_cookie({**api_key_settings, "SESSION_SECRET": "another-secret-" + "y" * 32}).status_code == 401


def test_sign_out_ends_the_session(browser, api_keys):
    """Sign-out (with its CSRF token) clears the cookie; the report then sends the browser to sign in."""
    _sign_in(browser, api_keys["analyst"])
    token = _token(browser, "/report.html")
    response = browser.post("/sign-out", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"] == "/sign-in?signed_out=1"
    assert browser.get("/report").status_code == 401
    assert browser.get("/report.html", headers=HTML).status_code == 302


def test_csrf_refusals(browser, api_keys):
    """Sign-in and sign-out without the session's token, with a forged one, or from another origin: 403, no effect."""
    _token(browser)
    for form, headers in (({"key": api_keys["analyst"]}, {}),
                          ({"key": api_keys["analyst"], "csrf_token": "forged"}, {}),
                          ({"key": api_keys["analyst"], "csrf_token": _token(browser)},
                           {"Origin": "https://evil.example"})):
        response = browser.post("/sign-in", data=form, headers=headers)
        assert response.status_code == 403 and "did not come from this site" in response.get_data(as_text=True)
        assert browser.get("/report").status_code == 401
    _sign_in(browser, api_keys["analyst"])
    assert browser.post("/sign-out", data={"csrf_token": "forged"}).status_code == 403
    assert browser.post("/sign-out", data={}).status_code == 403
    assert browser.get("/report").status_code == 200  # still signed in


def test_a_fresh_browser_cannot_post_without_the_form(app, client_as, api_keys):
    """A cross-site POST arrives without the SameSite=Strict cookie, so without any token to match: refused."""
    response = client_as(app, None).post("/sign-in", data={"key": api_keys["analyst"], "csrf_token": ""})
    assert response.status_code == 403


def test_officer_keys_cannot_sign_in(browser, api_keys):
    """An officer key is valid but may not sign in: 403, no session."""
    response = _sign_in(browser, api_keys["officer"])
    assert response.status_code == 403 and "officer key cannot sign in" in response.get_data(as_text=True)
    assert browser.get("/report").status_code == 401
    assert _sign_in(browser, api_keys["admin"]).status_code == 303


def test_sign_in_is_throttled_per_address(browser, app, client_as, api_keys, caplog):
    """10 wrong keys from one address in 5 minutes: the 11th try is 429 even with the right key; others may go on;
    every refusal is logged without the key."""
    wrong = "test-analyst." + "W" * 43
    for _ in range(10):
        assert _sign_in(browser, wrong).status_code == 401
    response = _sign_in(browser, api_keys["analyst"])
    assert response.status_code == 429 and 1 <= int(response.headers["Retry-After"]) <= 300
    other = client_as(app, None)
    other.environ_base["REMOTE_ADDR"] = "127.0.0.2"
    assert _sign_in(other, api_keys["analyst"]).status_code == 303
    # An untrusted X-Forwarded-For (no proxy configured) does not give the throttled client a new address.
    token = _token(browser)
    spoofed = browser.post("/sign-in", data={"csrf_token": token, "key": api_keys["analyst"]},
                           headers={"X-Forwarded-For": "10.9.8.7"})
    assert spoofed.status_code == 429
    messages = [r.getMessage() for r in caplog.records if r.name == "service.sign_in"]
    assert sum("sign-in refused (invalid_api_key)" in m for m in messages) == 10
    assert any("throttled" in m for m in messages)
    assert not any("W" * 43 in m or api_keys["analyst"].split(".")[1] in m for m in messages)


def test_throttle_window_slides(monkeypatch):
    """Failures older than the window no longer count."""
    clock = [1000.0]
    monkeypatch.setattr(sessions, "now", lambda: clock[0])
    throttle = sessions.SignInThrottle(limit=2, window=60)
    throttle.failed("a"), throttle.failed("a")
    assert throttle.retry_after("a") == 60 and throttle.retry_after("b") == 0
    clock[0] += 61
    assert throttle.retry_after("a") == 0


def test_a_session_is_not_an_api_key(browser, api_keys, observation):
    """The session admits only the report's GETs: the API's writes still need a Bearer key."""
    _sign_in(browser, api_keys["admin"])
    assert browser.post("/search_result", json={"observation_id": "x", "contraband_found": True}).status_code == 401
    assert browser.post("/should_search", json={"observation_id": "x", "observation": observation}).status_code == 401


def test_sign_in_goes_back_only_to_this_site(browser, api_keys):
    """``next`` may name a path here; another host or a protocol-relative URL falls back to the report."""
    for target, location in (("/report?department=X", "/report?department=X"), ("//evil.example/", "/report.html"),
                             ("https://evil.example/", "/report.html"), ("/\\evil.example", "/report.html")):
        response = browser.post("/sign-in", data={"csrf_token": _token(browser), "key": api_keys["analyst"],
                                                  "next": target})
        assert response.headers["Location"] == location


def test_bearer_clients_get_401_json_and_browsers_a_sign_in_page(browser, assert_error):
    """Without a key, /report.html answers a browser with the way to sign in; an API client keeps its 401."""
    assert_error(browser.get("/report.html"), 401, "missing_api_key")
    response = browser.get("/report.html?department=A%20B", headers=HTML)
    assert response.status_code == 302
    assert response.headers["Location"] == "/sign-in?next=/report.html?department%3DA%2BB"
    page = browser.get(response.headers["Location"], headers=HTML).get_data(as_text=True)
    assert 'name="next" value="/report.html?department=A+B"' in page


@pytest.mark.parametrize("secret, message", [(None, "SESSION_SECRET is not set"), ("short", "at least 32")])
def test_keys_without_a_session_secret_refuse_to_start(artifact, monkeypatch, secret, message):
    """With API keys on, a missing or short SESSION_SECRET stops start-up, saying how to make one."""
    if secret is None:
        monkeypatch.delenv("SESSION_SECRET")
    else:
        monkeypatch.setenv("SESSION_SECRET", secret)
    with pytest.raises(ConfigError, match=message):
        create_app({"DATABASE_URL": "sqlite:///:memory:"}, model=artifact)


def test_untrusted_proxy_hops_setting_is_refused(artifact):
    """TRUSTED_PROXY_HOPS must be a small whole number."""
    for value in ("-1", "many", "9"):
        with pytest.raises(ConfigError, match="TRUSTED_PROXY_HOPS"):
            create_app({"DATABASE_URL": "sqlite:///:memory:", "TRUSTED_PROXY_HOPS": value}, model=artifact)


def test_pages_carry_a_strict_content_security_policy(browser, api_keys):
    """HTML pages: scripts only from this site, no framing; the docs' assets come from the installed package."""
    for path in ("/", "/docs", "/sign-in"):
        response = browser.get(path, headers=HTML)
        assert response.status_code == 200
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
    docs = browser.get("/docs").get_data(as_text=True)
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js", "start.js"):
        assert f"/docs/assets/{asset}" in docs
        with browser.get(f"/docs/assets/{asset}") as response:  # a file response: closed, or it leaks the handle
            assert response.status_code == 200
    assert browser.get("/docs/assets/index.html").status_code == 404
    assert "http" not in re.sub(r'href="https?://[^"]*"', "", docs.split("<main>")[0])  # no CDN in the head


def test_start_up_log_says_whether_authentication_is_on(artifact, make_app, caplog, monkeypatch):
    """One start-up line: on, with the active keys per role and the revoked count (never a key); or OFF."""
    caplog.set_level("INFO", logger="service")
    make_app({"DATABASE_URL": "sqlite:///:memory:"}, model=artifact)
    line = next(r.getMessage() for r in caplog.records if "authentication is" in r.getMessage())
    assert line.startswith("authentication is on: 6 active API key(s) (2 officer, 2 analyst, 1 admin, 1 monitor), "
                           "1 revoked")
    caplog.clear()
    for name in ("API_KEYS", "API_KEYS_REVOKED", "SESSION_SECRET"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("API_AUTH_DISABLED", "local-development")
    make_app({"DATABASE_URL": "sqlite:///:memory:"}, model=artifact)
    assert any("authentication is OFF" in r.getMessage() for r in caplog.records)


def test_pages_work_with_authentication_off(artifact, make_app, migrated_database_url, client_as, monkeypatch):
    """Local development without keys: no session at all; the report opens directly; sign-in says why."""
    for name in ("API_KEYS", "API_KEYS_REVOKED", "SESSION_SECRET"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("API_AUTH_DISABLED", "local-development")
    browser = client_as(make_app({"DATABASE_URL": migrated_database_url}, model=artifact), None)
    assert "Authentication is off" in browser.get("/sign-in").get_data(as_text=True)
    assert browser.post("/sign-in", data={"key": "x"}).status_code == 200
    assert browser.post("/sign-out").status_code == 303
    page = browser.get("/report.html", headers=HTML)
    assert page.status_code == 200 and "Sign in" not in page.get_data(as_text=True)
    assert "Set-Cookie" not in page.headers


def test_front_page_names_the_live_model_and_links_everywhere(browser, artifact):
    """The front page needs no key: the live model's version and card summary, and links to every entry point."""
    page = browser.get("/", headers=HTML).get_data(as_text=True)
    assert f'<dd id="model-version">{artifact.version}</dd>' in page
    assert f"search when the probability is at least {artifact.threshold:.3f}" in page
    for href in ("/report.html", "/report", "/docs", "/openapi.json", "/health", "/sign-in"):
        assert f'href="{href}"' in page
