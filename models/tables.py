"""The request log (one row per accepted observation), the append-only outcome history, and the model registry."""
from peewee import (
    SQL,
    AutoField,
    BlobField,
    BooleanField,
    CharField,
    DateTimeField,
    DoubleField,
    ForeignKeyField,
    Model,
    SmallIntegerField,
    TextField,
)

from models.database import database


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


class Prediction(BaseModel):
    """One accepted /should_search request: what was sent, what the model answered, and the latest outcome."""

    id = AutoField()
    observation_id = CharField(max_length=128, unique=True)  # the client's idempotency key
    observation = TextField()  # the observation JSON exactly as received
    observation_digest = CharField(max_length=64)  # sha256 of the normalised observation, to detect conflicts
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
    received_at = DateTimeField(index=True)  # UTC
    # The current outcome, kept equal to the newest Outcome row in the same transaction, so reports need no join.
    contraband_found = BooleanField(null=True)
    outcome_at = DateTimeField(null=True)
    # The shadow model's answer to the same request (migration 0003); null when no version was in shadow.
    shadow_version = CharField(max_length=100, null=True)
    shadow_probability = DoubleField(null=True)
    shadow_should_search = BooleanField(null=True)
    # Migration 0004; null before it, or for a model without reasons. The JSON of the answer's reasons, and the
    # sentence of the largest factor that raised the probability (what the report counts per department).
    reasons = TextField(null=True)
    leading_reason = TextField(null=True)


class Outcome(BaseModel):
    """One outcome report for a prediction; rows are only ever added, so the history is never lost."""

    id = AutoField()
    prediction = ForeignKeyField(Prediction, backref="outcomes", on_delete="RESTRICT")
    contraband_found = BooleanField()
    is_correction = BooleanField(default=False)
    correction_reason = TextField(null=True)
    received_at = DateTimeField()  # UTC


STATUSES = ("candidate", "live", "shadow", "retired")


class ModelVersion(BaseModel):
    """One registered model: the signed artifact bytes and card, and its status (at most one live, one shadow)."""

    id = AutoField()
    version = CharField(max_length=100, unique=True)  # the card's "version"
    status = CharField(max_length=16)  # one of STATUSES
    artifact = BlobField()  # model.joblib, byte for byte
    card = TextField()  # model_card.json, its exact text (the signature covers it)
    sha256 = CharField(max_length=64)  # of ``artifact``
    signature_key_id = CharField(max_length=32)  # a MODEL_SIGNING_KEYS id, or "shipped" (see pipeline.scoring.signing)
    signature = CharField(max_length=64)  # hex HMAC-SHA256 of version, artifact and card
    created_at = DateTimeField()  # UTC
    created_by = CharField(max_length=200, null=True)
    status_changed_at = DateTimeField()  # UTC
    promoted_at = DateTimeField(null=True)  # the last time it became live
    promoted_by = CharField(max_length=200, null=True)
    promotion_reason = TextField(null=True)  # the reason given for a forced promotion


# The database itself refuses a second live (or shadow) version, whatever the code does.
ModelVersion.add_index(ModelVersion.index(ModelVersion.status, unique=True, name="model_version_one_live_one_shadow")
                       .where(SQL("status IN ('live', 'shadow')")))


class ModelStatusChange(BaseModel):
    """The append-only history of status changes: who changed what, when and why; rollback reads it."""

    id = AutoField()
    model_version = ForeignKeyField(ModelVersion, backref="changes", on_delete="RESTRICT")
    action = CharField(max_length=16)  # register, promote, rollback, shadow, unshadow, retire
    from_status = CharField(max_length=16, null=True)
    to_status = CharField(max_length=16)
    replaced = CharField(max_length=100, null=True)  # the version that was live before, when this one became live
    forced = BooleanField(default=False)
    reason = TextField(null=True)
    changed_by = CharField(max_length=200, null=True)
    changed_at = DateTimeField(index=True)  # UTC


TABLES = (Prediction, Outcome, ModelVersion, ModelStatusChange)

# The one map from a stop-record field (pipeline.schema's names) to the Prediction column that logs it. The insert
# row (service.predictions) and the report's column lists (pipeline.report.queries) are derived from it, so a new
# stop field is one line here plus its migration.
STOP_COLUMNS = {
    "Department Name": Prediction.department,
    "InterventionDateTime": Prediction.intervention_at,
    "InterventionLocationName": Prediction.location,
    "InterventionReasonCode": Prediction.intervention_reason_code,
    "ReportingOfficerIdentificationID": Prediction.officer_id,
    "ResidentIndicator": Prediction.resident,
    "SearchAuthorizationCode": Prediction.search_authorization_code,
    "StatuteReason": Prediction.statute_reason,
    "SubjectAge": Prediction.subject_age,
    "SubjectEthnicityCode": Prediction.subject_ethnicity,
    "SubjectRaceCode": Prediction.subject_race,
    "SubjectSexCode": Prediction.subject_sex,
    "TownResidentIndicator": Prediction.town_resident,
}
# Monitoring groups ages as the client's report does (table 6): the age group's column stands for the age.
AGE_GROUP_COLUMN = Prediction.subject_age_group


def monitoring_column(field: str):
    """The column a report groups a stop field by: the field's own column, the age group's for the age."""
    return AGE_GROUP_COLUMN if field == "SubjectAge" else STOP_COLUMNS[field]
