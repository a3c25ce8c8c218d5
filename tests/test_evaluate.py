"""The evaluation CLI end to end on a small CSV built from the real dry-run rows, and the charts as real PNGs."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipeline.evaluation import plots
from pipeline.evaluation.cli import main
from pipeline.evaluation.metrics import roc_curve_points
from pipeline.evaluation.population import value_shares
from pipeline.schema import OBSERVATION_FIELDS, SEARCHED, TARGET, TRAINING_COLUMNS, clean_frame
from pipeline.scoring.artifact import save_artifact

DRY_RUN = Path(__file__).parent / "fixtures" / "dry_run.json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
THRESHOLD = 0.35


def _unique_observations() -> pd.DataFrame:
    rows = json.loads(DRY_RUN.read_text())["values"]
    frame = pd.DataFrame([json.loads(row[2])["observation"] for row in rows])
    return frame.drop_duplicates(ignore_index=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A CTRP3 CSV (searched rows, exact duplicates, unsearched rows), its truth sidecar and an artifact."""
    rng = np.random.default_rng(5)
    searched = _unique_observations()
    truth = np.clip(0.15 + 0.5 * (searched["SearchAuthorizationCode"] == "O") + rng.normal(0, 0.1, len(searched)),
                    0.01, 0.99)
    searched[SEARCHED] = True
    searched[TARGET] = rng.random(len(searched)) < truth
    unsearched = searched.head(20).assign(**{SEARCHED: False, TARGET: False})
    data = pd.concat([searched, searched.head(10), unsearched], ignore_index=True)[list(TRAINING_COLUMNS)]
    probabilities = np.concatenate([truth, truth[:10], np.full(20, 0.01)])
    directory = tmp_path_factory.mktemp("evaluate")
    data.to_csv(directory / "stops.csv", index=False)
    pd.DataFrame({"probability": probabilities}).to_csv(directory / "stops.truth.csv", index=False)

    clean = clean_frame(searched)
    model = make_pipeline(ColumnTransformer([
        ("codes", OneHotEncoder(handle_unknown="ignore"), ["SearchAuthorizationCode", "InterventionReasonCode"]),
        ("age", make_pipeline(SimpleImputer(), StandardScaler()), ["SubjectAge"])]), LogisticRegression())
    model.fit(clean[list(OBSERVATION_FIELDS)], clean[TARGET].astype(bool))
    training = clean.iloc[: len(clean) // 2]  # a training population that differs from the evaluated rows
    card = {"version": "test-eval", "threshold": THRESHOLD, "synthetic": True,
            "population": value_shares(training, ["SubjectRaceCode", "SubjectAge", "Department Name"]),
            "population_rows": len(training)}
    save_artifact(model, card, directory / "artifact")
    return {"dir": directory, "searched": clean, "truth": truth, "model": model}


def _run(files, out, *extra):
    return main(["--artifact", str(files["dir"] / "artifact"), "--data", str(files["dir"] / "stops.csv"),
                 "--out", str(out), "--quiet", "--min-department", "10", "--min-group", "5", *extra])


def test_cli_end_to_end_matches_an_independent_computation(files, tmp_path, capsys):
    assert _run(files, tmp_path) == 0
    printed = capsys.readouterr().out
    for heading in ("Confusion matrix", "Performance", "Report table 4", "Fairness of the model",
                    "Fairness of the officers", "Report table 6", "Population stability"):
        assert heading in printed
    result = json.loads((tmp_path / "evaluation.json").read_text())
    searched = files["searched"]
    labels = searched[TARGET].to_numpy(dtype=bool)
    scores = files["model"].predict_proba(searched[list(OBSERVATION_FIELDS)])[:, 1]
    tn, fp, fn, tp = confusion_matrix(labels, scores >= THRESHOLD, labels=[False, True]).ravel()
    assert result["data"]["rows"] == {"rows_read": len(searched) + 30, "searched": len(searched) + 10,
                                      "after_dedup": len(searched), "dropped_unusable": 0, "usable": len(searched),
                                      "evaluated": len(searched)}
    assert result["performance"]["counts"] == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}
    assert result["auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert result["bayes"]["auc"] == pytest.approx(roc_auc_score(labels, files["truth"]))
    assert result["bayes"]["ratio"] == pytest.approx(result["auc"] / result["bayes"]["auc"])
    sac = {row["sac"]: row for row in result["sac_table"]}
    assert sac["O"]["n"] == int((searched["SearchAuthorizationCode"] == "O").sum())
    assert sum(row["predicted_true"] for row in result["sac_table"]) == tp + fp
    officers = result["fairness"]["officers"]["table"]
    assert all(sum(g["n"] for g in entry["groups"]) == entry["n"] for entry in officers)
    assert {e["attribute"] for e in officers} == {"SubjectRaceCode", "SubjectEthnicityCode", "SubjectSexCode",
                                                 "SubjectAgeGroup"}
    assert result["population"]["known"] is True
    assert set(result["population"]["psi"]) == {"SubjectRaceCode", "SubjectAge", "Department Name"}
    assert result["population"]["unseen_rate"]["Department Name"] > 0  # departments only in the second half
    race = result["population"]["psi"]["SubjectRaceCode"]
    race_values = {row["value"] for row in result["population"]["rows"] if row["field"] == "SubjectRaceCode"}
    half = len(searched) // 2
    assert race["noise_floor"] == pytest.approx((len(race_values) - 1) * (1 / half + 1 / len(searched)))
    for name in ("roc.png", "fairness_gaps.png", "population.png"):
        content = (tmp_path / name).read_bytes()
        assert content.startswith(PNG_SIGNATURE) and len(content) > 5000


def test_since_keeps_only_newer_stops(files, tmp_path):
    assert _run(files, tmp_path, "--since", "2018-05-18") == 0
    result = json.loads((tmp_path / "evaluation.json").read_text())
    expected = int((files["searched"]["InterventionDateTime"] >= pd.Timestamp("2018-05-18")).sum())
    assert 0 < result["data"]["rows"]["evaluated"] == expected < len(files["searched"])


def test_errors_say_what_is_wrong(files, tmp_path, capsys):
    assert _run(files, tmp_path, "--since", "2030-01-01") == 2
    assert "no searched, labelled rows" in capsys.readouterr().err
    short = tmp_path / "short.truth.csv"
    pd.DataFrame({"probability": [0.5] * 3}).to_csv(short, index=False)
    assert _run(files, tmp_path, "--truth", str(short)) == 2
    assert "must align" in capsys.readouterr().err
    broken = tmp_path / "broken.csv"
    pd.read_csv(files["dir"] / "stops.csv").drop(columns=["SubjectAge"]).to_csv(broken, index=False)
    assert main(["--artifact", str(files["dir"] / "artifact"), "--data", str(broken), "--out", str(tmp_path),
                 "--quiet"]) == 2
    assert "SubjectAge" in capsys.readouterr().err


def test_plots_are_png_with_and_without_data(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.random(200) < 0.4
    curve = dict(roc_curve_points(labels, rng.random(200) + labels * 0.4), label="model")
    rows = [{"field": "SubjectSexCode", "value": "M", "training_pct": 63.2, "production_pct": 79.0},
            {"field": "SubjectSexCode", "value": "F", "training_pct": 36.8, "production_pct": None}]
    charts = {
        "roc": plots.roc_png([curve], tmp_path / "roc.png"),
        "gaps": plots.gap_histogram_png({"model": rng.random(30) * 0.3, "officers": [0.05, 0.12]}),
        "population": plots.population_png(rows),
        "empty": plots.roc_png({"fpr": [], "tpr": [], "auc": None}),
        "no gaps": plots.gap_histogram_png({"model": []}),
    }
    for name, content in charts.items():
        assert content.startswith(PNG_SIGNATURE) and len(content) > 5000, name
    assert (tmp_path / "roc.png").read_bytes() == charts["roc"]
