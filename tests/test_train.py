"""Training end to end on a small generated file, its loading rules, the time split and the committed model."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.loading import load_training_data
from pipeline.schema import OBSERVATION_FIELDS, TRAINING_COLUMNS, clean_frame, records_to_frame, validate_observation
from pipeline.scoring.artifact import load_artifact, read_card
from pipeline.synthetic.generate import generate
from pipeline.training.card_markdown import render
from pipeline.training.cli import main
from pipeline.training.selection import drift_margin, time_split

DRY_RUN = Path(__file__).parent / "fixtures" / "dry_run.json"
CARD_KEYS = {"version", "created_at", "synthetic", "notice", "threshold", "threshold_selection", "training_data",
             "packages", "input_fields", "feature_names", "model", "model_comparison", "metrics", "fairness",
             "population", "pipeline_sha256"}


def _dry_run_observations():
    rows = json.loads(DRY_RUN.read_text())["values"]
    return [json.loads(row[2])["observation"] for row in rows]


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    """A generated CTRP3 file, written as the client's CSV, with a few thousand searched rows."""
    frame, _ = generate(120_000, seed=7)
    path = tmp_path_factory.mktemp("data") / "small.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def trained(small_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("artifact") / "small"
    assert main(["--data", str(small_file), "--out", str(out), "--quiet", "--synthetic", "--cv-folds", "2",
                 "--families", "hist_gradient_boosting", "logistic_regression", "--criterion", "point"]) == 0
    return out


def test_cli_writes_a_loadable_artifact_with_the_required_card(trained, small_file):
    card = read_card(trained)
    assert CARD_KEYS <= set(card)
    assert card["synthetic"] is True and "SYNTHETIC" in card["notice"]
    assert set(card["model_comparison"]["results"]) == {"hist_gradient_boosting", "logistic_regression"}
    assert 0 < card["threshold"] < 1
    test = card["metrics"]["test"]
    assert test["precision"]["low"] <= test["precision"]["value"] <= test["precision"]["high"]
    assert test["auc_interval"]["low"] <= test["auc"] <= test["auc_interval"]["high"]
    rows = card["training_data"]["rows"]
    with small_file.open() as handle:
        assert rows["rows_read"] == sum(1 for _ in handle) - 1
    assert rows["train"] + rows["validation"] + rows["test"] == rows["usable"] <= rows["after_dedup"]
    artifact = load_artifact(trained)
    probabilities = artifact.predict_proba([validate_observation(o) for o in _dry_run_observations()])
    assert ((probabilities >= 0) & (probabilities <= 1)).all()


def test_card_dates_put_test_rows_after_training_rows(trained):
    dates = read_card(trained)["training_data"]["dates"]
    assert dates["train"]["last"] <= dates["validation"]["first"]
    assert dates["validation"]["last"] <= dates["test"]["first"]


def test_card_population_covers_protected_and_input_fields(trained):
    population = read_card(trained)["population"]
    for field in ("SubjectRaceCode", "SubjectEthnicityCode", "SubjectSexCode", "SubjectAge",
                  "Department Name", "SearchAuthorizationCode", "StatuteReason", "ResidentIndicator"):
        assert population[field] and abs(sum(population[field].values()) - 1) < 1e-9
    assert set(population["SubjectAge"]) <= {"Youth", "Young Adult", "Adult", "Senior", "(missing)"}


def test_loading_keeps_searched_rows_and_drops_exact_duplicates(tmp_path):
    base = pd.DataFrame(_dry_run_observations()).drop_duplicates().head(6).reset_index(drop=True)
    base["VehicleSearchedIndicator"] = [True, True, True, False, False, True]
    base["ContrabandIndicator"] = [True, False, True, False, True, False]
    rows = pd.concat([base, base.iloc[[0, 0, 3]]], ignore_index=True)[list(TRAINING_COLUMNS)]
    path = tmp_path / "rows.csv"
    rows.to_csv(path, index=False)
    loaded = load_training_data(path, chunksize=4, quiet=True)
    assert loaded.counts["rows_read"] == 9
    assert loaded.counts["searched"] == 6  # 4 searched originals + 2 copies of row 0
    assert loaded.counts["after_dedup"] == 4
    assert len(loaded.frame) == 4
    assert loaded.frame["ContrabandIndicator"].sum() == 2


def test_loading_rejects_a_file_without_the_ctrp3_columns(tmp_path):
    path = tmp_path / "other.csv"
    pd.DataFrame({"a": [1]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="VehicleSearchedIndicator"):
        load_training_data(path, quiet=True)


def test_time_split_holds_out_the_newest_rows():
    stamps = pd.Series(pd.to_datetime("2014-01-01") + pd.to_timedelta(np.random.default_rng(0).permutation(100),
                                                                          unit="D"))
    split = time_split(stamps, validation=0.2, test=0.1)
    assert (len(split.train), len(split.validation), len(split.test)) == (70, 20, 10)
    assert stamps.iloc[split.train].max() < stamps.iloc[split.validation].min()
    assert stamps.iloc[split.validation].max() < stamps.iloc[split.test].min()


def test_committed_default_model_accepts_every_dry_run_observation():
    artifact = load_artifact()
    records = [validate_observation(o) for o in _dry_run_observations()]
    probabilities = artifact.predict_proba(records)
    assert probabilities.shape == (len(records),)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    assert 0 < artifact.threshold < 1


def test_default_model_gives_identical_probabilities_through_both_frame_paths():
    artifact = load_artifact()
    observations = _dry_run_observations()
    serving = records_to_frame([validate_observation(o) for o in observations])
    training = clean_frame(pd.DataFrame(observations).astype(str))[list(OBSERVATION_FIELDS)]
    np.testing.assert_array_equal(artifact.pipeline.predict_proba(serving),
                                  artifact.pipeline.predict_proba(training))


def test_default_model_card_says_it_was_trained_on_synthetic_data():
    card = read_card(Path(__file__).resolve().parent.parent / "artifacts" / "default")
    assert card["synthetic"] is True
    assert "SYNTHETIC" in card["notice"]


def test_model_card_markdown_renders_the_cards_figures(trained):
    card = read_card(trained)
    text = render(card)
    assert card["version"] in text
    assert f"{card['threshold']:.4f}" in text
    assert "SYNTHETIC" in text
    for family in card["model_comparison"]["results"]:
        assert family in text


def test_cli_names_what_to_do_when_the_data_file_is_missing(tmp_path, capsys):
    with pytest.raises(SystemExit) as raised:
        main(["--data", str(tmp_path / "absent.csv")])
    assert raised.value.code == 2
    assert "pipeline.synthetic" in capsys.readouterr().err


def test_drift_margin_absorbs_the_largest_fall_in_hit_rate():
    rising = np.repeat([0.2, 0.3, 0.4], 100) > np.tile(np.linspace(0, 0.999, 100), 3)  # block rates 0.2, 0.3, 0.4
    assert drift_margin(rising, 100)["margin"] == 0.0
    falling = rising[::-1]  # 0.4, 0.3, 0.2: the largest fall in log-odds is 0.3 -> 0.2
    result = drift_margin(falling, 100)
    drop = np.log(0.3 / 0.7) - np.log(0.2 / 0.8)
    assert result["largest_logit_drop"] == pytest.approx(drop)
    assert result["margin"] == pytest.approx(1 / (1 + np.exp(-drop)) - 0.5)


def test_training_names_the_reference_of_reasons_and_the_backfill_command_recomputes_it(trained, small_file,
                                                                                      tmp_path):
    """The card's reasons average the training rows; pipeline.training.reasons_card gives the same from the file."""
    from pipeline.training.reasons_card import main as reasons_card
    card = read_card(trained)
    reasons = card["reasons"]
    assert reasons["rows"] == card["training_data"]["rows"]["train"]
    assert set(reasons["feature_means"]) == set(card["feature_names"])
    artifact = load_artifact(trained)
    assert artifact.explainer.reference["log_odds"] == pytest.approx(reasons["log_odds"], abs=1e-12)
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("model.joblib", "model_card.json"):
        (copy / name).write_bytes((trained / name).read_bytes())
    bare = {key: value for key, value in card.items() if key != "reasons"}
    (copy / "model_card.json").write_text(json.dumps(bare, indent=2))
    assert reasons_card(["--data", str(small_file), "--artifact", str(copy), "--quiet"]) == 0
    again = read_card(copy)["reasons"]
    assert {k: v for k, v in again.items() if k not in ("feature_means", "log_odds", "probability")} == \
        {k: v for k, v in reasons.items() if k not in ("feature_means", "log_odds", "probability")}
    assert again["feature_means"] == pytest.approx(reasons["feature_means"], abs=1e-12)
    assert again["log_odds"] == pytest.approx(reasons["log_odds"], abs=1e-12)


def test_the_shrinkage_family_trains_through_the_same_command_and_serves_on_the_fast_path(small_file, tmp_path):
    """The family issue 11's table chose: picked by the same CV, its card names the columns the model reads, and
    the protected-features check refits it with age and all attributes (one-hot, age in bands)."""
    out = tmp_path / "shrunk"
    assert main(["--data", str(small_file), "--out", str(out), "--quiet", "--synthetic", "--cv-folds", "2",
                 "--families", "shrinkage_logistic_regression", "--criterion", "point"]) == 0
    card = read_card(out)
    assert card["version"].startswith("logreg-shrunk-") and card["model"]["family"] == "shrinkage_logistic_regression"
    assert "Department Name:log_odds" in card["model_inputs"]["numeric"]
    assert not {"day_of_week", "month", "year"} & set(card["model_inputs"]["one_hot"] + card["model_inputs"]["numeric"])
    assert set(card["protected_features_check"]["variants"]) == {"none", "age", "all"}
    artifact = load_artifact(out)
    records = [validate_observation(o) for o in _dry_run_observations()]
    assert artifact.scoring_path == "fast-linear"
    np.testing.assert_allclose([artifact.predict_one(r) for r in records], artifact.predict_proba(records),
                               rtol=0, atol=1e-9)
    assert "reads `SearchAuthorizationCode" in render(card)


def test_the_shrinkage_family_uses_protected_attributes_only_when_asked():
    from pipeline.training.selection import build_model
    frame, _ = generate(20_000, seed=3)
    searched = clean_frame(frame)
    searched = searched[searched["VehicleSearchedIndicator"]].reset_index(drop=True)
    y = searched["ContrabandIndicator"].to_numpy(bool)
    plain = build_model("shrinkage_logistic_regression").fit(searched, y)
    aware = build_model("shrinkage_logistic_regression", protected=("SubjectRaceCode", "SubjectAge")).fit(searched, y)
    assert "SubjectRaceCode" not in plain.named_steps["encode"].one_hot
    assert "SubjectRaceCode" in aware.named_steps["encode"].one_hot and aware.named_steps["encode"].age == "SubjectAge"
