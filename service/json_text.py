"""Compact JSON text, byte for byte what ``json.dumps`` writes, made by orjson whenever its bytes are the same.

orjson encodes a decision's answer in ~2 µs where the standard library takes ~27 (issue 15, bench/README.md), but
writes some things differently: floats below 1e-4 or from 1e16 on (``1e-05`` as ``0.00001``, ``1e-07`` as
``1e-7``), NaN and the infinities as ``null``, non-ASCII and DEL unescaped, and it knows types the standard library
does not. So its text is used only when none of that can be in it; otherwise the standard library writes it, as
before. (A UUID orjson writes itself, as ``str()`` does: what Flask's default gives; no stored row holds one.)
Framework-free: service.predictions uses it for the stored columns, the app's JSON provider for answers.
"""
from __future__ import annotations

import json

import orjson

# Types the standard library would hand to ``default`` (or refuse) go to it: orjson must not encode them its way.
_PLAIN_TYPES_ONLY = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


def _refuse(value):
    raise TypeError("not a plain JSON type")  # orjson raises JSONEncodeError, a TypeError: the slow path


def _same_as_json(text: bytes, ensure_ascii: bool) -> bool:
    """Whether orjson's ``text`` is certainly what json.dumps writes."""
    # Every float the standard library writes otherwise has "e-", "e+" or ".0000" in orjson's text (1.5 million random
    # floats checked; tests/test_json_text.py), and a null may have been a NaN. Substring tests run in C, ~1 µs each
    # on an answer (a regular expression took ~17); a string that holds one only costs the slow path.
    if b"e-" in text or b"e+" in text or b".0000" in text or b"null" in text:
        return False
    return not ensure_ascii or (text.isascii() and b"\x7f" not in text)


def dumps(value, sort_keys: bool = False, ensure_ascii: bool = True, default=None) -> str:
    """``json.dumps(value, separators=(",", ":"), sort_keys=..., ensure_ascii=..., default=...)``, faster."""
    try:
        text = orjson.dumps(value, default=_refuse, option=_PLAIN_TYPES_ONLY | (orjson.OPT_SORT_KEYS if sort_keys
                                                                                 else 0))
    except TypeError:  # a type, a key, a big integer, a lone surrogate or a depth orjson does not take
        text = None
    if text is None or not _same_as_json(text, ensure_ascii):
        return json.dumps(value, separators=(",", ":"), sort_keys=sort_keys, ensure_ascii=ensure_ascii,
                          default=default)
    return text.decode()
