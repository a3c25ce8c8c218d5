"""A trained model on disk: the fitted pipeline (joblib) beside its model card (JSON).

The artifact is data, not code. It lives under ``artifacts/<name>/`` and is loaded once per process.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import sklearn

from pipeline.schema import records_to_frame

PIPELINE_FILE = "model.joblib"
CARD_FILE = "model_card.json"
DEFAULT_ARTIFACT_DIR = Path(__file__).resolve().parent.parent / "artifacts" / "default"


class ArtifactError(RuntimeError):
    """The artifact is missing, damaged, or was made for other software than the one installed."""


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so large files need little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Artifact:
    """A fitted pipeline and its card; ``predict_proba`` takes validated observations."""

    pipeline: object
    card: dict

    @property
    def version(self) -> str:
        return self.card["version"]

    @property
    def threshold(self) -> float:
        return float(self.card["threshold"])

    def predict_proba(self, records: list[dict]) -> np.ndarray:
        """Probability that a search finds contraband, one per validated observation."""
        return self.pipeline.predict_proba(records_to_frame(records))[:, 1]

    def predict_one(self, record: dict) -> float:
        """Probability for one validated observation (the dict ``schema.validate_observation`` returns)."""
        return float(self.predict_proba([record])[0])


def save_artifact(pipeline, card: dict, directory: Path) -> Path:
    """Write the pipeline and its card; the card records the pipeline file's sha256 and sklearn version."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline, directory / PIPELINE_FILE, compress=3)
    card = dict(card, pipeline_sha256=file_sha256(directory / PIPELINE_FILE))
    card.setdefault("packages", {})["scikit-learn"] = sklearn.__version__
    (directory / CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=False, default=str) + "\n")
    return directory


def read_card(directory: Path) -> dict:
    """Read a model card without unpickling anything."""
    path = Path(directory) / CARD_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"no model card at {path}; train one with `python -m pipeline.train --help`") from None
    except json.JSONDecodeError as error:
        raise ArtifactError(f"model card {path} is not valid JSON: {error}") from None


def load_artifact(directory: Path = DEFAULT_ARTIFACT_DIR) -> Artifact:
    """Load and check an artifact: same scikit-learn as at training, and the pipeline file the card describes."""
    directory = Path(directory)
    card = read_card(directory)
    trained_with = card.get("packages", {}).get("scikit-learn")
    if trained_with != sklearn.__version__:
        raise ArtifactError(
            f"the model in {directory} was pickled with scikit-learn {trained_with} but {sklearn.__version__} "
            "is installed; install the version in requirements.txt or retrain with `python -m pipeline.train`")
    path = directory / PIPELINE_FILE
    if not path.exists():
        raise ArtifactError(f"no pipeline file at {path}")
    if file_sha256(path) != card.get("pipeline_sha256"):
        raise ArtifactError(f"{path} does not match the sha256 in its model card; the artifact is damaged or mixed")
    return Artifact(pipeline=joblib.load(path), card=card)
