"""The alarm (`python -m pipeline.report --check`) on built logs, SQLite and Postgres: exit 0 with one line on a
healthy log, exit 1 naming the breach for each of precision, fairness, the SAC=N share and population drift; and
the live-against-shadow section computed on the same requests."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from models import Prediction, database, database_from_url
from pipeline.evaluation.metrics import roc_auc
from pipeline.report import build_report, render_page
from pipeline.report.__main__ import main as report_cli
from pipeline.schema import age_group

N_ROWS, BLOCK, DAYS = 1280, 32, 20  # each block of 32 rows holds every department x race x sex x decision once
CARD = {"version": "v-test", "threshold": 0.5, "population": {"SubjectSexCode": {"M": 0.5, "F": 0.5}},
        "population_rows": 100000}


def _row(i: int, now: datetime, precision_hits: int = 6, unfair: bool = False, sac_jump: bool = False,
         only_men: bool = False, shadow: bool = False) -> dict:
    department, race = f"D{i % 4}", "WB"[(i // 4) % 2]
    sex, search = ("M" if only_men else "MF"[(i // 8) % 2]), (i // 16) % 2 == 0
    block, day = i // BLOCK, i % DAYS
    hits = 2 if unfair and department == "D0" and race == "B" else precision_hits
    found = (block % 10 < hits) if search else (block % 10 < 3)
    recent = day >= DAYS - 7
    sac = "N" if (sac_jump and recent and block % 10 < 3) or i % 50 == 7 else "OCI"[i % 3]
    probability = (0.6 if search else 0.2) + (block % 10) / 100
    shadow_search = search if i % 5 else not search  # the shadow disagrees on every fifth request
    return {"observation_id": f"o{i}", "observation": "{}", "observation_digest": "0" * 64,
            "department": department, "location": "X", "intervention_at": datetime(2026, 1, 1),
            "intervention_reason_code": "V", "statute_reason": "Speed Related", "officer_id": "7", "resident": True,
            "town_resident": False, "search_authorization_code": sac, "subject_race": race,
            "subject_ethnicity": "N", "subject_sex": sex, "subject_age": 30, "subject_age_group": age_group(30),
            "probability": probability, "should_search": search, "threshold": 0.5, "model_version": "v-test",
            "received_at": now - timedelta(days=DAYS - 1 - day, hours=1), "contraband_found": found,
            "outcome_at": now,
            "shadow_version": "s1" if shadow else None,
            "shadow_probability": (probability if shadow_search == search else 1 - probability) if shadow else None,
            "shadow_should_search": shadow_search if shadow else None}


@pytest.fixture
def write_log(migrated_database_url):
    """``write_log(**pattern)``: fill the fresh database with N_ROWS requests of that pattern; returns its URL."""
    db = database_from_url(migrated_database_url)

    def write(**pattern) -> str:
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        rows = [_row(i, now, **pattern) for i in range(N_ROWS)]
        with db.bind_ctx([Prediction]), db.atomic():
            for start in range(0, len(rows), 200):
                Prediction.insert_many(rows[start:start + 200]).execute()
        return migrated_database_url
    yield write
    db.close()


@pytest.fixture
def card_dir(tmp_path):
    """An artifact directory holding only CARD (all the report reads)."""
    (tmp_path / "model_card.json").write_text(json.dumps(CARD))
    return tmp_path


def _check(url: str, card_dir, capsys) -> tuple[int, str]:
    status = report_cli(["--database-url", url, "--check", "--artifact", str(card_dir)])
    return status, capsys.readouterr().out


def test_a_healthy_log_exits_0_with_one_line(write_log, card_dir, capsys):
    """Precision 0.6, equal groups, a steady 2% SAC=N, the training sex mix: exit 0 and a one-line summary."""
    status, out = _check(write_log(), card_dir, capsys)
    assert status == 0, out
    assert len(out.strip().splitlines()) == 1 and out.startswith("ok: precision ok (precision 0.600")
    assert "fairness ok" in out and "sac_none ok" in out and "population ok" in out


@pytest.mark.parametrize("pattern, check, words", [
    ({"precision_hits": 3}, "precision", "the whole interval is below 0.5"),
    ({"unfair": True}, "fairness", "D0 / SubjectRaceCode"),
    ({"sac_jump": True}, "sac_none", "officers may be asking without suspicion"),
    ({"only_men": True}, "population", "SubjectSexCode"),
])
def test_each_breach_exits_1_and_says_why(write_log, card_dir, capsys, pattern, check, words):
    """Each requirement broken alone: exit 1, one BREACH line naming it (and no other)."""
    status, out = _check(write_log(**pattern), card_dir, capsys)
    assert status == 1, out
    breaches = [line for line in out.splitlines() if line.startswith("BREACH")]
    assert len(breaches) == 1 and breaches[0].startswith(f"BREACH {check}:") and words in breaches[0], out


def test_the_page_summary_box_shows_the_same_verdicts(write_log):
    """build_report carries the alarm; the page's summary box lists every verdict."""
    database.initialize(database_from_url(write_log(precision_hits=3)))
    try:
        report = build_report(card=CARD)
    finally:
        database.close()
    assert report["alarm"]["status"] == "breach"
    assert report["alarm"]["checks"]["precision"]["status"] == "breach"
    page = render_page(report)
    assert "Alarm (the same verdicts as" in page and "the whole interval is below 0.5" in page


def test_live_against_shadow_on_the_same_requests(write_log):
    """The shadow disagrees on every fifth request: agreement 80%, its precision and recall from its decisions."""
    database.initialize(database_from_url(write_log(shadow=True)))
    try:
        report = build_report(card=CARD)
    finally:
        database.close()
    (entry,) = report["shadow"]["versions"]
    assert (entry["shadow_version"], entry["requests"], entry["labelled"]) == ("s1", N_ROWS, N_ROWS)
    assert entry["agreement"]["value"] == pytest.approx(0.8)
    # Recomputed from the rows themselves.
    now = datetime(2026, 1, 1)
    rows = [_row(i, now, shadow=True) for i in range(N_ROWS)]
    found = [r["contraband_found"] for r in rows]
    for side, key, scores in (("live", "should_search", "probability"),
                              ("shadow", "shadow_should_search", "shadow_probability")):
        tp = sum(r[key] and r["contraband_found"] for r in rows)
        fp = sum(r[key] and not r["contraband_found"] for r in rows)
        fn = sum(not r[key] and r["contraband_found"] for r in rows)
        assert entry[side]["precision"]["value"] == pytest.approx(tp / (tp + fp))
        assert entry[side]["recall"]["value"] == pytest.approx(tp / (tp + fn))
        # Distinct probabilities are 0.01 apart, so the report's 1/1000 bins never merge two: the AUC is exact.
        assert entry[side]["auc"]["value"] == pytest.approx(roc_auc(found, [r[scores] for r in rows]))
        assert entry[side]["auc"]["interval"]["low"] < entry[side]["auc"]["value"]
        assert entry[side]["fairness"]["evaluated"] > 0
    assert "7. Live model against the shadow model" in render_page(report)
