"""Run the report's independent aggregation queries side by side, each on its own connection.

Most of the report's time is spent waiting for the database. The queries do not depend on each other, so they run
in a small thread pool (peewee keeps one connection per thread); serial parts of one query's plan overlap with the
others, and the Python work on the first result (the fairness tables) overlaps with the database's work on the rest.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from models import database
from models.database import long_statements
from pipeline.report import queries
from pipeline.report.filters import ReportFilters

WORKERS = 3


def _in_own_connection(deadline: float, function, *args):
    # The request path's 3 s statement limit is too short for these GROUP BYs; long_statements bounds each by what
    # is left of the report's one deadline. The connection is closed, not pooled: the threads end with the report,
    # and a worker would otherwise keep 1 + WORKERS backends open for ever after its first report.
    database.connect()
    try:
        with long_statements(deadline=deadline):
            return function(*args)
    finally:
        database.obj.discard()


def population_jobs(filters: ReportFilters, fields: list[str]) -> dict:
    """Queries for the table 6 fields that the other aggregates do not already count."""
    made = set(queries.PROFILE_COLUMNS) | set(queries.VOLUME_COLUMNS)
    text = [field for field in fields if field in queries.TEXT_COLUMNS]
    jobs = {"text": (queries.value_counts, filters, text)} if text else {}
    jobs.update({f"field:{field}": (queries.value_counts, filters, [field])
                 for field in fields if field not in made and field not in queries.TEXT_COLUMNS})
    return jobs


class _Results:
    """Query results by name; reading one waits for its query only."""

    def __init__(self, futures: dict):
        self._futures = futures

    def __getitem__(self, name: str):
        return self._futures[name].result()


@contextmanager
def running_queries(filters: ReportFilters, roc_bins: int, population_fields: list[str], deadline: float,
                    workers: int = WORKERS):
    """Start every query the report needs and yield their results by name, as they come in, all by ``deadline``."""
    jobs = {"groups": (queries.group_outcome_counts, filters),  # first: its Python work is the longest
            "volume": (queries.volume_counts, filters),
            "profile": (queries.profile_counts, filters),
            "bins": (queries.probability_bins, filters, roc_bins),
            "history": (queries.outcome_history, filters),
            "shadow_groups": (queries.shadow_outcome_counts, filters),
            "shadow_bins_live": (queries.shadow_probability_bins, filters, False, roc_bins),
            "shadow_bins_shadow": (queries.shadow_probability_bins, filters, True, roc_bins),
            "sac_by_day": (queries.sac_none_by_day, filters),
            "drivers": (queries.leading_reason_counts, filters),
            **population_jobs(filters, population_fields)}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="report-query") as pool:
        futures = {name: pool.submit(_in_own_connection, deadline, *job) for name, job in jobs.items()}
        try:
            yield _Results(futures)
        finally:
            for future in futures.values():
                future.cancel()
