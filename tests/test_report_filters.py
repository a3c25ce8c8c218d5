"""Report parameters: dates, inclusive days, minimum counts and the errors that say what to send."""
from __future__ import annotations

from datetime import datetime

import pytest

from pipeline.report import FilterError, parse_parameters
from pipeline.report.filters import DEFAULT_MIN_DEPARTMENT, DEFAULT_MIN_GROUP


def test_bare_until_day_is_inclusive_and_times_become_naive_utc():
    filters, fairness = parse_parameters({"since": "2026-05-01T06:00:00+02:00", "until": "2026-05-02"})
    assert filters.since == datetime(2026, 5, 1, 4, 0)
    assert filters.until == datetime(2026, 5, 3)  # the whole of May 2nd
    assert (fairness.min_department, fairness.min_group) == (DEFAULT_MIN_DEPARTMENT, DEFAULT_MIN_GROUP)


def test_text_filters_are_normalised_and_empty_ones_ignored():
    filters, fairness = parse_parameters({"department": "  New   Haven ", "model_version": "", "min_group": "5"})
    assert filters.department == "New Haven" and filters.model_version is None and fairness.min_group == 5
    assert filters.describe()["department"] == "New Haven"


@pytest.mark.parametrize("params, field", [
    ({"since": "05/01/2026"}, "since"),
    ({"until": "2026-13-01"}, "until"),
    ({"since": "2026-05-03", "until": "2026-05-01"}, "until"),
    ({"min_department": "-1"}, "min_department"),
    ({"min_group": "many"}, "min_group"),
    ({"model_version": "v\x00"}, "model_version"),
    ({"department": "x" * 201}, "department"),
    # Found by reading the fuzzer's document against the code: the first two were 500s (datetime overflow).
    ({"until": "9999-12-31"}, "until"),
    ({"since": "0001-01-01T00:00:00+01:00"}, "since"),
    ({"since": "2018-W20-3"}, "since"),
    ({"min_group": "+5"}, "min_group"),
    ({"min_department": "5_0"}, "min_department"),
])
def test_bad_parameters_name_the_field(params, field):
    with pytest.raises(FilterError) as raised:
        parse_parameters(params)
    assert raised.value.field == field and raised.value.problem
