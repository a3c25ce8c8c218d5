"""The result files of bench/speed.py: machine facts, the JSON written per run, the summary tables, the deltas."""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from bench.servers import ROOT

RESULTS_DIR = ROOT / "bench" / "results"
PACKAGES = ("flask", "werkzeug", "gunicorn", "peewee", "psycopg2-binary", "scikit-learn", "numpy", "pandas")
# The targets (issue 6, tightened by issue 15 with keys, request log, metrics, shadow and reasons all on),
# so every summary says pass or miss beside the figure.
TARGET_RATIO = 0.30  # at 1 connection
TARGET_RATIO_BY_CONNECTIONS = {"1": 0.30, "8": 0.35}
TARGET_P50_MS_1 = 2.0
TARGET_P99_MS_8 = 15.0
TARGET_HIGH_OF_8 = 0.90  # req/s at 64 (and more) connections, as a share of that at 8, with no error and no 5xx
TARGET_MODEL_US = 50.0
TARGET_REASONS_US = 20.0  # issue 12: the reasons of one decision on the fast path


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        return out.rstrip("\n")  # not strip(): a porcelain line starts with a space
    except (OSError, subprocess.CalledProcessError):
        return ""


def _wrk_version() -> str | None:
    if not shutil.which("wrk"):
        return None
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    return (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else None


def machine_facts() -> dict:
    """Where and on what code the run happened: commit, dirty files, CPUs, load, versions."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {"utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "git_commit": _git("rev-parse", "HEAD"),
            "git_dirty_files": [line[3:] for line in _git("status", "--porcelain", "--untracked-files=no")
                                .splitlines()],
            "nproc": os.cpu_count(), "cpu": _cpu_model(), "platform": platform.platform(),
            "python": platform.python_version(), "packages": versions, "wrk": _wrk_version(),
            "load_average_before": os.getloadavg()}


def _cpu_model() -> str | None:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)


def write_result(result: dict, kind: str, out_dir: Path = RESULTS_DIR) -> Path:
    """Write bench/results/<kind>-<UTC>.json and return its path."""
    result["machine"]["load_average_after"] = os.getloadavg()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{kind}-{result['machine']['utc'].replace(':', '').replace('-', '')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def run_header(result: dict, gunicorn_text: str) -> list[str]:
    """The summary's first lines: when, on what commit and machine, under which settings and load."""
    m, load = result["machine"], result["load"]
    return [f"{m['utc']} commit {m['git_commit'][:10]}{' (+ uncommitted changes)' if m['git_dirty_files'] else ''}, "
            f"{m['nproc']} CPUs, load average before {m['load_average_before'][0]:.2f}",
            f"{gunicorn_text}; client {load['client']}, {load['rounds']} rounds x {load['seconds']:g} s, "
            f"{'Connection: close, ' if load['close'] else ''}API key {'sent' if load['api_key'] else 'none'}"
            f"{'' if load.get('shadow') is None else ', shadow version ' + ('on' if load['shadow'] else 'off')}"
            f"{', DIAGNOSTIC synchronous_commit=off for the servers' if load.get('synchronous_commit_off') else ''}"]


MARK_LEGEND = ("meets / MISSES: whether the figure reaches the service's performance target (issue 6) on this "
               "machine as it is now; a MISSES on a busy machine (its load average is in the result file) is not a "
               "regression until a quiet run repeats it: compare runs with `python -m bench.speed compare`")


def _mark(ok: bool) -> str:
    return "meets" if ok else "MISSES"


APPS = (("minimal", "minimal Flask JSON endpoint"), ("floor", "floor: minimal + the insert"),
        ("service", "/should_search (Postgres)"))


def _floor_note(floor_meets: bool) -> str:
    """What the floor's own figure says about a target: a target the floor misses is out of the service's reach."""
    return ("" if floor_meets else "  (the floor MISSES the target too: out of reach of any cut in the service's "
                                    "own work on this machine)")


def _floor_figure(pair: dict, figure: str, limit: float) -> str:
    if "floor" not in pair:
        return ""
    value = pair["floor"][figure]
    return f"; floor {value:.2f} ms" + _floor_note(value <= limit)


def http_table(e2e: dict) -> list[str]:
    """Req/s, p50, p99 of the median round per app and connection count, the ratio, and the targets."""
    lines = [f"{'':<30}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-200':>9}{'errors':>8}"
             f"{'spread':>8}{'CPU µs':>8}"]
    for conns, pair in e2e["by_connections"].items():
        for key, name in APPS:
            if key not in pair:
                continue
            r = pair[key]
            lines.append(f"{name:<30}{conns:>6}{r['rps']:>10.1f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
                         f"{r['other_statuses']:>9}{r['socket_errors']:>8}{r['rps_spread']:>8.0%}"
                         f"{r.get('worker_cpu_us_median') or 0:>8.0f}")
        target = TARGET_RATIO_BY_CONNECTIONS.get(conns)
        lines.append(f"{'  ratio service/minimal':<36}{pair['ratio']:>10.1%}" + (
            f"  (target >= {target:.0%}: {_mark(pair['ratio'] >= target)})" if target else ""))
        if "floor_ratio" in pair:
            lines.append(f"{'  ratio floor/minimal':<36}{pair['floor_ratio']:>10.1%}"
                         + (_floor_note(pair["floor_ratio"] >= target) if target else ""))
    by = e2e["by_connections"]
    if "1" in by:
        p50 = by["1"]["service"]["p50_ms"]
        lines.append(f"service p50 at 1 connection: {p50:.2f} ms (target <= {TARGET_P50_MS_1:g} ms: "
                     f"{_mark(p50 <= TARGET_P50_MS_1)})" + _floor_figure(by["1"], "p50_ms", TARGET_P50_MS_1))
    if "8" in by:
        p99 = by["8"]["service"]["p99_ms"]
        lines.append(f"service p99 at 8 connections: {p99:.2f} ms (target <= {TARGET_P99_MS_8:g} ms: "
                     f"{_mark(p99 <= TARGET_P99_MS_8)})" + _floor_figure(by["8"], "p99_ms", TARGET_P99_MS_8))
    for conns in (c for c in by if int(c) >= 64 and "8" in by):
        s = by[conns]["service"]
        share = s["rps"] / by["8"]["service"]["rps"]
        clean = s["socket_errors"] == 0 and s["other_statuses"] == 0
        lines.append(f"service at {conns} connections: {share:.0%} of the req/s at 8, {s['other_statuses']} non-200, "
                     f"{s['socket_errors']} errors (target >= {TARGET_HIGH_OF_8:.0%}, none: "
                     f"{_mark(share >= TARGET_HIGH_OF_8 and clean)})")
    lines.append("spread = (max - min) / median req/s over the rounds; the row shows the median round; CPU µs = the "
                 "gunicorn workers' user+system CPU per response, median over the rounds (Postgres's not included)")
    if any("floor" in pair for pair in by.values()):
        lines.append("floor = the minimal app plus the service's one committed insert and nothing else "
                     "(bench/service_floor_app.py): the best /should_search could do here if all its other work "
                     "cost nothing")
    lines.append(MARK_LEGEND)
    return lines


def micro_table(model: dict | None, insert: dict | None) -> list[str]:
    """The model step and the insert, µs each."""
    lines = []
    if model:
        fast, slow = model["fast_path"]["us_per_record_median"], model["sklearn_path"]["us_per_record_median"]
        lines += [f"model step ({model['model_version']}), µs per record, median pass over the 223 dry-run records:",
                  f"  predict_one (fast path)           {fast:>10.1f}   (target <= {TARGET_MODEL_US:g} µs: "
                  f"{_mark(fast <= TARGET_MODEL_US)})",
                  f"  predict_proba([record]) (sklearn) {slow:>10.1f}   ({model['speedup']:.0f}x; largest "
                  f"|difference| {model['max_abs_difference']:.1e})"]
        if model.get("reasons"):
            reasons = model["reasons"]["us_per_record_median"]
            lines.append(f"  reasons (fast path)               {reasons:>10.1f}   (target <= {TARGET_REASONS_US:g} µs: "
                         f"{_mark(reasons <= TARGET_REASONS_US)})")
    if insert:
        pg = insert["postgres"]
        lines.append(f"insert, µs per committed insert on Postgres {pg['server_version'].split()[0]} "
                     f"(synchronous_commit={pg['synchronous_commit']}, fsync={pg['fsync']}), wall clock and this "
                     f"process's CPU:")
        lines.append(f"{'':<81}{'median':>9}{'mean':>9}{'p99':>9}{'CPU':>9}")
        for key, name in (("service", insert["write_function"]),
                          ("peewee", "peewee: BEGIN; Prediction.insert(...); COMMIT"),
                          ("psycopg2", "psycopg2: one autocommit INSERT (the floor)")):
            r = insert[key]
            lines.append(f"  {name:<79}{r['us_median']:>9.0f}{r['us_mean']:>9.0f}{r['us_p99']:>9.0f}"
                         f"{r['client_cpu_us_median']:>9.0f}")
        for name, r in (insert.get("write_timing_variants") or {}).items():
            cpu = r.get("client_cpu_us_median")
            lines.append(f"  {'bench.insert_timing: ' + name:<79}{r['us_median']:>9.0f}{r['us_mean']:>9.0f}"
                         f"{'-':>9}{cpu if cpu is None else round(cpu):>9}")
    return lines


def study_table(study: dict) -> list[str]:
    """One line per gunicorn setting: service and minimal at the study's connection count, and the ratio."""
    lines = [f"{'setting':<18}{'service req/s':>14}{'p50 ms':>8}{'p99 ms':>8}{'minimal req/s':>15}{'p99 ms':>8}"
             f"{'ratio':>8}{'spread':>8}"]
    for label, row in study["settings"].items():
        s, m = row["service"], row.get("minimal")
        minimal = f"{m['rps']:>15.1f}{m['p99_ms']:>8.2f}{row['ratio']:>8.1%}" if m else f"{'-':>15}{'-':>8}{'-':>8}"
        lines.append(f"{label:<18}{s['rps']:>14.1f}{s['p50_ms']:>8.2f}{s['p99_ms']:>8.2f}{minimal}"
                     f"{s['rps_spread']:>8.0%}")
    return lines


def _flatten(result: dict) -> dict[str, float]:
    """The comparable figures of a result file, by a readable name."""
    flat = {}
    for conns, pair in result.get("e2e", {}).get("by_connections", {}).items():
        for key in ("minimal", "service"):
            for metric in ("rps", "p50_ms", "p99_ms"):
                flat[f"{key} c={conns} {metric}"] = pair[key][metric]
        flat[f"ratio c={conns}"] = pair["ratio"]
    for label, row in result.get("study", {}).get("settings", {}).items():
        for key in ("service", "minimal"):
            if row.get(key):
                flat[f"{label} {key} rps"] = row[key]["rps"]
                flat[f"{label} {key} p99_ms"] = row[key]["p99_ms"]
    if result.get("model_step"):
        flat["model fast µs/record"] = result["model_step"]["fast_path"]["us_per_record_median"]
        flat["model sklearn µs/record"] = result["model_step"]["sklearn_path"]["us_per_record_median"]
        if result["model_step"].get("reasons"):
            flat["reasons µs/record"] = result["model_step"]["reasons"]["us_per_record_median"]
    for key in ("service", "peewee", "psycopg2"):
        if result.get("insert_step"):
            flat[f"insert {key} µs median"] = result["insert_step"][key]["us_median"]
    return flat


def compare_lines(old: dict, new: dict) -> list[str]:
    """Figure by figure: old, new, relative change; figures only one side has are listed as such."""
    a, b = _flatten(old), _flatten(new)
    om, nm = old.get("machine", {}), new.get("machine", {})
    lines = [f"{side}: {m.get('utc')} commit {str(m.get('git_commit'))[:10]}, load average before "
             f"{(m.get('load_average_before') or [float('nan')])[0]:.2f}" for side, m in (("old", om), ("new", nm))]
    lines += [
              f"{'figure':<36}{'old':>12}{'new':>12}{'change':>9}"]
    for name in [n for n in a if n in b]:
        change = f"{(b[name] - a[name]) / a[name]:>+9.0%}" if a[name] else f"{'':>9}"
        lines.append(f"{name:<36}{a[name]:>12.4g}{b[name]:>12.4g}{change}")
    only = [f"only in old: {n}" for n in a if n not in b] + [f"only in new: {n}" for n in b if n not in a]
    return lines + only
