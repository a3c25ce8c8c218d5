"""Read a CTRP3 training CSV (the client's 15-column file, quirks and all) into searched, deduplicated rows.

Memory-aware: the file is read in chunks of text columns and only searched rows (~3% of the file) are kept,
so the 2.47M-row file never sits in memory whole.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipeline.schema import SEARCHED, TARGET, TRAINING_COLUMNS, clean_frame

DATETIME_FIELD = "InterventionDateTime"


@dataclass
class LoadedData:
    """Cleaned searched rows plus the row counts of each loading step."""

    frame: pd.DataFrame
    counts: dict = field(default_factory=dict)


def _progress(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def read_searched_raw(path: Path, chunksize: int = 500_000, quiet: bool = False) -> tuple[pd.DataFrame, dict]:
    """Return the raw (text) searched rows of a CTRP3 CSV and counts {rows_read, searched}."""
    header = pd.read_csv(path, nrows=0).columns
    missing = [c for c in TRAINING_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{path} lacks the CTRP3 columns {missing}; expected the 15 columns {list(TRAINING_COLUMNS)}")
    kept, rows_read = [], 0
    reader = pd.read_csv(path, usecols=list(TRAINING_COLUMNS), dtype=str, chunksize=chunksize)
    for chunk in reader:
        rows_read += len(chunk)
        searched = clean_frame_flag(chunk[SEARCHED])
        kept.append(chunk[searched])
        _progress(f"read {rows_read:,} rows, {sum(map(len, kept)):,} searched", quiet)
    if not rows_read:
        raise ValueError(f"{path} has no rows")
    raw = pd.concat(kept)[list(TRAINING_COLUMNS)]  # the index stays the row number in the file
    return raw, {"rows_read": rows_read, "searched": len(raw)}


def clean_frame_flag(column: pd.Series) -> pd.Series:
    """A True/False text column to a plain bool mask (missing counts as False)."""
    text = column.astype("string").str.strip().str.lower()
    return text.isin(["true", "1", "t", "yes", "y"]).fillna(False).astype(bool)


def load_training_data(path: Path, chunksize: int = 500_000, quiet: bool = False) -> LoadedData:
    """Searched rows only, exact duplicates dropped, normalised with ``clean_frame``, unusable rows dropped.

    The frame's index is each row's 0-based position among the file's data rows (to join per-row sidecars).
    Rows without a parseable date (needed for the time split) or without a contraband label are dropped and
    counted; every other missing value is kept for the model to handle.
    """
    raw, counts = read_searched_raw(Path(path), chunksize, quiet)
    raw = raw.drop_duplicates()
    counts["after_dedup"] = len(raw)
    _progress(f"{counts['searched'] - counts['after_dedup']:,} exact duplicate searched rows dropped", quiet)
    frame = clean_frame(raw)
    del raw
    usable = frame[DATETIME_FIELD].notna() & frame[TARGET].notna()
    counts["dropped_unusable"] = int((~usable).sum())
    frame = frame[usable]
    frame[TARGET] = frame[TARGET].astype(bool)
    counts["usable"] = len(frame)
    if counts["usable"] == 0:
        raise ValueError(f"{path} has no searched rows with a date and a ContrabandIndicator; nothing to train on")
    return LoadedData(frame=frame, counts=counts)
