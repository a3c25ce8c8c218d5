"""The demo's stream: searched stops drawn from the synthetic generator, as officers' apps would send them."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from pipeline.schema import OBSERVATION_FIELDS, SEARCHED, TARGET
from pipeline.synthetic.generate import generate

PREFIX = "demo-"  # every demo row's observation id starts with it: how the loader tells demo rows from real ones
SEARCH_SHARE = 0.028  # about 3% of generated stops are searched (the client's file: 76,836 of 2.47M)


@dataclass(frozen=True)
class DemoRequest:
    """One request of the stream: the id, the observation as JSON-ready values, and what the search found."""

    observation_id: str
    observation: dict
    contraband_found: bool


def _json_value(value):
    """numpy scalars and missing values as the JSON an app would send."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def searched_stops(requests: int, seed: int, progress: Callable[[str], None] | None = None) -> Iterator[DemoRequest]:
    """``requests`` searched stops of the generator (seed ``seed``), each with its id and its drawn outcome."""
    rows = max(1000, int(requests / SEARCH_SHARE * 1.2))
    frame, _ = generate(rows, seed=seed, progress=progress)
    searched = frame[frame[SEARCHED].astype(bool)].head(requests)
    for index, row in enumerate(searched.itertuples(index=False, name=None)):
        record = dict(zip(frame.columns, row))
        observation = {name: _json_value(record[name]) for name in OBSERVATION_FIELDS}
        yield DemoRequest(f"{PREFIX}{seed}-{index:06d}", observation, bool(record[TARGET]))
