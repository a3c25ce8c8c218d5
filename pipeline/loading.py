"""Read a CTRP3 CSV (the client's 15-column file, quirks and all) into searched, deduplicated, cleaned rows.

Memory-aware: the file is read in chunks of text columns and only searched rows (~3% of the file) are kept,
so the 2.47M-row file never sits in memory whole. Training, evaluation and the training benchmark all load
through here, so they see the same rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.progress import Progress
from pipeline.schema import SEARCHED, TARGET, TRAINING_COLUMNS, clean_frame

DATETIME_FIELD = "InterventionDateTime"
TRUTH_COLUMN = "_true_probability"  # the generator's per-row truth when loaded alongside; never a model input
TRUTH_NAMES = ("contraband_probability", "true_probability", "probability", "p_contraband")


@dataclass
class LoadedData:
    """Cleaned searched rows plus the row counts of each loading step."""

    frame: pd.DataFrame
    counts: dict = field(default_factory=dict)


def truth_path(path) -> Path:
    """Sidecar path of a generated CSV: ``x.csv`` -> ``x.truth.csv``."""
    path = Path(path)
    return path.with_name((path.name[:-4] if path.name.endswith(".csv") else path.name) + ".truth.csv")


def read_truth(path: Path, column: str | None = None) -> np.ndarray:
    """The true probability of every row of a data file, from a sidecar CSV (8 bytes a row)."""
    header = list(pd.read_csv(path, nrows=0).columns)
    if column is None:
        named = [c for c in TRUTH_NAMES if c in header]
        column = header[0] if len(header) == 1 else (named[0] if named else None)
    if column not in header:
        raise ValueError(f"--truth {path} has columns {header}; name the probability column with --truth-column")
    return pd.read_csv(path, usecols=[column], dtype={column: float})[column].to_numpy()


def clean_frame_flag(column: pd.Series) -> pd.Series:
    """A True/False text column to a plain bool mask (missing counts as False)."""
    text = column.astype("string").str.strip().str.lower()
    return text.isin(["true", "1", "t", "yes", "y"]).fillna(False).astype(bool)


def read_searched_raw(path: Path, chunksize: int = 500_000, progress=None,
                      truth: np.ndarray | None = None) -> tuple[pd.DataFrame, dict]:
    """Return the raw (text) searched rows of a CTRP3 CSV and counts {rows_read, searched}.

    The index stays each row's 0-based position in the file; ``truth`` (one value per file row) is attached as
    ``TRUTH_COLUMN`` and must have exactly as many rows as the file.
    """
    progress = progress or Progress(quiet=True)
    header = pd.read_csv(path, nrows=0).columns
    missing = [c for c in TRAINING_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{path} lacks the CTRP3 columns {missing}; expected the 15 columns {list(TRAINING_COLUMNS)}")
    kept, rows_read = [], 0
    with pd.read_csv(path, usecols=list(TRAINING_COLUMNS), dtype=str, chunksize=chunksize) as reader:
        for chunk in reader:
            rows_read += len(chunk)
            if truth is not None:
                if rows_read > len(truth):
                    break  # reported below
                chunk = chunk.assign(**{TRUTH_COLUMN: truth[rows_read - len(chunk):rows_read]})
            kept.append(chunk[clean_frame_flag(chunk[SEARCHED]).to_numpy()])
            progress(f"read {rows_read:,} rows, {sum(map(len, kept)):,} searched")
    if truth is not None and len(truth) != rows_read:
        raise ValueError(f"the truth file has {len(truth):,} rows but {path} has more or fewer; they must align "
                         "row by row (regenerate both with pipeline.synthetic)")
    if not rows_read:
        raise ValueError(f"{path} has no rows")
    raw = pd.concat(kept)
    return raw, {"rows_read": rows_read, "searched": len(raw)}


def load_training_data(path: Path, chunksize: int = 500_000, quiet: bool = False,
                       truth: np.ndarray | None = None, progress=None) -> LoadedData:
    """Searched rows only, exact duplicates dropped, normalised with ``clean_frame``, unusable rows dropped.

    The frame's index is each row's 0-based position among the file's data rows. Rows without a parseable date
    (needed for the time split) or without a contraband label are dropped and counted; every other missing
    value is kept for the model to handle. With ``truth``, the frame also carries ``TRUTH_COLUMN``.
    """
    progress = progress or Progress(quiet)
    raw, counts = read_searched_raw(Path(path), chunksize, progress, truth)
    raw = raw.drop_duplicates(subset=list(TRAINING_COLUMNS))
    counts["after_dedup"] = len(raw)
    progress(f"{counts['searched'] - counts['after_dedup']:,} exact duplicate searched rows dropped")
    frame = clean_frame(raw[list(TRAINING_COLUMNS)])
    if truth is not None:
        frame[TRUTH_COLUMN] = raw[TRUTH_COLUMN].to_numpy()
    del raw
    usable = frame[DATETIME_FIELD].notna() & frame[TARGET].notna()
    counts["dropped_unusable"] = int((~usable).sum())
    frame = frame[usable]
    frame[TARGET] = frame[TARGET].astype(bool)
    counts["usable"] = len(frame)
    if counts["usable"] == 0:
        raise ValueError(f"{path} has no searched, labelled rows with a date; nothing to use")
    return LoadedData(frame=frame, counts=counts)
