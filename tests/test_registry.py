"""The model registry on SQLite and Postgres: the shipped default live on a fresh database, promote (gated by the
card's comparison, or forced with a reason), rollback, shadow, signatures checked before unpickling, key rotation,
and the command line's exit codes."""
from __future__ import annotations

import json
import logging
import shutil
import threading
import time

import pytest

from models import ModelStatusChange, ModelVersion, database_from_url
from pipeline.scoring import registry
from pipeline.scoring.artifact import DEFAULT_ARTIFACT_DIR, ArtifactError, read_card
from pipeline.scoring.registry_cli import main as cli
from pipeline.scoring.signing import new_key_entry

DEFAULT_VERSION = read_card(DEFAULT_ARTIFACT_DIR)["version"]


@pytest.fixture
def db(plain_db):
    """conftest's ``plain_db``: a plain peewee database on a freshly migrated database of this backend."""
    return plain_db


@pytest.fixture
def candidate(tmp_path):
    """``candidate(version, live_version=..., at_least_as_good=..., **card_changes)``: an artifact directory whose
    pipeline is the shipped one and whose card carries a comparison (None: no comparison block)."""
    def make(version: str, live_version: str | None = DEFAULT_VERSION, at_least_as_good: bool | None = True,
             **card_changes):
        directory = tmp_path / version
        shutil.copytree(DEFAULT_ARTIFACT_DIR, directory)
        card = read_card(directory)
        card.update(version=version, **card_changes)
        if at_least_as_good is None:
            card.pop("comparison", None)
        else:
            card["comparison"] = {"held_out": 500, "live_version": live_version, "at_least_as_good": at_least_as_good,
                                  "verdict": "better" if at_least_as_good else "worse",
                                  "candidate": {"auc": 0.73}, "live": {"auc": 0.68}}
        (directory / "model_card.json").write_text(json.dumps(card, indent=2))
        return directory
    return make


def _history(db, version: str) -> list[tuple]:
    with registry.using(db):
        row = ModelVersion.get(ModelVersion.version == version)
        return [(c.action, c.from_status, c.to_status, c.forced, c.reason) for c in
                ModelStatusChange.select().where(ModelStatusChange.model_version == row.id).order_by(
                    ModelStatusChange.id)]


def _tamper(db, version: str, **values) -> None:
    with registry.using(db):
        ModelVersion.update(values).where(ModelVersion.version == version).execute()


def test_fresh_database_serves_the_shipped_default_live(db):
    """Migration 0002 registers artifacts/default as live; it verifies without any key and loads."""
    assert [(row.version, row.status) for row in registry.versions(db)] == [(DEFAULT_VERSION, "live")]
    assert registry.serving_versions(db) == {"live": (DEFAULT_VERSION, read_card(DEFAULT_ARTIFACT_DIR)[
        "pipeline_sha256"])}
    artifact = registry.live_artifact(db)
    assert artifact.version == DEFAULT_VERSION and artifact.scoring_path == "fast-linear"


def test_register_is_idempotent_and_versions_are_immutable(db, candidate, tmp_path):
    """The same directory twice is one row; the same version with other bytes is refused."""
    directory = candidate("cand-a")
    assert registry.register_candidate(db, directory) == "cand-a"
    assert registry.register_candidate(db, directory) == "cand-a"
    card = read_card(directory)
    card["threshold"] = 0.9
    (directory / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(registry.RegistryError, match="already registered"):
        registry.register_candidate(db, directory)
    with pytest.raises(registry.RegistryError, match="not an artifact directory"):
        registry.register_candidate(db, tmp_path / "missing")
    assert [row.status for row in registry.versions(db)] == ["candidate", "live"]


def test_promote_needs_a_fresh_favourable_comparison_or_force_with_reason(db, candidate):
    """No comparison, a 'worse' one, or one against another live version: refused; --force needs a reason."""
    for version, kwargs in [("no-comparison", {"at_least_as_good": None}), ("worse", {"at_least_as_good": False}),
                            ("stale", {"live_version": "some-older-version"})]:
        registry.register_candidate(db, candidate(version, **kwargs))
        with pytest.raises(registry.PromotionRefused, match=f"not promoting {version}"):
            registry.promote(db, version, by="tester")
    assert registry.live_version(db) == DEFAULT_VERSION
    with pytest.raises(registry.RegistryError, match="--force needs --reason"):
        registry.promote(db, "worse", by="tester", force=True)
    assert registry.promote(db, "worse", by="tester", force=True, reason="incident 12: live model broken") == \
        DEFAULT_VERSION
    assert registry.live_version(db) == "worse"
    assert _history(db, "worse")[-1] == ("promote", "candidate", "live", True, "incident 12: live model broken")
    assert _history(db, DEFAULT_VERSION)[-1][:3] == ("retire", "live", "retired")
    row, _, _ = registry.version_detail(db, "worse")
    assert (row.promoted_by, row.promotion_reason) == ("tester", "incident 12: live model broken")


def test_promote_and_rollback_walk_the_live_history(db, candidate):
    """default -> A -> B; rollback gives A, again the default, then there is nothing earlier."""
    registry.register_candidate(db, candidate("cand-a"))
    registry.promote(db, "cand-a", by="tester")
    registry.register_candidate(db, candidate("cand-b", live_version="cand-a"))
    with pytest.raises(registry.RegistryError, match="already live"):
        registry.promote(db, "cand-a")
    assert registry.promote(db, "cand-b", by="tester") == "cand-a"
    assert registry.rollback(db, by="tester") == ("cand-b", "cand-a")
    assert registry.live_version(db) == "cand-a"
    assert registry.rollback(db, by="tester") == ("cand-a", DEFAULT_VERSION)
    assert registry.live_version(db) == DEFAULT_VERSION
    with pytest.raises(registry.RegistryError, match="nothing to roll back to"):
        registry.rollback(db)
    statuses = {row.version: row.status for row in registry.versions(db)}
    assert statuses == {DEFAULT_VERSION: "live", "cand-a": "retired", "cand-b": "retired"}
    assert _history(db, "cand-a")[-1][:3] == ("retire", "live", "retired")
    assert [h[0] for h in _history(db, DEFAULT_VERSION)] == ["register", "retire", "rollback"]


def test_shadow_is_at_most_one_and_never_the_live_one(db, candidate):
    """shadow A; shadow B retires A; the live version cannot be the shadow; --off clears it."""
    registry.register_candidate(db, candidate("cand-a"))
    registry.register_candidate(db, candidate("cand-b"))
    assert registry.set_shadow(db, "cand-a", by="tester") is None
    assert set(registry.serving_versions(db)) == {"live", "shadow"}
    assert registry.set_shadow(db, "cand-b", by="tester") == "cand-a"
    assert registry.serving_versions(db)["shadow"][0] == "cand-b"
    with pytest.raises(registry.RegistryError, match="is live"):
        registry.set_shadow(db, DEFAULT_VERSION)
    registry.promote(db, "cand-b", by="tester")  # the shadow itself may be promoted: the shadow slot empties
    assert set(registry.serving_versions(db)) == {"live"}
    registry.set_shadow(db, "cand-a", by="tester")
    assert registry.set_shadow(db, None, by="tester") == "cand-a"
    assert set(registry.serving_versions(db)) == {"live"}


def test_database_refuses_a_second_live_version(db, candidate):
    """The partial unique index holds even against a direct UPDATE."""
    registry.register_candidate(db, candidate("cand-a"))
    with pytest.raises(Exception, match="(?i)unique"):
        _tamper(db, "cand-a", status="live")


@pytest.mark.parametrize("change", ["artifact", "card", "artifact_and_sha", "shipped_artifact"])
def test_tampered_row_is_refused_before_unpickling_and_logged(db, candidate, change, caplog, monkeypatch):
    """Altered bytes or card (even with the sha256 column 'fixed') never load; the refusal is logged."""
    registry.register_candidate(db, candidate("cand-a"))
    with registry.using(db):
        row = ModelVersion.get(ModelVersion.version == ("cand-a" if change != "shipped_artifact" else DEFAULT_VERSION))
        artifact, card = bytes(row.artifact), row.card
    altered = artifact[:-1] + bytes([artifact[-1] ^ 1])
    values = {"artifact": {"artifact": altered},
              "card": {"card": card.replace('"threshold": 0.', '"threshold": 0.0')},
              "artifact_and_sha": {"artifact": altered, "sha256": registry.digest(altered)},
              "shipped_artifact": {"artifact": altered}}[change]
    _tamper(db, row.version, **values)
    unpickled = []
    monkeypatch.setattr("pipeline.scoring.artifact.joblib.load", lambda *a, **k: unpickled.append(a))
    with caplog.at_level(logging.ERROR, logger="pipeline.scoring.registry"), \
            pytest.raises(ArtifactError, match="refused"):
        registry.load_version(db, row.version)
    assert not unpickled, "the tampered bytes reached the unpickler"
    assert any("refused model" in r.getMessage() and row.version in r.getMessage() for r in caplog.records)
    if row.version == "cand-a":
        with pytest.raises(ArtifactError, match="refused"):
            registry.promote(db, "cand-a", force=True, reason="try")
        assert registry.live_version(db) == DEFAULT_VERSION


def test_artifact_from_another_scikit_learn_is_refused(db, candidate):
    """A signed row whose card names another scikit-learn is refused before unpickling, naming both versions."""
    registry.register_candidate(db, candidate("old-sklearn", packages={"scikit-learn": "0.20.0"}))
    with pytest.raises(ArtifactError, match="0.20.0"):
        registry.load_version(db, "old-sklearn")
    with pytest.raises(ArtifactError, match="0.20.0"):
        registry.promote(db, "old-sklearn", by="tester")
    assert registry.live_version(db) == DEFAULT_VERSION


def test_key_rotation_and_unknown_keys(db, candidate, monkeypatch):
    """Signed with key-a; [key-b, key-a] verifies; resign moves it to key-b; [key-b] alone then verifies;
    a key id no longer configured, or the development key where keys are set, is refused."""
    key_a, key_b = new_key_entry("key-a"), new_key_entry("key-b")
    registry.register_candidate(db, candidate("dev-signed"))  # no MODEL_SIGNING_KEYS: the development key
    monkeypatch.setenv("MODEL_SIGNING_KEYS", key_a)
    with pytest.raises(ArtifactError, match="signed with key 'dev'"):
        registry.load_version(db, "dev-signed")
    registry.register_candidate(db, candidate("cand-a"))
    monkeypatch.setenv("MODEL_SIGNING_KEYS", f"{key_b},{key_a}")
    assert registry.load_version(db, "cand-a").version == "cand-a"
    done, unverifiable = registry.resign(db)
    assert done == ["cand-a"] and list(unverifiable) == ["dev-signed"]
    assert registry.resign(db)[0] == []  # already on the signing key
    monkeypatch.setenv("MODEL_SIGNING_KEYS", key_b)
    assert registry.load_version(db, "cand-a").version == "cand-a"
    monkeypatch.setenv("MODEL_SIGNING_KEYS", new_key_entry("key-c"))
    with pytest.raises(ArtifactError, match="signed with key 'key-b'"):
        registry.load_version(db, "cand-a")


def test_command_line_exit_codes(migrated_database_url, candidate, capsys):
    """import prints the version; a refused promote exits 1 saying how to force; promote and rollback exit 0."""
    url = ["--database-url", migrated_database_url]
    assert cli([*url, "import", str(candidate("cand-worse", at_least_as_good=False))]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "cand-worse"
    assert cli([*url, "promote", "cand-worse"]) == 1
    assert "--force --reason" in capsys.readouterr().err
    assert cli([*url, "import", str(candidate("cand-good"))]) == 0
    assert cli([*url, "promote", "cand-good"]) == 0
    assert "cand-good is live" in capsys.readouterr().out
    assert cli([*url, "list"]) == 0
    listing = capsys.readouterr().out
    assert "cand-good" in listing and "retired" in listing
    assert cli([*url, "show", "cand-good"]) == 0
    assert "verdict better" in capsys.readouterr().out
    assert cli([*url, "rollback"]) == 0
    assert f"{DEFAULT_VERSION} is live again" in capsys.readouterr().out
    assert cli([*url, "shadow"]) == 1
    assert cli([*url, "show", "nope"]) == 1
    assert "no model version 'nope'" in capsys.readouterr().err


def test_bindings_of_two_threads_never_mix(tmp_path):
    """A polling thread and another caller binding the registry at once: each block sees its own database, and the
    tables end bound as before (unlocked, bind_ctx's restores interleave and leave a stale binding)."""
    databases = [database_from_url(f"sqlite:///{tmp_path / f'{name}.sqlite3'}") for name in ("a", "b")]
    before, wrong = registry.ModelVersion._meta.database, []

    def bind_repeatedly(db):
        for _ in range(100):
            with registry.using(db):
                time.sleep(0.0005)  # a query's worth of time, in which the other thread would rebind
                if registry.ModelVersion._meta.database is not db:
                    wrong.append(db)

    threads = [threading.Thread(target=bind_repeatedly, args=(db,)) for db in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == [] and registry.ModelVersion._meta.database is before
