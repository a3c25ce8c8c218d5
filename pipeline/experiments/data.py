"""The rows every variant shares: searched rows split by time, and the unsearched stops of the held-out period."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.evaluation.metrics import roc_auc
from pipeline.loading import DATETIME_FIELD, TRUTH_COLUMN, clean_frame_flag, load_training_data, read_truth
from pipeline.schema import SEARCHED, TARGET, TRAINING_COLUMNS, clean_frame
from pipeline.training.selection import drift_margin, time_split

SEARCH_TRUTH = "search_hit_probability"
TRUTH = "contraband_probability"


@dataclass
class SharedRows:
    """Train / validation / test searched rows, the unsearched held-out stops, and figures about them."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    unsearched: pd.DataFrame | None  # held-out period, with SEARCH_TRUTH; None without the generator's truth
    counts: dict
    margin: dict
    bayes_auc: float | None
    dry_run: pd.DataFrame | None = None  # the real production requests with SAC set to N (filled by the runner)


def _truth_columns(path: Path | None) -> list[str]:
    return list(pd.read_csv(path, nrows=0).columns) if path is not None and path.is_file() else []


def read_unsearched(data: Path, truth: Path, since, chunksize: int, max_rows: int | None, seed: int,
                    progress) -> pd.DataFrame:
    """Unsearched stops dated ``since`` or later, exact duplicates dropped, with each one's true chance that a
    search would find contraband (the sidecar's ``search_hit_probability``); a seeded sample if ``max_rows``."""
    search_truth = read_truth(truth, SEARCH_TRUTH)
    kept, read = [], 0
    with pd.read_csv(data, usecols=list(TRAINING_COLUMNS), dtype=str, chunksize=chunksize) as reader:
        for chunk in reader:
            chunk = chunk.assign(**{SEARCH_TRUTH: search_truth[read:read + len(chunk)]})
            read += len(chunk)
            chunk = chunk[~clean_frame_flag(chunk[SEARCHED]).to_numpy()]
            stamps = pd.to_datetime(chunk[DATETIME_FIELD], format="%m/%d/%Y %I:%M:%S %p", errors="coerce")
            kept.append(chunk[(stamps >= since).to_numpy()])
            progress(f"read {read:,} rows for unsearched held-out stops, {sum(map(len, kept)):,} kept")
    raw = pd.concat(kept).drop_duplicates(subset=list(TRAINING_COLUMNS))
    if max_rows and len(raw) > max_rows:
        raw = raw.sample(n=max_rows, random_state=seed)
    frame = clean_frame(raw[list(TRAINING_COLUMNS)])
    frame[SEARCH_TRUTH] = raw[SEARCH_TRUTH].to_numpy()
    return frame.reset_index(drop=True)


def load_shared_rows(args, progress) -> SharedRows:
    """Everything the comparison needs from --data (and its truth sidecar when there is one)."""
    columns = _truth_columns(args.truth)
    truth = read_truth(args.truth, TRUTH if TRUTH in columns else None) if columns else None
    loaded = load_training_data(args.data, args.chunksize, truth=truth, progress=progress)
    frame = loaded.frame
    split = time_split(frame[DATETIME_FIELD], args.validation, args.test)
    train, validation, test = (frame.iloc[rows].reset_index(drop=True)
                               for rows in (split.train, split.validation, split.test))
    progress(f"{len(train):,} train / {len(validation):,} validation / {len(test):,} test searched rows")
    margin = drift_margin(train[TARGET].to_numpy(), len(validation), args.min_precision)
    bayes = roc_auc(test[TARGET].to_numpy(bool), test[TRUTH_COLUMN].to_numpy()) if truth is not None else None
    unsearched = None
    if SEARCH_TRUTH in columns:
        since = test[DATETIME_FIELD].min()
        unsearched = read_unsearched(args.data, args.truth, since, args.chunksize, args.max_unsearched, args.seed,
                                     progress)
        progress(f"{len(unsearched):,} unsearched stops since {since:%Y-%m-%d} (the held-out period)")
    elif columns:
        progress(f"{args.truth} has no {SEARCH_TRUTH} column (regenerate with pipeline.synthetic): the every-stop "
                 "figures are left out")
    counts = dict(loaded.counts, train=len(train), validation=len(validation), test=len(test),
                  unsearched_held_out=None if unsearched is None else len(unsearched),
                  test_dates=[str(test[DATETIME_FIELD].min()), str(test[DATETIME_FIELD].max())])
    return SharedRows(train, validation, test, unsearched, counts, margin, bayes)


def drop_truth(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows without the generator's truth columns (never model inputs)."""
    return frame.drop(columns=[c for c in (TRUTH_COLUMN, SEARCH_TRUTH) if c in frame])

