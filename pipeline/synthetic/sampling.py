"""Sampling helper shared by the generator's world and model (kept apart so neither imports the other)."""
from __future__ import annotations

import numpy as np


def grouped_choice(keys: np.ndarray, groups: np.ndarray, rng) -> np.ndarray:
    """Draw one item per row from its group's items; ``keys`` is group index + cumulative weight, sorted."""
    return np.searchsorted(keys, groups + rng.random(len(groups)), side="right")
