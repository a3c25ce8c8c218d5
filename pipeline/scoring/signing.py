"""Signed model artifacts: an HMAC-SHA256 over the artifact bytes, its card and its version, checked before unpickling.

A pickle is code, so a registry row is loaded only when its signature verifies with a key from the environment:
``MODEL_SIGNING_KEYS`` is a comma-separated list of ``key_id:secret_hex`` entries (secret: at least 32 random bytes,
64+ hex digits). The FIRST entry signs new versions; every entry verifies. Rotation, like the API keys: put a new
key first, run ``python -m pipeline.registry resign`` (re-signs every row that verifies with any listed key), then
remove the old key. ``python -m pipeline.registry new-key`` prints a fresh entry.

Without MODEL_SIGNING_KEYS, off a Heroku dyno, the public local-development key ``dev`` signs and verifies, with a
warning: it keeps ``make run`` working on a fresh checkout, and protects nothing (its secret is in this file). On a
dyno ($DYNO set) a missing MODEL_SIGNING_KEYS is an error, as API_AUTH_DISABLED is, and rows signed with the
development key do not verify there, because it is never in a configured keyring.

The shipped default model (artifacts/default) is registered by migration 0002 under the key id ``shipped``: such a
row verifies only when its bytes and card equal the files shipped with this code, byte for byte, so it needs no key.
A former shipped default keeps its files under artifacts/retired/<version>, so a database that served it (or may
roll back to it) still verifies it after the code ships another default (migration 0005).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

ENV_VAR = "MODEL_SIGNING_KEYS"
KEY_ID = re.compile(r"[a-z0-9-]{3,32}")
SECRET_HEX = re.compile(r"(?:[0-9a-f]{2}){32,64}")
SHIPPED_KEY_ID = "shipped"
# A version names a directory under artifacts/retired only if it is a plain name: no path separator, no leading dot.
SAFE_VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
DEV_KEY_ID = "dev"
# Public on purpose: local development only, never accepted where MODEL_SIGNING_KEYS is set or on a dyno.
_DEV_SECRET = hashlib.sha256(b"ctrp3 local development model signing key: public, protects nothing").digest()
_DOMAIN = b"ctrp3-model-artifact-v1"


class SigningConfigError(ValueError):
    """MODEL_SIGNING_KEYS is malformed or missing where it is required; the message says what to do."""


class SignatureError(RuntimeError):
    """A stored artifact does not verify: altered, or signed with a key this process does not hold."""


def digest(data: bytes) -> str:
    """Hex sha256 of some bytes."""
    return hashlib.sha256(data).hexdigest()


def signed_message(version: str, artifact: bytes, card_text: str) -> bytes:
    """What the signature covers: the version, and the sha256 of the artifact bytes and of the card's exact text."""
    return b"\0".join([_DOMAIN, version.encode("utf-8"), digest(artifact).encode(),
                       digest(card_text.encode("utf-8")).encode()])


@dataclass(frozen=True)
class SigningKeys:
    """The configured keys by id, in order: the first signs, all verify."""

    keys: tuple[tuple[str, bytes], ...]
    development: bool = False

    @property
    def signing_key_id(self) -> str:
        """The id of the key that signs new versions."""
        return self.keys[0][0]

    def sign(self, version: str, artifact: bytes, card_text: str) -> tuple[str, str]:
        """(key id, hex HMAC-SHA256) of a version with the signing key."""
        key_id, secret = self.keys[0]
        if self.development:
            log.warning("signing model %s with the public local-development key (MODEL_SIGNING_KEYS is not set)",
                        version)
        return key_id, hmac.new(secret, signed_message(version, artifact, card_text), hashlib.sha256).hexdigest()

    def verify(self, version: str, artifact: bytes, card_text: str, key_id: str, signature: str) -> None:
        """Raise SignatureError unless ``signature`` is the HMAC of this version's bytes and card under ``key_id``."""
        if key_id == SHIPPED_KEY_ID:
            _verify_shipped(version, artifact, card_text)
            return
        secret = dict(self.keys).get(key_id)
        if secret is None:
            raise SignatureError(f"model {version} is signed with key {key_id!r}, which is not in {ENV_VAR} "
                                 f"(configured: {', '.join(k for k, _ in self.keys)})")
        expected = hmac.new(secret, signed_message(version, artifact, card_text), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature or ""):
            raise SignatureError(f"model {version}: the signature does not match its bytes and card; the row was "
                                 "altered after it was registered (or signed with another key of the same id)")


def parse_keys(text: str) -> SigningKeys:
    """Parse ``key_id:secret_hex,...``; raise SigningConfigError naming the bad entry (never its secret)."""
    keys: list[tuple[str, bytes]] = []
    for index, entry in enumerate((part.strip() for part in text.split(",") if part.strip()), start=1):
        key_id, _, secret_hex = entry.partition(":")
        where = f"{ENV_VAR} entry {index}"
        if not KEY_ID.fullmatch(key_id) or key_id in (SHIPPED_KEY_ID, DEV_KEY_ID):
            raise SigningConfigError(f"{where}: the key id must be 3-32 characters of a-z, 0-9 and '-', and not "
                                     f"{SHIPPED_KEY_ID!r} or {DEV_KEY_ID!r}")
        if not SECRET_HEX.fullmatch(secret_hex):
            raise SigningConfigError(f"{where} ({key_id}): the secret must be 64-128 lowercase hex digits; make "
                                     "one with `python -m pipeline.registry new-key`")
        if key_id in dict(keys):
            raise SigningConfigError(f"{where}: key id {key_id!r} is listed twice")
        keys.append((key_id, bytes.fromhex(secret_hex)))
    if not keys:
        raise SigningConfigError(f"{ENV_VAR} lists no key")
    return SigningKeys(tuple(keys))


def signing_keys(environ: Mapping[str, str] | None = None) -> SigningKeys:
    """The keys of this process: MODEL_SIGNING_KEYS, else (off a dyno only) the local-development key."""
    environ = os.environ if environ is None else environ
    text = environ.get(ENV_VAR, "").strip()
    if text:
        return parse_keys(text)
    if environ.get("DYNO"):
        raise SigningConfigError(f"{ENV_VAR} is not set on a Heroku dyno; a deployed service verifies every model "
                                 "it loads: run `python -m pipeline.registry new-key` and set the printed entry "
                                 f"with `heroku config:set {ENV_VAR}=...`")
    return SigningKeys(((DEV_KEY_ID, _DEV_SECRET),), development=True)


def new_key_entry(key_id: str | None = None) -> str:
    """A fresh ``key_id:secret_hex`` entry for MODEL_SIGNING_KEYS (256 random bits)."""
    key_id = key_id or f"model-{secrets.token_hex(3)}"
    if not KEY_ID.fullmatch(key_id) or key_id in (SHIPPED_KEY_ID, DEV_KEY_ID):
        raise SigningConfigError("the key id must be 3-32 characters of a-z, 0-9 and '-' (not 'shipped' or 'dev')")
    return f"{key_id}:{secrets.token_hex(32)}"


@lru_cache(maxsize=8)
def _shipped_digests(directory: Path) -> tuple[str, str, str]:
    """(version, sha256 of model.joblib, sha256 of model_card.json) of one shipped model directory."""
    card_text = (directory / "model_card.json").read_text()
    return (json.loads(card_text)["version"], digest((directory / "model.joblib").read_bytes()),
            digest(card_text.encode("utf-8")))


def shipped_directory() -> Path:
    """Where the shipped default model lives (artifacts/default)."""
    return Path(__file__).resolve().parent.parent.parent / "artifacts" / "default"


def retired_directory(version: str) -> Path | None:
    """Where a former shipped default's files are kept (artifacts/retired/<version>), or None if not shipped."""
    if not SAFE_VERSION_NAME.fullmatch(version):
        return None
    directory = shipped_directory().parent / "retired" / version
    return directory if (directory / "model_card.json").is_file() else None


def _verify_shipped(version: str, artifact: bytes, card_text: str) -> None:
    directory = shipped_directory()
    if _shipped_digests(directory)[0] != version:
        directory = retired_directory(version) or directory
    if (version, digest(artifact), digest(card_text.encode("utf-8"))) != _shipped_digests(directory):
        raise SignatureError(f"model {version} claims to be a shipped default (key id {SHIPPED_KEY_ID!r}) but its "
                             "bytes or card differ from artifacts/default and artifacts/retired/ in this code: "
                             "altered, or registered by a release whose files this code does not keep")
