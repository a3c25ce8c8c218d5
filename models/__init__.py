"""The database layer: peewee models of the request and outcome log, and how to connect to it."""
from models.database import (DEFAULT_SQLITE_URL, DatabaseUrlError, database, database_from_url,
                             resolve_database_url)
from models.tables import Outcome, Prediction, TABLES

__all__ = ["database", "database_from_url", "resolve_database_url", "DatabaseUrlError", "DEFAULT_SQLITE_URL",
           "Prediction", "Outcome", "TABLES"]
