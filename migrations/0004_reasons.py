"""Keep the reasons of each decision with it: prediction.reasons and prediction.leading_reason.

``reasons`` is the JSON the /should_search answer carried, read back unchanged for a retry and for
GET /decisions/<observation_id>. ``leading_reason`` is the largest factor that raised the probability, in words
(e.g. "Inventory search (I)"), so the report can count what drives recommendations with a GROUP BY on both backends.
Both nullable: rows logged before this migration have none, nor does a model without a fast scoring form.
"""
from peewee import TextField


def up(migrator, db):
    """Add the two nullable columns to prediction."""
    migrator.migrate(migrator.add_column("prediction", "reasons", TextField(null=True)),
                     migrator.add_column("prediction", "leading_reason", TextField(null=True)))
