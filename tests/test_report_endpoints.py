"""The report served by the real app after the dry run: numbers checked against pandas on the responses."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from sklearn.metrics import roc_auc_score

from service.report_views import report_blueprint

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT_DIR = Path(__file__).resolve().parent.parent / "bench" / "out"
MINIMUMS = {"min_department": 3, "min_group": 1}
AGE_EDGES, AGE_NAMES = [0, 18, 36, 56, 200], ["Youth", "Young Adult", "Adult", "Senior"]


@pytest.fixture
def report_client(app):
    """The service's test client with the report blueprint (registered here only if the factory did not)."""
    if "report" not in app.blueprints:
        app.register_blueprint(report_blueprint)
    return app.test_client()


@pytest.fixture
def dry_run(report_client, dry_run_requests) -> pd.DataFrame:
    """Every dry-run request through /should_search and every label through /search_result; one row each."""
    rows = []
    for id_, observation, label in dry_run_requests:
        answer = report_client.post("/should_search", json={"observation_id": str(id_), "observation": observation})
        assert answer.status_code == 200, answer.get_json()
        body = answer.get_json()
        if label is not None:
            outcome = report_client.post("/search_result",
                                         json={"observation_id": str(id_), "contraband_found": bool(label)})
            assert outcome.status_code == 200, outcome.get_json()
        rows.append({"department": " ".join(observation["Department Name"].split()),
                     "sac": observation["SearchAuthorizationCode"].strip().upper(),
                     "race": observation["SubjectRaceCode"].strip().upper(),
                     "age": float(observation["SubjectAge"]),
                     "probability": body["probability"], "search": body["should_search"],
                     "label": np.nan if label is None else float(label), "version": body["model_version"]})
    frame = pd.DataFrame(rows)
    frame["age_group"] = pd.cut(frame["age"], AGE_EDGES, right=False, labels=AGE_NAMES).astype(str)
    return frame


def _report(client, **params) -> dict:
    response = client.get("/report", query_string={**MINIMUMS, **params})
    assert response.status_code == 200, response.get_json()
    return json.loads(response.get_data(as_text=True))  # strict: the body must be valid JSON (no NaN)


def test_report_matches_an_independent_computation_on_the_responses(report_client, dry_run):
    """One dry run per backend (it costs 336 requests); each check below is independent of the report's SQL."""
    report = _report(report_client)
    _check_volume_performance_and_table4(report, dry_run)
    _check_roc(report["roc"], dry_run)
    _check_fairness(report, dry_run)
    _check_population_and_filters(report, report_client, dry_run)


def _check_volume_performance_and_table4(report, dry_run):
    labelled = dry_run[dry_run["label"].notna()]
    truth, search = labelled["label"].astype(bool).to_numpy(), labelled["search"].to_numpy(dtype=bool)
    assert report["volume"]["requests"] == len(dry_run) == 223
    assert report["volume"]["labelled"] == len(labelled) == 113
    assert [v["model_version"] for v in report["volume"]["by_model_version"]] == sorted(dry_run["version"].unique())
    expected = {"tp": int(np.sum(truth & search)), "fp": int(np.sum(~truth & search)),
                "fn": int(np.sum(truth & ~search)), "tn": int(np.sum(~truth & ~search))}
    metrics = report["performance"]["metrics"]
    assert metrics["counts"] == expected
    if search.any():
        assert metrics["precision"]["value"] == pytest.approx(truth[search].mean())
    assert metrics["recall"]["value"] == pytest.approx(search[truth].mean())
    assert report["performance"]["search_by_default"]["overall"]["value"] == pytest.approx(dry_run["search"].mean())
    for row in report["sac_table"]:
        subset = labelled[labelled["sac"] == row["sac"]]
        assert (row["predicted_true"], row["outcome_true"], row["n"]) == (
            int(subset["search"].sum()), int(subset["label"].sum()), len(subset))
        assert row["requests"] == int((dry_run["sac"] == row["sac"]).sum())


def _check_roc(roc, dry_run):
    labelled = dry_run[dry_run["label"].notna()]
    binned = np.floor(labelled["probability"].to_numpy() * roc["bins"])
    assert roc["auc"] == pytest.approx(roc_auc_score(labelled["label"].astype(bool), binned), abs=1e-12)
    assert abs(roc["auc"] - roc_auc_score(labelled["label"].astype(bool), labelled["probability"])) < 0.01


def _check_fairness(report, dry_run):
    labelled = dry_run[dry_run["label"].notna()]
    recommended = labelled[labelled["search"]]
    department = recommended["department"].value_counts().idxmax()
    entry = next(e for e in report["fairness"]["model"]["table"]
                 if e["department"] == department and e["attribute"] == "SubjectRaceCode")
    expected = recommended[recommended["department"] == department].groupby("race")["label"].mean()
    assert {g["group"]: g["precision"] for g in entry["groups"]} == pytest.approx(expected.to_dict())
    officers = next(e for e in report["fairness"]["officers"]["table"]
                    if e["department"] == department and e["attribute"] == "SubjectAgeGroup")
    hit_rates = labelled[labelled["department"] == department].groupby("age_group")["label"].mean()
    assert {g["group"]: g["precision"] for g in officers["groups"]} == pytest.approx(hit_rates.to_dict())


def _check_population_and_filters(report, report_client, dry_run):
    shares = dry_run["race"].value_counts(normalize=True) * 100
    rows = {r["value"]: r["production_pct"] for r in report["population"]["rows"] if r["field"] == "SubjectRaceCode"}
    assert rows == pytest.approx(shares.to_dict())
    department = dry_run["department"].iloc[0]
    only = _report(report_client, department=department)
    assert only["volume"]["requests"] == int((dry_run["department"] == department).sum())
    assert _report(report_client, model_version="no-such-model")["volume"]["requests"] == 0


@pytest.mark.parametrize("params, field", [
    ({"since": "yesterday"}, "since"), ({"min_group": "0"}, "min_group"), ({"min_department": "x"}, "min_department"),
    ({"department": "Mil\x00ford"}, "department"), ({"since": "2026-05-02", "until": "2026-05-01"}, "until"),
    ({"limit": "5"}, "limit"),
])
def test_bad_parameters_get_400_with_the_error_shape(report_client, params, field):
    response = report_client.get("/report", query_string=params)
    body = response.get_json()
    assert response.status_code == 400
    assert body["error"] == "invalid_parameter" and field in body["fields"] and body["status"] == 400


def _screenshot(html_path: Path, png_path: Path, profile: Path) -> None:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", f"--screenshot={png_path}", "--window-size=1280,7000",
               html_path.as_uri()]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


def _has_colour(pixels: np.ndarray, rgb: tuple[int, int, int]) -> bool:
    return bool(np.any(np.all(np.abs(pixels[..., :3] * 255 - np.array(rgb)) < 12, axis=-1)))


def test_page_renders_with_charts_in_headless_chromium(report_client, dry_run, backend, tmp_path):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but chromium is missing at {CHROMIUM}: apt-get install -y chromium")
        pytest.skip("chromium is not installed (apt-get install -y chromium); CI installs it")
    response = report_client.get("/report.html", query_string=MINIMUMS)
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert page.count("data:image/png;base64,") == 3
    assert "Figure 1" in page and "Figures 3-4" in page and "Table 6" in page
    html_path, png_path = tmp_path / "report.html", tmp_path / "report.png"
    html_path.write_text(page, encoding="utf-8")
    _screenshot(html_path, png_path, tmp_path / "chromium-profile")
    pixels = imread(png_path)
    assert pixels.shape[0] >= 7000 and pixels.shape[1] >= 1280
    assert pixels[..., :3].std() > 0.05  # not a blank page
    # matplotlib's first two series colours appear only if the embedded charts were decoded and drawn
    assert _has_colour(pixels, (31, 119, 180)) and _has_colour(pixels, (255, 127, 14))
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(png_path, SCREENSHOT_DIR / f"report_test_{backend}.png")
