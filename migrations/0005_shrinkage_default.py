"""Ship a new default model: the shrinkage-encoded logistic regression the comparison of issue 11 chose
(MODEL_CARD.md, "Variants compared"), registered in the model registry of every database.

A fresh database already serves it: migration 0002 registers whatever artifacts/default holds, so this one then
finds the version present and does nothing. On a database that an older release migrated:
- if the live version is the former shipped default (key id "shipped": nobody has promoted another model), the
  new default is registered and promoted in its place, recorded as a promotion that replaced it, so
  ``python -m pipeline.registry rollback`` brings the former default back (its files stay in artifacts/retired/, so
  it still verifies);
- if analysts have promoted a model of their own (retrained from the log, say), it stays live: the new default is
  registered as a candidate only, and promoting it is their decision (``python -m pipeline.registry promote``).
The models below are a FROZEN copy of the registry columns this migration writes.
"""
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

from peewee import AutoField, BlobField, BooleanField, CharField, DateTimeField, ForeignKeyField, Model, TextField

SHIPPED = Path(__file__).resolve().parent.parent / "artifacts" / "default"
BY = "migration 0005"
REASON = "the shipped default changed to the variant the comparison table chose (MODEL_CARD.md, Variants compared)"


class ModelVersion(Model):
    id = AutoField()
    version = CharField(max_length=100, unique=True)
    status = CharField(max_length=16)
    artifact = BlobField()
    card = TextField()
    sha256 = CharField(max_length=64)
    signature_key_id = CharField(max_length=32)
    signature = CharField(max_length=64)
    created_at = DateTimeField()
    created_by = CharField(max_length=200, null=True)
    status_changed_at = DateTimeField()
    promoted_at = DateTimeField(null=True)
    promoted_by = CharField(max_length=200, null=True)
    promotion_reason = TextField(null=True)

    class Meta:
        table_name = "model_version"
        legacy_table_names = False


class ModelStatusChange(Model):
    id = AutoField()
    model_version = ForeignKeyField(ModelVersion, backref="changes", on_delete="RESTRICT")
    action = CharField(max_length=16)
    from_status = CharField(max_length=16, null=True)
    to_status = CharField(max_length=16)
    replaced = CharField(max_length=100, null=True)
    forced = BooleanField(default=False)
    reason = TextField(null=True)
    changed_by = CharField(max_length=200, null=True)
    changed_at = DateTimeField()

    class Meta:
        table_name = "model_status_change"
        legacy_table_names = False


MODELS = [ModelVersion, ModelStatusChange]


def _register(artifact: bytes, card_text: str, version: str, status: str, now: datetime) -> ModelVersion:
    """The shipped default's row (key id "shipped": it verifies by equality with artifacts/default)."""
    promoted = {"promoted_at": now, "promoted_by": BY, "promotion_reason": REASON} if status == "live" else {}
    row = ModelVersion.create(
        version=version, status=status, artifact=artifact, card=card_text,
        sha256=hashlib.sha256(artifact).hexdigest(), signature_key_id="shipped",
        signature=hashlib.sha256(card_text.encode("utf-8")).hexdigest(),
        created_at=now, created_by=BY, status_changed_at=now, **promoted)
    ModelStatusChange.create(model_version=row.id, action="register", from_status=None, to_status="candidate",
                             reason="the default model shipped with the code", changed_by=BY, changed_at=now)
    return row


def up(migrator, db):
    """Register artifacts/default if missing; make it live where the former shipped default still is."""
    artifact = (SHIPPED / "model.joblib").read_bytes()
    card_text = (SHIPPED / "model_card.json").read_text()
    version = json.loads(card_text)["version"]
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with db.bind_ctx(MODELS):
        if ModelVersion.get_or_none(ModelVersion.version == version) is not None:
            return
        live = ModelVersion.get_or_none(ModelVersion.status == "live")
        if live is not None and live.signature_key_id != "shipped":
            _register(artifact, card_text, version, "candidate", now)
            return
        if live is not None:  # retire first: one live row at a time (a unique partial index)
            ModelVersion.update(status="retired", status_changed_at=now).where(ModelVersion.id == live.id).execute()
            ModelStatusChange.create(model_version=live.id, action="retire", from_status="live", to_status="retired",
                                     reason=f"replaced by {version}", changed_by=BY, changed_at=now)
        row = _register(artifact, card_text, version, "live", now)
        ModelStatusChange.create(model_version=row.id, action="promote", from_status="candidate", to_status="live",
                                 replaced=live.version if live else None, reason=REASON, changed_by=BY,
                                 changed_at=now)
