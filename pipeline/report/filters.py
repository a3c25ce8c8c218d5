"""Which slice of the request log a report covers: received-at range, department and model version."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone

from models import Prediction
from pipeline.schema import ISO_SHAPE, text_problem

DEFAULT_MIN_DEPARTMENT = 100
DEFAULT_MIN_GROUP = 20
DEFAULT_MAX_GAP = 0.05
FIRST_YEAR, LAST_YEAR = 2000, 2099  # dates outside are typos, as for stop times; the end's extra day cannot overflow


class FilterError(ValueError):
    """A report parameter that cannot be understood; ``field`` names it, the message says what to send instead."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.problem = field, message


@dataclass(frozen=True)
class ReportFilters:
    """A slice of the log: ``since <= received_at < until`` (naive UTC), one department, one model version."""

    since: datetime | None = None
    until: datetime | None = None
    department: str | None = None
    model_version: str | None = None

    def conditions(self) -> list:
        """Peewee expressions selecting the slice; an empty list selects the whole log."""
        found = []
        if self.since is not None:
            found.append(Prediction.received_at >= self.since)
        if self.until is not None:
            found.append(Prediction.received_at < self.until)
        if self.department is not None:
            found.append(Prediction.department == self.department)
        if self.model_version is not None:
            found.append(Prediction.model_version == self.model_version)
        return found

    def describe(self) -> dict:
        """The filters as JSON-ready strings, for the report header."""
        return {key: (value.isoformat(sep=" ") if isinstance(value, datetime) else value)
                for key, value in asdict(self).items()}


@dataclass(frozen=True)
class FairnessParameters:
    """Minimum labelled counts per department and per group, and the largest allowed precision gap."""

    min_department: int = DEFAULT_MIN_DEPARTMENT
    min_group: int = DEFAULT_MIN_GROUP
    max_gap: float = DEFAULT_MAX_GAP


def parse_instant(name: str, text: str | None, *, end: bool) -> datetime | None:
    """Parse a date or ISO 8601 time as naive UTC; a bare date used as an end covers that whole day."""
    if text is None or not str(text).strip():
        return None
    text = str(text).strip()
    try:
        if not ISO_SHAPE.fullmatch(text):  # the shapes /openapi.json documents, not week dates or compact forms
            raise ValueError(text)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise FilterError(name, f"{text[:40]!r} is not a date: send YYYY-MM-DD or an ISO 8601 time such as "
                                "2026-05-16T04:08:00Z") from None
    # Checked as written, before the end's extra day or the offset is applied (9999-12-31 used to be a 500).
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise FilterError(name, f"must be in the years {FIRST_YEAR}-{LAST_YEAR}, got {moment.year}")
    if end and len(text) == 10:
        moment += timedelta(days=1)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def _text(name: str, value) -> str | None:
    if value is None:
        return None
    problem = text_problem(str(value))
    if problem:
        raise FilterError(name, problem)  # Postgres rejects NUL; both backends must answer the same
    value = " ".join(str(value).split())
    return value or None


def _count(name: str, value, default: int) -> int:
    if value is None or str(value).strip() == "":
        return default
    text = str(value).strip()
    if not re.fullmatch(r"-?[0-9]+", text):  # int() also takes "+5", "5_0" and other scripts' digits
        raise FilterError(name, f"must be a whole number of outcomes, got {text[:40]!r}")
    number = int(text)
    if number < 1:
        raise FilterError(name, f"must be at least 1, got {number}")
    return number


def parse_parameters(params) -> tuple[ReportFilters, FairnessParameters]:
    """Read filters and fairness minimums from a mapping of strings (query string or CLI options)."""
    since = parse_instant("since", params.get("since"), end=False)
    until = parse_instant("until", params.get("until"), end=True)
    if since is not None and until is not None and since >= until:
        raise FilterError("until", f"must be after since ({since}); got {until}")
    filters = ReportFilters(since=since, until=until, department=_text("department", params.get("department")),
                            model_version=_text("model_version", params.get("model_version")))
    fairness = FairnessParameters(
        min_department=_count("min_department", params.get("min_department"), DEFAULT_MIN_DEPARTMENT),
        min_group=_count("min_group", params.get("min_group"), DEFAULT_MIN_GROUP))
    return filters, fairness
