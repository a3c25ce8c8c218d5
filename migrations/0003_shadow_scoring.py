"""Shadow scoring: the shadow version's answer beside the live one's, on each prediction row (null without one)."""
from peewee import BooleanField, CharField, DoubleField


def up(migrator, db):
    """Add three nullable columns to prediction: no rewrite of existing rows on either backend."""
    migrator.migrate(migrator.add_column("prediction", "shadow_version", CharField(max_length=100, null=True)),
                     migrator.add_column("prediction", "shadow_probability", DoubleField(null=True)),
                     migrator.add_column("prediction", "shadow_should_search", BooleanField(null=True)))
