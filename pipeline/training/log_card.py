"""The model card of a model retrained from the log: provenance, rows, threshold, held-out figures, comparison."""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import pandas as pd

from pipeline.evaluation import population
from pipeline.evaluation.summary import fairness, quality
from pipeline.schema import TARGET
from pipeline.scoring.contributions import training_reference
from pipeline.training.card import POPULATION_FIELDS, SYNTHETIC_NOTICE, is_synthetic, provenance
from pipeline.training.log_model import FAMILY


def rows_sha256(frame: pd.DataFrame) -> str:
    """sha256 of the training rows' content (row order included), the data part of the version id."""
    hashed = pd.util.hash_pandas_object(frame.reset_index(drop=True), index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


def _dates(frame: pd.DataFrame) -> dict | None:
    if frame.empty:
        return None
    stamps = frame["InterventionDateTime"]
    return {"first": stamps.min().isoformat(), "last": stamps.max().isoformat()}


def build_log_card(config, log, file_loaded, parts, model, choice, comparison, weighting) -> dict:
    """Assemble the JSON card of one retraining run (``parts``: log rows, file rows, held-out rows, source)."""
    train_log, file_rows, held_out, source = parts
    fitted = pd.concat([train_log, file_rows], ignore_index=True)
    created = datetime.now(timezone.utc).replace(microsecond=0)
    sha = rows_sha256(pd.concat([fitted, held_out], ignore_index=True))
    synthetic = config.data is not None and is_synthetic(config.data, False)
    features = model.named_steps["features"]
    scores = model.predict_proba(held_out)[:, 1]
    settings = {"min_department": config.fairness_min_department, "min_group": config.fairness_min_group}
    shrinkage = features.shrinkage_
    return {
        "version": config.version or f"logreg-shrunk-{created:%Y%m%dT%H%M%SZ}-{sha[:8]}",
        "created_at": created.isoformat(),
        "synthetic": synthetic,
        "notice": (SYNTHETIC_NOTICE if synthetic else "Retrained from the outcomes the service logged")
        + ("" if config.data is None else f"; with the training file {config.data.name}"),
        "threshold": choice["threshold"],
        "threshold_selection": {key: value for key, value in choice.items() if key != "threshold"} | {
            "rule": ("highest recall on the held-out (newest) outcomes whose precision stays >= min_precision "
                     "through a fall in hit rate like the real stream's (criterion calibrated: the expected "
                     "precision under a two-parameter recalibration fitted on the held-out rows, its log-odds "
                     "lowered by logit_fall; point / wilson: the held-out precision or its 95% lower bound >= "
                     "min_precision + margin); 'relaxed' says a looser criterion had to be used"),
            "rows": "the held-out rows, which also give the comparison: its candidate precision and recall are "
                    "measured where the threshold was chosen, so they lean optimistic; AUC does not"},
        "training_data": {
            "source": "log" if config.data is None else "log + file",
            "log": dict(log.counts, fitted=len(train_log), dates=_dates(train_log)),
            "file": None if file_loaded is None else dict(file_loaded.counts, name=config.data.name,
                                                          fitted=len(file_rows), dates=_dates(file_rows)),
            "held_out": {"source": source, "rows": len(held_out), "dates": _dates(held_out),
                         "base_rate": float(held_out[TARGET].mean())},
            "sha256": sha,
            "filter": "logged predictions with a current outcome (the newest outcome row: corrections applied); "
                      "duplicate observations with the same outcome counted once",
            "file_weighting": weighting,
            "base_rate": {"fitted": float(fitted[TARGET].mean()), "held_out": float(held_out[TARGET].mean())},
        },
        **provenance(features),
        "model": {"family": FAMILY, "class": "LogisticRegression", "C": config.C,
                  "features": {key: value for key, value in features.get_params().items()
                               if isinstance(value, (int, float, str, bool, tuple, type(None)))},
                  "shrinkage": {"prior_rate": shrinkage.prior_, "prior_strength": shrinkage.strength_,
                                "values": {name: len(effects) for name, effects in shrinkage.effects_.items()}},
                  "officer_effect": "included (--include-officer)" if config.include_officer else
                  "not a feature: the officer id and protected attributes stay out of the default model (issue 12)"},
        "metrics": {"held_out": quality(held_out[TARGET], scores, choice["threshold"])},
        "fairness": fairness(held_out, scores, choice["threshold"], **settings),
        "comparison": comparison,
        "reasons": training_reference(model, fitted),
        "population": population.value_shares(fitted, POPULATION_FIELDS),
        "population_rows": len(fitted),
    }
