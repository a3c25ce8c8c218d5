"""Service settings: read once from the environment, overridable by tests, checked before anything starts.

Resource limits on every request (each refusal is a 4xx naming the problem, before any database work):
- body size: MAX_CONTENT_LENGTH bytes (default 32 KiB) -> 413, also for chunked bodies without Content-Length;
- JSON nesting: MAX_JSON_DEPTH levels -> 400 invalid_json;
- strings: observation ids up to 128 characters (service.requests.MAX_ID_LENGTH), text fields and the correction
  reason up to pipeline.schema.MAX_TEXT_LENGTH (200) characters -> 400 naming the field;
- headers: gunicorn's defaults bound the request line (4094 bytes) and each header (8190 bytes); an
  Authorization value must match the key format exactly, and an X-Request-ID is kept only if it is 1-64 of
  [A-Za-z0-9._-] (service/request_log.py);
- time: gunicorn's worker timeout and the database timeouts (gunicorn.conf.py, models/database.py).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from models import DatabaseUrlError, resolve_database_url
from pipeline.scoring.artifact import DEFAULT_ARTIFACT_DIR
from pipeline.scoring.signing import SigningConfigError, signing_keys
from service.keys import KeyConfigError, Keyring

DEFAULT_MAX_CONTENT_LENGTH = 32 * 1024  # a stop record is ~600 bytes; 32 KiB leaves room without inviting abuse
MAX_JSON_DEPTH = 8  # the envelope needs 2 levels; deeper bodies are rejected before parsing
SETTINGS = ("DATABASE_URL", "MODEL_DIR", "MAX_CONTENT_LENGTH", "API_KEYS", "API_KEYS_REVOKED", "API_AUTH_DISABLED",
            "MODEL_SIGNING_KEYS", "SESSION_SECRET", "TRUSTED_PROXY_HOPS")
# The one value that turns authentication off: a deliberate phrase, so a stray API_AUTH_DISABLED=1 cannot.
AUTH_DISABLED_VALUE = "local-development"
AUTH_SETTINGS = SETTINGS[3:6]
MIN_SESSION_SECRET = 32
SESSION_SECRET_HELP = ("set SESSION_SECRET to the same random value on every dyno (`python -m service.keys "
                       "session-secret` prints one); it signs the analysts' sign-in cookies")
MAX_PROXY_HOPS = 5
CREATE_KEY_HELP = ("create a key with `python -m service.keys create --role admin` and add the printed entry to "
                   "API_KEYS (comma-separated)")


class ConfigError(RuntimeError):
    """A setting is missing or inconsistent; the message says which and what to do."""


def load_config(environ: Mapping[str, str] | None = None, overrides: Mapping | None = None) -> dict:
    """Build the Flask config from the environment plus overrides, refusing unsafe or malformed settings."""
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    try:
        url = resolve_database_url(overrides.pop("DATABASE_URL", None), environ)
    except DatabaseUrlError as error:
        raise ConfigError(str(error)) from None
    pinned_dir = overrides.pop("MODEL_DIR", None) or environ.get("MODEL_DIR")
    limit = overrides.pop("MAX_CONTENT_LENGTH", None) or environ.get("MAX_CONTENT_LENGTH") or DEFAULT_MAX_CONTENT_LENGTH
    # MODEL_DIR naming another artifact: serve that one only. Unset, or naming the committed default (which the
    # registry starts from): follow the registry, so promote and rollback reach this process.
    model_dir = Path(pinned_dir or DEFAULT_ARTIFACT_DIR)
    config = {"DATABASE_URL": url, "MODEL_DIR": model_dir,
              "MODEL_DIR_PINNED": model_dir.resolve() != DEFAULT_ARTIFACT_DIR.resolve(),
              "MAX_CONTENT_LENGTH": _positive_int(limit)}
    # Overrides replace the three auth settings as a group, so a test's keys never mix with the shell's dev flag.
    source = overrides if any(name in overrides for name in AUTH_SETTINGS) else environ
    auth = {name: source.get(name) for name in AUTH_SETTINGS}
    for name in AUTH_SETTINGS:
        overrides.pop(name, None)
    on_dyno = bool(environ.get("DYNO"))
    config["API_KEYRING"] = _keyring(auth, on_dyno=on_dyno)
    try:  # verified before any registry model is unpickled; required on a dyno (pipeline/scoring/signing.py)
        signing_keys(environ)
    except SigningConfigError as error:
        raise ConfigError(str(error)) from None
    secret = overrides.pop("SESSION_SECRET", None) or environ.get("SESSION_SECRET")
    config["SESSION_SECRET"] = _session_secret(secret) if config["API_KEYRING"] is not None else None
    hops = overrides.pop("TRUSTED_PROXY_HOPS", None)
    hops = environ.get("TRUSTED_PROXY_HOPS") if hops is None else hops
    config["TRUSTED_PROXY_HOPS"] = _proxy_hops(hops, on_dyno)
    config["ON_DYNO"] = on_dyno
    config.update(overrides)
    return config


def _session_secret(secret: str | None) -> str:
    """The key of the sign-in cookies' signatures: required with API keys, shared by every worker and dyno."""
    if not secret:
        raise ConfigError(f"SESSION_SECRET is not set but API keys are on: {SESSION_SECRET_HELP}")
    if len(secret) < MIN_SESSION_SECRET:
        raise ConfigError(f"SESSION_SECRET is {len(secret)} characters; use at least {MIN_SESSION_SECRET} random "
                          f"ones: {SESSION_SECRET_HELP}")
    return secret


def _proxy_hops(value, on_dyno: bool) -> int:
    """How many proxies in front set X-Forwarded-For/-Proto: 1 on Heroku (its router), 0 when clients connect
    directly, since a client could then forge those headers (its address for the sign-in throttle, HTTPS)."""
    if value is None or str(value).strip() == "":
        return 1 if on_dyno else 0
    text = str(value).strip()
    if not text.isdigit() or int(text) > MAX_PROXY_HOPS:
        raise ConfigError(f"TRUSTED_PROXY_HOPS={text[:20]!r} must be a whole number from 0 to {MAX_PROXY_HOPS}: "
                          "the number of proxies in front of the service (Heroku's router is 1)")
    return int(text)


def _keyring(auth: Mapping[str, str | None], on_dyno: bool) -> Keyring | None:
    """The parsed keys, or None when authentication is explicitly disabled for local development."""
    disabled = auth["API_AUTH_DISABLED"]
    if disabled and disabled != AUTH_DISABLED_VALUE:
        raise ConfigError(f"API_AUTH_DISABLED={disabled!r} is not recognised; the only accepted value is "
                          f"{AUTH_DISABLED_VALUE!r}, and only for local development")
    if disabled and on_dyno:
        raise ConfigError("API_AUTH_DISABLED is set on a Heroku dyno (DYNO is set); a deployed service always "
                          f"needs keys: unset it, {CREATE_KEY_HELP}")
    if disabled and auth["API_KEYS"]:
        raise ConfigError("both API_KEYS and API_AUTH_DISABLED are set; unset one of them")
    if disabled:
        return None
    try:
        keyring = Keyring.parse(auth["API_KEYS"], auth["API_KEYS_REVOKED"])
    except KeyConfigError as error:
        raise ConfigError(str(error)) from None
    if not keyring.active():
        raise ConfigError(f"no active API keys are configured (API_KEYS): {CREATE_KEY_HELP}; only for local "
                          f"development, set API_AUTH_DISABLED={AUTH_DISABLED_VALUE} instead")
    return keyring


def _positive_int(value) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1024:
        raise ConfigError(f"MAX_CONTENT_LENGTH={value!r} must be a whole number of bytes, at least 1024")
    return number
