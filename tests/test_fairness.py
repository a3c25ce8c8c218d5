"""Fairness on a hand-computed count table: statuses, gaps, eligibility, clarity, distributions and summary."""
import numpy as np
import pandas as pd
import pytest

from pipeline.evaluation.fairness import (
    fairness_summary,
    fairness_table,
    gap_distribution,
    gap_histogram,
    group_counts,
    officer_counts,
)
from pipeline.evaluation.metrics import wilson_interval

RACE, SEX = "SubjectRaceCode", "SubjectSexCode"
# (department, attribute, group, tp, fp): precision = tp / (tp + fp)
HAND = [
    ("D1", RACE, "W", 600, 400),        # 0.60
    ("D1", RACE, "B", 450, 550),        # 0.45 -> gap 0.15 with W: breaks the rule, with data to say so
    ("D1", RACE, "I", 11, 9),           # 0.55, exactly the minimum of 20: eligible
    ("D1", RACE, "A", 5, 5),            # 10 < 20: not eligible
    ("D1", RACE, "(missing)", 300, 0),  # never compared, however large
    ("D1", SEX, "M", 100, 100),         # 0.50
    ("D1", SEX, "F", 52, 48),           # 0.52 -> gap 0.02: ok, but too few to be sure
    ("D2", RACE, "W", 30, 20),          # department total 60 < 100: not enough data
    ("D2", RACE, "B", 5, 5),
    ("D3", RACE, "W", 100, 100),        # only one eligible group: not enough data
    ("D3", RACE, "B", 5, 10),
    ("D4", RACE, "W", 2000, 2000),      # 0.500
    ("D4", RACE, "B", 2010, 1990),      # 0.5025 -> gap 0.0025: ok, clearly
]


def hand_counts():
    return pd.DataFrame(HAND, columns=["department", "attribute", "group", "tp", "fp"])


def by_key(table):
    return {(e["department"], e["attribute"]): e for e in table}


def test_statuses_and_gaps_match_hand_computation():
    table = by_key(fairness_table(hand_counts(), min_department=100, min_group=20, max_gap=0.05))
    d1 = table[("D1", RACE)]
    assert d1["status"] == "breaks rule" and d1["clear"] is True
    assert d1["max_gap"] == pytest.approx(0.15)
    assert (d1["highest_group"], d1["lowest_group"]) == ("W", "B")
    assert d1["eligible_groups"] == 3 and d1["n"] == 2330
    eligible = {g["group"]: g["eligible"] for g in d1["groups"]}
    assert eligible == {"A": False, "B": True, "I": True, "W": True, "(missing)": False}
    assert d1["gap_low"] > 0.05 and d1["gap_low"] < 0.15 < d1["gap_high"]

    sex = table[("D1", SEX)]
    assert sex["status"] == "ok" and sex["max_gap"] == pytest.approx(0.02) and sex["clear"] is False
    assert table[("D2", RACE)]["status"] == "not enough data" and "60" in table[("D2", RACE)]["reason"]
    assert table[("D3", RACE)]["status"] == "not enough data" and table[("D3", RACE)]["eligible_groups"] == 1
    assert table[("D2", RACE)]["max_gap"] is None
    d4 = table[("D4", RACE)]
    assert d4["status"] == "ok" and d4["max_gap"] == pytest.approx(0.0025) and d4["clear"] is True


def test_group_intervals_are_wilson_intervals():
    d1 = by_key(fairness_table(hand_counts()))[("D1", RACE)]
    white = next(g for g in d1["groups"] if g["group"] == "W")
    assert (white["n"], white["hits"], white["precision"]) == (1000, 600, 0.6)
    assert (white["low"], white["high"]) == pytest.approx(wilson_interval(600, 1000))


def test_gap_interval_is_newcombes_hybrid_interval():
    d1 = by_key(fairness_table(hand_counts()))[("D1", RACE)]
    w_low, w_high = wilson_interval(600, 1000)
    b_low, b_high = wilson_interval(450, 1000)
    assert d1["gap_low"] == pytest.approx(0.15 - np.sqrt((0.6 - w_low) ** 2 + (b_high - 0.45) ** 2))
    assert d1["gap_high"] == pytest.approx(0.15 + np.sqrt((w_high - 0.6) ** 2 + (0.45 - b_low) ** 2))


def test_parameters_change_the_outcome():
    strict = by_key(fairness_table(hand_counts(), min_department=3000))
    assert strict[("D1", RACE)]["status"] == "not enough data"
    loose = by_key(fairness_table(hand_counts(), min_department=10, min_group=5))
    assert loose[("D2", RACE)]["status"] == "breaks rule"  # 0.6 vs 0.5 once the minimums allow comparing
    assert loose[("D2", RACE)]["max_gap"] == pytest.approx(0.1)
    wide = by_key(fairness_table(hand_counts(), max_gap=0.2))
    assert wide[("D1", RACE)]["status"] == "ok"


def test_gap_distribution_and_histogram():
    table = fairness_table(hand_counts())
    pairwise = sorted(gap_distribution(table))
    # D1 race: |0.6-0.45|, |0.6-0.55|, |0.55-0.45|; D1 sex 0.02; D4 0.0025; D2 and D3 are not evaluated
    assert pairwise == pytest.approx([0.0025, 0.02, 0.05, 0.1, 0.15])
    assert sorted(gap_distribution(table, pairwise=False)) == pytest.approx([0.0025, 0.02, 0.15])
    assert gap_distribution(table, attributes=[SEX]) == pytest.approx([0.02])
    bins = gap_histogram(pairwise, bin_width=0.05)
    assert len(bins) == 20 and bins[0]["low"] == 0 and bins[0]["high"] == 0.05
    assert [b["count"] for b in bins[:4]] == [2, 1, 1, 1]  # 0.05 falls in [0.05, 0.10)
    assert sum(b["share"] for b in bins) == pytest.approx(1.0)


def test_summary_counts_statuses_per_attribute():
    table = fairness_table(hand_counts())
    summary = fairness_summary(table, min_department=100, min_group=20, max_gap=0.05, confidence=0.95)
    race = summary["by_attribute"][RACE]
    assert race == {"departments": 4, "evaluated": 2, "ok": 1, "breaks_rule": 1, "breaks_rule_clear": 1,
                    "not_enough_data": 2, "largest_gap": pytest.approx(0.15), "breaking_departments": ["D1"]}
    assert summary["by_attribute"][SEX]["ok"] == 1
    assert summary["parameters"]["min_group"] == 20


def test_group_counts_from_rows_and_the_officers_baseline():
    frame = pd.DataFrame({
        "Department Name": ["A", "A", "A", "A", "B", "B"],
        "SubjectRaceCode": ["W", "W", "B", None, "W", "W"],
        "SubjectEthnicityCode": ["N", "N", "H", "N", "N", "H"],
        "SubjectSexCode": ["M", "F", "M", "M", "F", "F"],
        "SubjectAge": [17.0, 25.0, 40.0, 60.0, 30.0, np.nan],
    })
    truth = np.array([1, 0, 1, 0, 1, 0], dtype=bool)
    predicted = np.array([1, 1, 0, 1, 1, 1], dtype=bool)
    counts = group_counts(frame, truth, predicted)
    cell = counts.set_index(["department", "attribute", "group"])
    assert cell.loc[("A", RACE, "W")].tolist() == [1, 1, 0, 0]
    assert cell.loc[("A", RACE, "B")].tolist() == [0, 0, 1, 0]
    assert cell.loc[("A", RACE, "(missing)")].tolist() == [0, 1, 0, 0]
    assert cell.loc[("A", "SubjectAgeGroup", "Youth")].tolist() == [1, 0, 0, 0]
    assert cell.loc[("B", "SubjectAgeGroup", "(missing)")].tolist() == [0, 1, 0, 0]
    assert counts.groupby("attribute")[["tp", "fp", "fn", "tn"]].sum().sum(axis=1).eq(6).all()
    officers = officer_counts(frame, truth).set_index(["department", "attribute", "group"])
    assert officers.loc[("A", RACE, "B")].tolist() == [1, 0, 0, 0]  # every searched stop was their "yes"
    assert officers[["fn", "tn"]].to_numpy().sum() == 0


def test_a_gap_of_exactly_the_limit_is_ok():
    counts = pd.DataFrame([("D", RACE, "W", 550, 450), ("D", RACE, "B", 500, 500)],
                          columns=["department", "attribute", "group", "tp", "fp"])
    entry = fairness_table(counts, max_gap=0.05)[0]
    assert entry["max_gap"] == 0.05 and entry["status"] == "ok"  # 0.55 - 0.50 in floats is 0.0500000000000000444


def test_null_groups_from_sql_are_counted_but_never_compared():
    counts = [{"department": "D", "attribute": RACE, "group": "W", "tp": 60, "fp": 40},
              {"department": "D", "attribute": RACE, "group": "B", "tp": 58, "fp": 42},
              {"department": "D", "attribute": RACE, "group": None, "tp": 0, "fp": 100}]
    entry = fairness_table(counts)[0]
    assert entry["n"] == 300 and entry["eligible_groups"] == 2 and entry["status"] == "ok"
    assert entry["groups"][-1] == {"group": "(missing)", "n": 100, "hits": 0, "precision": 0.0,
                                   "low": 0.0, "high": pytest.approx(wilson_interval(0, 100)[1]), "eligible": False}
