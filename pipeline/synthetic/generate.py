"""Generate a synthetic CT-like stop file in exactly the format of the client's LDSA/CTRP3 ``train.csv``.

    python -m pipeline.synthetic --rows 2473643 --seed 0 --out data/synthetic.csv

writes ``synthetic.csv`` (the 15 ``TRAINING_COLUMNS``) and ``synthetic.truth.csv`` (same order, duplicates
included) with two columns: ``contraband_probability``, each row's true P(contraband | observed columns), so
evaluation can compare a model with the Bayes AUC on the same rows; and ``search_hit_probability``, the
probability that a search of that stop finds contraband, for every stop, searched or not (equal to the first on
searched rows; on unsearched rows it is what an officer who sent every stop to the service would get from a search).

Every calibration figure and its source is in ``pipeline/synthetic_calibration.py``; the fixed world (departments,
officers, places, fitted coefficients) is in ``synthetic_world.py``; the generative model in ``synthetic_model.py``.
Same (rows, seed, world seed) => byte-identical files. ``python -m pipeline.synthetic.report PATH`` prints every
calibration figure of a file beside its target.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.loading import truth_path
from pipeline.schema import CT_DATETIME_FORMAT, SEARCHED, TARGET, TRAINING_COLUMNS
from pipeline.synthetic import calibration as cal
from pipeline.synthetic.model import N_DAYS, STATUTE_NAMES, draw_outcomes, sample_features, scaled_count
from pipeline.synthetic.sampling import grouped_choice
from pipeline.synthetic.world import DEFAULT_WORLD_SEED, build_world

TRUTH_COLUMN = "contraband_probability"
SEARCH_TRUTH_COLUMN = "search_hit_probability"


def _datetimes(day: np.ndarray, minute: np.ndarray) -> np.ndarray:
    days = pd.date_range(cal.FIRST_DAY, periods=N_DAYS, freq="D")
    day_text = np.asarray(days.strftime(CT_DATETIME_FORMAT[:8]), dtype=object)
    minutes = pd.Timestamp("2000-01-01") + pd.to_timedelta(np.arange(1440), unit="min")
    time_text = np.asarray(minutes.strftime(CT_DATETIME_FORMAT[9:]), dtype=object)
    return day_text[day] + " " + time_text[minute]


def _locations(world, f, rng) -> np.ndarray:
    towns = np.array(cal.TOWNS, dtype=object)
    upper = np.array([t.upper() for t in cal.TOWNS], dtype=object)
    padded = np.array([t.upper().ljust(cal.LOCATION_WIDTH) for t in cal.TOWNS], dtype=object)
    fragments = world.fragments.astype(str)
    table = np.concatenate([upper, towns, padded, world.fragments, np.char.upper(fragments).astype(object),
                            np.char.ljust(np.char.upper(fragments), cal.LOCATION_WIDTH).astype(object)])
    n = f["dept"].size
    town = world.place_town[grouped_choice(world.place_keys, f["dept"], rng)]
    style = np.where(rng.random(n) < 0.03, rng.integers(0, 3, n), world.location_style[f["dept"]])
    code = style * len(cal.TOWNS) + town
    street = np.flatnonzero(rng.random(n) < cal.STREET_FRAGMENT_SHARE)
    fragment = np.minimum(np.searchsorted(world.fragment_cum, rng.random(street.size), side="right"),
                          fragments.size - 1)
    fragment_style = rng.choice(3, size=street.size, p=cal.FRAGMENT_STYLE_SHARES)
    code[street] = 3 * len(cal.TOWNS) + fragment_style * fragments.size + fragment
    return table[code]


def _statutes(f, rng) -> np.ndarray:
    text = np.array(STATUTE_NAMES, dtype=object)[f["statute"]]
    padded = (text == "Stop Sign") & (rng.random(text.size) < cal.STOP_SIGN_PADDED_SHARE)
    text[padded] = "Stop Sign "
    return text


def _inject_mess(columns: dict, rng) -> None:
    """Junk reason codes and the documented NaN counts, at random rows (scaled to the file size)."""
    n = len(columns["Department Name"])
    for junk, count in cal.REASON_JUNK.items():
        columns["InterventionReasonCode"][rng.choice(n, scaled_count(count, n), replace=False)] = junk
    for name, count in cal.NAN_COUNTS.items():
        columns[name][rng.choice(n, scaled_count(count, n), replace=False)] = None


def generate(rows: int, seed: int = 0, world_seed: int = DEFAULT_WORLD_SEED, progress=None):
    """Return (DataFrame with TRAINING_COLUMNS, true contraband probability per row) for ``rows`` stops."""
    frame, truth, _ = generate_with_search_truth(rows, seed, world_seed, progress)
    return frame, truth


def generate_with_search_truth(rows: int, seed: int = 0, world_seed: int = DEFAULT_WORLD_SEED, progress=None):
    """Like ``generate``, plus each row's probability that a search finds contraband (searched or not)."""
    if rows < 1:
        raise ValueError("rows must be at least 1")
    say = progress or (lambda message: None)
    say(f"building world {world_seed} (departments, officers, fitted coefficients)")
    world = build_world(world_seed)
    rng = np.random.default_rng(seed)
    duplicates = int(round(cal.DUPLICATE_SHARE * rows)) if rows > 1 else 0
    unique = rows - duplicates
    say(f"sampling {unique:,} stops")
    f = sample_features(world, unique, rng)
    searched, sac, contraband, (truth, search_truth) = draw_outcomes(world, f, rng)
    say("formatting columns")
    columns = {
        "InterventionDateTime": _datetimes(f["day"], f["minute"]),
        "InterventionLocationName": _locations(world, f, rng),
        "InterventionReasonCode": np.array(cal.REASON[0], dtype=object)[f["reason"]],
        "ReportingOfficerIdentificationID": world.officer_ids[f["officer"]].astype(object),
        "ResidentIndicator": f["resident"],
        "SearchAuthorizationCode": np.array(cal.SAC_CODES, dtype=object)[sac],
        "StatuteReason": _statutes(f, rng),
        "SubjectAge": f["age"],
        "SubjectEthnicityCode": np.array(cal.ETHNICITY, dtype=object)[f["ethnicity"]],
        "SubjectRaceCode": np.array(cal.RACE[0], dtype=object)[f["race"]],
        "SubjectSexCode": np.array(cal.SEX[0], dtype=object)[f["sex"]],
        "TownResidentIndicator": f["town"],
        SEARCHED: searched,
        TARGET: contraband,
        "Department Name": np.array(world.departments, dtype=object)[f["dept"]],
    }
    _inject_mess(columns, rng)
    # Duplicates sit next to their original, as the multi-violation stops of the real file do ([D] pairs).
    order = np.sort(np.concatenate([np.arange(unique), rng.integers(0, unique, duplicates)]), kind="stable")
    frame = pd.DataFrame({name: columns[name][order] for name in TRAINING_COLUMNS})
    return frame, truth[order], search_truth[order]


def write(frame: pd.DataFrame, truth: np.ndarray, path, search_truth: np.ndarray | None = None) -> Path:
    """Write the CSV and its ``.truth.csv`` sidecar (with ``search_truth`` as a second column if given)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    sidecar = truth_path(path)
    columns = {TRUTH_COLUMN: truth}
    if search_truth is not None:
        columns[SEARCH_TRUTH_COLUMN] = search_truth
    pd.DataFrame(columns).to_csv(sidecar, index=False, float_format="%.6g")
    return sidecar


def summary(frame: pd.DataFrame, truth: np.ndarray) -> str:
    """Short calibration summary: search rate, hit rate, SAC shares among searched, duplicates, Bayes AUC."""
    from sklearn.metrics import roc_auc_score

    searched = frame[SEARCHED].to_numpy(bool)
    hits = frame[TARGET].to_numpy(bool)
    sac = frame.loc[searched, "SearchAuthorizationCode"].value_counts(normalize=True).sort_index()
    lines = [f"rows {len(frame):,}; search rate {searched.mean():.2%} (target 3.10%)",
             f"hit rate among searched {hits[searched].mean():.2%} (target 33.25%); "
             f"contraband among unsearched {hits[~searched].mean():.3%} (target 0.12%)",
             "SAC among searched: " + ", ".join(f"{k} {v:.1%}" for k, v in sac.items())
             + " (target C 35.3%, I 20.5%, N 4.3%, O 40.0%)",
             f"exact duplicate rows {frame.duplicated().mean():.2%} (target 8.28%)"]
    if 0 < hits[searched].sum() < searched.sum():
        lines.append(f"Bayes AUC among searched rows {roc_auc_score(hits[searched], truth[searched]):.3f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=cal.FULL_ROWS, help="rows to write (default: full size)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the row sample (default 0)")
    parser.add_argument("--world-seed", type=int, default=DEFAULT_WORLD_SEED,
                        help="seed of the fixed world: departments, officers, model (default %(default)s)")
    parser.add_argument("--out", required=True, help="CSV path to write; the truth goes to <out>.truth.csv")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    start = time.perf_counter()

    def say(message):
        print(f"[{time.perf_counter() - start:6.1f}s] {message}", file=sys.stderr, flush=True)

    frame, truth, search_truth = generate_with_search_truth(args.rows, args.seed, args.world_seed, progress=say)
    say(f"writing {args.out}")
    sidecar = write(frame, truth, args.out, search_truth)
    say(f"wrote {args.out} and {sidecar}")
    print(summary(frame, truth), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
