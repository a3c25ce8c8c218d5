"""Shipping a new default model (migration 0005): a fresh database serves it; a database that served the former
default moves to it and can roll back; a database whose analysts promoted their own model keeps it."""
from __future__ import annotations

import contextlib
import importlib
import json
from datetime import datetime
from pathlib import Path

import pytest

import migrations
from models import ModelStatusChange, ModelVersion, database_from_url
from pipeline.scoring import registry
from pipeline.scoring.signing import digest

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "artifacts" / "default"
FORMER = "logreg-20261128T180734Z-883f71c4"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
upgrade = importlib.import_module("migrations.0005_shrinkage_default")


@contextlib.contextmanager
def _migrated(url: str):
    """A connected database with every migration applied, closed on exit."""
    db = database_from_url(url)
    db.connect()
    try:
        migrations.apply_migrations(db)
        yield db
    finally:
        db.close()


def _version_of(directory: Path) -> str:
    return json.loads((directory / "model_card.json").read_text())["version"]


def _as_an_older_release_left_it(db, live_key_id: str = "shipped") -> None:
    """The registry as a release before 0005 left it: only ``FORMER`` (its key id given), live; 0005 not applied."""
    former = ROOT / "artifacts" / "retired" / FORMER
    card = (former / "model_card.json").read_text()
    artifact, now = (former / "model.joblib").read_bytes(), datetime(2026, 11, 28)
    with registry.using(db):
        ModelStatusChange.delete().execute()
        ModelVersion.delete().execute()
        ModelVersion.create(version=FORMER, status="live", artifact=artifact, card=card, sha256=digest(artifact),
                            signature_key_id=live_key_id, signature=digest(card.encode()), created_at=now,
                            status_changed_at=now, promoted_at=now, promoted_by="migration 0002")
    db.execute_sql(f"DELETE FROM {migrations.HISTORY_TABLE} WHERE name = '0005_shrinkage_default'")


def test_the_retired_default_is_a_former_version_not_the_current_one():
    assert _version_of(DEFAULT) != FORMER
    assert upgrade.SHIPPED == DEFAULT


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_fresh_database_serves_the_shipped_default_once(backend, fresh_url):
    with _migrated(fresh_url(backend)) as db:
        assert registry.live_version(db) == _version_of(DEFAULT)
        assert [row.version for row in registry.versions(db)] == [_version_of(DEFAULT)]
        assert registry.live_artifact(db).version == _version_of(DEFAULT)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_database_serving_the_former_default_moves_to_the_new_one_and_can_roll_back(backend, fresh_url):
    with _migrated(fresh_url(backend)) as db:
        _as_an_older_release_left_it(db)
        assert registry.live_artifact(db).version == FORMER  # still verifies: its files are in artifacts/retired
        assert migrations.apply_migrations(db) == ["0005_shrinkage_default"]
        assert registry.live_artifact(db).version == _version_of(DEFAULT)
        _, _, history = registry.version_detail(db, _version_of(DEFAULT))
        assert [(c.action, c.to_status, c.replaced) for c in history][-1] == ("promote", "live", FORMER)
        assert registry.rollback(db, by="test") == (_version_of(DEFAULT), FORMER)
        assert registry.live_artifact(db).version == FORMER
        assert migrations.apply_migrations(db) == []  # recorded: a rollback is not undone by a later deploy


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_model_the_analysts_promoted_stays_live_and_the_new_default_waits_as_a_candidate(backend, fresh_url):
    with _migrated(fresh_url(backend)) as db:
        _as_an_older_release_left_it(db, live_key_id="dev")
        migrations.apply_migrations(db)
        assert registry.live_version(db) == FORMER
        statuses = {row.version: row.status for row in registry.versions(db)}
        assert statuses == {FORMER: "live", _version_of(DEFAULT): "candidate"}


def test_a_version_claiming_to_be_shipped_verifies_only_against_files_this_code_keeps(fresh_url):
    from pipeline.scoring.artifact import ArtifactError
    with _migrated(fresh_url("sqlite")) as db:
        _as_an_older_release_left_it(db)
        with registry.using(db):
            ModelVersion.update(version="../default").execute()
        with pytest.raises(ArtifactError, match="claims to be a shipped default"):
            registry.live_artifact(db)
