"""Service settings: read once from the environment, overridable by tests, checked before anything starts."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from models import DatabaseUrlError, resolve_database_url
from pipeline.artifact import DEFAULT_ARTIFACT_DIR

DEFAULT_MAX_CONTENT_LENGTH = 32 * 1024  # a stop record is ~600 bytes; 32 KiB leaves room without inviting abuse
MAX_JSON_DEPTH = 8  # the envelope needs 2 levels; deeper bodies are rejected before parsing
SETTINGS = ("DATABASE_URL", "MODEL_DIR", "MAX_CONTENT_LENGTH")


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
    model_dir = Path(overrides.pop("MODEL_DIR", None) or environ.get("MODEL_DIR") or DEFAULT_ARTIFACT_DIR)
    limit = overrides.pop("MAX_CONTENT_LENGTH", None) or environ.get("MAX_CONTENT_LENGTH") or DEFAULT_MAX_CONTENT_LENGTH
    config = {"DATABASE_URL": url, "MODEL_DIR": model_dir, "MAX_CONTENT_LENGTH": _positive_int(limit)}
    config.update(overrides)
    return config


def _positive_int(value) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1024:
        raise ConfigError(f"MAX_CONTENT_LENGTH={value!r} must be a whole number of bytes, at least 1024")
    return number
