"""Keep the reasons of each decision with it: prediction.reasons, the JSON the /should_search answer carried.

Nullable: rows logged before this migration have none, and a model without a fast form answers without them.
The column is plain text (JSON), read back unchanged for a retry and for GET /decisions/<observation_id>.
"""
from peewee import TextField


def up(migrator, db):
    """Add the nullable reasons column to prediction."""
    migrator.migrate(migrator.add_column("prediction", "reasons", TextField(null=True)))
