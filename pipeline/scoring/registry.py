"""The model registry in the database: register signed versions, promote, roll back, shadow, and load them safely.

Framework-free (no Flask): the CLI (``python -m pipeline.registry``), retraining and the service share it. Every
function takes the peewee database (the ``models.database`` proxy or a concrete database) and opens a connection
only if none is open. A version is loaded only after its signature verifies (pipeline.scoring.signing) and its card
names the installed scikit-learn; nothing is unpickled before both checks.
"""
from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from peewee import DatabaseProxy

from models import ModelStatusChange, ModelVersion
from pipeline.scoring.artifact import (
    CARD_FILE,
    PIPELINE_FILE,
    Artifact,
    ArtifactError,
    artifact_from_bytes,
    check_sklearn_version,
)
from pipeline.scoring.signing import SHIPPED_KEY_ID, SignatureError, digest, signing_keys

log = logging.getLogger(__name__)
TABLES = (ModelVersion, ModelStatusChange)
SERVING = ("live", "shadow")
# Fields read when listing or polling: never the artifact bytes.
SUMMARY_FIELDS = (ModelVersion.id, ModelVersion.version, ModelVersion.status, ModelVersion.sha256,
                  ModelVersion.created_at, ModelVersion.created_by, ModelVersion.status_changed_at,
                  ModelVersion.promoted_at, ModelVersion.promoted_by, ModelVersion.promotion_reason)


class RegistryError(ValueError):
    """A registry operation that cannot be done as asked; the message says why and what to do instead."""


class PromotionRefused(RegistryError):
    """The candidate's card does not show it at least as good as the live model; --force --reason overrides."""


# peewee binds a model class to one database for every thread at once, and bind_ctx restores the previous binding
# on exit: two threads binding at once (a worker's polling thread on its own connection, and a request or a CLI on
# another) could restore each other's binding and leave the tables bound to a stale database. One lock, held for
# the whole block (reentrant: registry functions nest), keeps every binding and its restore together.
_BINDING = threading.RLock()


@contextlib.contextmanager
def using(database):
    """Bind the registry's models to ``database`` and hold a connection (the caller's, or one opened here)."""
    real = database.obj if isinstance(database, DatabaseProxy) else database
    binding = contextlib.nullcontext() if isinstance(database, DatabaseProxy) else database.bind_ctx(TABLES)
    with _BINDING:
        opened = real.is_closed()
        if opened:
            real.connect()
        try:
            with binding:
                yield real
        finally:
            if opened:
                real.close()


def _write(real):
    # The backend's write transaction (SQLite: the write lock at BEGIN), so two registry commands never interleave.
    return real.write_transaction() if hasattr(real, "write_transaction") else real.atomic()


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def who() -> str:
    """Who is acting: $REGISTRY_USER, else the OS user (on a Heroku one-off dyno: the dyno's name)."""
    name = os.environ.get("REGISTRY_USER") or os.environ.get("DYNO") or ""
    if not name:
        with contextlib.suppress(Exception):
            name = getpass.getuser()
    return name or "unknown"


@dataclass(frozen=True)
class Stored:
    """A registered version's bytes and card, as read from its row (verified or not: see ``verified``)."""

    version: str
    artifact: bytes
    card_text: str
    key_id: str
    signature: str

    @property
    def card(self) -> dict:
        """The card as a dict."""
        return json.loads(self.card_text)


def _stored(row: ModelVersion) -> Stored:
    return Stored(row.version, bytes(row.artifact), row.card, row.signature_key_id, row.signature)


def verified(stored: Stored, keys=None) -> Stored:
    """``stored`` if its signature verifies with this process's keys; SignatureError (logged) otherwise."""
    keys = keys or signing_keys()
    try:
        keys.verify(stored.version, stored.artifact, stored.card_text, stored.key_id, stored.signature)
    except SignatureError as error:
        log.error("refused model %s: %s", stored.version, error)
        raise
    return stored


def load_stored(stored: Stored, keys=None) -> Artifact:
    """Verify, check the scikit-learn version, and only then unpickle: an Artifact, or ArtifactError saying why."""
    try:
        verified(stored, keys)
    except SignatureError as error:
        raise ArtifactError(f"refused: {error}") from error
    card = stored.card
    if card.get("version") != stored.version:
        raise ArtifactError(f"refused: the card of model {stored.version} names version {card.get('version')!r}")
    check_sklearn_version(card, f"registry version {stored.version}")
    return artifact_from_bytes(stored.artifact, card, f"registry version {stored.version}")


def _row(version: str) -> ModelVersion:
    row = ModelVersion.get_or_none(ModelVersion.version == version)
    if row is None:
        raise RegistryError(f"no model version {version!r} is registered; `python -m pipeline.registry list` "
                            "shows them")
    return row


def register_bytes(database, artifact: bytes, card_text: str, created_by: str | None = None) -> str:
    """Sign and store a version as a candidate; returns its version (the same bytes again: a no-op)."""
    card = json.loads(card_text)
    version = card.get("version")
    if not version or len(version) > 100:
        raise RegistryError("the model card has no usable 'version' (1-100 characters)")
    if digest(artifact) != card.get("pipeline_sha256"):
        raise RegistryError(f"model {version}: the pipeline bytes do not match the card's pipeline_sha256")
    key_id, signature = signing_keys().sign(version, artifact, card_text)
    now = _utcnow()
    with using(database) as real, _write(real):
        existing = ModelVersion.get_or_none(ModelVersion.version == version)
        if existing is not None:
            if existing.sha256 == digest(artifact) and existing.card == card_text:
                return version
            raise RegistryError(f"version {version} is already registered with other bytes or another card; "
                                "a version is immutable: train a new one")
        row = ModelVersion.create(version=version, status="candidate", artifact=artifact, card=card_text,
                                  sha256=digest(artifact), signature_key_id=key_id, signature=signature,
                                  created_at=now, created_by=created_by or who(), status_changed_at=now)
        _record(row, "register", None, "candidate", created_by or who(), now)
    log.info("registered model %s as a candidate (signed with key %s)", version, key_id)
    return version


def register_candidate(database, directory: Path, created_by: str | None = None) -> str:
    """Store the model.joblib and model_card.json of an artifact directory as a candidate; returns its version."""
    directory = Path(directory)
    try:
        artifact = (directory / PIPELINE_FILE).read_bytes()
        card_text = (directory / CARD_FILE).read_text()
    except FileNotFoundError as error:
        raise RegistryError(f"{directory} is not an artifact directory: {error.filename} is missing") from None
    return register_bytes(database, artifact, card_text, created_by)


def export_version(database, version: str, directory: Path) -> Path:
    """Write a verified version's model.joblib and model_card.json into ``directory`` (created if needed)."""
    with using(database):
        stored = verified(_stored(_row(version)))
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / PIPELINE_FILE).write_bytes(stored.artifact)
    (directory / CARD_FILE).write_text(stored.card_text)
    return directory


def versions(database) -> list[ModelVersion]:
    """Every registered version, newest first, without the artifact bytes."""
    with using(database):
        return list(ModelVersion.select(*SUMMARY_FIELDS).order_by(ModelVersion.id.desc()))


def version_detail(database, version: str) -> tuple[ModelVersion, dict, list[ModelStatusChange]]:
    """(row without bytes, card, status history oldest first) of one version."""
    with using(database):
        row = _row(version)
        changes = list(ModelStatusChange.select().where(ModelStatusChange.model_version == row.id)
                       .order_by(ModelStatusChange.id))
        return row, json.loads(row.card), changes


def serving_versions(database) -> dict[str, tuple[str, str]]:
    """{"live": (version, sha256), "shadow": (...)} for the versions now serving: the service's cheap poll."""
    with using(database):
        rows = ModelVersion.select(ModelVersion.version, ModelVersion.status, ModelVersion.sha256).where(
            ModelVersion.status.in_(SERVING)).tuples()
        return {status: (version, sha) for version, status, sha in rows}


def live_version(database) -> str | None:
    """The live version's name, or None; unpickles nothing."""
    return serving_versions(database).get("live", (None,))[0]


def load_version(database, version: str, keys=None) -> Artifact:
    """A registered version, verified then loaded (ArtifactError when refused)."""
    with using(database):
        stored = _stored(_row(version))
    return load_stored(stored, keys)


def live_artifact(database) -> Artifact:
    """The live version, verified then loaded; RegistryError when none is live."""
    version = live_version(database)
    if version is None:
        raise RegistryError("no model version is live; `python -m pipeline.registry promote VERSION`")
    return load_version(database, version)


def _record(row, action, from_status, to_status, by, now, replaced=None, forced=False, reason=None):
    ModelStatusChange.create(model_version=row.id, action=action, from_status=from_status, to_status=to_status,
                             replaced=replaced, forced=forced, reason=reason, changed_by=by, changed_at=now)


def _set_status(row: ModelVersion, status: str, action: str, by: str, now: datetime, **change) -> None:
    previous = row.status
    updates = {"status": status, "status_changed_at": now}
    if status == "live":
        updates.update(promoted_at=now, promoted_by=by, promotion_reason=change.get("reason"))
    ModelVersion.update(updates).where(ModelVersion.id == row.id).execute()
    _record(row, action, previous, status, by, now, **change)
    row.status = status


def promotion_problem(card: dict, live: str | None) -> str | None:
    """Why a card does not show its model at least as good as the live one on held-out outcomes; None if it does.

    The comparison is the one retraining writes (/work/notes/interface-10.md): it must be against the version
    live NOW (a comparison with an older live model says nothing about this one), and say ``at_least_as_good``.
    """
    comparison = card.get("comparison")
    if not isinstance(comparison, dict):
        return "its model card holds no comparison with the live model on held-out outcomes"
    if live is not None and comparison.get("live_version") != live:
        return (f"its card compares it with {comparison.get('live_version')!r}, but {live} is live now: the "
                "comparison is stale; retrain (`python -m pipeline.train --from-log`) to compare with the live one")
    if comparison.get("at_least_as_good") is not True:
        return (f"its card's comparison on {comparison.get('held_out')} held-out outcomes does not show it at least "
                f"as good as the live model (verdict: {comparison.get('verdict')!r}; rule: "
                f"{comparison.get('verdict_rule', 'see the card')})")
    return None


def promote(database, version: str, by: str | None = None, force: bool = False, reason: str | None = None) -> str:
    """Make ``version`` live (the live one retires); refused unless its card shows it at least as good, or forced.

    Returns the version it replaced. The bytes are verified and loaded first, so a version this installation cannot
    serve never goes live.
    """
    by = by or who()
    if force and not (reason or "").strip():
        raise RegistryError("--force needs --reason TEXT: a forced promotion is recorded with why it was forced")
    with using(database) as real:
        stored = _stored(_row(version))
    load_stored(stored)  # ArtifactError: refused signature, other scikit-learn, broken pipeline
    with using(database) as real, _write(real):
        row = _row(version)
        if row.sha256 != digest(stored.artifact):
            raise RegistryError(f"model {version} changed while it was being checked; run promote again")
        if row.status == "live":
            raise RegistryError(f"{version} is already live")
        current = ModelVersion.get_or_none(ModelVersion.status == "live")
        problem = promotion_problem(stored.card, current.version if current else None)
        if problem and not force:
            raise PromotionRefused(f"not promoting {version}: {problem}. To promote it anyway: "
                                   f"`python -m pipeline.registry promote {version} --force --reason TEXT`")
        now = _utcnow()
        if current is not None:
            _set_status(current, "retired", "retire", by, now, reason=f"replaced by {version}")
        _set_status(row, "live", "promote", by, now, replaced=current.version if current else None,
                    forced=bool(problem), reason=reason.strip() if problem else reason)
    log.info("promoted %s to live (was %s) by %s%s", version, current.version if current else None, by,
             f", forced: {reason}" if problem else "")
    return current.version if current else None


def _latest_live_change(row: ModelVersion) -> ModelStatusChange | None:
    return (ModelStatusChange.select().where((ModelStatusChange.model_version == row.id) &
                                             (ModelStatusChange.to_status == "live"))
            .order_by(ModelStatusChange.id.desc()).first())


def rollback(database, by: str | None = None, reason: str | None = None) -> tuple[str, str]:
    """Make the version the live one replaced live again; returns (from, to). Repeated, it walks further back."""
    by = by or who()
    with using(database) as real:
        current = ModelVersion.get_or_none(ModelVersion.status == "live")
        if current is None:
            raise RegistryError("no version is live, so there is nothing to roll back")
        change = _latest_live_change(current)
        if change is None or not change.replaced:
            raise RegistryError(f"{current.version} did not replace another live version: nothing to roll back to")
        target_name = change.replaced
        stored = _stored(_row(target_name))
    load_stored(stored)  # the previous version must still verify and load here
    with using(database) as real, _write(real):
        current = ModelVersion.get(ModelVersion.status == "live")
        target = _row(target_name)
        if _latest_live_change(current).replaced != target_name:
            raise RegistryError("the live version changed while rolling back; run rollback again")
        earlier = _latest_live_change(target)  # what the target itself had replaced: the next rollback's target
        now = _utcnow()
        _set_status(current, "retired", "retire", by, now, reason=f"rolled back to {target_name}")
        _set_status(target, "live", "rollback", by, now, replaced=earlier.replaced if earlier else None,
                    reason=reason or f"rollback from {current.version}")
    log.info("rolled back from %s to %s by %s", current.version, target_name, by)
    return current.version, target_name


def set_shadow(database, version: str | None, by: str | None = None) -> str | None:
    """Put ``version`` in shadow (None: stop shadowing); the previous shadow retires. Returns the previous one."""
    by = by or who()
    if version is not None:
        with using(database):
            stored = _stored(_row(version))
        load_stored(stored)
    with using(database) as real, _write(real):
        previous = ModelVersion.get_or_none(ModelVersion.status == "shadow")
        row = _row(version) if version is not None else None
        if row is not None and row.status == "live":
            raise RegistryError(f"{version} is live; a shadow version scores beside the live one")
        if row is not None and previous is not None and previous.id == row.id:
            return version
        now = _utcnow()
        if previous is not None:
            _set_status(previous, "retired", "unshadow", by, now)
        if row is not None:
            _set_status(row, "shadow", "shadow", by, now)
    return previous.version if previous else None


def resign(database) -> tuple[list[str], dict[str, str]]:
    """Re-sign with the first key every version that verifies with any configured key (key rotation).

    Returns (versions re-signed, {version: why} for rows no configured key verifies: left as they are, and
    refused wherever they are loaded, until they are deleted or re-imported).
    """
    keys = signing_keys()
    done, unverifiable = [], {}
    with using(database) as real, _write(real):
        for row in ModelVersion.select().where(ModelVersion.signature_key_id != SHIPPED_KEY_ID):
            stored = _stored(row)
            try:
                verified(stored, keys)
            except SignatureError as error:
                unverifiable[stored.version] = str(error)
                continue
            if stored.key_id == keys.signing_key_id:
                continue
            key_id, signature = keys.sign(stored.version, stored.artifact, stored.card_text)
            ModelVersion.update(signature_key_id=key_id, signature=signature).where(
                ModelVersion.id == row.id).execute()
            done.append(stored.version)
    return done, unverifiable
