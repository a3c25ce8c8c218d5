"""gunicorn's sync worker, with the request read by an event loop first: a slow client costs a socket, not a worker.

The sync worker reads a request with blocking calls, so a client trickling its headers or body holds the whole
process until gunicorn's timeout kills it (issue 17: two such sockets kept /health from answering for 10 s).
``BufferingWorker`` accepts connections into a selector and reads them without blocking; only a request that has
arrived whole (``service.http_buffer``) is handed to the sync worker's code, from memory. A request not whole within
``READ_TIMEOUT_S`` of its connection is answered 408 and closed; the closing drain after a response is also waited
for by the loop, not by the worker. One request is served at a time, as by the sync worker (one database connection
and one model per process, no threads).

Errors gunicorn answers itself (a malformed request line or header, 414, 431, the 500 of a worker timeout) get the
service's one JSON error shape (``service.errors.error_body``), and are logged without the request line, the URI or
any header value: gunicorn's own messages quote them, and the URI may carry personal data in its query.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import selectors
import socket
import time
import traceback
from collections import deque

from gunicorn import glogging, http, util
from gunicorn.http import errors as http_errors
from gunicorn.workers.sync import SyncWorker

from service.errors import error_body
from service.http_buffer import PendingRequest

READ_TIMEOUT_S = 5.0  # from accept to the last byte of the request (head and body, at most MAX_CONTENT_LENGTH)
LINGER_S = 2.0  # after a response: how long the loop drains what the client still sends before closing
DEFAULT_MAX_BODY = 1 << 20  # when the app has no MAX_CONTENT_LENGTH (a bare WSGI app, e.g. the benchmark's)
_WAKE = "wake"
# Reports take a worker for up to seconds (at most one at a time per machine: service/report_guard.py); a worker
# drains the kernel's queue and serves every other request it finds before the next report, so an officer's
# decision never waits behind a queue of analysts' report requests.
LATER_PREFIX = b"/report"
CUT_LOG_EVERY_S = 10.0  # 408s are logged as one count per interval, so a flood of slow sockets is not a log flood

# gunicorn's refusals: (status, reason, error code, message). The messages never quote the request.
_REFUSALS = [
    (http_errors.LimitRequestLine, 414, "URI Too Long", "uri_too_long",
     "the request line is too long; send the filters in fewer bytes"),
    (http_errors.LimitRequestHeaders, 431, "Request Header Fields Too Large", "request_header_fields_too_large",
     "the request headers are too many or too large"),
    (http_errors.UnsupportedTransferCoding, 501, "Not Implemented", "not_implemented",
     "the Transfer-Encoding is not supported; send a Content-Length or chunked"),
    (http_errors.ExpectationFailed, 417, "Expectation Failed", "expectation_failed",
     "only the expectation 100-continue is supported"),
    (http_errors.ForbiddenProxyRequest, 403, "Forbidden", "forbidden", "this proxy is not allowed"),
    (http_errors.ConfigurationProblem, 500, "Internal Server Error", "internal_error",
     "the server's proxy configuration refused the request; it has been logged"),
    ((http_errors.InvalidChunkSize, http_errors.ChunkMissingTerminator, http_errors.InvalidChunkExtension), 400,
     "Bad Request", "bad_request", "the chunked body is malformed"),
    ((http_errors.InvalidHeader, http_errors.InvalidHeaderName, http_errors.ObsoleteFolding), 400, "Bad Request",
     "bad_request", "a request header is malformed"),
    (http_errors.ParseException, 400, "Bad Request", "bad_request", "the request is not valid HTTP/1.1"),
]


def json_error(status: int, reason: str, error: str, message: str, headers: str = "") -> bytes:
    """A whole HTTP response carrying the one JSON error shape, closing the connection."""
    body = json.dumps(error_body(status, error, message)).encode()
    return (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n{headers}"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + body


class NoAccessLogger(glogging.Logger):
    """gunicorn's logger with no access log at all (gunicorn.conf.py says why: the app writes its own request log).

    gunicorn builds every request's access-log atoms whenever a logconfig_dict is set, even for a null handler:
    1-2% of a worker's samples under load (issue 15's profile, bench/README.md).
    """

    def access(self, resp, req, environ, request_time):
        """Nothing: no access line is built or written."""


class _Connection:
    """A client socket the loop owns: reading its request, or lingering after the response."""

    def __init__(self, sock: socket.socket, addr, listener, max_body: int):
        self.sock, self.addr, self.listener = sock, addr, listener
        self.request = PendingRequest(max_body)
        self.deadline = time.monotonic() + READ_TIMEOUT_S
        self.lingering = False
        self.whole = False
        self.sent_continue = False
        self.watched = False  # registered in the selector (see _unwatch)


class _ExclusiveAcceptSelector(getattr(selectors, "EpollSelector", selectors.DefaultSelector)):
    """The loop's selector; on Linux, listening sockets are registered with EPOLLEXCLUSIVE.

    Every idle worker waits on the same listening socket. Without the flag, each new connection wakes all of them and
    all but one find nothing to accept (issue 15: with 3 workers and one client, two wasted wake-ups per request).
    With it the kernel wakes one waiting worker, and a busy worker does not swallow the wake-up (it goes on to the
    next waiting one). The flag must be on the epoll the worker blocks in, so it is set here, not on a nested epoll.
    """

    def register_listener(self, listener) -> None:
        """Watch a listening socket for connections (data None: what the loop accepts from)."""
        key = self.register(listener, selectors.EVENT_READ, None)
        exclusive = getattr(select, "EPOLLEXCLUSIVE", 0)
        if exclusive and isinstance(self, selectors.EpollSelector):
            self._selector.unregister(key.fd)  # EPOLLEXCLUSIVE may only be given when adding
            self._selector.register(key.fd, select.EPOLLIN | exclusive)


class BufferingWorker(SyncWorker):
    """A sync worker whose requests are read, whole, by a non-blocking loop before they take the process."""

    def init_process(self):
        """Set up the loop's selector, then run as gunicorn's base worker does."""
        self.selector = _ExclusiveAcceptSelector()
        self.ready: deque[_Connection] = deque()  # whole requests, served first
        self.later: deque[_Connection] = deque()  # whole requests for a report, served when nothing else waits
        self.progressed = False
        self.cut_count, self.cut_logged_at = 0, float("-inf")  # the first cut is logged at once
        super().init_process()  # loads the app, then calls run()

    def run(self):
        """Accept, read and serve until told to stop; then finish the requests already taken, within their limit."""
        config = getattr(self.wsgi, "config", None) or {}
        self.max_body = config.get("MAX_CONTENT_LENGTH") or DEFAULT_MAX_BODY
        # A signal (SIGTERM, SIGABRT) writes to the base worker's pipe: it wakes the loop at once.
        self.selector.register(self.PIPE[0], selectors.EVENT_READ, _WAKE)
        for listener in self.sockets:
            listener.setblocking(False)
            self.selector.register_listener(listener)
        while self.alive:
            self.notify()
            if not self.is_parent_alive():
                break
            self._serve_or_wait()
        for listener in self.sockets:
            self.selector.unregister(listener)
        stop_by = time.monotonic() + self.cfg.graceful_timeout
        while self._connections() and time.monotonic() < stop_by:
            self.notify()
            self._serve_or_wait()
        for connection in self._connections():
            self._close(connection)
        self._log_cuts(force=True)

    def _serve_or_wait(self) -> None:
        if self.ready:
            self._serve(self.ready.popleft())
            return
        now = time.monotonic()
        waits = [connection.deadline - now for connection in self._connections()]
        self.progressed = False
        try:
            # With reports waiting, only look for what else has arrived (a decision goes before them).
            # At most half gunicorn's timeout between heartbeats (self.timeout is that half), as the sync worker.
            events = self.selector.select(0.0 if self.later else max(0.0, min([self.timeout or 0.5, *waits])))
        except InterruptedError:
            events = []
        for key, _ in events:
            if key.data is _WAKE:
                with contextlib.suppress(OSError):
                    os.read(self.PIPE[0], 64)
            elif key.data is None:
                if self.alive:
                    self._accept(key.fileobj)
            else:
                self._receive(key.data)
        self._expire()
        if self.later and not self.ready and not self.progressed:
            self._serve(self.later.popleft())

    def _connections(self) -> list:
        """The connections the loop owns (reading a request, or lingering), plus those ready to serve."""
        owned = [key.data for key in self.selector.get_map().values() if isinstance(key.data, _Connection)]
        return owned + list(self.ready) + list(self.later)

    def _accept(self, listener) -> None:
        # One connection per wake-up, as the sync worker does: the kernel's queue spreads the rest over the workers.
        if len(self.selector.get_map()) + len(self.later) >= self.cfg.worker_connections:
            return  # the rest wait in the kernel's queue
        try:
            sock, addr = listener.accept()
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                return
            raise
        sock.setblocking(False)
        util.close_on_exec(sock)
        self.progressed = True
        connection = _Connection(sock, addr, listener, self.max_body)
        # The request is often there already: then it is served without touching the selector.
        self._receive(connection)
        if not connection.whole and connection.sock.fileno() >= 0:
            self._watch(connection)

    def _receive(self, connection: _Connection) -> None:
        try:
            data = connection.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if connection.lingering:
            if not data:
                self._close(connection)
            return
        if not data:
            self._close(connection)  # gone before its request was whole: nothing to answer
            return
        request = connection.request
        if request.feed(data):
            connection.whole = True
            self._unwatch(connection)
            (self.later if request.target.startswith(LATER_PREFIX) else self.ready).append(connection)
            self.progressed = True
        elif request.head_end is not None and request.expects_continue and not connection.sent_continue:
            connection.sent_continue = True
            self._send_nowait(connection, b"HTTP/1.1 100 Continue\r\n\r\n")

    def _expire(self) -> None:
        now = time.monotonic()
        for key in list(self.selector.get_map().values()):
            connection = key.data
            if not isinstance(connection, _Connection) or connection.deadline > now:
                continue
            if not connection.lingering:
                self._send_nowait(connection, json_error(
                    408, "Request Timeout", "request_timeout",
                    f"the request did not arrive whole within {READ_TIMEOUT_S:g} s; send it at once"))
                self.cut_count += 1
            self._close(connection)
        self._log_cuts()

    def _log_cuts(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.cut_count and (force or now - self.cut_logged_at >= CUT_LOG_EVERY_S):
            self.log.warning("408: closed %d connection(s) whose request did not arrive whole within %g s",
                             self.cut_count, READ_TIMEOUT_S)
            self.cut_count, self.cut_logged_at = 0, now

    def _send_nowait(self, connection: _Connection, data: bytes) -> None:
        try:
            connection.sock.send(data)
        except OSError:
            pass  # the client is gone or not reading: it loses an answer it was not waiting for

    def _watch(self, connection: _Connection) -> None:
        self.selector.register(connection.sock, selectors.EVENT_READ, connection)
        connection.watched = True

    def _unwatch(self, connection: _Connection) -> None:
        # Only a watched socket: the selector's KeyError for another would format the socket's repr (two syscalls).
        if connection.watched:
            connection.watched = False
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(connection.sock)

    def _close(self, connection: _Connection) -> None:
        self._unwatch(connection)
        connection.sock.close()

    def _serve(self, connection: _Connection) -> None:
        sock = connection.sock
        if connection.request.method in (b"GET", b"HEAD") and _client_gone(sock):
            sock.close()  # a read nobody waits for any more (a report) is not computed
            return
        # Blocking from here, as the sync worker; the remaining bytes are in memory, so this limit bounds only the
        # response's write to a client that does not read it.
        sock.settimeout(READ_TIMEOUT_S)
        self._handle_buffered(connection)

    def _handle_buffered(self, connection: _Connection) -> None:
        # SyncWorker.handle, with the parser fed from the buffer and the closing drain left to the loop.
        sock, req = connection.sock, None
        try:
            parser = http.get_parser(self.cfg, sock, connection.addr)
            parser.unreader.unread(bytes(connection.request.data))
            if connection.request.head_too_large:
                raise http_errors.LimitRequestHeaders("the head is larger than the buffer")
            req = next(parser)
            if connection.sent_continue:
                req._expected_100_continue = False  # already sent by the loop: one is enough
            self.handle_request(connection.listener, req, sock, connection.addr)
        except (http.errors.NoMoreData, StopIteration):
            pass
        except OSError as error:
            if error.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.log.warning("socket error while answering a request: %s", type(error).__name__)
        except BaseException as error:  # noqa: BLE001 - SystemExit is the worker timeout: answered, then re-raised
            self.handle_error(req, sock, connection.addr, error)
            if isinstance(error, SystemExit):
                sock.close()
                raise
        self._linger(connection)

    def _linger(self, connection: _Connection) -> None:
        # util.close_graceful without its blocking wait: FIN now, then the loop drains until the client closes.
        try:
            connection.sock.setblocking(False)
            connection.sock.shutdown(socket.SHUT_WR)
        except OSError:
            connection.sock.close()
            return
        connection.lingering, connection.deadline = True, time.monotonic() + LINGER_S
        self._receive(connection)  # the client has often closed already: then no need to wait for it
        if connection.sock.fileno() >= 0:
            self._watch(connection)

    def handle_error(self, req, client, addr, exc):
        """gunicorn's refusals and failures in the JSON error shape, logged without the request's text."""
        for kinds, status, reason, code, message in _REFUSALS:
            if isinstance(exc, kinds):
                self.log.warning("refused a request %d (%s) from ip=%s", status, type(exc).__name__, addr[0])
                break
        else:
            status, reason, code = 500, "Internal Server Error", "internal_error"
            if isinstance(exc, SystemExit):
                message = (f"the request took longer than the server's {self.cfg.timeout} s limit and was stopped; "
                           "retry with the same id")
            else:
                message = "Unexpected server error; it has been logged."
            frames = "\n".join(f'  File "{f.filename}", line {f.lineno}, in {f.name}'
                               for f in traceback.extract_tb(exc.__traceback__))
            self.log.error("error handling a request: %s.%s (the request line, URI and message are withheld: "
                           "they may hold personal data)\n%s", type(exc).__module__, type(exc).__qualname__, frames)
        try:
            util.write_nonblock(client, json_error(status, reason, code, message))
        except Exception:  # noqa: BLE001 - the client may be gone; nothing more to tell it
            pass


def _client_gone(sock: socket.socket) -> bool:
    """Whether the client closed its side (or reset) while its request waited; pending bytes mean it is there."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
