"""Start-up settings: environment first, test overrides second, and a clear refusal for unsafe combinations."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sklearn

from models import DEFAULT_SQLITE_URL
from pipeline.scoring.artifact import DEFAULT_ARTIFACT_DIR, ArtifactError
from pipeline.scoring.signing import new_key_entry
from service import create_app
from service.config import DEFAULT_MAX_CONTENT_LENGTH, ConfigError, load_config
from service.state import EXTENSION

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_are_the_embedded_sqlite_and_committed_model(api_key_settings):
    """With nothing set but keys, the service runs on the local SQLite file and artifacts/default."""
    config = load_config(environ=api_key_settings)
    assert config["DATABASE_URL"] == DEFAULT_SQLITE_URL
    assert Path(config["MODEL_DIR"]) == DEFAULT_ARTIFACT_DIR
    assert config["MAX_CONTENT_LENGTH"] == DEFAULT_MAX_CONTENT_LENGTH


@pytest.mark.parametrize("model_dir, pinned", [(None, False), (str(DEFAULT_ARTIFACT_DIR), False),
                                               ("artifacts/default", False), ("artifacts/retrained", True)])
def test_only_another_model_dir_pins_the_service(model_dir, pinned, api_key_settings, monkeypatch):
    """MODEL_DIR naming the committed default (the registry's start) still follows the registry; another pins."""
    monkeypatch.chdir(DEFAULT_ARTIFACT_DIR.parent.parent)
    environ = {**api_key_settings, **({"MODEL_DIR": model_dir} if model_dir else {})}
    assert load_config(environ=environ)["MODEL_DIR_PINNED"] is pinned


@pytest.mark.parametrize("url", ["postgres://u@h:5432/d", "postgresql://u@h/d", "sqlite:////tmp/x.sqlite3"])
def test_database_url_comes_from_the_environment(url, api_key_settings):
    """Heroku's postgres://, the standard postgresql:// and sqlite:/// are accepted as given."""
    assert load_config(environ={"DATABASE_URL": url, **api_key_settings})["DATABASE_URL"] == url


def test_overrides_win_over_the_environment(tmp_path, api_key_settings):
    """Tests and embedders pass settings to create_app; they take precedence over the environment."""
    config = load_config(environ={"DATABASE_URL": "postgres://u@h/d", "MAX_CONTENT_LENGTH": "2048",
                                  **api_key_settings},
                         overrides={"DATABASE_URL": "sqlite:///x", "MODEL_DIR": tmp_path, "TESTING": True})
    assert (config["DATABASE_URL"], config["MODEL_DIR"], config["MAX_CONTENT_LENGTH"], config["TESTING"]) == (
        "sqlite:///x", tmp_path, 2048, True)


def test_heroku_dyno_without_database_url_is_refused(api_key_settings):
    """Dyno file systems are wiped, so the SQLite default is refused there with the fix in the message."""
    with pytest.raises(ConfigError, match="DATABASE_URL.*heroku addons:create heroku-postgresql"):
        load_config(environ={"DYNO": "web.1"})
    assert load_config(environ={"DYNO": "web.1", "DATABASE_URL": "postgres://u@h/d", **api_key_settings,
                                "MODEL_SIGNING_KEYS": new_key_entry("prod")})


def test_heroku_dyno_without_model_signing_keys_is_refused(api_key_settings):
    """A dyno verifies every model it loads with a configured key: no public development key there."""
    with pytest.raises(ConfigError, match="MODEL_SIGNING_KEYS is not set on a Heroku dyno.*new-key"):
        load_config(environ={"DYNO": "web.1", "DATABASE_URL": "postgres://u@h/d", **api_key_settings})
    with pytest.raises(ConfigError, match="MODEL_SIGNING_KEYS entry 1 .key-1.: the secret must be 64-128 lowercase"):
        load_config(environ={"DATABASE_URL": "postgres://u@h/d", **api_key_settings,
                             "MODEL_SIGNING_KEYS": "key-1:abc"})


@pytest.mark.parametrize("url", ["mysql://u@h/d", "sqlite://relative.db", "http://example.org"])
def test_unsupported_database_url_is_refused(url):
    """Unknown schemes fail at start-up naming the accepted ones, not at the first request."""
    with pytest.raises(ConfigError, match="postgresql://"):
        load_config(environ={"DATABASE_URL": url})


@pytest.mark.parametrize("value", ["abc", "-1", "0", "100"])
def test_bad_max_content_length_is_refused(value):
    """The body limit must be a whole number of bytes, large enough for a stop record."""
    with pytest.raises(ConfigError, match="MAX_CONTENT_LENGTH"):
        load_config(environ={"MAX_CONTENT_LENGTH": value})


def _copy_artifact(tmp_path: Path, **card_changes) -> Path:
    directory = tmp_path / "artifact"
    shutil.copytree(DEFAULT_ARTIFACT_DIR, directory)
    card_path = directory / "model_card.json"
    card = json.loads(card_path.read_text())
    for key, value in card_changes.items():
        card[key] = value
    card_path.write_text(json.dumps(card))
    return directory


def test_artifact_from_other_sklearn_refuses_to_start_naming_both_versions(tmp_path):
    """A pickle from another scikit-learn is not trusted: create_app fails and names both versions."""
    directory = _copy_artifact(tmp_path, packages={"scikit-learn": "0.20.0"})
    with pytest.raises(ArtifactError) as error:
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "MODEL_DIR": directory})
    assert "0.20.0" in str(error.value) and sklearn.__version__ in str(error.value)


def test_missing_artifact_refuses_to_start(tmp_path):
    """No model card at MODEL_DIR: start-up fails pointing at the training command."""
    with pytest.raises(ArtifactError, match="pipeline.train"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "MODEL_DIR": tmp_path / "none"})


def test_model_is_loaded_from_model_dir_when_not_given(tmp_path):
    """Without a model argument the factory loads MODEL_DIR once, and /health reports its version."""
    directory = _copy_artifact(tmp_path)
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "MODEL_DIR": directory})
    card = json.loads((directory / "model_card.json").read_text())
    assert app.extensions[EXTENSION].model.version == card["version"]


@pytest.mark.slow
def test_dev_server_entry_point_reports_config_errors_without_traceback():
    """`python app.py` on a dyno without DATABASE_URL exits 2 with one readable line."""
    result = subprocess.run([sys.executable, "app.py"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"DYNO": "web.1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert result.stderr.startswith("error: DATABASE_URL is not set") and "Traceback" not in result.stderr
