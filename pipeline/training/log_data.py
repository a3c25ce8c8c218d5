"""The service's log as training rows: every logged prediction with a current outcome, as a stop record plus label.

The current outcome is ``prediction.contraband_found``, which ``service.predictions.record_outcome`` keeps equal to
the newest ``outcome`` row in the same transaction, so a correction replaces the label it corrects. Rows are read
in chunks (``streaming_cursor``: server-side on Postgres) and kept as compact columns
(categories, float32, booleans), so a log of millions of rows fits the memory target. Duplicate observations
collapse as the training file's do (``pipeline.loading``): the same normalised stop record with the same label
counts once; ``observation_digest`` is the sha256 of the normalised record, so it is the identity used.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from models import STOP_COLUMNS, Prediction
from pipeline.loading import LoadedData
from pipeline.progress import Progress
from pipeline.schema import FIELD_BY_NAME, OBSERVATION_FIELDS, TARGET

DIGEST_KEY = "_digest_key"  # the first 64 bits of observation_digest, enough to tell 10^9 records apart
CHUNK_ROWS = 50_000


class LogError(RuntimeError):
    """The database cannot be read as a prediction log (no table, not migrated)."""


def _select_sql(db) -> tuple[str, list]:
    """SELECT of the stop columns, the digest and the label of every prediction with an outcome, oldest first."""
    columns = [STOP_COLUMNS[name] for name in OBSERVATION_FIELDS]
    query = (Prediction.select(*columns, Prediction.observation_digest, Prediction.contraband_found)
             .where(Prediction.contraband_found.is_null(False)).order_by(Prediction.id))
    return db.get_sql_context().sql(query).query()


def _chunk_frame(rows: list[tuple]) -> pd.DataFrame:
    """One fetched chunk as compact columns with ``schema.clean_frame``'s dtypes, the digest key and the label."""
    names = list(OBSERVATION_FIELDS) + ["_digest", TARGET]
    raw = pd.DataFrame.from_records(rows, columns=names)
    out = pd.DataFrame(index=raw.index)
    for name in OBSERVATION_FIELDS:
        kind = FIELD_BY_NAME[name].kind
        column = raw[name]
        if kind == "bool":
            out[name] = column.astype("boolean")
        elif kind == "age":
            out[name] = pd.to_numeric(column).astype("float32")
        elif kind == "datetime":
            out[name] = pd.to_datetime(column, format="ISO8601").astype("datetime64[us]")
        else:
            out[name] = column.astype("category")
    out[DIGEST_KEY] = np.array([int(digest[:16], 16) for digest in raw["_digest"]], dtype=np.uint64)
    out[TARGET] = raw[TARGET].astype(bool)
    return out


def _concat(chunks: list[pd.DataFrame]) -> pd.DataFrame:
    if not chunks:
        empty = _chunk_frame([])
        return empty
    frame = pd.concat(chunks, ignore_index=True)  # categories differing between chunks become object: recode
    for name in OBSERVATION_FIELDS:
        if FIELD_BY_NAME[name].kind in ("code", "text", "officer") and frame[name].dtype == object:
            frame[name] = frame[name].astype("category")
    return frame


def read_log(db, chunk_rows: int = CHUNK_ROWS, progress=None) -> LoadedData:
    """Labelled predictions of the log as a clean frame (stop fields + ``TARGET``), duplicates collapsed.

    Counts: ``labelled`` (predictions with a current outcome), ``after_dedup``, ``usable`` (the rows returned).
    """
    progress = progress or Progress(quiet=True)
    if not db.table_exists(Prediction._meta.table_name):
        raise LogError("the database has no prediction table: it is not the service's log (or is not migrated; "
                       "run `python -m migrations`)")
    sql, params = _select_sql(db)
    chunks, read = [], 0
    with db.streaming_cursor(chunk_rows) as cursor:
        cursor.execute(sql, params)
        while True:
            rows = cursor.fetchmany(chunk_rows)
            if not rows:
                break
            chunks.append(_chunk_frame(rows))
            read += len(rows)
            progress(f"read {read:,} labelled predictions from the log")
    frame = _concat(chunks)
    counts = {"labelled": len(frame)}
    frame = frame[~frame.duplicated([DIGEST_KEY, TARGET])].drop(columns=DIGEST_KEY).reset_index(drop=True)
    counts["after_dedup"] = counts["usable"] = len(frame)
    progress(f"{counts['labelled'] - counts['after_dedup']:,} duplicate observations collapsed; "
             f"{counts['usable']:,} training rows from the log")
    return LoadedData(frame=frame, counts=counts)
