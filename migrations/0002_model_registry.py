"""The model registry: model_version (signed artifact bytes, card, status) and its status history; the shipped
default model (artifacts/default) is registered as the live version, so a fresh database serves at once.

The models below are a FROZEN copy of models/tables.py as of this migration. The default model is registered under
the key id "shipped" (pipeline/scoring/signing.py): it verifies by being byte-identical to the files shipped with
the code, so this migration needs no signing key and runs in Heroku's release phase before any key is set.
"""
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

from peewee import SQL, AutoField, BlobField, BooleanField, CharField, DateTimeField, ForeignKeyField, Model, TextField

SHIPPED = Path(__file__).resolve().parent.parent / "artifacts" / "default"


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


ModelVersion.add_index(ModelVersion.index(ModelVersion.status, unique=True, name="model_version_one_live_one_shadow")
                       .where(SQL("status IN ('live', 'shadow')")))


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
    changed_at = DateTimeField(index=True)

    class Meta:
        table_name = "model_status_change"
        legacy_table_names = False


MODELS = [ModelVersion, ModelStatusChange]


def up(migrator, db):
    """Create both tables, then register artifacts/default as live (signature: "shipped", see the docstring)."""
    artifact = (SHIPPED / "model.joblib").read_bytes()
    card_text = (SHIPPED / "model_card.json").read_text()
    version = json.loads(card_text)["version"]
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with db.bind_ctx(MODELS):
        db.create_tables(MODELS, safe=False)
        row = ModelVersion.create(
            version=version, status="live", artifact=artifact, card=card_text,
            sha256=hashlib.sha256(artifact).hexdigest(), signature_key_id="shipped",
            signature=hashlib.sha256(card_text.encode("utf-8")).hexdigest(),  # not a secret: "shipped" rows verify
            created_at=now, created_by="migration 0002", status_changed_at=now,  # by equality with the files
            promoted_at=now, promoted_by="migration 0002")
        ModelStatusChange.create(model_version=row.id, action="register", from_status=None, to_status="live",
                                 reason="the default model shipped with the code", changed_by="migration 0002",
                                 changed_at=now)
