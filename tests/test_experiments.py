"""The experiment variants' pieces on small hand-made data: the SAC router as a scikit-learn estimator, the
client's fairness weights, the threshold mitigations, the default's choice, and the real SAC=N requests."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import NotFittedError

from pipeline.experiments.__main__ import main as experiments_main
from pipeline.experiments.__main__ import parse_args
from pipeline.experiments.measure import dry_run_unsuspected
from pipeline.experiments.merge import merge
from pipeline.experiments.run import choose_default
from pipeline.experiments.thresholds import shift_scores
from pipeline.experiments.variants import sac_split
from pipeline.experiments.weights import fairness_penalty_weights, group_shortfalls
from pipeline.loading import load_training_data
from pipeline.schema import TARGET, category_key, validate_observation
from pipeline.scoring.artifact import FAST_TOLERANCE, load_artifact, save_artifact
from pipeline.scoring.fast_linear import build_scorer, pipeline_probes, worst_disagreement
from pipeline.synthetic.generate import generate
from pipeline.synthetic.generate import main as synthetic_main
from pipeline.training.card_markdown import render
from pipeline.training.cli import main as train_main
from pipeline.transform.router import SacRouter

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="module")
def stops(tmp_path_factory):
    """Cleaned searched rows of a small generated file (about 1,100)."""
    path = tmp_path_factory.mktemp("experiments") / "stops.csv"
    frame, _ = generate(40_000, seed=9)
    frame.to_csv(path, index=False)
    return load_training_data(path, quiet=True).frame.reset_index(drop=True)


def _sac_frame(codes):
    return pd.DataFrame({"SearchAuthorizationCode": pd.Series(codes, dtype=object), "x": np.arange(len(codes))})


def test_router_sends_each_record_to_its_model():
    """Constant sub-models (the hit rate of their own rows) show which one answered each row."""
    X = _sac_frame(["N", "C", "O", "N", "I", "C", "N", "O"])
    y = np.array([1, 1, 1, 0, 0, 1, 0, 0])  # suspected rows C,O,I,C,O: 3 of 5; N rows: 1 of 3
    router = SacRouter(DummyClassifier(strategy="prior"), DummyClassifier(strategy="prior")).fit(X, y)
    new = _sac_frame(["N", " n ", "C", None, "O", "I", "X"])
    probability = router.predict_proba(new)[:, 1]
    np.testing.assert_allclose(probability, [1 / 3, 1 / 3, 3 / 5, 3 / 5, 3 / 5, 3 / 5, 3 / 5])
    assert router.route(new).tolist() == [True, True, False, False, False, False, False]
    assert router.predict(new).tolist() == [0, 0, 1, 1, 1, 1, 1]
    np.testing.assert_allclose(router.predict_proba(new).sum(axis=1), 1.0)


def test_router_offset_moves_only_the_unsuspected_side():
    X, y = _sac_frame(["N", "C", "N", "C"]), np.array([1, 1, 0, 0])
    router = SacRouter(DummyClassifier(strategy="prior"), DummyClassifier(strategy="prior"),
                       unsuspected_offset=np.log(3.0)).fit(X, y)
    np.testing.assert_allclose(router.predict_proba(_sac_frame(["N", "C"]))[:, 1], [0.75, 0.5])  # odds 1 -> 3
    router.set_params(unsuspected_offset=float("-inf"))
    np.testing.assert_allclose(router.predict_proba(_sac_frame(["N", "C"]))[:, 1], [0.0, 0.5])


def test_router_refuses_a_side_without_both_outcomes():
    with pytest.raises(ValueError, match="unsuspected rows"):
        SacRouter(DummyClassifier(), DummyClassifier()).fit(_sac_frame(["N", "C", "N", "C"]), [0, 1, 0, 0])


def test_router_follows_scikit_learn_rules(stops):
    """clone, get/set_params, not-fitted error, pickle round trip, unseen categories, fitted sub-models."""
    router = sac_split()
    assert clone(router).get_params()["unsuspected_codes"] == ("N",)
    with pytest.raises(NotFittedError):
        router.predict_proba(stops.head(3))
    y = stops[TARGET].to_numpy(bool)
    router.fit(stops, y)
    assert router.suspected is not router.estimators_["suspected"]  # the templates stay unfitted
    with pytest.raises(NotFittedError):
        clone(router).predict_proba(stops.head(3))
    copy = pickle.loads(pickle.dumps(router))
    np.testing.assert_array_equal(copy.predict_proba(stops), router.predict_proba(stops))
    unseen = stops.head(4).copy()
    unseen["Department Name"] = "Atlantis Police"
    unseen["StatuteReason"] = "Riding a unicorn"
    unseen["SearchAuthorizationCode"] = ["N", "C", "N", "O"]
    probability = router.predict_proba(unseen)[:, 1]
    assert np.isfinite(probability).all() and ((probability > 0) & (probability < 1)).all()


def test_fairness_weights_on_a_hand_computed_example():
    """One department, 200 searches at 40%: W 50/100, B 30/100. B's shortfall is 0.10; with strength 2 its 70
    fruitless searches weigh 1.2, everything else 1; total 214 over 200 rows, so all are divided by 1.07."""
    race = ["W"] * 100 + ["B"] * 100
    hits = [True] * 50 + [False] * 50 + [True] * 30 + [False] * 70
    frame = pd.DataFrame({"Department Name": "D1", "SubjectRaceCode": race})
    weights = fairness_penalty_weights(frame, hits, strength=2.0, attributes=("SubjectRaceCode",))
    expected = np.where(np.array(race) == "B", np.where(hits, 1.0, 1.2), 1.0) / 1.07
    np.testing.assert_allclose(weights, expected)
    assert weights.mean() == pytest.approx(1.0)
    table = group_shortfalls(frame, hits, attributes=("SubjectRaceCode",)).set_index("group")
    assert table.loc["B", "shortfall"] == pytest.approx(0.1) and table.loc["W", "shortfall"] == 0.0


def test_fairness_weights_respect_the_rules_minimum_counts():
    """A department under 100 searches, or a group under 20, or a missing group, is not penalised."""
    frame = pd.DataFrame({"Department Name": ["small"] * 60 + ["big"] * 150,
                          "SubjectRaceCode": ["W"] * 30 + ["B"] * 30 + ["W"] * 120 + ["B"] * 15 + [None] * 15})
    hits = np.r_[np.ones(30), np.zeros(30), np.r_[np.ones(60), np.zeros(60)], np.zeros(30)].astype(bool)
    weights = fairness_penalty_weights(frame, hits, strength=5.0, attributes=("SubjectRaceCode",))
    np.testing.assert_allclose(weights, 1.0)
    with pytest.raises(ValueError):
        fairness_penalty_weights(frame, hits, strength=-1)


def test_shift_scores_applies_each_departments_threshold():
    frame = pd.DataFrame({"Department Name": ["A", "A", "B", "B", " a "]})
    scores = np.array([0.35, 0.45, 0.35, 0.45, 0.41])
    moved = shift_scores(frame, scores, {"a": 0.4}, 0.3)
    assert (moved >= 0.3).tolist() == [False, True, True, True, True]
    np.testing.assert_allclose(moved[2:4], scores[2:4])


def _row(name, precision, recall, auc, clear, evaluated=5, share=0.01):
    return {"variant": name, "precision": {"value": precision}, "recall": {"value": recall}, "auc": {"value": auc},
            "breaks": {"clear": clear, "evaluated": evaluated}, "every_stop": {"share": {"value": share}}}


def test_default_stays_unless_a_passing_variant_finds_clearly_more():
    officers = {"breaks": {"clear": 2}}
    table = [_row("baseline", 0.53, 0.74, 0.75, 1), _row("tuned", 0.52, 0.745, 0.752, 0),
             _row("weighted", 0.51, 0.80, 0.74, 3), _row("split", 0.49, 0.9, 0.76, 0)]
    choice = choose_default({"table": table, "officers": officers})
    assert choice["variant"] == "baseline" and not choice["changed"]  # tuned gains only 0.005 recall
    table[1]["recall"]["value"] = 0.76
    assert choose_default({"table": table, "officers": officers})["variant"] == "tuned"
    table[0]["every_stop"]["share"]["value"] = 0.03  # the baseline fails the every-stop target
    table[1]["recall"]["value"] = 0.745
    assert choose_default({"table": table, "officers": officers})["variant"] == "tuned"


def test_committed_default_recommends_few_searches_of_real_requests_without_suspicion(client, dry_run_requests):
    """The 223 real production requests with SearchAuthorizationCode changed to N: a search for at most 2%."""
    searched = 0
    for id_, observation, _ in dry_run_requests:
        unsuspected = dict(observation, SearchAuthorizationCode="N")
        response = client.post("/should_search", json={"observation_id": f"n-{id_}", "observation": unsuspected})
        assert response.status_code == 200, response.get_data(as_text=True)
        searched += response.get_json()["should_search"]
    assert len(dry_run_requests) == 223
    assert searched <= 0.02 * 223, f"{searched} of 223 real SAC=N requests recommended for search"


def test_the_experiments_read_the_same_real_requests_with_sac_n(dry_run_requests):
    frame = dry_run_unsuspected()
    assert len(frame) == len(dry_run_requests) and (frame["SearchAuthorizationCode"] == "N").all()
    assert frame["Department Name"].tolist() == [o["Department Name"] for _, o, _ in dry_run_requests]


@pytest.mark.parametrize("offset", [0.0, 1.1, float("-inf")])
def test_router_fast_path_agrees_with_scikit_learn(stops, offset, tmp_path):
    """The served single-record path of a two-model default: within 1e-9 of predict_proba, checked at load."""
    router = sac_split().fit(stops, stops[TARGET].to_numpy(bool)).set_params(unsuspected_offset=offset)
    scorer = build_scorer(router)
    probes = pipeline_probes(router)
    assert {p["SearchAuthorizationCode"] and category_key(p["SearchAuthorizationCode"]) for p in probes} >= \
        {"n", "c", None}  # both sides and the missing code are probed
    difference, record = worst_disagreement(scorer, router, probes)
    assert difference <= FAST_TOLERANCE, record
    saved = save_artifact(router, {"version": "router-test", "threshold": 0.3}, tmp_path / "router")
    assert load_artifact(saved).scoring_path == "fast-router(fast-linear, fast-linear)"


@pytest.mark.slow
def test_train_two_models_writes_a_served_router(tmp_path):
    """``pipeline.train --two-models``: a SacRouter artifact whose fast path loads, and a card that says how the
    N side decides; the N side never answers above the threshold unless its own validation rows allowed it."""
    frame, _ = generate(120_000, seed=7)
    data = tmp_path / "small.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "two"
    assert train_main(["--data", str(data), "--out", str(out), "--quiet", "--cv-folds", "2", "--two-models",
                       "--families", "logistic_regression", "--criterion", "point", "--no-protected-check"]) == 0
    artifact = load_artifact(out)
    assert isinstance(artifact.pipeline, SacRouter) and artifact.scoring_path.startswith("fast-router")
    routing = artifact.card["threshold_selection"]["routing"]
    assert artifact.card["version"].startswith("two-logreg-") and artifact.card["model"]["class"] == "SacRouter"
    assert "Two models" in render(artifact.card)
    observation = validate_observation(json.loads((FIXTURES / "observation.json").read_text()))
    unsuspected = dict(observation, SearchAuthorizationCode="N")
    if routing["unsuspected_never_recommended"]:
        assert artifact.predict_one(unsuspected) == 0.0
    assert artifact.predict_one(observation) == pytest.approx(artifact.predict_proba([observation])[0], abs=1e-9)


def test_experiments_cli_help_and_refusals(tmp_path, capsys):
    """--help lists the variants; a missing file is refused with what to do."""
    with pytest.raises(SystemExit) as helped:
        experiments_main(["--help"])
    assert helped.value.code == 0 and "sac_split" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        experiments_main(["--data", str(tmp_path / "missing.csv")])
    assert refused.value.code == 2 and "pipeline.synthetic" in capsys.readouterr().err


@pytest.mark.slow
def test_experiments_cli_writes_the_comparison(tmp_path):
    """End to end on a small generated file (with its two-column truth): one row per variant on the same rows,
    the every-stop figures from the unsearched held-out stops, the officers' row, the choice, and the files."""
    data = tmp_path / "stops.csv"
    assert synthetic_main(["--rows", "120000", "--seed", "7", "--out", str(data)]) == 0
    out = tmp_path / "out"
    variants = ["baseline", "sac_split", "fair_threshold", "department_thresholds"]
    assert experiments_main(["--data", str(data), "--out", str(out), "--quiet", "--variants", *variants]) == 0
    result = json.loads((out / "comparison.json").read_text())
    assert [r["variant"] for r in result["table"]] == variants
    rows = result["data"]["rows"]
    assert rows["train"] + rows["validation"] + rows["test"] == rows["usable"] and rows["unsearched_held_out"] > 0
    for row in result["table"]:
        assert row["every_stop"]["stops"] == rows["unsearched_held_out"]
        assert row["real_unsuspected"]["requests"] == 223 and row["fit_seconds"] > 0 and row["peak_rss"] > 0
        assert 0 < row["auc"]["value"] <= 1 and row["auc_over_bayes"]["value"] > 0.8
    assert "unsuspected_never_recommended" in result["table"][1]["parameter"]  # how the N side decides
    assert result["default"]["variant"] in variants and "officers" in result
    text = (out / "comparison.md").read_text()
    assert "officers' own searches" in text and "Default by the table" in text
    assert (out / "tradeoff_fair_threshold.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "tradeoff_department_thresholds.png").is_file()


def test_merge_adds_a_later_variant_only_when_the_runs_are_comparable():
    """A second run's rows join the first when file, split and baseline figures agree; the default is re-chosen."""
    def run(*names, recall=0.74):
        table = [dict(_row(name, 0.53, recall if name != "baseline" else 0.74, 0.75, 0), threshold=0.3,
                      real_unsuspected={}, recommended=10) for name in names]
        return {"table": table, "officers": {"breaks": {"clear": 1}}, "details": {},
                "data": {"sha256": "abc", "rows": {"train": 10}, "command": "x", "wall_seconds": 1, "peak_rss": 1}}

    merged = merge(run("baseline", "tuned"), run("baseline", "shrinkage", recall=0.76))
    assert [r["variant"] for r in merged["table"]] == ["baseline", "tuned", "shrinkage"]
    assert merged["default"]["variant"] == "shrinkage" and len(merged["merged_runs"]) == 2
    other = run("baseline", "shrinkage")
    other["table"][0]["precision"] = {"value": 0.6}
    with pytest.raises(ValueError, match="baseline rows differ"):
        merge(run("baseline"), other)
    other = run("baseline", "shrinkage")
    other["data"]["sha256"] = "def"
    with pytest.raises(ValueError, match="same file"):
        merge(run("baseline"), other)


def test_the_incumbent_is_the_variant_the_committed_default_is():
    """Since the shrinkage model became the default, it is what the table's rule keeps by default."""
    officers = {"breaks": {"clear": 2}}
    table = [_row("baseline", 0.53, 0.745, 0.75, 0), _row("shrinkage", 0.53, 0.75, 0.75, 0)]
    assert choose_default({"table": table, "officers": officers}, incumbent="shrinkage")["variant"] == "shrinkage"
    table[0]["recall"]["value"] = 0.765
    choice = choose_default({"table": table, "officers": officers}, incumbent="shrinkage")
    assert choice["variant"] == "baseline" and choice["incumbent"] == "shrinkage" and choice["changed"]
    assert parse_args(["--data", __file__]).incumbent == "shrinkage"


def test_the_card_section_says_whether_the_tables_choice_is_the_committed_default():
    from pipeline.experiments.report import markdown
    result = json.loads((Path(__file__).resolve().parent.parent / "artifacts" / "experiments" / "comparison.json")
                        .read_text())
    chosen = result["default"]["variant"]
    assert "**Applied:** the committed default (artifacts/default) is this variant, version `" in markdown(result)
    result["default"]["applied"] = {"variant": chosen, "reason": "why"}  # recorded without a version (merge)
    assert "is this variant. why" in markdown(result)
    result["default"]["applied"] = {"variant": "baseline", "reason": "not yet"}
    assert "**NOT APPLIED: the committed default is still `baseline`.** not yet" in markdown(result)
