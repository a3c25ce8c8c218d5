"""The database layer: peewee models of the request and outcome log, and how to connect to it."""
from models.database import (
                             DEFAULT_SQLITE_URL,
                             DatabaseUrlError,
                             close_pool,
                             database,
                             database_from_url,
                             long_statements,
                             resolve_database_url,
)
from models.tables import (
                             AGE_GROUP_COLUMN,
                             STATUSES,
                             STOP_COLUMNS,
                             TABLES,
                             ModelStatusChange,
                             ModelVersion,
                             Outcome,
                             Prediction,
                             monitoring_column,
)

__all__ = ["database", "database_from_url", "resolve_database_url", "DatabaseUrlError", "DEFAULT_SQLITE_URL",
           "close_pool", "long_statements",
           "Prediction", "Outcome", "TABLES", "STOP_COLUMNS", "AGE_GROUP_COLUMN", "monitoring_column",
           "ModelVersion", "ModelStatusChange", "STATUSES"]
