"""The edges of the input contract (issue 17), in process on both backends: the exact size limit, content codings,
repeated report parameters, JSON error messages, and the report lock. Through a real gunicorn:
tests/test_hostile_clients.py."""
from __future__ import annotations

import fcntl
import gzip
import io
import json

import pytest

import service.report_views as views
from service import report_guard

LIMIT = 8192
JSON = "application/json"


def _body_of_size(observation: dict, size: int, observation_id: str = "edge-1") -> bytes:
    """A valid /should_search body padded with trailing spaces (valid JSON whitespace) to exactly ``size`` bytes."""
    body = json.dumps({"observation_id": observation_id, "observation": observation}).encode()
    assert len(body) <= size
    return body + b" " * (size - len(body))


@pytest.fixture
def limited(app):
    """The app with MAX_CONTENT_LENGTH = LIMIT."""
    app.config["MAX_CONTENT_LENGTH"] = LIMIT
    return app


@pytest.mark.parametrize("terminated", [False, True], ids=["content-length", "server-terminated-chunked"])
def test_a_body_of_exactly_the_limit_is_accepted_and_one_more_byte_refused(limited, observation, assert_error,
                                                                           log_counts, terminated):
    """LIMIT bytes: 200. LIMIT + 1: 413. Both with a Content-Length and as a server-terminated stream (gunicorn)."""
    client = limited.test_client()

    def post(body: bytes):
        if terminated:  # as gunicorn passes a chunked body: no Content-Length, wsgi.input_terminated set
            return client.post("/should_search", input_stream=io.BytesIO(body), content_type=JSON,
                               headers={"Transfer-Encoding": "chunked"},
                               environ_overrides={"wsgi.input_terminated": True})
        return client.post("/should_search", data=body, content_type=JSON)

    exact = post(_body_of_size(observation, LIMIT))
    assert exact.status_code == 200, exact.get_data(as_text=True)
    before = log_counts()
    assert_error(post(_body_of_size(observation, LIMIT + 1, "edge-2")), 413, "request_entity_too_large")
    assert log_counts() == before


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "identity, gzip", "x-unknown"])
def test_a_content_encoding_is_refused_415_and_nothing_is_written(client, observation, assert_error, log_counts,
                                                                  coding):
    """RFC 9110: a coding the server does not apply is a 415, whether the body is really encoded or only labelled."""
    plain = json.dumps({"observation_id": "coded", "observation": observation}).encode()
    before = log_counts()
    for body in (plain, gzip.compress(plain)):
        answer = assert_error(client.post("/should_search", data=body, content_type=JSON,
                                          headers={"Content-Encoding": coding}), 415, "unsupported_content_encoding")
        assert "Content-Encoding" in answer["fields"]
    assert log_counts() == before


def test_content_encoding_identity_is_accepted(client, observation):
    response = client.post("/should_search", json={"observation_id": "plain", "observation": observation},
                           headers={"Content-Encoding": "identity"})
    assert response.status_code == 200, response.get_data(as_text=True)


@pytest.mark.parametrize("query, named", [
    ("min_group=5&min_group=abc", ["min_group"]),
    ("min_group=abc&min_group=5", ["min_group"]),
    ("department=Darien&department=X", ["department"]),
    ("since=2020-01-01&department=A&since=2021-01-01&department=B", ["department", "since"]),
])
@pytest.mark.parametrize("path", ["/report", "/report.html"])
def test_a_repeated_report_parameter_is_refused_naming_it(client, assert_error, path, query, named):
    answer = assert_error(client.get(f"{path}?{query}"), 400, "invalid_parameter")
    assert sorted(answer["fields"]) == named
    assert all(problem == "is given more than once" for problem in answer["fields"].values())


def test_json_error_messages_say_at_once(client, assert_error):
    """json's "Unterminated string starting at" is followed by the position, not by a second "at"."""
    for raw in (b'{"observation_id": "abc', b'{"a": }', b"[1, 2"):
        message = assert_error(client.post("/should_search", data=raw, content_type=JSON), 400)["message"]
        assert " at at " not in message and "line 1 column" in message, message


def test_a_report_is_refused_503_while_another_is_computed(client, assert_error):
    """Another worker holding the machine's report lock: 503 with Retry-After, at once; then served as usual."""
    with client.application.test_request_context():
        lock_path = report_guard._directory() / "lock"
    with open(lock_path, "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        busy = client.get("/report?min_group=7")
        fcntl.flock(held, fcntl.LOCK_UN)
    assert_error(busy, 503, "report_busy")
    assert busy.headers["Retry-After"] == str(report_guard.RETRY_AFTER_S)
    assert client.get("/report?min_group=7").status_code == 200


def test_identical_reports_within_seconds_are_one_computation(client, monkeypatch):
    """Identical requests within CACHE_S are answered from the first computation, even while the lock is held."""
    calls = []
    real_build = views.build_report
    monkeypatch.setattr(views, "build_report", lambda *a, **k: calls.append(1) or real_build(*a, **k))
    first = client.get("/report?min_group=9")
    with client.application.test_request_context():
        lock_path = report_guard._directory() / "lock"
    with open(lock_path, "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        again = client.get("/report?min_group=9")
        other = client.get("/report?min_group=8")
    assert first.status_code == again.status_code == 200 and len(calls) == 1
    assert again.get_json() == first.get_json() and "Age" in again.headers
    assert other.status_code == 503  # a different report is not in the cache


def test_the_report_page_is_never_served_from_the_cache(client):
    """The page names the signed-in user and carries their CSRF token: one computed for another caller is not reused."""
    assert client.get("/report.html?min_group=9").status_code == 200
    with client.application.test_request_context():
        lock_path = report_guard._directory() / "lock"
    with open(lock_path, "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        again = client.get("/report.html?min_group=9")
    assert again.status_code == 503 and again.headers["Retry-After"] == str(report_guard.RETRY_AFTER_S)
    assert not list(lock_path.parent.glob("*.cache"))
