"""How much of an HTTP/1.x request has arrived: enough to tell when a buffered request is whole, nothing more.

``PendingRequest`` collects the bytes of one connection and says when the head (request line and headers) and the
body (by Content-Length, or chunked framing) are complete. It does not validate: anything it cannot frame is
declared complete, so gunicorn's own parser reads it and refuses it with its usual status. Used by
``service.gunicorn_worker``, which only hands a worker a request that has arrived whole.
"""
from __future__ import annotations

import re

MAX_HEAD_BYTES = 64 * 1024  # a head longer than this is refused 431 before gunicorn parses it
_CHUNK_LINE_MAX = 1024
_CONTENT_LENGTH = re.compile(rb"^content-length[ \t]*:[ \t]*(.*?)[ \t]*$", re.IGNORECASE | re.MULTILINE)
_TRANSFER_ENCODING = re.compile(rb"^transfer-encoding[ \t]*:(.*)$", re.IGNORECASE | re.MULTILINE)
_EXPECT_CONTINUE = re.compile(rb"^expect[ \t]*:[ \t]*100-continue[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)


class PendingRequest:
    """The bytes of one request as they arrive; ``complete`` once the head and the whole body are in."""

    def __init__(self, max_body: int):
        self.data = bytearray()
        self.max_body = max_body
        self.head_end: int | None = None  # offset just past the blank line ending the head
        self.body_end: int | None = None  # offset just past the body, once known
        self.chunked = False
        self.expects_continue = False
        self.head_too_large = False
        self._scan = 0  # chunked framing: offset of the next chunk-size line

    @property
    def method(self) -> bytes:
        """The request method as sent (bytes before the first space)."""
        return bytes(self.data[:8]).split(b" ", 1)[0]

    @property
    def target(self) -> bytes:
        """The request target as sent (path and query), or b"" before the request line is whole."""
        line_end = self.data.find(b"\r\n", 0, self.head_end or 0)
        parts = bytes(self.data[:max(line_end, 0)]).split(b" ")
        return parts[1] if len(parts) == 3 else b""

    def feed(self, chunk: bytes) -> bool:
        """Add received bytes; True once the request is complete (or unframeable and left to gunicorn)."""
        self.data += chunk
        if self.head_end is None and not self._find_head():
            return self.head_too_large
        if self.chunked:
            return self._scan_chunks()
        return self.body_end is not None and len(self.data) >= self.body_end

    def _find_head(self) -> bool:
        end = self.data.find(b"\r\n\r\n")
        if end < 0:
            self.head_too_large = len(self.data) > MAX_HEAD_BYTES
            return False
        self.head_end = end + 4
        head = bytes(self.data[:end])
        self.expects_continue = bool(_EXPECT_CONTINUE.search(head))
        codings = _TRANSFER_ENCODING.findall(head)
        lengths = _CONTENT_LENGTH.findall(head)
        if codings:
            # chunked framing is scanned; any other coding (or chunked + Content-Length) is gunicorn's to refuse
            self.chunked = b"chunked" in b",".join(codings).lower() and not lengths
            if not self.chunked:
                self.body_end = self.head_end
            self._scan = self.head_end
            return True
        if len(lengths) == 1 and lengths[0].isdigit():
            length = int(lengths[0])
            # Past the limit the app refuses it (413) before reading: no reason to wait for it.
            self.body_end = self.head_end + (length if length <= self.max_body else 0)
        else:
            self.body_end = self.head_end  # no body, or a malformed length that gunicorn refuses
        return True

    def _scan_chunks(self) -> bool:
        while True:
            line_end = self.data.find(b"\r\n", self._scan)
            if line_end < 0:
                return len(self.data) - self._scan > _CHUNK_LINE_MAX  # a runaway size line: gunicorn refuses it
            size_text = bytes(self.data[self._scan:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                return True
            if size == 0:
                # trailers: header lines up to an empty line
                if self.data[line_end + 2:line_end + 4] == b"\r\n":
                    return True
                return self.data.find(b"\r\n\r\n", line_end) >= 0
            if self._scan - self.head_end > self.max_body:
                return True  # the body is already past the limit: the app refuses it (413)
            next_line = line_end + 2 + size + 2
            if len(self.data) < next_line:
                return False
            self._scan = next_line
