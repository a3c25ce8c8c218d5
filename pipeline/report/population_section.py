"""Report section 6: production value shares per field against the active model's training population."""
from __future__ import annotations

from pipeline.population import (MISSING, POPULATION_FIELDS, population_table, psi_by_field, shares_from_counts,
                                 unseen_rate)
from pipeline.report import queries

UNKNOWN_NOTE = ("Training population unknown: the active model's card has no \"population\" key, so production "
                "shares are shown alone, without PSI or unseen-category rates. Retrain with `python -m "
                "pipeline.train` to get a card that records it.")


def _label(value) -> str:
    if value is None:
        return MISSING
    return str(value)  # booleans become "True"/"False", as in the model card


def production_counts(filters, fields) -> dict:
    """{field: {value: count}} of the logged requests in the slice, one GROUP BY per field."""
    counts = {}
    for field in fields:
        frame = queries.value_counts(filters, field)
        counts[field] = {_label(value): int(count) for value, count in zip(frame["value"], frame["count"])}
    return counts


def _fields(training: dict | None) -> list[str]:
    known = [field for field in (training or {}) if field in queries.POPULATION_COLUMNS]
    return known + [field for field in POPULATION_FIELDS if field not in known]


def population_section(filters, card: dict | None) -> dict:
    """Table 6 rows, PSI and unseen-category rate per field; production shares alone if the card lacks them."""
    training = (card or {}).get("population")
    fields = _fields(training)
    counts = production_counts(filters, fields)
    production = shares_from_counts(counts)
    requests = max((sum(values.values()) for values in counts.values()), default=0)
    if not training:
        rows = population_table(production, production)
        for row in rows:
            row["training_pct"] = None
        return {"known": False, "note": UNKNOWN_NOTE, "requests": requests, "rows": rows, "psi": {},
                "unseen_rate": {}, "fields": fields}
    training = {field: training[field] for field in fields if field in training}
    psi = psi_by_field(training, production)
    table = population_table(training, production)
    return {"known": True, "note": "Training shares from the active model's card; PSI bands: < 0.1 stable, "
                                   "0.1-0.25 moderate shift, > 0.25 major shift.",
            "requests": requests, "rows": table, "psi": psi, "unseen_rate": unseen_rate(training, counts),
            "fields": fields}
