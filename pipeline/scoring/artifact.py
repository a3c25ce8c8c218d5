"""A trained model on disk: the fitted pipeline (joblib) beside its model card (JSON).

The artifact is data, not code. It lives under ``artifacts/<name>/`` and is loaded once per process.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import sklearn

from pipeline.schema import records_to_frame
from pipeline.scoring.fast_linear import SKLEARN, build_scorer, pipeline_probes, probe_records, worst_disagreement
from pipeline.scoring.reasons import build_explainer

PIPELINE_FILE = "model.joblib"
CARD_FILE = "model_card.json"
DEFAULT_ARTIFACT_DIR = Path(__file__).resolve().parents[2] / "artifacts" / "default"
# The fast scorer must give the sklearn pipeline's probabilities; 1e-9 leaves room only for summation order.
FAST_TOLERANCE = 1e-9

log = logging.getLogger(__name__)


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
    """A fitted pipeline and its card; ``predict_proba`` takes validated observations.

    ``scorer`` is the pipeline's fast single-record form (see ``pipeline.scoring.fast_linear``), checked against the
    pipeline by ``load_artifact``; None means ``predict_one`` goes through the sklearn pipeline. ``explainer``
    gives the reasons of a decision (``pipeline.scoring.reasons``); it is built from the scorer when not given.
    """

    pipeline: object
    card: dict
    scorer: object = None
    explainer: object = None

    def __post_init__(self):
        if self.explainer is None and self.scorer is not None:
            object.__setattr__(self, "explainer", build_explainer(self.scorer, self.pipeline, self.card))

    @property
    def version(self) -> str:
        return self.card["version"]

    @property
    def threshold(self) -> float:
        return float(self.card["threshold"])

    @property
    def scoring_path(self) -> str:
        """Which path ``predict_one`` takes: "fast-linear", "fast-trees" or "sklearn"."""
        return SKLEARN if self.scorer is None else self.scorer.path

    def predict_proba(self, records: list[dict]) -> np.ndarray:
        """Probability that a search finds contraband, one per validated observation."""
        return self.pipeline.predict_proba(records_to_frame(records))[:, 1]

    def predict_one(self, record: dict) -> float:
        """Probability for one validated observation (the dict ``schema.validate_observation`` returns)."""
        if self.scorer is not None:
            return self.scorer.predict_one(record)
        return float(self.predict_proba([record])[0])

    def reasons(self, record: dict) -> dict | None:
        """What raised and what lowered the probability of one validated observation; None without a fast form."""
        return None if self.explainer is None else self.explainer.reasons(record)


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
    check_sklearn_version(card, directory)
    path = directory / PIPELINE_FILE
    if not path.exists():
        raise ArtifactError(f"no pipeline file at {path}")
    return artifact_from_bytes(path.read_bytes(), card, path)


def check_sklearn_version(card: dict, origin) -> None:
    """Refuse (before unpickling anything) a model pickled by another scikit-learn than the one installed."""
    trained_with = card.get("packages", {}).get("scikit-learn")
    if trained_with != sklearn.__version__:
        raise ArtifactError(
            f"the model in {origin} was pickled with scikit-learn {trained_with} but {sklearn.__version__} "
            "is installed; install the version in requirements.txt or retrain with `python -m pipeline.train`")


def artifact_from_bytes(data: bytes, card: dict, origin) -> Artifact:
    """Unpickle checked pipeline bytes, build its fast scorer and check it; ``origin`` names the source in errors.

    The caller has already trusted ``data`` (a file of the code, or a registry row whose signature verified).
    """
    check_sklearn_version(card, origin)
    if hashlib.sha256(data).hexdigest() != card.get("pipeline_sha256"):
        raise ArtifactError(f"{origin} does not match the sha256 in its model card; the artifact is damaged or mixed")
    try:
        pipeline = joblib.load(io.BytesIO(data))
    except (ModuleNotFoundError, AttributeError) as error:  # a pickle names the module path of every class in it
        raise ArtifactError(
            f"{origin} names code this version of the project does not have ({error}); it was pickled by another "
            "version: retrain it with `python -m pipeline.train`") from error
    started = time.perf_counter()
    try:
        scorer = build_scorer(pipeline)
    except ValueError as error:  # a supported family whose parts disagree: refuse it rather than crash start-up
        raise ArtifactError(
            f"the model in {origin} cannot be turned into its fast scorer: {error}; the pipeline file is not a "
            "consistent fitted pipeline, so retrain it with `python -m pipeline.train`") from error
    if scorer is not None:
        check_scorer(scorer, pipeline, origin)
    artifact = Artifact(pipeline=pipeline, card=card, scorer=scorer)
    if artifact.explainer is not None:
        check_explainer(artifact.explainer, scorer, pipeline, origin)
    log.info("model %s scores one record on the %s path (built and checked in %.0f ms)", artifact.version,
             artifact.scoring_path, (time.perf_counter() - started) * 1000)
    return artifact


def check_scorer(scorer, pipeline, directory) -> None:
    """Refuse a fast scorer that disagrees with the sklearn pipeline by more than FAST_TOLERANCE on the probes."""
    difference, record = worst_disagreement(scorer, pipeline, pipeline_probes(pipeline))
    if not difference <= FAST_TOLERANCE:
        # repr for text so that padding and case, which the probes vary on purpose, show in the message
        fields = ", ".join(f"{name}={value!r}" if isinstance(value, str) else f"{name}={value}"
                           for name, value in record.items())
        raise ArtifactError(
            f"the fast scorer of the model in {directory} differs from its sklearn pipeline by {difference:.3g} "
            f"(more than {FAST_TOLERANCE:g}) on the record {fields}; the artifact or pipeline.scoring.fast_linear "
            "is wrong")


def check_explainer(explainer, scorer, pipeline, directory) -> None:
    """Refuse reasons whose reference plus effects is not the fast scorer's log-odds (within FAST_TOLERANCE)."""
    log_odds = getattr(scorer, "logit", None) or scorer.raw
    records = probe_records(pipeline.named_steps["features"], n_random=100)
    worst = max(abs(explainer.log_odds(record) - log_odds(record)) for record in records)
    if not worst <= FAST_TOLERANCE:
        raise ArtifactError(f"the reasons of the model in {directory} do not add up to its log-odds (off by "
                            f"{worst:.3g}); pipeline.scoring.reasons and pipeline.scoring.fast_linear disagree")
