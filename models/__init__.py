"""The database layer: peewee models of the request and outcome log, and how to connect to it."""
from models.database import database, database_from_url, DEFAULT_SQLITE_URL
from models.tables import Outcome, Prediction, TABLES

__all__ = ["database", "database_from_url", "DEFAULT_SQLITE_URL", "Prediction", "Outcome", "TABLES"]
