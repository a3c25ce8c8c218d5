"""Create the request log (prediction) and the append-only outcome history (outcome), with their indexes.

The models below are a FROZEN copy of models/tables.py as of this migration (peewee's advice): later changes to the
application models must arrive as new numbered migrations, never by editing this file.
"""
from peewee import (
    AutoField,
    BooleanField,
    CharField,
    DateTimeField,
    DoubleField,
    ForeignKeyField,
    Model,
    SmallIntegerField,
    TextField,
)


class Prediction(Model):
    id = AutoField()
    observation_id = CharField(max_length=128, unique=True)
    observation = TextField()
    observation_digest = CharField(max_length=64)
    department = CharField(max_length=200, index=True)
    location = CharField(max_length=200, null=True)
    intervention_at = DateTimeField()
    intervention_reason_code = CharField(max_length=1)
    statute_reason = CharField(max_length=200, null=True)
    officer_id = CharField(max_length=200, null=True)
    resident = BooleanField()
    town_resident = BooleanField()
    search_authorization_code = CharField(max_length=1)
    subject_race = CharField(max_length=1)
    subject_ethnicity = CharField(max_length=1)
    subject_sex = CharField(max_length=1)
    subject_age = SmallIntegerField()
    subject_age_group = CharField(max_length=16)
    probability = DoubleField()
    should_search = BooleanField()
    threshold = DoubleField()
    model_version = CharField(max_length=100, index=True)
    received_at = DateTimeField(index=True)
    contraband_found = BooleanField(null=True)
    outcome_at = DateTimeField(null=True)

    class Meta:
        table_name = "prediction"


class Outcome(Model):
    id = AutoField()
    prediction = ForeignKeyField(Prediction, backref="outcomes", on_delete="RESTRICT")
    contraband_found = BooleanField()
    is_correction = BooleanField(default=False)
    correction_reason = TextField(null=True)
    received_at = DateTimeField()

    class Meta:
        table_name = "outcome"


MODELS = [Prediction, Outcome]


def up(migrator, db):
    """Create both tables and their indexes; safe=False so an unexpected pre-existing table fails loudly."""
    with db.bind_ctx(MODELS):
        db.create_tables(MODELS, safe=False)
