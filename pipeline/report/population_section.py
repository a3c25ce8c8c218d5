"""Report section 6: production value shares per field against the active model's training population."""
from __future__ import annotations

import math

import pandas as pd

from pipeline.evaluation.population import (
    MISSING,
    POPULATION_FIELDS,
    align_to_training,
    population_table,
    psi_by_field,
    shares_from_counts,
    unseen_rate,
)
from pipeline.report import queries

UNKNOWN_NOTE = ("Training population unknown: the active model's card has no \"population\" key, so production "
                "shares are shown alone, without PSI or unseen-category rates. Retrain with `python -m "
                "pipeline.train` to get a card that records it.")


def _label(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return str(value)  # booleans become "True"/"False", as in the model card


def _counts(frame: pd.DataFrame, key: str) -> dict:
    summed = frame.groupby(key, dropna=False, sort=False)["count"].sum()
    return {_label(value): int(count) for value, count in summed.items()}


def production_counts(fields: list[str], results: dict) -> dict:
    """{field: {value: count}} of the slice from the gathered aggregates (see ``gather.population_jobs``)."""
    counts = {}
    for field in fields:
        if field in queries.PROFILE_COLUMNS:
            frame = results["profile"]
        elif field in queries.VOLUME_COLUMNS:
            frame = results["volume"].rename(columns={"requests": "count"})
        elif field in queries.TEXT_COLUMNS:
            frame = results["text"]
        else:
            frame = results[f"field:{field}"]
        counts[field] = _counts(frame, field)
    return counts


def population_fields(card: dict | None) -> list[str]:
    """The card's population fields that the log records, then the standard ones it lacks."""
    known = [field for field in ((card or {}).get("population") or {}) if field in queries.POPULATION_COLUMNS]
    return known + [field for field in POPULATION_FIELDS if field not in known]


def population_section(card: dict | None, results: dict) -> dict:
    """Table 6 rows, PSI and unseen-category rate per field; production shares alone if the card lacks them."""
    training = (card or {}).get("population")
    fields = population_fields(card)
    counts = production_counts(fields, results)
    production = shares_from_counts(counts)
    requests = max((sum(values.values()) for values in counts.values()), default=0)
    if not training:
        rows = population_table(production, production)
        for row in rows:
            row["training_pct"] = None
        return {"known": False, "note": UNKNOWN_NOTE, "requests": requests, "rows": rows, "psi": {},
                "unseen_rate": {}, "fields": fields}
    training = {field: training[field] for field in fields if field in training}
    counts = align_to_training(training, counts)
    production = shares_from_counts(counts)
    psi = psi_by_field(training, production, training_rows=card.get("population_rows"), production_rows=requests)
    table = population_table(training, production)
    return {"known": True, "note": "Training shares from the active model's card. PSI bands: < 0.1 stable, "
                                   "0.1-0.25 moderate shift, > 0.25 major shift; a PSI near its noise floor (the "
                                   "PSI expected from sampling alone) is not evidence of a shift.",
            "requests": requests, "rows": table, "psi": psi, "unseen_rate": unseen_rate(training, counts),
            "fields": fields}
