"""The request log: one JSON line per request with exactly the allowed keys, and no canary value anywhere in the logs.

Distinctive canaries go in every free-text field, the officer id, the key, headers, query strings, paths, the
method, invalid bodies (400, 413, 415, 422, 409, 401, 403, 404, 405), the browser sign-in form (wrong, malformed,
officer and revoked keys, a forged CSRF token) and a crash message; then ALL captured log
output (in process at DEBUG on the root logger, and a real gunicorn's stdout and stderr) is searched for them.
"""
from __future__ import annotations

import json
import logging
import re
import socket
import time
from urllib.parse import urlsplit

import pytest
import requests

from service.request_log import FIELDS, REQUEST_ID_HEADER

MARK = "zqx"  # every canary contains it; searched case-insensitively, as text fields are normalised
VALID_AGE = 106  # an unusual but valid age: must not appear outside the request lines either
INVALID_AGE = 987654321
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/nowhere"
JSON = "application/json"


def _canary(name: str) -> str:
    return f"ZQX-{name}-CANARY"


def _observation(observation: dict, tag: str) -> dict:
    return {**observation, "Department Name": _canary(f"dept-{tag}"), "InterventionLocationName": _canary("loc"),
            "StatuteReason": _canary("statute"), "ReportingOfficerIdentificationID": _canary("officer"),
            "SubjectAge": VALID_AGE}


def _battery(observation: dict, api_keys: dict) -> list[tuple[str, str, dict, bytes, int]]:
    """(method, path with query, headers, body, expected status) carrying canaries everywhere they could leak."""
    admin = {"Authorization": f"Bearer {api_keys['admin']}", "Content-Type": JSON,
             "X-Canary": _canary("header"), "User-Agent": _canary("agent"), "Cookie": f"session={_canary('cookie')}"}
    officer = {**admin, "Authorization": f"Bearer {api_keys['officer']}"}

    def body(value) -> bytes:
        return json.dumps(value).encode()

    bad_observation = {**_observation(observation, "bad"), "SubjectRaceCode": _canary("race"),
                       "SubjectSexCode": _canary("sex"), "SubjectEthnicityCode": _canary("ethnicity"),
                       "SubjectAge": INVALID_AGE, _canary("field"): 1}
    decision = {"observation_id": "log-ok-1", "observation": _observation(observation, "a")}
    return [
        ("POST", f"/should_search?q={_canary('query')}", admin, body(decision), 200),
        ("POST", "/should_search", admin, body({**decision, "observation": _observation(observation, "b")}), 422),
        ("POST", "/predict", officer, body({"id": 4242, "observation": _observation(observation, "c")}), 200),
        ("POST", "/search_result", admin, body({"observation_id": "log-ok-1", "contraband_found": False}), 200),
        ("POST", "/search_result", admin, body({"observation_id": "log-ok-1", "contraband_found": True}), 409),
        ("POST", "/search_result", admin, body({"observation_id": "log-ok-1", "contraband_found": True,
                                                "correction": {"reason": _canary("reason")}}), 200),
        ("POST", "/update", admin, body({"id": 4242, "true_class": 1}), 200),
        ("POST", "/update", admin, body({"id": "log-missing", "true_class": 1}), 404),
        ("POST", "/should_search", admin, body({"observation_id": _canary("id"), "observation": bad_observation}),
         400),
        ("POST", "/should_search", admin, body({"observation_id": _canary("long-id") * 20,
                                                "observation": observation}), 400),
        ("POST", "/should_search", admin, body({"observation_id": "log-long", "observation": {
            **observation, "Department Name": _canary("long-text") * 20}}), 400),
        ("POST", "/search_result", admin, body({"observation_id": "log-ok-1", "contraband_found": False,
                                                "correction": {"reason": _canary("long-reason") * 20}}), 400),
        ("POST", "/should_search", admin, f'{{"{_canary("json")}": NaN}}'.encode(), 400),
        ("POST", "/should_search", admin, (f'{{"{_canary("deep")}": ' + "[" * 40 + "]" * 40 + "}").encode(), 400),
        ("POST", "/should_search", {**admin, "Content-Type": "text/plain"}, _canary("plain").encode(), 415),
        ("POST", "/should_search", admin, _canary("huge").encode() * 3000, 413),
        ("POST", "/should_search", {**admin, "Authorization": ""}, body(decision), 401),
        ("POST", "/should_search", {**admin, "Authorization": f"Bearer {_canary('auth')}"}, body(decision), 401),
        ("POST", "/should_search", {**admin, "Authorization": "Bearer zqx-unknown." + "Z" * 43}, body(decision),
         401),
        ("POST", "/search_result", officer, body({"observation_id": "log-ok-1", "contraband_found": False,
                                                  "correction": {"reason": _canary("forbidden")}}), 403),
        ("GET", f"/{_canary('path')}?{_canary('q404')}=1", admin, b"", 404),
        ("GET", f"/should_search?{_canary('q405')}=1", admin, b"", 405),
        ("ZQXMETHOD", "/should_search", admin, b"", 405),
        ("GET", f"/report?department={_canary('report-dept')}", admin, b"", 200),
        ("GET", f"/report?{_canary('param')}=1", admin, b"", 400),
        ("GET", "/health", {**admin, REQUEST_ID_HEADER: f"{_canary('rid')} <unsafe>"}, b"", 200),
        ("GET", "/openapi.json", {**admin, REQUEST_ID_HEADER: "zqx" + "a" * 70}, b"", 200),
    ]


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _sign_in_battery(get, post, api_keys: dict) -> list[tuple[object, int]]:
    """Browser sign-ins with wrong, malformed, officer, revoked and right keys (canaries in the wrong ones), the
    pages in the session, and sign-out. ``get(path)`` and ``post(path, form)`` keep cookies. -> (response, status)."""
    done = []

    def expect(response, status):
        assert response.status_code == status, response.text[:300] if hasattr(response, "text") else response
        done.append((response, status))
        return response

    page = expect(get("/sign-in"), 200)
    token = CSRF.search(page.text if hasattr(page, "text") else page.get_data(as_text=True)).group(1)
    for key, status in ((f"zqx-wrong.{'Z' * 43}", 401), (_canary("signin-key"), 401), (api_keys["officer"], 403),
                        (api_keys["revoked"], 401)):
        expect(post("/sign-in", {"csrf_token": token, "key": key, "next": f"/{_canary('next')}"}), status)
    expect(post("/sign-in", {"csrf_token": _canary("csrf"), "key": api_keys["admin"]}), 403)
    expect(post("/sign-in", {"csrf_token": token, "key": api_keys["analyst"], "next": "/report.html"}), 303)
    page = expect(get("/report.html"), 200)
    token = CSRF.search(page.text if hasattr(page, "text") else page.get_data(as_text=True)).group(1)
    for path in ("/", "/docs", "/docs/assets/start.js", "/report"):
        expect(get(path), 200)
    expect(post("/sign-out", {"csrf_token": token}), 303)
    return done


def _canary_hits(text: str, api_keys: dict) -> dict[str, int]:
    """Occurrences of each kind of secret in ``text``; request lines are excluded from the age search (latency)."""
    hits = {"canary": text.lower().count(MARK), "invalid age": text.count(str(INVALID_AGE)),
            "key secret": sum(text.count(key.split(".", 1)[1]) for key in api_keys.values())}
    # Request lines: bare in gunicorn's output, after the record's name and level in the in-process capture.
    other_lines = "\n".join(line for line in text.splitlines()
                             if not line.startswith(("{", "service.requests INFO {")))
    # Not inside a decimal or a word: other lines carry timings ("built in 0.106 s") and hex ids ("...c106d...")
    # that would match by chance.
    hits["valid age"] = len(re.findall(rf"(?<![\w.]){VALID_AGE}(?![\w.])", other_lines))
    return {kind: count for kind, count in hits.items() if count}


def _check_request_lines(lines: list[str], responses: list) -> None:
    """Every request line is JSON with exactly FIELDS; each response's request id has exactly one line."""
    parsed = [json.loads(line) for line in lines]
    assert all(tuple(line) == FIELDS for line in parsed), parsed
    by_id = {}
    for line in parsed:
        by_id.setdefault(line["request_id"], []).append(line)
        assert line["method"] in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER")
        assert line["route"] is None or line["route"].startswith("/") and MARK not in line["route"].lower()
        assert isinstance(line["status"], int) and isinstance(line["latency_ms"], float)
        assert line["key_id"] is None or line["key_id"].startswith("test-")
    for response, expected in responses:
        assert len(by_id[response.headers[REQUEST_ID_HEADER]]) == 1
        assert by_id[response.headers[REQUEST_ID_HEADER]][0]["status"] == expected


class _Crash:
    """A model failing with the record in its message, as a careless bug would."""

    version, threshold = "crash-1", 0.5

    def predict_one(self, record):
        raise RuntimeError(f"cannot score {record}")

    predict_proba = predict_one


def test_in_process_logs_hold_no_canary(app, client_as, api_keys, observation, artifact, migrated_database_url,
                                        caplog, make_app):
    """Every captured record at DEBUG, tracebacks included: zero canary hits; one well-formed line per request."""
    caplog.set_level(logging.DEBUG)
    client, responses = client_as(app, None), []
    for method, path, headers, data, expected in _battery(observation, api_keys):
        response = client.open(path, method=method, headers=headers, data=data)
        assert response.status_code == expected, (method, path, response.get_data(as_text=True)[:300])
        responses.append((response, expected))
    browser = client_as(app, None)
    responses += _sign_in_battery(lambda path: browser.get(path, headers={"Accept": "text/html"}),
                                  lambda path, form: browser.post(path, data=form), api_keys)
    body = {"observation_id": "log-crash", "observation": _observation(observation, "crash")}
    # One at a time: each new app points the shared database proxy at its own URL.
    for url, model, expected in ((migrated_database_url, _Crash(), 500), (UNREACHABLE, artifact, 503)):
        failing = make_app({"DATABASE_URL": url}, model=model)
        response = client_as(failing).post("/should_search", json=body, headers={"X-Canary": _canary("h5xx")})
        assert response.status_code == expected, response.get_data(as_text=True)
        responses.append((response, expected))

    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    everything = "\n".join(formatter.format(record) for record in caplog.records)
    hits = _canary_hits(everything, api_keys)
    print(f"\nin-process: {len(caplog.records)} log records, canary hits: {sum(hits.values())} {hits}")
    assert hits == {}
    _check_request_lines([r.getMessage() for r in caplog.records if r.name == "service.requests"], responses)
    assert any("unhandled builtins.RuntimeError" in r.getMessage() for r in caplog.records)  # the crash was logged
    lines = {json.loads(r.getMessage())["request_id"]: json.loads(r.getMessage())
             for r in caplog.records if r.name == "service.requests"}
    first = lines[responses[0][0].headers[REQUEST_ID_HEADER]]
    assert (first["route"], first["observation_id"], first["key_id"], first["method"]) == (
        "/should_search", "log-ok-1", "test-admin", "POST")
    assert [line["status"] for line in lines.values() if line["method"] == "OTHER"] == [405]  # the invented one


def test_request_id_is_echoed_only_when_safe(client):
    """A well-formed X-Request-ID is kept (so logs can be joined); anything else is replaced by a fresh id."""
    assert client.get("/health", headers={REQUEST_ID_HEADER: "abc-123.X_y"}).headers[REQUEST_ID_HEADER] == "abc-123.X_y"
    for unsafe in ("has space", "a" * 65, "semi;colon", ""):
        replaced = client.get("/health", headers={REQUEST_ID_HEADER: unsafe}).headers[REQUEST_ID_HEADER]
        assert replaced != unsafe and re.fullmatch(r"[0-9a-f]{32}", replaced)


def _raw_request(url: str, data: bytes) -> None:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(data)
        sock.recv(4096)


@pytest.fixture
def debug_log_level(monkeypatch):
    """LOG_LEVEL=debug for the gunicorn started after this fixture: the most talkative setting an operator can pick."""
    monkeypatch.setenv("LOG_LEVEL", "debug")


def test_gunicorn_output_holds_no_canary(debug_log_level, live_server, tmp_path, api_keys, observation):
    """Through a real gunicorn at LOG_LEVEL=debug: stdout and stderr together hold zero canaries, one line per
    request."""
    responses = []
    for method, path, headers, data, expected in _battery(observation, api_keys):
        response = requests.request(method, live_server + path, headers=headers, data=data, timeout=30)
        assert response.status_code == expected, (method, path, response.text[:300])
        responses.append((response, expected))
    browser = requests.Session()
    responses += _sign_in_battery(lambda path: browser.get(live_server + path, timeout=30),
                                  lambda path, form: browser.post(live_server + path, data=form, timeout=30,
                                                                  allow_redirects=False), api_keys)
    _raw_request(live_server, f"{_canary('RAW')} / HTTP/1.1\r\nHost: x\r\n\r\n".encode())  # gunicorn's own 400
    log_path = tmp_path / "gunicorn.log"
    deadline = time.monotonic() + 20  # the workers flush each line; this only waits for the file to catch up
    while time.monotonic() < deadline and log_path.read_text().count('"request_id"') < len(responses):
        time.sleep(0.1)
    text = log_path.read_text()
    hits = _canary_hits(text, api_keys)
    print(f"\ngunicorn: {len(text.splitlines())} lines of output, canary hits: {sum(hits.values())} {hits}")
    assert hits == {}
    request_lines = [line for line in text.splitlines() if line.startswith("{")]
    _check_request_lines(request_lines, responses)
    assert "HTTP/1.1" not in text  # no access-log line with the raw request line
