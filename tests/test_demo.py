"""``python -m demo``: a generated stream through the service's code fills every part of the report; it refuses a
database holding real rows unless told, and a second run with the same seed adds nothing."""
from __future__ import annotations

import pytest

from demo.__main__ import main
from demo.stream import PREFIX
from models import Outcome, Prediction, close_pool, database, database_from_url
from pipeline.report import build_report
from pipeline.scoring.artifact import DEFAULT_ARTIFACT_DIR, read_card

pytestmark = pytest.mark.slow


def _counts(url: str) -> tuple[int, int, int]:
    db = database_from_url(url)
    database.initialize(db)
    try:
        with database.connection_context():
            demo = Prediction.select().where(Prediction.observation_id.startswith(PREFIX)).count()
            return Prediction.select().count(), demo, Outcome.select().count()
    finally:
        close_pool(db)


def test_demo_loads_through_the_service_and_refuses_real_rows(migrated_database_url, monkeypatch, capsys, client,
                                                              observation):
    """300 requests: logged with outcomes, the report's sections filled; rerun adds nothing; real rows refuse."""
    monkeypatch.setenv("DATABASE_URL", migrated_database_url)
    assert main(["--requests", "300", "--seed", "3"]) == 0
    progress = capsys.readouterr().err
    assert "300/300 requests" in progress and "done:" in progress
    total, demo, outcomes = _counts(migrated_database_url)
    assert total == demo >= 295 and outcomes >= 0.7 * demo  # a few generated rows are malformed on purpose
    database.initialize(database_from_url(migrated_database_url))
    try:
        report = build_report(card=read_card(DEFAULT_ARTIFACT_DIR), fairness=None)
    finally:
        close_pool(database.obj)
    assert report["volume"]["requests"] == total and report["volume"]["labelled"] >= 0.7 * total
    assert report["roc"]["auc"] is not None and report["sac_table"] and report["population"]["rows"]
    assert main(["--requests", "300", "--seed", "3"]) == 0  # same ids, same observations: the stored answers
    assert _counts(migrated_database_url)[:2] == (total, demo)

    real = {"observation_id": "real-1", "observation": observation}
    assert client.post("/should_search", json=real).status_code == 200
    assert main(["--requests", "5", "--seed", "4"]) == 2
    assert "already holds 1 requests that are not demo rows" in capsys.readouterr().err
    assert main(["--requests", "5", "--seed", "4", "--allow-real-rows"]) == 0


def test_demo_refuses_an_unmigrated_database(database_url, monkeypatch, capsys):
    """An empty database: a sentence naming the migration command, no traceback."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["--requests", "5"]) == 2
    assert "needs its migrations first" in capsys.readouterr().err
