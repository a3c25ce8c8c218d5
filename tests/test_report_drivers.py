"""Report section 7, "what drives recommendations", on a 13-request log worked out by hand (SQLite and Postgres)."""
from __future__ import annotations

import json
from datetime import datetime

import pytest

from models import Prediction, database, database_from_url
from pipeline.report import ReportFilters, build_report, render_page

INVENTORY, HOUR = "Inventory search (I)", "Stop between 04:00 and 04:59"
ALPHA, BETA = "Department 'alpha'", "Department 'beta'"
# department, leading reason (None: logged before reasons were kept), model says search, contraband found
ROWS = [
    ("Alpha", INVENTORY, True, True),         # 1
    ("Alpha", INVENTORY, True, False),        # 2
    ("Alpha", INVENTORY, True, None),         # 3 no outcome yet
    ("Alpha", ALPHA, True, True),     # 4
    ("Alpha", HOUR, True, True),      # 5
    ("Alpha", INVENTORY, False, True),        # 6 not recommended: not counted
    ("Alpha", None, True, False),     # 7 before reasons were kept
    ("Beta", BETA, True, False),      # 8
    ("Beta", BETA, True, False),      # 9
    ("Beta", INVENTORY, True, True),          # 10
    ("Beta", HOUR, True, None),       # 11
    ("Beta", HOUR, True, True),       # 12
    ("Beta", HOUR, True, True),       # 13
]
# By hand. Recommended: 12 (all but 6), one of them (7) without a reason.
# Overall: INVENTORY rows 1,2,3,10: 4 recommended, 3 labelled (1,2,10), 2 hits (1,10): 2/3, Wilson 95% [0.2077, 0.9385].
#          HOUR rows 5,11,12,13: 4, 3 labelled (5,12,13), 3 hits: 3/3 [0.4385, 1]. INVENTORY before HOUR (tie, by name).
#          BETA rows 8,9: 2, 2 labelled, 0 hits: 0/2 [0, 0.6576]. ALPHA row 4: 1, 1, 1: 1/1 [0.2065, 1].
# Per department, by recommended with a reason: Beta 6 (8-13), then Alpha 5 (1-5).
#          Beta: HOUR 3 (2 labelled, 2 hits: [0.3424, 1]); BETA 2 (0/2); INVENTORY 1 (1/1).
#          Alpha: INVENTORY 3 (1,2,3: 2 labelled, 1 hit: 1/2 [0.0945, 0.9055]); ALPHA 1 and HOUR 1 (ties, by name).
EXPECTED_OVERALL = [(INVENTORY, 4, 3, 2, 2 / 3, 0.2077, 0.9385), (HOUR, 4, 3, 3, 1.0, 0.4385, 1.0),
                    (BETA, 2, 2, 0, 0.0, 0.0, 0.6576), (ALPHA, 1, 1, 1, 1.0, 0.2065, 1.0)]
EXPECTED_BY_DEPARTMENT = [
    ("Beta", 6, [(HOUR, 3, 2, 2, 1.0, 0.3424, 1.0), (BETA, 2, 2, 0, 0.0, 0.0, 0.6576),
                 (INVENTORY, 1, 1, 1, 1.0, 0.2065, 1.0)]),
    ("Alpha", 5, [(INVENTORY, 3, 2, 1, 0.5, 0.0945, 0.9055), (ALPHA, 1, 1, 1, 1.0, 0.2065, 1.0),
                  (HOUR, 1, 1, 1, 1.0, 0.2065, 1.0)]),
]


def _reasons(leading: str) -> str:
    """Stored reasons whose largest raising factor is ``leading`` (the rest is what the service stores too)."""
    return json.dumps({"reference": {"log_odds": -0.86, "probability": 0.3, "description": "test"},
                       "raising": [{"field": "x", "feature": "x", "value": "y", "effect": 0.5, "protected": False,
                                    "sentence": f"{leading} raises the probability."},
                                   {"field": "z", "feature": "z", "value": 1, "effect": 0.1, "protected": False,
                                    "sentence": "Second reason raises the probability."}],
                       "lowering": []}, separators=(",", ":"))


@pytest.fixture
def drivers_log(migrated_database_url):
    database.initialize(database_from_url(migrated_database_url))
    database.connect(reuse_if_open=True)
    with database.atomic():
        for number, (department, reason, search, found) in enumerate(ROWS, start=1):
            Prediction.create(
                observation_id=f"d-{number}", observation="{}", observation_digest="0" * 64, department=department,
                location=None, intervention_at=datetime(2026, 4, 30, 4, 10), intervention_reason_code="V",
                statute_reason=None, officer_id=None, resident=True, town_resident=False,
                search_authorization_code="I" if reason == INVENTORY else "O", subject_race="W",
                subject_ethnicity="N", subject_sex="M", subject_age=30, subject_age_group="Young Adult",
                probability=0.6 if search else 0.2,
                should_search=search, threshold=0.5, model_version="v", received_at=datetime(2026, 5, 1, 9),
                contraband_found=found, outcome_at=datetime(2026, 5, 2) if found is not None else None,
                reasons=None if reason is None else _reasons(reason),
                leading_reason=None if reason is None else f"{reason} raises the probability.")
    yield
    database.close()


def _rows(entries: list[dict]) -> list[tuple]:
    return [(e["reason"], e["recommended"], e["labelled"], e["contraband_found"], e["precision"]["value"],
             round(e["precision"]["low"], 4), round(e["precision"]["high"], 4)) for e in entries]


def test_leading_reasons_overall_and_per_department(drivers_log):
    drivers = build_report()["drivers"]
    assert (drivers["recommended"], drivers["without_reasons"]) == (12, 1)
    assert _rows(drivers["overall"]) == pytest.approx(EXPECTED_OVERALL)
    assert [(d["department"], d["recommended"], _rows(d["reasons"])) for d in drivers["by_department"]] == \
        pytest.approx(EXPECTED_BY_DEPARTMENT)


def test_the_section_follows_the_reports_filters(drivers_log):
    drivers = build_report(ReportFilters(department="Alpha"))["drivers"]
    assert (drivers["recommended"], drivers["without_reasons"]) == (6, 1)
    assert _rows(drivers["overall"]) == pytest.approx(EXPECTED_BY_DEPARTMENT[1][2])


def test_the_page_shows_the_section(drivers_log):
    page = render_page(build_report())
    assert "7. What drives recommendations" in page
    assert "Inventory search (I)" in page and "Department &#39;beta&#39;" in page
    assert "66.7% [20.8%, 93.9%] n=3" in page


def test_the_report_counts_the_leading_reason_the_service_answered(client, observation, dry_run_requests):
    """Through the API: every recommended dry-run request counts once, under the reason its answer led with."""
    led = {}
    for id_, raw, _ in dry_run_requests:
        answer = client.post("/should_search", json={"observation_id": f"dr-{id_}", "observation": raw}).get_json()
        if answer["should_search"] and answer["reasons"]["raising"]:
            reason = answer["reasons"]["raising"][0]["sentence"].replace(" raises the probability.", "")
            led[reason] = led.get(reason, 0) + 1
    assert led, "the committed model recommends some dry-run searches"
    report = client.get("/report").get_json()["drivers"]
    assert {e["reason"]: e["recommended"] for e in report["overall"]} == dict(
        sorted(led.items(), key=lambda kv: (-kv[1], kv[0]))[:10])
