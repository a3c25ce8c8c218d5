"""The generative model of the synthetic CTRP3 file: who is stopped, who is searched, and who carries contraband.

Rows are held as integer codes (indices into the code tuples of ``synthetic_calibration``) until formatting.
The contraband probability of a row is a function of its observed columns only, so ``truth`` is the Bayes
posterior: the unobserved part of the outcome is the Bernoulli draw itself.
"""
from __future__ import annotations

import numpy as np

from pipeline.schema import AGE_GROUP_EDGES, AGE_GROUPS
from pipeline.synthetic import calibration as cal
from pipeline.synthetic.sampling import grouped_choice

N_DAYS = int((np.datetime64(cal.LAST_DAY) - np.datetime64(cal.FIRST_DAY)).astype(int)) + 1
FIRST_2018_DAY = int((np.datetime64("2018-01-01") - np.datetime64(cal.FIRST_DAY)).astype(int))
STATUTE_NAMES = tuple(s[0] for s in cal.STATUTES)
_STATUTE_PROB = np.array([s[1] for s in cal.STATUTES], dtype=float) / sum(s[1] for s in cal.STATUTES)
_STATUTE_HIT = cal.logit(np.array([s[2] for s in cal.STATUTES])) - cal.logit(0.3325)
_STATUTE_SEARCH = np.log([s[3] for s in cal.STATUTES])
_TOWING = np.isin(STATUTE_NAMES, cal.TOWING_STATUTES)
_NIGHT = np.isin(np.arange(24), cal.NIGHT_HOURS)
_REASON_SEARCH = np.array([cal.SEARCH_REASON_LOGIT[c] for c in cal.REASON[0]])
_REASON_HIT = np.array([cal.HIT_REASON_LOGIT[c] for c in cal.REASON[0]])
_MID_DAY = N_DAYS / 2


def scaled_count(full_count: int, rows: int) -> int:
    """A full-file count scaled to ``rows``; rare junk still appears once in files of RARE_JUNK_MIN_ROWS or more."""
    scaled = int(round(full_count * rows / cal.FULL_ROWS))
    return max(scaled, 1) if rows >= cal.RARE_JUNK_MIN_ROWS and full_count > 0 else scaled


def _categorical(prob: np.ndarray, n: int, rng) -> np.ndarray:
    return np.minimum(np.searchsorted(np.cumsum(prob), rng.random(n), side="right"), prob.size - 1)


def _row_categorical(cum: np.ndarray, rng) -> np.ndarray:
    """One draw per row from that row's cumulative probabilities (rows x categories)."""
    return np.minimum((rng.random(cum.shape[0])[:, None] >= cum).sum(axis=1), cum.shape[1] - 1)


def _ages(n: int, rng) -> np.ndarray:
    age = np.floor(np.interp(rng.random(n), cal.AGE_KNOTS[:, 0], cal.AGE_KNOTS[:, 1])).astype(np.int16)
    age = np.minimum(age, 99)
    young = rng.choice(n, size=scaled_count(cal.UNDER_16_ROWS, n), replace=False)
    age[young] = rng.integers(1, 16, young.size)
    return age


def sample_features(world, n: int, rng) -> dict:
    """Draw ``n`` stops' observed columns (as codes) from the world; no search or outcome yet."""
    dept = _categorical(world.dept_prob, n, rng)
    day = rng.integers(0, N_DAYS, n)
    late_state = (dept == world.state_police) & (day >= FIRST_2018_DAY)
    dept[late_state] = world.troop_ids[_categorical(world.troop_prob, int(late_state.sum()), rng)]
    hour = _categorical(cal.HOUR_WEIGHTS / cal.HOUR_WEIGHTS.sum(), n, rng)
    minute = hour * 60 + rng.integers(0, 60, n)
    minute[rng.random(n) < cal.MISSING_TIME_SHARE] = 0
    minute = np.where(day == N_DAYS - 1, minute % (cal.LAST_MINUTE_OF_LAST_DAY + 1), minute)
    race = _row_categorical(world.race_cum[dept], rng)
    ethnicity = _row_categorical(np.cumsum(cal.ETHNICITY_GIVEN_RACE, axis=1)[race], rng)
    cell = _row_categorical(world.residency_cum[dept], rng)
    age = _ages(n, rng)
    return dict(
        dept=dept, day=day, minute=minute, race=race, ethnicity=ethnicity,
        sex=(rng.random(n) < cal.SEX[1][1]).astype(np.int8), age=age,
        age_group=np.searchsorted(np.array(AGE_GROUP_EDGES[1:-1]), age, side="right"),
        resident=np.array([c[0] for c in cal.RESIDENCY_CELLS])[cell],
        town=np.array([c[1] for c in cal.RESIDENCY_CELLS])[cell],
        reason=_categorical(cal.REASON[1], n, rng), statute=_categorical(_STATUTE_PROB, n, rng),
        officer=grouped_choice(world.officer_keys, dept, rng),
    )


def _night(f):
    return _NIGHT[(f["minute"] // 60)] & ~((f["minute"] == 0))  # a time-less stop is not a night stop


def _search_factors(f):
    return [("race", f["race"]), ("ethnicity", f["ethnicity"]), ("sex", f["sex"]),
            ("age_group", f["age_group"]), ("resident", (~f["resident"]).astype(int)),
            ("town_resident", (~f["town"]).astype(int))]


def _search_shape(world, f):
    return (world.search_dept[f["dept"]] + world.search_dept_race[f["dept"], f["race"]]
            + world.officer_search[f["officer"]] + _REASON_SEARCH[f["reason"]] + _STATUTE_SEARCH[f["statute"]]
            + cal.SEARCH_NIGHT_LOGIT * _night(f) - 0.03 * np.clip(f["age"] - 20.0, 0, 60))


def search_probability(world, f) -> np.ndarray:
    """P(vehicle searched | observed columns)."""
    total = _search_shape(world, f)
    for name, codes in _search_factors(f):
        total = total + world.coef["search_" + name][codes]
    return cal.sigmoid(total)


def sac_log_weights(world, f) -> np.ndarray:
    """Unnormalised log-probabilities of each SearchAuthorizationCode for a searched stop (rows x 4)."""
    scores = np.log(cal.SAC_GIVEN_SEARCHED)[None, :] + world.sac_dept[f["dept"]] + world.coef.get("sac", 0.0)
    scores[:, cal.SAC_CODES.index("I")] += cal.TOWING_INVENTORY_LOGIT * _TOWING[f["statute"]]
    return scores


def _softmax(scores):
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _hit_shape(world, f):
    age_rate = np.interp(f["age"], cal.HIT_AGE_CURVE[:, 0], cal.HIT_AGE_CURVE[:, 1])
    return (cal.logit(age_rate) - cal.logit(0.3325) + _STATUTE_HIT[f["statute"]] + _REASON_HIT[f["reason"]]
            + cal.HIT_NIGHT_LOGIT * _night(f) + cal.HIT_TREND_PER_YEAR * (f["day"] - _MID_DAY) / 365.25
            + world.hit_dept[f["dept"]] + world.hit_dept_race[f["dept"], f["race"]]
            + cal.HIT_NONRESIDENT_LOGIT * ~f["resident"] + cal.HIT_TOWN_RESIDENT_LOGIT * f["town"])


def _period(f):
    return (f["day"] >= FIRST_2018_DAY).astype(int)


def _hit_group_offsets(world, f):
    return (world.coef["hit_race"][f["race"]] + world.coef["hit_ethnicity"][f["ethnicity"]]
            + world.coef["hit_sex"][f["sex"]] + world.coef["hit_period"][_period(f)])


def search_hit_probability(world, f, sac: np.ndarray) -> np.ndarray:
    """P(a search finds contraband | observed columns, SAC), for every stop whether it was searched or not.

    Searches happen at random given the observed columns (no hidden cue), so an unsearched stop, were it searched
    under the code it carries (N for almost all), finds contraband as a searched stop with the same columns does.
    """
    return cal.sigmoid(_hit_shape(world, f) + _hit_group_offsets(world, f) + world.coef["hit_sac"][sac])


def contraband_probability(world, f, searched: np.ndarray, sac: np.ndarray) -> np.ndarray:
    """P(contraband | observed columns, searched, SAC): the truth written to the sidecar file."""
    shape = _hit_shape(world, f)
    hit = search_hit_probability(world, f, sac)
    missed = cal.sigmoid(world.coef["unsearched"][0] + cal.UNSEARCHED_SHAPE_WEIGHT * shape)
    return np.where(searched, hit, missed)


def draw_outcomes(world, f, rng):
    """Draw searched, SAC code index and contraband for sampled stops; returns them with the true probabilities.

    The last item is ``(P(contraband found), P(a search would find contraband))``: equal on searched rows.
    """
    n = f["dept"].size
    searched = rng.random(n) < search_probability(world, f)
    sac = _categorical(cal.SAC_GIVEN_UNSEARCHED, n, rng)
    cum = np.cumsum(_softmax(sac_log_weights(world, {k: v[searched] for k, v in f.items()})), axis=1)
    sac[searched] = _row_categorical(cum, rng)
    truth = contraband_probability(world, f, searched, sac)
    return searched, sac, rng.random(n) < truth, (truth, search_hit_probability(world, f, sac))


def _targets(table: dict, keys) -> np.ndarray:
    return np.array([table[k] for k in keys])


def fit_coefficients(world, f) -> dict:
    """Rake the level coefficients on a calibration sample so the published marginal rates hold (expected values)."""
    keys = {"race": cal.RACE[0], "ethnicity": cal.ETHNICITY, "sex": cal.SEX[0], "age_group": AGE_GROUPS,
            "resident": (True, False), "town_resident": (True, False), "sac": cal.SAC_CODES,
            "period": ("before 2018", "2018")}
    n = f["dept"].size
    factors = [(codes, _targets(cal.SEARCH_TARGETS[name], keys[name])) for name, codes in _search_factors(f)]
    offsets = cal.rake_logit(_search_shape(world, f), factors, np.ones(n))
    coef = {"search_" + name: off for (name, _), off in zip(_search_factors(f), offsets)}
    p_search = cal.sigmoid(_search_shape(world, f) + sum(off[c] for off, (c, _) in zip(offsets, factors)))
    sac_adj = np.zeros(4)
    for _ in range(30):
        probs = _softmax(sac_log_weights(world, f) + sac_adj)
        sac_adj += np.log(cal.SAC_GIVEN_SEARCHED / (p_search @ probs / p_search.sum()))
    coef["sac"] = sac_adj
    weights = (p_search[:, None] * _softmax(sac_log_weights(world, f) + sac_adj)).T.ravel()
    hit_factors = [(np.repeat(np.arange(4), n), _targets(cal.HIT_TARGETS["sac"], cal.SAC_CODES))]
    hit_factors += [(np.tile(f[name], 4), _targets(cal.HIT_TARGETS[name], keys[name]))
                    for name in ("race", "ethnicity", "sex")]
    hit_factors.append((np.tile(_period(f), 4), _targets(cal.HIT_TARGETS["period"], keys["period"])))
    shape = _hit_shape(world, f)
    hit = cal.rake_logit(np.tile(shape, 4), hit_factors, weights)
    coef.update(hit_sac=hit[0], hit_race=hit[1], hit_ethnicity=hit[2], hit_sex=hit[3], hit_period=hit[4])
    base = cal.UNSEARCHED_SHAPE_WEIGHT * shape
    coef["unsearched"] = cal.rake_logit(base, [(np.zeros(n, int), np.array([cal.UNSEARCHED_HIT_RATE]))],
                                        1 - p_search)[0]
    return coef
