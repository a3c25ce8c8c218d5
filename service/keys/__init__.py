"""API keys: the format, the salted hashes configured in API_KEYS, checking a presented key, and a CLI to make one.

A key is ``<key_id>.<secret>``; the service stores only ``key_id:role:salt_hex:sha256_hex`` per key, where
``sha256_hex = sha256(salt + secret)``. No Flask here: the HTTP side is ``service.auth``.

Run ``python -m service.keys create --role officer`` to make a key (``--help`` for the rest; the CLI is
``service/keys/__main__.py``).
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

ROLES = ("officer", "analyst", "admin", "monitor")  # monitor: /metrics (and the public /health)
MAX_ACTIVE_PER_ROLE = 2  # the key in use and its replacement, during a rotation
KEY_ID = re.compile(r"[a-z0-9-]{3,32}")
SECRET = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32): 256 random bits
SALT_HEX = re.compile(r"(?:[0-9a-f]{2}){16,64}")
DIGEST_HEX = re.compile(r"[0-9a-f]{64}")
# A digest no secret is known to produce, so an unknown key id costs the same hash and comparison as a known one.
_DECOY = (bytes(16), bytes(32))


class KeyConfigError(ValueError):
    """API_KEYS or API_KEYS_REVOKED is malformed or unsafe; the message names the entry, never its hash."""


class KeyRejected(Exception):
    """A presented key is missing, malformed, unknown, wrong or revoked; ``code`` is the API error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class ApiKey:
    """One configured key: its id, role, salt and the sha256 of salt + secret."""

    key_id: str
    role: str
    salt: bytes
    digest: bytes


def hash_secret(salt: bytes, secret: str) -> bytes:
    """sha256(salt + secret).

    A single salted sha256, not a slow KDF (bcrypt, scrypt): slow hashing protects guessable passwords, but these
    secrets are 256 random bits that no one can enumerate, so it would only add milliseconds to every request.
    """
    return hashlib.sha256(salt + secret.encode("ascii")).digest()


def _parse_entry(index: int, entry: str) -> ApiKey:
    parts = entry.strip().split(":")
    where = f"API_KEYS entry {index}"
    if len(parts) != 4:
        raise KeyConfigError(f"{where} has {len(parts)} ':'-separated parts; expected key_id:role:salt_hex:sha256_hex")
    key_id, role, salt_hex, digest_hex = parts
    if not KEY_ID.fullmatch(key_id):
        raise KeyConfigError(f"{where}: the key id must be 3-32 characters of a-z, 0-9 and '-'")
    if role not in ROLES:
        raise KeyConfigError(f"{where} ({key_id}): unknown role; use one of {', '.join(ROLES)}")
    if not SALT_HEX.fullmatch(salt_hex):
        raise KeyConfigError(f"{where} ({key_id}): the salt must be 32-128 lowercase hex digits")
    if not DIGEST_HEX.fullmatch(digest_hex):
        raise KeyConfigError(f"{where} ({key_id}): the hash must be 64 lowercase hex digits (sha256)")
    return ApiKey(key_id, role, bytes.fromhex(salt_hex), bytes.fromhex(digest_hex))


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


@dataclass(frozen=True)
class Keyring:
    """The configured keys by id, and the ids refused even while still listed."""

    keys: dict[str, ApiKey]
    revoked: frozenset[str]

    @classmethod
    def parse(cls, keys_text: str | None, revoked_text: str | None = None) -> Keyring:
        """Parse API_KEYS and API_KEYS_REVOKED; raise KeyConfigError on any malformed, duplicate or excess entry."""
        keys: dict[str, ApiKey] = {}
        for index, entry in enumerate(_split(keys_text), start=1):
            key = _parse_entry(index, entry)
            if key.key_id in keys:
                raise KeyConfigError(f"API_KEYS entry {index}: key id {key.key_id!r} is listed twice")
            keys[key.key_id] = key
        revoked = frozenset(_split(revoked_text))
        bad = sorted(key_id for key_id in revoked if not KEY_ID.fullmatch(key_id))
        if bad:
            raise KeyConfigError(f"API_KEYS_REVOKED holds {len(bad)} malformed key id(s); "
                                 "ids are 3-32 characters of a-z, 0-9 and '-'")
        for role in ROLES:
            active = sorted(k.key_id for k in keys.values() if k.role == role and k.key_id not in revoked)
            if len(active) > MAX_ACTIVE_PER_ROLE:
                raise KeyConfigError(f"role {role} has {len(active)} active keys ({', '.join(active)}); at most "
                                     f"{MAX_ACTIVE_PER_ROLE}: remove or revoke (API_KEYS_REVOKED) the old ones")
        return cls(keys, revoked)

    def active(self) -> list[ApiKey]:
        """The keys that are listed and not revoked."""
        return [key for key in self.keys.values() if key.key_id not in self.revoked]

    def authenticate(self, authorization: str | None) -> ApiKey:
        """The key an ``Authorization: Bearer <key_id>.<secret>`` header proves; KeyRejected otherwise."""
        if authorization is None:
            raise KeyRejected("missing_api_key", "send the header Authorization: Bearer <API key>")
        scheme, _, key = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise KeyRejected("invalid_api_key",
                              "the Authorization header must be 'Bearer <key_id>.<secret>' with a valid API key")
        return self.verify(key)

    def verify(self, key: str) -> ApiKey:
        """The configured key that ``<key_id>.<secret>`` is (as typed at sign-in or sent as Bearer); KeyRejected
        otherwise."""
        key_id, _, secret = key.strip().partition(".")
        if not KEY_ID.fullmatch(key_id) or not SECRET.fullmatch(secret):
            raise KeyRejected("invalid_api_key", "an API key is '<key_id>.<secret>' as `python -m service.keys "
                                                 "create` printed it")
        known = self.keys.get(key_id)
        salt, digest = (known.salt, known.digest) if known else _DECOY
        # compare_digest takes the same time wherever the digests differ, so timing reveals nothing of the hash.
        matches = hmac.compare_digest(hash_secret(salt, secret), digest)
        if known is None or not matches:
            raise KeyRejected("invalid_api_key", "this API key is not valid for this service")
        if key_id in self.revoked:
            raise KeyRejected("revoked_api_key", f"the API key {key_id} has been revoked; ask for a new one")
        return known


def new_key(role: str, key_id: str | None = None) -> tuple[str, str]:
    """A fresh random key for ``role``: (the key to give the client, the API_KEYS entry to configure)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    if key_id is None:
        key_id = f"{role}-{datetime.now(timezone.utc):%Y%m%d}-{secrets.token_hex(3)}"
    if not KEY_ID.fullmatch(key_id):
        raise ValueError("the key id must be 3-32 characters of a-z, 0-9 and '-'")
    secret, salt = secrets.token_urlsafe(32), secrets.token_bytes(16)
    return f"{key_id}.{secret}", f"{key_id}:{role}:{salt.hex()}:{hash_secret(salt, secret).hex()}"
