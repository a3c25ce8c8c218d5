"""service.http_buffer (when a request has arrived whole) and service.gunicorn_worker's error answers, in process.

The worker against real sockets is tests/test_hostile_clients.py.
"""
from __future__ import annotations

import json
import logging
import select
import selectors
import socket

import pytest
from gunicorn.http import errors as http_errors

from service.gunicorn_worker import BufferingWorker
from service.http_buffer import MAX_HEAD_BYTES, PendingRequest

HEAD = b"POST /should_search HTTP/1.1\r\nHost: x\r\n"


def _feed(*pieces: bytes, max_body: int = 100) -> tuple[PendingRequest, list[bool]]:
    pending = PendingRequest(max_body)
    return pending, [pending.feed(piece) for piece in pieces]


def test_a_body_is_whole_at_its_content_length_and_not_before():
    pending, done = _feed(HEAD + b"Content-Length: 5\r\n\r\n", b"ab", b"cde")
    assert done == [False, False, True]
    assert pending.method == b"POST" and pending.target == b"/should_search"


def test_a_request_without_body_is_whole_at_the_blank_line():
    assert _feed(b"GET /report?x=1 HTTP/1.1\r\n", b"Host: x\r\n\r\n")[1] == [False, True]
    assert _feed(b"GET /report?x=1 HTTP/1.1\r\nHost: x\r\n\r\n")[0].target == b"/report?x=1"


def test_a_chunked_body_is_whole_after_its_last_chunk_and_trailers():
    head = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    assert _feed(head, b"3\r\nabc\r\n", b"2;ext=1\r\nde\r\n", b"0\r\n", b"\r\n")[1] == [False] * 4 + [True]
    assert _feed(head + b"3\r\nabc\r\n0\r\nX-Trailer: 1\r\n", b"\r\n")[1] == [False, True]
    assert _feed(head + b"1\r\na\r\n0\r\n\r\n")[1] == [True]


@pytest.mark.parametrize("head", [
    HEAD + b"Content-Length: 1000\r\n\r\n",  # past max_body: the app refuses it (413) without reading it
    HEAD + b"Content-Length: abc\r\n\r\n",  # malformed: gunicorn refuses it (400)
    HEAD + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
    HEAD + b"Transfer-Encoding: gzip\r\n\r\n",  # a coding gunicorn refuses (501)
    HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",  # a bad chunk size
])
def test_what_cannot_be_framed_is_handed_over_at_once(head):
    assert _feed(head)[1] == [True]


def test_a_runaway_head_is_handed_over_as_too_large():
    pending, done = _feed(HEAD + b"X: " + b"a" * MAX_HEAD_BYTES)
    assert done == [True] and pending.head_too_large


def test_expect_continue_is_seen():
    pending, done = _feed(HEAD + b"Expect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    assert done == [False] and pending.expects_continue


def test_a_chunked_body_past_the_limit_is_handed_over_before_its_end():
    head = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    assert _feed(head + b"64\r\n" + b"a" * 100 + b"\r\n" + b"2\r\nab\r\n", max_body=50)[1] == [True]


class _Worker(BufferingWorker):
    """handle_error without a running gunicorn: only the settings and the logger it reads."""

    def __init__(self, log):
        self.log = log
        self.cfg = type("Cfg", (), {"timeout": 15})()


class _Request:
    method, uri = "POST", "/should_search?department=ZQX-CANARY-uri"


@pytest.mark.parametrize("error, status, code", [
    (SystemExit(1), 500, "internal_error"),  # the worker timeout: gunicorn's SIGABRT handler exits
    (RuntimeError("ZQX-CANARY-message"), 500, "internal_error"),
    (http_errors.LimitRequestLine(9000, 4094), 414, "uri_too_long"),
    (http_errors.LimitRequestHeaders("ZQX-CANARY-headers"), 431, "request_header_fields_too_large"),
    (http_errors.InvalidRequestLine("ZQX-CANARY /x HTTP/1.1"), 400, "bad_request"),
    (http_errors.InvalidHeader("X-ZQX-CANARY"), 400, "bad_request"),
    (http_errors.UnsupportedTransferCoding("ZQX-CANARY"), 501, "not_implemented"),
])
def test_gunicorn_errors_answer_the_json_shape_and_log_no_request_text(caplog, error, status, code):
    """What gunicorn answers itself is the one JSON error shape; its log line holds no URI, header or message."""
    caplog.set_level(logging.DEBUG)
    server, client = socket.socketpair()
    with server, client:
        try:
            raise error
        except BaseException as raised:  # noqa: BLE001 - as gunicorn hands it over, with its traceback
            _Worker(logging.getLogger("gunicorn.error")).handle_error(_Request(), server, ("127.0.0.1", 1), raised)
        answer = client.recv(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()) and b"Content-Type: application/json" in head
    payload = json.loads(body)
    assert set(payload) == {"status", "error", "message", "fields"}
    assert (payload["status"], payload["error"]) == (status, code)
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert caplog.records and "zqx" not in text.lower() and "zqx" not in body.decode().lower()
    if isinstance(error, SystemExit):
        assert "longer than the server's 15 s limit" in payload["message"]


def _epoll_events(epoll_fd: int, target_fd: int) -> int:
    """The event mask the kernel holds for ``target_fd`` in an epoll instance (from /proc/self/fdinfo)."""
    with open(f"/proc/self/fdinfo/{epoll_fd}") as info:
        for line in info:
            fields = line.split()
            if fields[:1] == ["tfd:"] and int(fields[1]) == target_fd:
                return int(fields[fields.index("events:") + 1], 16)
    raise AssertionError(f"fd {target_fd} is not registered in epoll {epoll_fd}")


@pytest.mark.skipif(not hasattr(select, "EPOLLEXCLUSIVE"), reason="EPOLLEXCLUSIVE is Linux's")
def test_a_listening_socket_wakes_one_waiting_worker_and_still_accepts():
    """Registered EPOLLEXCLUSIVE (one idle worker woken per connection, not all); a connection is still seen."""
    from service.gunicorn_worker import _ExclusiveAcceptSelector
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    selector = _ExclusiveAcceptSelector()
    try:
        selector.register_listener(listener)
        events = _epoll_events(selector.fileno(), listener.fileno())
        assert events & select.EPOLLEXCLUSIVE and events & select.EPOLLIN
        assert selector.select(0) == []
        with socket.create_connection(listener.getsockname()):
            [(key, mask)] = selector.select(1.0)
            assert key.fileobj is listener and key.data is None and mask == selectors.EVENT_READ
            listener.accept()[0].close()
        selector.unregister(listener)
        assert selector.get_map() == {}
    finally:
        selector.close()
        listener.close()


class _CountingSelector(selectors.DefaultSelector):
    """A selector that counts unregister calls, to see which sockets the worker hands back to it."""

    def __init__(self):
        super().__init__()
        self.unregistered = 0

    def unregister(self, fileobj):
        self.unregistered += 1
        return super().unregister(fileobj)


@pytest.mark.parametrize("watched", [False, True])
def test_closing_a_connection_unregisters_only_a_watched_socket(watched):
    """A connection served straight from accept was never registered: closing it asks the selector nothing.

    (An unknown socket makes the selector format its repr for a KeyError: two syscalls on every such request.)
    """
    from service.gunicorn_worker import _Connection
    worker = _Worker(logging.getLogger("gunicorn.error"))
    worker.selector = _CountingSelector()
    server, client = socket.socketpair()
    with client:
        connection = _Connection(server, ("127.0.0.1", 1), None, max_body=100)
        if watched:
            worker._watch(connection)
            assert worker.selector.get_map()[server].data is connection
        worker._close(connection)
        assert worker.selector.unregistered == int(watched)
        assert worker.selector.get_map() == {} and server.fileno() == -1 and not connection.watched
    worker.selector.close()
