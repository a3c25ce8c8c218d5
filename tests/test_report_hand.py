"""The report on a 16-request log whose every figure below was worked out by hand (SQLite and Postgres)."""
from __future__ import annotations

import json
import math
from datetime import datetime

import pytest

from models import Outcome, Prediction, database, database_from_url
from pipeline.report import FairnessParameters, ReportFilters, build_report, render_page
from pipeline.report.__main__ import main as report_cli

DAY1, DAY2 = datetime(2026, 5, 1, 9, 30), datetime(2026, 5, 2, 23, 59)
AGE_GROUP = {17: "Youth", 19: "Young Adult", 22: "Young Adult", 25: "Young Adult", 26: "Young Adult",
             28: "Young Adult", 29: "Young Adult", 30: "Young Adult", 33: "Young Adult", 35: "Young Adult",
             36: "Adult", 40: "Adult", 41: "Adult", 45: "Adult", 50: "Adult", 60: "Senior"}
# department, SAC, race, ethnicity, sex, age, probability, model says search, contraband found (None: no outcome)
ROWS = [
    ("Alpha", "O", "W", "N", "M", 25, 0.90, True, True),     # 1 TP
    ("Alpha", "O", "W", "N", "M", 30, 0.80, True, True),     # 2 TP
    ("Alpha", "O", "W", "N", "F", 40, 0.70, True, False),    # 3 FP (first reported True, then corrected)
    ("Alpha", "C", "B", "H", "M", 22, 0.60, True, True),     # 4 TP
    ("Alpha", "C", "B", "N", "M", 45, 0.55, True, False),    # 5 FP
    ("Alpha", "C", "B", "N", "F", 50, 0.52, True, False),    # 6 FP
    ("Alpha", "I", "W", "N", "M", 60, 0.30, False, True),    # 7 FN
    ("Alpha", "I", "B", "N", "M", 19, 0.20, False, False),   # 8 TN
    ("Alpha", "N", "W", "N", "F", 35, 0.10, False, False),   # 9 TN  (day 2 from here on)
    ("Alpha", "O", "B", "H", "M", 28, 0.65, True, None),     # 10
    ("Beta", "O", "W", "N", "M", 33, 0.75, True, True),      # 11 TP
    ("Beta", "O", "W", "N", "M", 41, 0.45, False, True),     # 12 FN
    ("Beta", "C", "A", "N", "F", 17, 0.58, True, False),     # 13 FP
    ("Beta", "I", "W", "N", "M", 26, 0.40, False, False),    # 14 TN
    ("Beta", "N", "W", "N", "M", 36, 0.05, False, None),     # 15 (model v1)
    ("Beta", "C", "B", "N", "M", 29, 0.51, True, None),      # 16 (model v1)
]
CARD = {"version": "v2", "threshold": 0.5,
        "population": {"SubjectSexCode": {"M": 0.5, "F": 0.5}, "SubjectRaceCode": {"W": 0.7, "B": 0.3}}}


def _insert_log():
    for number, (dept, sac, race, eth, sex, age, p, search, found) in enumerate(ROWS, start=1):
        received = DAY1 if number <= 8 else DAY2
        row = Prediction.create(
            observation_id=f"obs-{number}", observation="{}", observation_digest="0" * 64, department=dept,
            location=dept.upper(), intervention_at=datetime(2026, 4, 30, 12), intervention_reason_code="V",
            statute_reason="Speed Related", officer_id="7", resident=True, town_resident=number % 2 == 0,
            search_authorization_code=sac, subject_race=race, subject_ethnicity=eth, subject_sex=sex,
            subject_age=age, subject_age_group=AGE_GROUP[age], probability=p, should_search=search, threshold=0.5,
            model_version="v1" if number >= 15 else "v2", received_at=received, contraband_found=found,
            outcome_at=received if found is not None else None)
        if number == 3:
            Outcome.create(prediction=row, contraband_found=True, received_at=received)
            Outcome.create(prediction=row, contraband_found=False, is_correction=True, correction_reason="typo",
                           received_at=received)
        elif found is not None:
            Outcome.create(prediction=row, contraband_found=found, received_at=received)


@pytest.fixture
def hand_log(migrated_database_url):
    """The 16-request log in a fresh database; the proxy is bound to it for the test."""
    database.initialize(database_from_url(migrated_database_url))
    database.connect(reuse_if_open=True)
    with database.atomic():
        _insert_log()
    yield migrated_database_url
    database.close()


def _entry(report, department, attribute, side="model"):
    return next(e for e in report["fairness"][side]["table"]
                if e["department"] == department and e["attribute"] == attribute)


def test_confusion_matrix_precision_and_verdict(hand_log):
    report = build_report(card=CARD)
    metrics = report["performance"]["metrics"]
    assert metrics["counts"] == {"tp": 4, "fp": 4, "fn": 2, "tn": 3}
    assert metrics["precision"]["value"] == pytest.approx(4 / 8)
    assert metrics["recall"]["value"] == pytest.approx(4 / 6)
    assert metrics["accuracy"]["value"] == pytest.approx(7 / 13)
    assert metrics["precision"]["low"] < 0.5 < metrics["precision"]["high"]
    assert report["performance"]["precision_requirement"]["verdict"] == "not enough outcomes yet"
    assert report["performance"]["search_by_default"]["overall"]["value"] == pytest.approx(10 / 16)
    assert "searched" in report["performance"]["recall_note"]


def test_volume_coverage_and_outcome_history(hand_log):
    volume = build_report(card=CARD)["volume"]
    assert (volume["requests"], volume["labelled"]) == (16, 13)
    assert [(d["day"], d["requests"], d["labelled"]) for d in volume["by_day"]] == [
        ("2026-05-01", 8, 8), ("2026-05-02", 8, 5)]
    assert [(v["model_version"], v["requests"], v["labelled"]) for v in volume["by_model_version"]] == [
        ("v1", 2, 0), ("v2", 14, 13)]
    assert (volume["outcome_reports"], volume["corrections"]) == (14, 1)


def test_per_sac_table(hand_log):
    table = {row["sac"]: row for row in build_report(card=CARD)["sac_table"]}
    got = {sac: (r["predicted_true"], r["predicted_false"], r["outcome_true"], r["outcome_false"], r["requests"],
                 r["recommended"]["value"]) for sac, r in table.items()}
    assert got == {"C": (4, 0, 1, 3, 5, 1.0), "I": (0, 3, 1, 2, 3, 0.0), "N": (0, 1, 0, 1, 2, 0.0),
                   "O": (4, 1, 4, 1, 6, pytest.approx(5 / 6))}
    assert table["O"]["precision"]["value"] == pytest.approx(3 / 4)


def test_roc_auc_from_sql_bins(hand_log):
    roc = build_report(card=CARD)["roc"]
    # 32 of the 6 x 7 positive/negative pairs are ordered correctly, none tied.
    assert roc["auc"] == pytest.approx(32 / 42)
    assert (roc["positives"], roc["negatives"]) == (6, 7)
    assert roc["fpr"][0] == roc["tpr"][0] == 0.0 and roc["fpr"][-1] == roc["tpr"][-1] == 1.0


def test_one_departments_gaps_for_model_and_officers(hand_log):
    report = build_report(fairness=FairnessParameters(min_department=4, min_group=2), card=CARD)
    race = _entry(report, "Alpha", "SubjectRaceCode")
    precision = {g["group"]: g["precision"] for g in race["groups"]}
    assert precision == {"B": pytest.approx(1 / 3), "W": pytest.approx(2 / 3)}
    assert race["max_gap"] == pytest.approx(1 / 3) and race["status"] == "breaks rule"
    sex = _entry(report, "Alpha", "SubjectSexCode")
    assert sex["max_gap"] == pytest.approx(0.75)
    officers = _entry(report, "Alpha", "SubjectRaceCode", side="officers")
    assert {g["group"]: g["precision"] for g in officers["groups"]} == {"B": pytest.approx(1 / 4),
                                                                       "W": pytest.approx(3 / 5)}
    assert officers["max_gap"] == pytest.approx(0.35)
    beta = _entry(report, "Beta", "SubjectRaceCode")  # 2 recommended outcomes < 4
    assert beta["status"] == "not enough data"
    breaking = {(b["department"], b["attribute"]) for b in report["fairness"]["breaking_rule"]}
    assert ("Alpha", "SubjectRaceCode") in breaking and not any(d == "Beta" for d, _ in breaking)


def test_default_minimums_give_not_enough_data(hand_log):
    fairness = build_report(card=CARD)["fairness"]
    assert {e["status"] for e in fairness["model"]["table"]} == {"not enough data"}
    assert fairness["breaking_rule"] == []


def test_population_psi_and_unseen_rate(hand_log):
    population = build_report(card=CARD)["population"]
    # sex: production M 12/16, F 4/16 against 0.5/0.5 -> 0.25 ln 1.5 + 0.25 ln 2 = 0.25 ln 3
    assert population["psi"]["SubjectSexCode"]["psi"] == pytest.approx(0.25 * math.log(3))
    assert population["unseen_rate"]["SubjectRaceCode"] == pytest.approx(1 / 16)  # one "A", unseen in training
    sex_rows = {r["value"]: r for r in population["rows"] if r["field"] == "SubjectSexCode"}
    assert sex_rows["M"]["production_pct"] == pytest.approx(75.0) and sex_rows["M"]["training_pct"] == 50.0


def test_card_without_population_is_reported_unknown(hand_log):
    population = build_report(card={"version": "interim-0", "threshold": 0.4})["population"]
    assert population["known"] is False and "unknown" in population["note"]
    assert population["psi"] == {}
    race = {r["value"]: r["production_pct"] for r in population["rows"] if r["field"] == "SubjectRaceCode"}
    assert race == {"W": pytest.approx(100 * 9 / 16), "B": pytest.approx(100 * 6 / 16), "A": pytest.approx(100 / 16)}


@pytest.mark.parametrize("filters, requests, labelled", [
    (ReportFilters(department="Beta"), 6, 4),
    (ReportFilters(model_version="v1"), 2, 0),
    (ReportFilters(since=datetime(2026, 5, 2)), 8, 5),
    (ReportFilters(until=datetime(2026, 5, 2)), 8, 8),
    (ReportFilters(department="Gamma"), 0, 0),
])
def test_filters_select_the_slice(hand_log, filters, requests, labelled):
    report = build_report(filters, card=CARD)
    assert (report["volume"]["requests"], report["volume"]["labelled"]) == (requests, labelled)
    json.dumps(report, allow_nan=False)  # even an empty slice is valid JSON


def test_beta_only_confusion(hand_log):
    counts = build_report(ReportFilters(department="Beta"), card=CARD)["performance"]["metrics"]["counts"]
    assert counts == {"tp": 1, "fp": 1, "fn": 1, "tn": 1}


def test_page_escapes_logged_text(hand_log):
    Prediction.update(department="<b>Alpha & Co</b>").where(Prediction.department == "Alpha").execute()
    report = build_report(fairness=FairnessParameters(min_department=4, min_group=2), card=CARD)
    page = render_page(report)
    assert "<b>Alpha" not in page and "&lt;b&gt;Alpha &amp; Co&lt;/b&gt;" in page


def test_cli_writes_json_and_html(hand_log, tmp_path):
    card_dir = tmp_path / "model"
    card_dir.mkdir()
    (card_dir / "model_card.json").write_text(json.dumps(CARD))
    database.close()
    out = tmp_path / "report.json"
    assert report_cli(["--database-url", hand_log, "--out", str(out), "--artifact", str(card_dir),
                       "--department", "Alpha", "--min-department", "4", "--min-group", "2"]) == 0
    report = json.loads(out.read_text())
    assert report["volume"]["requests"] == 10
    assert report["performance"]["metrics"]["counts"] == {"tp": 3, "fp": 3, "fn": 1, "tn": 2}
    assert report["filters"]["department"] == "Alpha"
    page = tmp_path / "report.html"
    assert report_cli(["--database-url", hand_log, "--out", str(page), "--artifact", str(card_dir)]) == 0
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "data:image/png;base64," in html


def test_cli_refuses_bad_options(hand_log, tmp_path, capsys):
    assert report_cli(["--database-url", hand_log, "--out", str(tmp_path / "r.json"), "--since", "May 1st",
                       "--artifact", str(tmp_path)]) == 2
    assert "since" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        report_cli(["--database-url", hand_log, "--out", str(tmp_path / "r.txt")])


def test_page_folds_long_fields_warns_of_few_gaps_and_fits_its_date_fields(hand_log):
    """Table 6 folds a field of many values (departments); a gap histogram of a few gaps carries a warning; the
    filter form's date placeholder is short enough to show whole."""
    for number in range(1, 17):
        Prediction.update(department=f"Town {number:02d}").where(Prediction.observation_id == f"obs-{number}").execute()
    card = {**CARD, "population": {**CARD["population"], "Department Name": {"Town 01": 1.0}}}
    folded = render_page(build_report(card=card))
    department = folded.split("<summary>Department Name (16 values)</summary>")[0].rsplit("<details", 1)[1]
    assert department.strip() == ">"  # closed: no "open" attribute
    assert "<details open><summary>SubjectSexCode" in folded
    Prediction.update(department="Alpha").execute()
    report = build_report(fairness=FairnessParameters(min_department=4, min_group=2), card=CARD)
    assert 0 < len(report["fairness"]["model"]["gaps"]) < 20
    page = render_page(report)
    assert 'id="gap-warning"' in page and "gaps for the model" in page
    assert 'id="gap-warning"' not in folded  # no gaps at all: the chart itself says so
    from pipeline.report import filter_form, render_html, report_charts
    form = filter_form("/report.html", {"departments": ["Alpha"], "model_versions": ["v2"]}, {"since": ""}, "/report")
    served = render_html(report, report_charts(report), form)
    assert served.count('placeholder="YYYY-MM-DD"') == 2 and 'href="/report"' in served


def test_cli_takes_the_services_defaults(hand_log, tmp_path, monkeypatch, capsys):
    """No --database-url or an empty one: $DATABASE_URL, as the service; no --artifact: $MODEL_DIR's card."""
    card_dir = tmp_path / "live"
    card_dir.mkdir()
    (card_dir / "model_card.json").write_text(json.dumps({**CARD, "version": "live-v9"}))
    database.close()
    monkeypatch.setenv("DATABASE_URL", hand_log)
    monkeypatch.setenv("MODEL_DIR", str(card_dir))
    out = tmp_path / "report.json"
    assert report_cli(["--database-url", "", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["volume"]["requests"] == 16 and report["active_model"]["version"] == "live-v9"
    monkeypatch.setenv("DATABASE_URL", "")
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "nowhere" / "ctrp3.sqlite3"
    monkeypatch.setattr("pipeline.report.__main__.resolve_database_url", lambda url, env: f"sqlite:///{missing}")
    assert report_cli(["--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "there is no database at" in error and "Traceback" not in error
    monkeypatch.setenv("DATABASE_URL", "mysql://nope")
    monkeypatch.undo()
