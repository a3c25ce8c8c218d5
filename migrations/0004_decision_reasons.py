"""Keep the reasons of each decision with it (prediction.reasons, prediction.leading_reason), and refresh the shipped
default model's card, which now names the reference of every reason, in the registry.

``reasons`` is the JSON the /should_search answer carried, read back unchanged for a retry and for
GET /decisions/<observation_id>. ``leading_reason`` is the sentence of the largest factor that raised the
probability, so the report counts what drives recommendations with a plain GROUP BY (reading it out of the JSON in
SQL cost ~10x the GROUP BY on Postgres: 11.5 s against 1.1 s for 300,000 rows on a loaded machine). Both nullable:
rows logged before this migration have none, nor does a model without a fast scoring form.

An earlier form of this migration, named 0004_reasons, added only ``reasons``; a database that applied it gets
``leading_reason`` from this one (each column is added only when missing). ``python -m migrations --status`` then
lists 0004_reasons as recorded but not shipped, which is expected.

The card of the then shipped default (logreg-20261128T180734Z-883f71c4) gained its ``reasons`` section (the average
training record); its pipeline bytes did not change. A registry row of key id "shipped" verifies only while its card
equals the shipped file byte for byte, so the row that migration 0002 registered from the older card gets the
current card (same version, same bytes). That model is no longer the default (migration 0005): its files, which
this migration reads, are kept in artifacts/retired/ under its version.
The model below is a FROZEN copy of the columns this migration touches.
"""
import hashlib
import json
from pathlib import Path

from peewee import AutoField, CharField, Model, TextField

SHIPPED = Path(__file__).resolve().parent.parent / "artifacts" / "retired" / "logreg-20261128T180734Z-883f71c4"


class ModelVersion(Model):
    id = AutoField()
    version = CharField(max_length=100, unique=True)
    card = TextField()
    sha256 = CharField(max_length=64)
    signature_key_id = CharField(max_length=32)
    signature = CharField(max_length=64)

    class Meta:
        table_name = "model_version"
        legacy_table_names = False


def refresh_shipped_card(db) -> int:
    """Give the shipped version's registry row (same version, same artifact bytes) the shipped card; rows changed."""
    card_text = (SHIPPED / "model_card.json").read_text()
    artifact_sha = hashlib.sha256((SHIPPED / "model.joblib").read_bytes()).hexdigest()
    with db.bind_ctx([ModelVersion]):
        return (ModelVersion
                .update(card=card_text, signature=hashlib.sha256(card_text.encode("utf-8")).hexdigest())
                .where((ModelVersion.version == json.loads(card_text)["version"]) &
                       (ModelVersion.signature_key_id == "shipped") & (ModelVersion.sha256 == artifact_sha) &
                       (ModelVersion.card != card_text))
                .execute())


def up(migrator, db):
    """Add the nullable reasons and leading_reason columns to prediction (those missing); refresh the shipped card."""
    present = {column.name for column in db.get_columns("prediction")}
    added = [migrator.add_column("prediction", name, TextField(null=True))
             for name in ("reasons", "leading_reason") if name not in present]
    if added:
        migrator.migrate(*added)
    refresh_shipped_card(db)
