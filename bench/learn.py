"""Benchmark: learning from the log (issue 10).

    .venv/bin/python -m bench.learn stream [--world-seed 7]   # ~10 min: retrain after 100 ... 30,000 outcomes
    .venv/bin/python -m bench.learn choices                   # ~3 min: shrinkage vs one-hot, the officer
    .venv/bin/python -m bench.learn big [--rows 1000000]      # ~5 min: retrain from a 1M-row Postgres log

``stream``: a generated world other than the shipped model's (another ``--world-seed``: real data differs from
any generator). Its searched stops, in time order, are sent through the real code (``schema.validate_observation``,
``service.predictions.decide`` with the shipped model, ``record_outcome``) into a throwaway SQLite log; after 100,
300, 1,000, 3,000, 10,000 and 30,000 outcomes the real command ``python -m pipeline.train --from-log`` retrains
(a child process), and the candidate is scored on the following ``--eval`` outcomes beside the shipped model,
the generator's Bayes AUC (its true probabilities) and the same model family fitted on a full-size file of that
world (2,473,643 rows, searched rows only). Precision and recall are at each model's own threshold.
Target: by 10,000 outcomes within 0.01 AUC of the full-size model.

``big``: a Postgres log of ``--rows`` labelled predictions filled with COPY (not through HTTP): the searched rows of
a full-size file of the world, resampled with jittered stop times so no two collapse as duplicates; then the
retraining command as a child process, its wall time and peak RSS (os.wait4). Targets: < 5 min, < 4 GiB.
The machine is shared: the load average is printed beside every timing.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from migrations import apply_migrations  # noqa: E402
from models import close_pool, database, database_from_url  # noqa: E402
from pipeline.evaluation.metrics import roc_auc  # noqa: E402
from pipeline.evaluation.summary import quality  # noqa: E402
from pipeline.schema import SEARCHED, TARGET, ValidationError, age_group, clean_frame, validate_observation  # noqa
from pipeline.scoring.artifact import DEFAULT_ARTIFACT_DIR, load_artifact  # noqa: E402
from pipeline.synthetic.generate import generate  # noqa: E402
from pipeline.training.log_model import build_log_model  # noqa: E402
from service.predictions import decide, record_outcome  # noqa: E402

STEPS = (100, 300, 1_000, 3_000, 10_000, 30_000)
FULL_ROWS = 2_473_643
BOOL_COLUMNS = ("ResidentIndicator", "TownResidentIndicator")


def say(message: str) -> None:
    """Progress on stderr with the load average."""
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}] {message}", file=sys.stderr, flush=True)


def searched_stream(rows: int, seed: int, world_seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """A generated file's searched rows with a label, oldest stop first, and their true probabilities."""
    frame, truth = generate(rows, seed, world_seed)
    searched = frame[SEARCHED].astype(str).str.strip().str.lower().eq("true").to_numpy()
    frame, truth = frame[searched].reset_index(drop=True), truth[searched]
    labelled = frame[TARGET].notna().to_numpy()
    frame, truth = frame[labelled].reset_index(drop=True), truth[labelled]
    stamps = pd.to_datetime(frame["InterventionDateTime"], format="%m/%d/%Y %I:%M:%S %p")
    order = np.argsort(stamps.to_numpy(), kind="stable")
    return frame.iloc[order].reset_index(drop=True), truth[order]


def _raw(row: dict) -> dict:
    """A generated CSV row as the JSON an officer's app would send (numbers and booleans typed)."""
    raw = {}
    for name, value in row.items():
        if name in (SEARCHED, TARGET):
            continue
        missing = value is None or (isinstance(value, float) and value != value)
        if missing:
            raw[name] = None
        elif name in BOOL_COLUMNS:
            raw[name] = str(value).strip().lower() == "true"
        elif name == "SubjectAge":
            raw[name] = float(value)
        else:
            raw[name] = str(value)
    return raw


def observations(frame: pd.DataFrame) -> list[tuple[dict, dict, bool] | None]:
    """(raw, validated record, label) per row; None where the service would refuse the observation (a 400)."""
    out = []
    for row in frame.to_dict("records"):
        raw = _raw(row)
        try:
            out.append((raw, validate_observation(raw), str(row[TARGET]).strip().lower() == "true"))
        except ValidationError:
            out.append(None)
    return out


def log_requests(items, start: int, stop: int, model) -> None:
    """Send rows start..stop through decide() and record_outcome(), as the service would log them."""
    for i in range(start, stop):
        if items[i] is None:
            continue
        raw, record, label = items[i]
        decide(f"stream-{i}", raw, record, model)
        record_outcome(f"stream-{i}", label)


def retrain(url: str, out: Path, extra=()) -> tuple[str, float]:
    """Run the real command in a child; (version, wall seconds)."""
    command = [sys.executable, "-m", "pipeline.train", "--from-log", "--database-url", url, "--out", str(out),
               "--live-model", str(DEFAULT_ARTIFACT_DIR), "--quiet", *extra]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"retraining failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result.stdout.strip().splitlines()[-1], time.perf_counter() - started


def _figures(truth_labels, scores, threshold) -> dict:
    measured = quality(truth_labels, scores, threshold)
    return {"auc": measured["auc"], "precision": measured["precision"]["value"],
            "recall": measured["recall"]["value"]}


def full_size_model(world_seed: int, seed: int):
    """The log model's family fitted on every searched row of a full-size file of the world."""
    frame, _ = searched_stream(FULL_ROWS, seed, world_seed)
    clean = clean_frame(frame)
    clean = clean[clean["InterventionDateTime"].notna()]
    clean = clean[~frame.loc[clean.index].duplicated()]
    say(f"fitting the full-size model on {len(clean):,} searched rows")
    return build_log_model().fit(clean, clean[TARGET].to_numpy(dtype=bool))


def run_stream(args) -> list[dict]:
    """The learning curve; returns one result row per step."""
    say(f"generating the stream of world {args.world_seed}")
    frame, truth = searched_stream(args.stream_rows, args.seed + 1, args.world_seed)
    needed = max(args.steps) + args.eval
    if len(frame) < needed:
        raise SystemExit(f"the stream has {len(frame):,} searched rows; {needed:,} needed: raise --stream-rows")
    items = observations(frame)
    eval_frames = clean_frame(frame)
    full = full_size_model(args.world_seed, args.seed + 2)
    shipped = load_artifact(DEFAULT_ARTIFACT_DIR)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/log.sqlite3"
        db = database_from_url(url)
        database.initialize(db)
        apply_migrations(db)
        done = 0
        for step in args.steps:
            say(f"logging requests and outcomes {done:,}..{step:,}")
            log_requests(items, done, step, shipped)
            done = step
            db.close()
            version, seconds = retrain(url, Path(tmp) / f"model-{step}", ("--min-outcomes", "50"))
            candidate = load_artifact(Path(tmp) / f"model-{step}")
            following = slice(step, step + args.eval)
            rows = eval_frames.iloc[following]
            keep = rows[TARGET].notna().to_numpy()
            rows, bayes = rows[keep], truth[following][keep]
            labels = rows[TARGET].to_numpy(dtype=bool)
            row = {"outcomes": step, "retrain_s": seconds, "version": version,
                   "verdict": candidate.card["comparison"]["verdict"],
                   "candidate": _figures(labels, candidate.pipeline.predict_proba(rows)[:, 1], candidate.threshold),
                   "shipped": _figures(labels, shipped.pipeline.predict_proba(rows)[:, 1], shipped.threshold),
                   "full_size_auc": roc_auc(labels, full.predict_proba(rows)[:, 1]),
                   "bayes_auc": roc_auc(labels, bayes), "evaluated": int(len(rows))}
            results.append(row)
            say(json.dumps(row))
        close_pool(db)
    return results


def print_stream(results: list[dict], args) -> None:
    """The learning-curve table on stdout."""
    print(f"world seed {args.world_seed}; evaluated on the {args.eval:,} outcomes after each step; "
          f"P/R at each model's own threshold; load average {os.getloadavg()[0]:.1f} at the end")
    print(f"{'outcomes':>9} {'cand AUC':>9} {'P':>6} {'R':>6} {'shipped AUC':>12} {'P':>6} {'R':>6} "
          f"{'full-size':>10} {'Bayes':>7} {'verdict':>8} {'retrain s':>9}")
    for r in results:
        c, s = r["candidate"], r["shipped"]
        print(f"{r['outcomes']:>9,} {c['auc']:>9.4f} {c['precision'] or 0:>6.3f} {c['recall'] or 0:>6.3f} "
              f"{s['auc']:>12.4f} {s['precision'] or 0:>6.3f} {s['recall'] or 0:>6.3f} {r['full_size_auc']:>10.4f} "
              f"{r['bayes_auc']:>7.4f} {str(r['verdict']):>8} {r['retrain_s']:>9.1f}")


def _big_rows(rows: int, world_seed: int, seed: int) -> pd.DataFrame:
    """``rows`` labelled prediction rows: a full-size file's searched rows resampled, stop times jittered by up
    to 30 days and digests made distinct, so duplicates do not collapse the log to the file's ~70,000 rows."""
    frame, _ = searched_stream(FULL_ROWS, seed, world_seed)
    clean = clean_frame(frame)
    required = ["Department Name", "InterventionDateTime", "InterventionReasonCode", "SearchAuthorizationCode",
                "SubjectRaceCode", "SubjectEthnicityCode", "SubjectSexCode", "SubjectAge", *BOOL_COLUMNS, TARGET]
    clean = clean.dropna(subset=required).reset_index(drop=True)
    shipped = load_artifact(DEFAULT_ARTIFACT_DIR)
    probability = shipped.pipeline.predict_proba(clean)[:, 1]
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(clean), rows)
    base = clean.iloc[pick].reset_index(drop=True)
    jitter = pd.to_timedelta(rng.integers(-30 * 1440, 30 * 1440, rows), unit="min")
    stamps = (base["InterventionDateTime"] + jitter).dt.strftime("%Y-%m-%d %H:%M:%S")
    now = pd.Timestamp.now(tz="UTC").tz_localize(None).strftime("%Y-%m-%d %H:%M:%S")
    text = lambda name: base[name].astype(object)  # noqa: E731 (categories to plain values, NaN -> empty)
    return pd.DataFrame({
        "observation_id": [f"big-{i}" for i in range(rows)], "observation": "{}",
        "observation_digest": [uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | i).hex * 2 for i in range(rows)],
        "department": text("Department Name"), "location": text("InterventionLocationName"),
        "intervention_at": stamps, "intervention_reason_code": text("InterventionReasonCode"),
        "statute_reason": text("StatuteReason"), "officer_id": text("ReportingOfficerIdentificationID"),
        "resident": base["ResidentIndicator"].astype(bool), "town_resident": base["TownResidentIndicator"].astype(bool),
        "search_authorization_code": text("SearchAuthorizationCode"), "subject_race": text("SubjectRaceCode"),
        "subject_ethnicity": text("SubjectEthnicityCode"), "subject_sex": text("SubjectSexCode"),
        "subject_age": base["SubjectAge"].astype(int),
        "subject_age_group": [age_group(a) for a in base["SubjectAge"].astype(int)],
        "probability": probability[pick], "should_search": probability[pick] >= shipped.threshold,
        "threshold": shipped.threshold, "model_version": shipped.version, "received_at": now,
        "contraband_found": base[TARGET].astype(bool), "outcome_at": now})


def _copy(connection, table: str, frame: pd.DataFrame) -> None:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=False)
    buffer.seek(0)
    columns = ", ".join(f'"{c}"' for c in frame.columns)
    connection.cursor().copy_expert(f'COPY "{table}" ({columns}) FROM STDIN WITH (FORMAT csv)', buffer)


def run_big(args) -> dict:
    """Fill a throwaway Postgres log by COPY, retrain from it in a child; wall time and peak RSS."""
    import psycopg2

    name = f"learn_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(args.postgres_url)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    url = args.postgres_url.rsplit("/", 1)[0] + "/" + name
    try:
        db = database_from_url(url)
        database.initialize(db)
        apply_migrations(db)
        db.close()
        say(f"building {args.rows:,} rows")
        rows = _big_rows(args.rows, args.world_seed, args.seed)
        say("COPY into prediction and outcome")
        started = time.perf_counter()
        connection = psycopg2.connect(url)
        with connection:
            for start in range(0, len(rows), 200_000):
                _copy(connection, "prediction", rows.iloc[start:start + 200_000])
            outcomes = pd.DataFrame({"prediction_id": np.arange(1, len(rows) + 1),
                                     "contraband_found": rows["contraband_found"], "is_correction": False,
                                     "received_at": rows["received_at"]})
            _copy(connection, "outcome", outcomes)
        connection.cursor().execute("ANALYZE")
        connection.close()
        copy_s = time.perf_counter() - started
        del rows, outcomes
        say(f"filled in {copy_s:.0f} s; retraining")
        with tempfile.TemporaryDirectory() as tmp:
            command = [sys.executable, "-m", "pipeline.train", "--from-log", "--database-url", url, "--out",
                       f"{tmp}/model", "--live-model", str(DEFAULT_ARTIFACT_DIR)]
            load_before = os.getloadavg()[0]
            started = time.perf_counter()
            process = subprocess.Popen(command, cwd=ROOT)
            _, status, usage = os.wait4(process.pid, 0)
            seconds = time.perf_counter() - started
            if os.waitstatus_to_exitcode(status):
                raise SystemExit("retraining failed")
            card = json.loads(Path(f"{tmp}/model/model_card.json").read_text())
        result = {"rows": args.rows, "copy_s": copy_s, "retrain_s": seconds, "peak_rss_gib": usage.ru_maxrss / 2**20,
                  "load_before": load_before, "load_after": os.getloadavg()[0],
                  "held_out_auc": card["comparison"]["candidate"]["auc"], "verdict": card["comparison"]["verdict"]}
        print(json.dumps(result, indent=2))
        return result
    finally:
        close_pool(database.obj) if database.obj is not None else None
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def run_choices(args) -> None:
    """The design choices, in-process on the stream: fit on the first n outcomes, AUC on the next ``--eval``."""
    from pipeline.training.selection import build_model

    frame, _ = searched_stream(args.stream_rows, args.seed + 1, args.world_seed)
    clean = clean_frame(frame)
    keep = (clean[TARGET].notna() & clean["InterventionDateTime"].notna()).to_numpy() & ~frame.duplicated().to_numpy()
    clean = clean[keep].reset_index(drop=True)
    shipped = load_artifact(DEFAULT_ARTIFACT_DIR)
    variants = {"one-hot logreg (shipped family)": lambda: build_model("logistic_regression"),
                "shrinkage (default)": build_log_model,
                "shrinkage + officer": lambda: build_log_model(include_officer=True)}
    print(f"world seed {args.world_seed}; AUC on the {args.eval:,} outcomes after the first n; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'n':>7} {'shipped':>8} " + " ".join(f"{name:>32}" for name in variants))
    for n in args.steps:
        fit_rows, following = clean.iloc[:n], clean.iloc[n:n + args.eval]
        labels = following[TARGET].to_numpy(dtype=bool)
        aucs = [roc_auc(labels, shipped.pipeline.predict_proba(following)[:, 1])]
        for make in variants.values():
            model = make().fit(fit_rows, fit_rows[TARGET].to_numpy(dtype=bool))
            aucs.append(roc_auc(labels, model.predict_proba(following)[:, 1]))
        print(f"{n:>7,} {aucs[0]:>8.4f} " + " ".join(f"{auc:>32.4f}" for auc in aucs[1:]), flush=True)


def main(argv=None) -> int:
    """Command line of the benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench.learn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    stream = sub.add_parser("stream", help="the learning curve from a logged stream")
    stream.add_argument("--steps", type=int, nargs="+", default=list(STEPS))
    stream.add_argument("--eval", type=int, default=5_000, help="following outcomes scored after each step")
    stream.add_argument("--stream-rows", type=int, default=1_600_000, help="generated rows (about 3%% searched)")
    choices = sub.add_parser("choices", help="shrinkage against one-hot coding and the officer's effect")
    choices.add_argument("--steps", type=int, nargs="+", default=[300, 1_000, 3_000, 10_000, 25_000])
    choices.add_argument("--eval", type=int, default=5_000)
    choices.add_argument("--stream-rows", type=int, default=1_200_000)
    big = sub.add_parser("big", help="retraining from a 1M-row Postgres log")
    big.add_argument("--rows", type=int, default=1_000_000)
    big.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    for command in (stream, choices, big):
        command.add_argument("--world-seed", type=int, default=7, help="the stream's world (shipped: 20180516)")
        command.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "stream":
        print_stream(run_stream(args), args)
    elif args.command == "choices":
        run_choices(args)
    else:
        run_big(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
