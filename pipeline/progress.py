"""Timestamped progress lines on stderr, shared by the long-running commands."""
from __future__ import annotations

import sys
import time


class Progress:
    """Call with a message to print it on stderr, prefixed by the seconds since creation (silent when quiet)."""

    def __init__(self, quiet: bool = False):
        self.quiet, self.started = quiet, time.perf_counter()

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.started:7.1f}s] {message}", file=sys.stderr, flush=True)
