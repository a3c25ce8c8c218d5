"""One report computation at a time per machine (dyno, container), and identical requests served from it for a while.

A report takes a worker for up to its 10 s deadline, and the workers are the officers' too: 64 concurrent reports
held both workers for seconds (issue 17). So a report is computed only by the worker holding this machine's report
lock (a ``flock``, released by the kernel if the worker dies), and at most one worker is ever in a report: with two
or more workers one is always free for decisions. A JSON report identical to one computed less than ``CACHE_S`` ago
is answered from it; any other request that finds the lock held is answered 503 with Retry-After at once. (The page
is never cached: it names the signed-in user and carries their CSRF token.)

The lock and the cache live in a directory of the temporary directory named after the database, so services on
one machine sharing a database share them, and tests on their own throwaway databases do not.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import time
from pathlib import Path

from flask import Response, current_app, request

from service.errors import ApiError

CACHE_S = 5.0  # how long a computed report answers identical requests
RETRY_AFTER_S = 2  # what a refused client is told to wait: about one report's computation
_STALE_S = 60.0  # cache files older than this are deleted when a new one is written


def _directory() -> Path:
    url = current_app.config["DATABASE_URL"]
    path = Path(tempfile.gettempdir()) / f"ctrp3-reports-{hashlib.sha256(url.encode()).hexdigest()[:16]}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _cache_key(version: str) -> str:
    # Parameters are validated (each at most once) before this, so sorting them names one report.
    text = "\n".join([request.path, version, *(f"{k}={v}" for k, v in sorted(request.args.items()))])
    return hashlib.sha256(text.encode()).hexdigest()


def _cached(path: Path) -> Response | None:
    with contextlib.suppress(OSError):
        age = time.time() - path.stat().st_mtime
        if age < CACHE_S:
            mimetype, _, body = path.read_bytes().partition(b"\n")
            response = Response(body, mimetype=mimetype.decode())
            response.headers["Age"] = str(int(age))
            return response
    return None


def _store(directory: Path, path: Path, response: Response) -> None:
    if response.status_code != 200:
        return
    now = time.time()
    for old in directory.glob("*.cache"):
        with contextlib.suppress(OSError):
            if now - old.stat().st_mtime > _STALE_S:
                old.unlink()
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_bytes(response.mimetype.encode() + b"\n" + response.get_data())
    os.replace(temporary, path)  # readers see the whole file or none


def one_at_a_time(compute, version: str, cacheable: bool = True) -> Response:
    """``compute()``'s response, computed only under the machine's report lock; 503 when another report holds it.

    ``cacheable=False`` for a response that is not the same for every caller (the page names the signed-in user and
    carries their CSRF token): it still takes the lock, but is neither served from nor stored in the cache.
    """
    directory = _directory()
    path = directory / f"{_cache_key(version)}.cache"
    answer = _cached(path) if cacheable else None
    if answer is not None:
        return answer
    with open(directory / "lock", "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ApiError(503, "report_busy",
                           f"another report is being computed on this server; retry in {RETRY_AFTER_S} s (an "
                           f"identical request is then answered from it for {CACHE_S:g} s)",
                           headers={"Retry-After": str(RETRY_AFTER_S)}) from None
        try:
            answer = _cached(path) if cacheable else None  # stored by a holder that finished since the first look
            if answer is None:
                answer = compute()
                if cacheable:
                    _store(directory, path, answer)
            return answer
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
