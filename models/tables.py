"""The request log (one row per accepted observation) and the append-only outcome history."""
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
    reasons = TextField(null=True)  # JSON of the answer's reasons (migration 0004); null before it or without them


class Outcome(BaseModel):
    """One outcome report for a prediction; rows are only ever added, so the history is never lost."""

    id = AutoField()
    prediction = ForeignKeyField(Prediction, backref="outcomes", on_delete="RESTRICT")
    contraband_found = BooleanField()
    is_correction = BooleanField(default=False)
    correction_reason = TextField(null=True)
    received_at = DateTimeField()  # UTC


TABLES = (Prediction, Outcome)

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
