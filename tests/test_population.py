"""Population shift: value shares with age groups and missing values, PSI by hand, table 6, unseen rates."""
import math

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluation.population import (
    align_to_training,
    population_stability_index,
    population_table,
    psi_band,
    psi_by_field,
    psi_noise_floor,
    unseen_rate,
    value_counts,
    value_shares,
)


def frame():
    return pd.DataFrame({
        "SubjectRaceCode": pd.Series(["W", "W", "B", None], dtype="category"),
        "SubjectAge": pd.Series([17, 20, 40, np.nan], dtype="float32"),
        "ResidentIndicator": pd.Series([True, True, False, True], dtype="boolean"),
    })


def test_value_shares_from_a_frame_uses_age_groups_and_a_missing_bucket():
    shares = value_shares(frame(), fields=["SubjectRaceCode", "SubjectAge", "ResidentIndicator"])
    assert shares["SubjectRaceCode"] == {"W": 0.5, "B": 0.25, "(missing)": 0.25}
    assert shares["SubjectAge"] == {"Youth": 0.25, "Young Adult": 0.25, "Adult": 0.25, "(missing)": 0.25}
    assert shares["ResidentIndicator"] == {"True": 0.75, "False": 0.25}


def test_value_shares_from_counts_equals_shares_from_the_frame():
    fields = ["SubjectRaceCode", "SubjectAge"]
    counts = value_counts(frame(), fields)
    assert counts["SubjectRaceCode"] == {"W": 2, "B": 1, "(missing)": 1}
    assert value_shares(counts, fields) == value_shares(frame(), fields)


def test_psi_matches_hand_computation():
    # (0.6 - 0.5) ln(0.6/0.5) + (0.4 - 0.5) ln(0.4/0.5) = 0.1 * 0.18232 + 0.1 * 0.22314
    assert population_stability_index({"A": 0.5, "B": 0.5}, {"A": 0.6, "B": 0.4}) == pytest.approx(0.040546, abs=1e-6)
    assert population_stability_index({"A": 0.3, "B": 0.7}, {"A": 0.3, "B": 0.7}) == 0.0
    # a value new in production counts with epsilon in place of its zero training share
    expected = (0.5 - 1) * math.log(0.5 / 1) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert population_stability_index({"A": 1.0}, {"A": 0.5, "B": 0.5}, epsilon=1e-4) == pytest.approx(expected)
    assert population_stability_index({}, {"A": 1.0}) is None


def test_psi_bands_and_per_field():
    assert [psi_band(v) for v in (0.0, 0.099, 0.1, 0.25, 0.3)] == [
        "stable", "stable", "moderate shift", "major shift", "major shift"]
    result = psi_by_field({"f": {"A": 0.5, "B": 0.5}, "g": {"x": 1.0}}, {"f": {"A": 0.9, "B": 0.1}})
    assert list(result) == ["f"]
    assert result["f"]["psi"] == pytest.approx(0.4 * math.log(1.8) - 0.4 * math.log(0.2))
    assert result["f"]["band"] == "major shift"


def test_population_table_is_report_table_6():
    training = {"SubjectSexCode": {"M": 0.632, "F": 0.368}, "SubjectEthnicityCode": {"N": 0.85, "H": 0.15}}
    production = {"SubjectSexCode": {"M": 0.79, "F": 0.21}, "SubjectEthnicityCode": {"H": 0.25, "N": 0.7, "M": 0.05}}
    rows = population_table(training, production)
    assert [(r["field"], r["value"]) for r in rows] == [
        ("SubjectSexCode", "M"), ("SubjectSexCode", "F"),
        ("SubjectEthnicityCode", "N"), ("SubjectEthnicityCode", "H"), ("SubjectEthnicityCode", "M")]
    assert rows[0]["training_pct"] == pytest.approx(63.2) and rows[0]["production_pct"] == pytest.approx(79.0)
    assert rows[-1]["training_pct"] is None and rows[-1]["production_pct"] == pytest.approx(5.0)


def test_unseen_rate_counts_new_values_but_not_missing_ones():
    training = {"Department Name": {"A": 0.7, "B": 0.3}, "StatuteReason": {"Speed Related": 1.0}}
    production = {"Department Name": {"A": 5, "C": 3, "(missing)": 2},
                  "StatuteReason": {"Speed Related": 4}, "Other": {"x": 1}}
    assert unseen_rate(training, production) == {"Department Name": 0.3, "StatuteReason": 0.0, "Other": None}


def test_values_differing_only_in_case_or_spacing_take_the_training_spelling():
    training = {"Department Name": {"Milford": 0.6, "CSP Troop A": 0.4}}
    production = {"Department Name": {"MILFORD ": 3, "Milford": 1, "csp  troop a": 2, "Yale": 1, "(missing)": 1}}
    aligned = align_to_training(training, production)
    assert aligned == {"Department Name": {"Milford": 4, "CSP Troop A": 2, "Yale": 1, "(missing)": 1}}
    assert unseen_rate(training, aligned) == {"Department Name": 1 / 8}


def test_noise_floor_is_the_mean_psi_of_samples_from_one_population():
    rng = np.random.default_rng(11)
    shares = np.array([0.4, 0.3, 0.15, 0.1, 0.05])
    values = [str(v) for v in range(shares.size)]

    def sample(rows):
        counts = rng.multinomial(rows, shares)
        return {v: c / rows for v, c in zip(values, counts) if c}

    psis = [population_stability_index(sample(2000), sample(500)) for _ in range(400)]
    floor = psi_noise_floor(shares.size, 2000, 500)
    assert floor == pytest.approx(4 * (1 / 2000 + 1 / 500))
    assert np.mean(psis) == pytest.approx(floor, rel=0.15)
    assert psi_noise_floor(3, 0, 10) is None
    result = psi_by_field({"f": {"A": 0.5, "B": 0.5}}, {"f": {"A": 0.6, "B": 0.4}}, training_rows=1000,
                          production_rows={"f": 100})
    assert result["f"]["noise_floor"] == pytest.approx(1 / 1000 + 1 / 100)
