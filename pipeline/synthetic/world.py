"""The fixed "world" of the synthetic generator: departments, officers, places and fitted model coefficients.

A world depends only on its seed, so files drawn with different row seeds share the same departments, officers
and contraband model: a file generated with another ``--seed`` is a fair held-out sample of the same population.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from pipeline.synthetic import calibration as cal
from pipeline.synthetic.model import fit_coefficients, sample_features

DEFAULT_WORLD_SEED = 20180516
CALIBRATION_ROWS = 150_000  # rows drawn once per world to rake the model levels onto the published marginals


@dataclass(frozen=True)
class World:
    """Everything that stays fixed between generated files; arrays are indexed by department or officer."""

    departments: tuple  # names
    dept_prob: np.ndarray  # share of stops, before State Police rows of 2018 move to the troops
    troop_ids: np.ndarray  # department indices of the CSP troops, and their relative sizes
    troop_prob: np.ndarray
    state_police: int
    race_cum: np.ndarray  # (dept, race) cumulative probabilities
    residency_cum: np.ndarray  # (dept, RESIDENCY_CELLS) cumulative probabilities
    place_keys: np.ndarray  # dept + cumulative weight of each of its places (see ``sampling.grouped_choice``)
    place_town: np.ndarray  # town index of each place
    location_style: np.ndarray  # per department: 0 UPPER, 1 Title, 2 UPPER padded
    officer_keys: np.ndarray
    officer_ids: np.ndarray  # str per officer
    officer_search: np.ndarray
    fragments: np.ndarray  # street-fragment location strings (Title case) and their cumulative weights
    fragment_cum: np.ndarray
    search_dept: np.ndarray
    search_dept_race: np.ndarray
    hit_dept: np.ndarray
    hit_dept_race: np.ndarray
    sac_dept: np.ndarray  # (dept, SAC) log-weight tilts among searched stops
    coef: dict  # fitted offsets: search_*, sac, hit_*, unsearched


def _grouped_keys(group_of_item: np.ndarray, weights: np.ndarray) -> np.ndarray:
    if np.any(np.diff(group_of_item) < 0):
        raise ValueError("items must be sorted by group")
    totals = np.bincount(group_of_item, weights=weights)
    cum = np.cumsum(weights) - np.repeat(np.cumsum(totals) - totals, np.bincount(group_of_item))
    return group_of_item + cum / totals[group_of_item]


def _tilted_shares(base: np.ndarray, dept_prob: np.ndarray, tilt: np.ndarray) -> np.ndarray:
    """Per-department shares base*exp(tilt), corrected so the stop-weighted marginal is still ``base``."""
    weights = base.copy()
    for _ in range(20):
        shares = weights * np.exp(tilt)
        shares /= shares.sum(axis=1, keepdims=True)
        weights *= base / (dept_prob @ shares)
    return shares


def _department_table():
    names = list(cal.DEPARTMENT_STOPS) + list(cal.TROOP_STOPS) + [cal.STATE_POLICE]
    sizes = np.array(list(cal.DEPARTMENT_STOPS.values()) + list(cal.TROOP_STOPS.values()), dtype=float)
    days = np.datetime64(cal.LAST_DAY) - np.datetime64(cal.FIRST_DAY) + 1
    days_2018 = np.datetime64(cal.LAST_DAY) - np.datetime64("2018-01-01") + 1
    state_share = cal.STATE_POLICE_ROWS / cal.FULL_ROWS / (1 - days_2018 / days)  # before 2018 rows move to troops
    prob = np.append(sizes / sizes.sum() * (1 - state_share), state_share)
    return tuple(names), prob


def _places(names, rng):
    """Each department's places: its home towns, or a troop region, or the whole state."""
    town_index = {t.upper(): i for i, t in enumerate(cal.TOWNS)}
    troops = [n for n in names if n.startswith("CSP Troop")]
    dept_of, town_of, weight = [], [], []
    for d, name in enumerate(names):
        if name in troops:
            homes = np.arange(troops.index(name), len(cal.TOWNS), len(troops))
        elif name == cal.STATE_POLICE:
            homes = np.arange(len(cal.TOWNS))
        else:
            home_names = cal.SPECIAL_HOMES.get(name, (name,))
            homes = np.array([town_index[h.upper()] for h in home_names])
        local = homes.size < 10
        away = rng.choice(len(cal.TOWNS), size=12, replace=False) if local else np.array([], dtype=int)
        share = np.r_[np.full(homes.size, (1 - cal.AWAY_STOP_SHARE * local) / homes.size),
                      np.full(away.size, cal.AWAY_STOP_SHARE / max(away.size, 1))]
        dept_of += [d] * share.size
        town_of += list(homes) + list(away)
        weight += list(share)
    return _grouped_keys(np.array(dept_of), np.array(weight)), np.array(town_of)


def _officer_id_batch(style: int, n: int, rng) -> np.ndarray:
    """Officer ids in one of the shapes documented in CALIBRATION.md ("625", "007", "1000003160", "BWC0441"...)."""
    letters = np.array(list("ABCDEFGHJKLMNPRSTW"))
    numbers = rng.integers(0, 10**9, size=n)
    if style == 0:
        return np.char.mod("%d", 1 + numbers % 3000)
    if style == 1:
        return np.char.zfill(np.char.mod("%d", numbers % 1000), 3)
    if style == 2:
        return np.char.mod("%d", 1_000_000_000 + numbers % 4000)
    if style == 3:
        return np.char.mod("%d", rng.choice([100_000_000, 120_000_000], n) + numbers % 1000)
    initials = letters[rng.integers(0, letters.size, (n, 5))]
    prefix = np.char.add(np.char.add(initials[:, 0], initials[:, 1]), initials[:, 2])
    if style == 4:
        return np.char.add(prefix, np.char.zfill(np.char.mod("%d", numbers % 10000), 4))
    if style == 5:
        return np.char.add("PSC", np.char.zfill(np.char.mod("%d", numbers % 100000), 5))
    if style == 6:
        return np.char.add(initials[:, 0], np.char.mod("%d", numbers % 1000))  # "S17", "D1", "P213"
    if style == 7:
        return np.char.add(np.char.zfill(np.char.mod("%d", numbers % 100), 2), initials[:, 0])  # "08M"
    return np.char.add(np.char.add(prefix, np.char.add(initials[:, 3], initials[:, 4])),
                       np.char.zfill(np.char.mod("%d", numbers % 1000), 3))  # "DACYR048"


def _officers(names, dept_prob, rng):
    """Officers per department (by size), each with a globally unique id, a stop activity and a search habit."""
    counts = np.maximum(1, np.round(cal.OFFICERS_DRAWN * dept_prob)).astype(int)
    style_weights = [0.34, 0.08, 0.15, 0.12, 0.15, 0.08, 0.04, 0.02, 0.02]  # choice, shapes from CALIBRATION.md
    used: set[str] = set()
    ids = []
    for n in counts:
        style, fresh = int(rng.choice(len(style_weights), p=style_weights)), []
        while len(fresh) < n:
            for candidate in _officer_id_batch(style, 4 * n + 20, rng).tolist():
                if candidate not in used and len(fresh) < n:
                    used.add(candidate)
                    fresh.append(candidate)
            style = 4  # a short numeric range ran out; initials + 4 digits cannot
        ids.append(np.array(fresh, dtype=object))
    dept_of = np.repeat(np.arange(len(names)), counts)
    activity = rng.lognormal(0.0, 0.8, dept_of.size)  # a few officers make many of the stops
    keys = _grouped_keys(dept_of, activity)
    return keys, np.concatenate(ids), rng.normal(0, cal.OFFICER_SEARCH_SD, dept_of.size)


def _fragments(rng):
    streets = np.array(cal.STREETS, dtype=object)
    first = streets[rng.integers(0, streets.size, cal.STREET_POOL_SIZE)]
    second = streets[rng.integers(0, streets.size, cal.STREET_POOL_SIZE)]
    numbers = rng.integers(1, 2000, cal.STREET_POOL_SIZE).astype(str).astype(object)
    crossing = rng.random(cal.STREET_POOL_SIZE) < 0.7
    text = np.where(crossing, first + "/" + second, numbers + " " + first)
    text = np.array([t[: cal.LOCATION_WIDTH] for t in text], dtype=object)
    text = np.array(list(dict.fromkeys(text.tolist())), dtype=object)
    weights = 1.0 / np.arange(1, text.size + 1) ** cal.STREET_ZIPF
    return text, np.cumsum(weights) / weights.sum()


def _random_world(seed: int) -> dict:
    rng = np.random.default_rng([seed, 1])
    names, prob = _department_table()
    n = len(names)
    troop_ids = np.array([i for i, name in enumerate(names) if name.startswith("CSP Troop")])
    kind_town = np.array([-1.2 if (nm.startswith("CSP") or nm == cal.STATE_POLICE) else
                          (-0.6 if nm in cal.SPECIAL_HOMES else 0.25) for nm in names])
    residency_base = np.array([c[2] for c in cal.RESIDENCY_CELLS])
    town_cells = np.array([c[1] for c in cal.RESIDENCY_CELLS], dtype=float)
    race_shares = _tilted_shares(cal.RACE[1], prob, rng.normal(0, 0.5, (n, 4)))
    residency = _tilted_shares(residency_base, prob, kind_town[:, None] * town_cells[None, :])
    place_keys, place_town = _places(names, rng)
    officer_keys, officer_ids, officer_search = _officers(names, prob, rng)
    fragments, fragment_cum = _fragments(rng)
    return dict(
        departments=names, dept_prob=prob, troop_ids=troop_ids,
        troop_prob=prob[troop_ids] / prob[troop_ids].sum(), state_police=names.index(cal.STATE_POLICE),
        race_cum=np.cumsum(race_shares, axis=1), residency_cum=np.cumsum(residency, axis=1),
        place_keys=place_keys, place_town=place_town,
        location_style=rng.choice(3, size=n, p=cal.DEPT_STYLE_SHARES),
        officer_keys=officer_keys, officer_ids=officer_ids, officer_search=officer_search,
        fragments=fragments, fragment_cum=fragment_cum,
        search_dept=rng.normal(0, cal.DEPT_SEARCH_SD, n),
        search_dept_race=rng.normal(0, cal.DEPT_RACE_SEARCH_SD, (n, 4)),
        hit_dept=rng.normal(0, cal.DEPT_HIT_SD, n), hit_dept_race=rng.normal(0, cal.DEPT_RACE_HIT_SD, (n, 4)),
        sac_dept=np.c_[rng.normal(0, cal.DEPT_SAC_SD, (n, 2)), np.zeros(n), rng.normal(0, cal.DEPT_SAC_SD, n)],
    )


@lru_cache(maxsize=4)
def build_world(seed: int = DEFAULT_WORLD_SEED) -> World:
    """Draw the world for ``seed`` and rake its model levels onto the published rates (cached per process)."""
    parts = _random_world(seed)
    draft = World(**parts, coef={})
    features = sample_features(draft, CALIBRATION_ROWS, np.random.default_rng([seed, 2]))
    return World(**parts, coef=fit_coefficients(draft, features))
