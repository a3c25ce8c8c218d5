"""Speed of /should_search (issue 6): end to end against a minimal Flask app, the model step, the insert, gunicorn.

  python -m bench.speed run                    # the full run: HTTP at 1, 8, 64, 256 connections, model, insert;
                                               # everything on (key, request log, metrics, shadow, reasons); the
                                               # floor (minimal app + the one insert) in the same rounds; ~4 min
                                               # with --rounds 3 --seconds 5 (make bench), longer with the defaults
  python -m bench.speed gunicorn               # the worker class / count study at 8 connections (~6 min)
  python -m bench.speed compare OLD.json [NEW.json]   # deltas between two result files

Each run writes bench/results/<kind>-<UTC>.json (git commit, machine, load average, versions, settings, every round)
and prints a summary table on stdout; progress goes to stderr. Needs Postgres (a throwaway database is created and
dropped) and wrk (apt-get install -y wrk) unless --client python.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg2

from bench.servers import (
    DEFAULT_POSTGRES_URL,
    FLOOR_APP,
    MINIMAL_APP,
    GunicornSettings,
    check_rows,
    dry_run_observations,
    log,
    officer_key,
    start_shadow,
    throwaway_postgres,
)
from bench.speed_e2e import Load, Rounds, Server, median_round, serving
from bench.speed_report import (
    RESULTS_DIR,
    TARGET_P99_MS_8,
    compare_lines,
    http_table,
    machine_facts,
    micro_table,
    run_header,
    study_table,
    write_result,
)
from tests.gunicorn_process import SERVICE_APP

STUDY_SETTINGS = "sync:2,sync:3,sync:4,gthread:2:2,gthread:3:2,gthread:4:2,gthread:2:4,gthread:3:4,gthread:4:4"


WORKER_CLASSES = {"sync": "sync", "gthread": "gthread", "buffering": "service.gunicorn_worker.BufferingWorker"}


def _settings(text: str) -> GunicornSettings:
    parts = text.split(":")
    if parts[0] not in WORKER_CLASSES or len(parts) not in (2, 3) or not all(p.isdigit() for p in parts[1:]):
        raise argparse.ArgumentTypeError(f"{text!r}: use sync:WORKERS, buffering:WORKERS or gthread:WORKERS:THREADS")
    workers, threads = int(parts[1]), int(parts[2]) if len(parts) == 3 else None
    if not 1 <= workers <= 16 or not 1 <= (threads or 1) <= 32:
        raise argparse.ArgumentTypeError(f"{text!r}: workers 1-16, threads 1-32")
    return GunicornSettings(WORKER_CLASSES[parts[0]], workers, threads)


def _common(parser: argparse.ArgumentParser, seconds: float, rounds: int) -> None:
    parser.add_argument("--seconds", type=float, default=seconds,
                        help=f"seconds per round, 1-120 (default {seconds:g})")
    parser.add_argument("--rounds", type=int, default=rounds,
                        help=f"rounds per app and setting, 1-9 (default {rounds})")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto",
                        help="load generator: wrk if installed (apt-get install -y wrk), else a Python client")
    parser.add_argument("--close", action="store_true",
                        help="clients send 'Connection: close', so every request pays a TCP connect even where "
                             "gunicorn would keep the connection (gthread): a router that does not reuse them")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL,
                        help="a Postgres database to connect to in order to create the throwaway ones "
                             "(default: $TEST_POSTGRES_URL or postgresql://postgres@127.0.0.1:5432/test)")
    parser.add_argument("--synchronous-commit-off", action="store_true",
                        help="DIAGNOSTIC ONLY, not the production setting: the servers' Postgres sessions commit "
                             "without waiting for the disk, which shows how much of the latency tail is fsync")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the JSON result")
    parser.add_argument("--no-write", action="store_true", help="print only; write no JSON file")
    parser.add_argument("--compare", type=Path, metavar="OLD.json", help="also print the deltas against OLD.json")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.speed", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="HTTP rounds at 1 and 8 connections, the model step and the insert",
                              description="Interleaved minimal/service rounds (median round reported) at each "
                                          "connection count, then the model step and the insert alone.")
    _common(run, seconds=8, rounds=5)
    run.add_argument("--connections", default="1,8,64,256",
                     help="comma-separated connection counts, 1-256 (default 1,8,64,256)")
    run.add_argument("--gunicorn", type=_settings, default=GunicornSettings(), metavar="CLASS:WORKERS[:THREADS]",
                     help="override gunicorn.conf.py for BOTH apps, e.g. gthread:2:4 (default: the file as is)")
    run.add_argument("--model-seconds", type=float, default=2.0, help="minimum seconds per model path (default 2)")
    run.add_argument("--inserts", type=int, default=900, help="inserts per write path, 3-100000 (default 900)")
    run.add_argument("--no-shadow", dest="shadow", action="store_false",
                     help="no shadow version (by default one scores every request beside the live one, issue 10, as "
                          "in production while a candidate is watched: the run has everything on)")
    run.add_argument("--no-floor", dest="floor", action="store_false",
                     help="leave out the floor: the minimal app plus the service's one committed insert "
                          "(bench/service_floor_app.py, its own throwaway database), driven in the same rounds")
    run.add_argument("--skip", action="append", choices=["http", "model", "insert"], default=[],
                     help="leave a part out (repeatable)")
    study = commands.add_parser("gunicorn", help="the service and the minimal app under several gunicorn settings",
                                description="Every setting serves both apps; all servers are up at once and driven "
                                            "in rotating rounds at --connections. Recommends the setting with the "
                                            f"best service req/s whose p99 is <= {TARGET_P99_MS_8:g} ms.")
    _common(study, seconds=5, rounds=3)
    study.add_argument("--connections", type=int, default=8, help="client connections, 1-64 (default 8)")
    study.add_argument("--settings", default=STUDY_SETTINGS, help=f"comma-separated CLASS:WORKERS[:THREADS] "
                                                                   f"(default {STUDY_SETTINGS})")
    study.add_argument("--no-minimal", action="store_true", help="drive only the service (no ratio; half the time)")
    compare = commands.add_parser("compare", help="deltas between two result files",
                                  description="Figure by figure: old, new and the relative change.")
    compare.add_argument("old", type=Path, help="the older result JSON")
    compare.add_argument("new", type=Path, nargs="?", help="the newer one (default: the newest in bench/results)")
    return parser


def _check(args, parser) -> None:
    if not 1 <= args.seconds <= 120 or not 1 <= args.rounds <= 9:
        parser.error("keep --seconds in 1-120 and --rounds in 1-9")
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "python"
    elif args.client == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed: apt-get install -y wrk, or use --client python")
    if args.client == "python":
        log("warning: the Python client takes CPU from the servers and flatters the ratio; prefer wrk")


def _serving_url(args, url: str) -> str:
    """The URL the servers get: with --synchronous-commit-off, options that make their sessions skip the fsync wait."""
    if not args.synchronous_commit_off:
        return url
    return url + ("&" if "?" in url else "?") + "options=-c%20synchronous_commit%3Doff"


def _load(args, api_key) -> Load:
    headers = {"Authorization": api_key.header} if api_key else {}
    if args.close:
        headers["Connection"] = "close"
    return Load(args.client, args.seconds, headers)


def _http(args, url: str, floor_url: str | None, api_key, settings: dict, work_dir: Path) -> dict:
    """The interleaved minimal/(floor/)service rounds at each connection count, and the row check."""
    connections = [int(c) for c in args.connections.split(",")]
    shadow = start_shadow(url, work_dir) if args.shadow else None
    if shadow:
        log(f"shadow scoring on: {shadow} scores every request beside the live model")
    servers = [Server("minimal", MINIMAL_APP, args.gunicorn), Server("service", SERVICE_APP, args.gunicorn)]
    if floor_url:
        servers.insert(1, Server("floor", FLOOR_APP, args.gunicorn, _serving_url(args, floor_url)))
    by_connections = {}
    with serving(servers, _serving_url(args, url), work_dir / "gunicorn.log", api_key) as ports:
        rounds = Rounds(ports, _load(args, api_key), dry_run_observations(), work_dir)
        for conns in connections:
            log(f"HTTP at {conns} connection(s): warm-up, then {args.rounds} rounds of {args.seconds:g} s each ...")
            rounds.warm_up(conns)
            results = rounds.measure(list(ports), conns, args.rounds)
            pair = {key: median_round(r) for key, r in results.items()}
            pair["ratio"] = pair["service"]["rps"] / pair["minimal"]["rps"]
            if "floor" in pair:
                pair["floor_ratio"] = pair["floor"]["rps"] / pair["minimal"]["rps"]
            by_connections[str(conns)] = pair
        ok, text = check_rows(url, rounds.ok_ids["service"], max(connections) * rounds.runs)
    return {"by_connections": by_connections, "row_check": {"ok": ok, "text": text}, "gunicorn": settings,
            "shadow": shadow}


def run(args, parser) -> int:
    """The full run: HTTP, model step, insert; JSON and summary."""
    _check(args, parser)
    if not all(c.isdigit() and 1 <= int(c) <= 256 for c in args.connections.split(",")) or \
            not 3 <= args.inserts <= 100000:
        parser.error("--connections: comma-separated 1-256; --inserts: 3-100000")
    from bench.speed_micro import insert_step, model_step  # imports the service and the model: after arg checks

    api_key = officer_key()
    result = {"kind": "speed", "command": args.command_line,
              "machine": machine_facts(),
              "load": {"client": args.client, "seconds": args.seconds, "rounds": args.rounds, "close": args.close,
                       "shadow": args.shadow, "floor": args.floor,
                       "api_key": api_key is not None, "synchronous_commit_off": args.synchronous_commit_off},
              "gunicorn": args.gunicorn.effective()}
    if "model" not in args.skip:
        result["model_step"] = model_step(args.model_seconds)
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmp:
        if "insert" not in args.skip:
            with throwaway_postgres(args.postgres_url) as url:
                result["insert_step"] = insert_step(url, args.inserts)
        if "http" not in args.skip:
            with throwaway_postgres(args.postgres_url) as url, contextlib.ExitStack() as stack:
                floor_url = stack.enter_context(throwaway_postgres(args.postgres_url)) if args.floor else None
                result["e2e"] = _http(args, url, floor_url, api_key, result["gunicorn"], Path(tmp))
    g = result["gunicorn"]
    lines = run_header(result, f"gunicorn.conf.py as {g['worker_class']} w{g['workers']} t{g['threads']} "
                            f"preload={g['preload_app']}")
    if "e2e" in result:
        lines += http_table(result["e2e"]) + [f"row check {'OK' if result['e2e']['row_check']['ok'] else 'FAILED'}: "
                                              f"{result['e2e']['row_check']['text']}"]
    lines += micro_table(result.get("model_step"), result.get("insert_step"))
    return _finish(args, result, "speed", lines, ok="e2e" not in result or result["e2e"]["row_check"]["ok"])


def study(args, parser) -> int:
    """The gunicorn study: every setting, both apps, rotating rounds; a recommendation."""
    _check(args, parser)
    if not 1 <= args.connections <= 64:
        parser.error("--connections: 1-64")
    try:
        settings = [_settings(s) for s in args.settings.split(",")]
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    api_key = officer_key()
    labels = {s.label(): s for s in settings}
    servers = [Server(f"{app}/{label}", spec, s) for label, s in labels.items()
               for app, spec in (("service", SERVICE_APP), ("minimal", MINIMAL_APP))
               if not (args.no_minimal and app == "minimal")]
    result = {"kind": "gunicorn", "command": args.command_line,
              "machine": machine_facts(),
              "load": {"client": args.client, "seconds": args.seconds, "rounds": args.rounds, "close": args.close,
                       "api_key": api_key is not None, "connections": args.connections,
                       "synchronous_commit_off": args.synchronous_commit_off},
              "gunicorn": {label: s.effective() for label, s in labels.items()}}
    with tempfile.TemporaryDirectory(prefix="bench-gunicorn-") as tmp, \
            throwaway_postgres(args.postgres_url) as url, \
            serving(servers, _serving_url(args, url), Path(tmp) / "gunicorn.log", api_key) as ports:
        rounds = Rounds(ports, _load(args, api_key), dry_run_observations(), Path(tmp))
        rounds.warm_up(args.connections, seconds=1)
        results = rounds.measure([s.key for s in servers], args.connections, args.rounds,
                                 group=1 if args.no_minimal else 2)
        service_ids = [i for key, ids in rounds.ok_ids.items() if key.startswith("service/") for i in ids]
        ok, text = check_rows(url, service_ids, args.connections * rounds.runs)
    rows = {}
    for label in labels:
        row = {app: median_round(results[f"{app}/{label}"]) for app in ("service", "minimal")
               if f"{app}/{label}" in results}
        row["ratio"] = row["service"]["rps"] / row["minimal"]["rps"] if "minimal" in row else None
        rows[label] = row
    result["study"] = {"settings": rows, "row_check": {"ok": ok, "text": text}, "recommendation": _recommend(rows)}
    preload = {s["preload_app"] for s in result["gunicorn"].values()}
    lines = run_header(result, f"gunicorn.conf.py with each row's setting, preload={'/'.join(map(str, preload))}")
    lines += [f"{args.connections} connections; the service and the minimal app under the same setting per row"]
    lines += study_table(result["study"]) + [f"row check {'OK' if ok else 'FAILED'}: {text}",
                                             result["study"]["recommendation"]["text"]]
    return _finish(args, result, "gunicorn", lines, ok=ok)


def _recommend(rows: dict) -> dict:
    """Best service req/s among settings with p99 within the target; if none is, the lowest p99 instead."""
    acceptable = [label for label, row in rows.items() if row["service"]["p99_ms"] <= TARGET_P99_MS_8]
    if acceptable:
        best = max(acceptable, key=lambda label: rows[label]["service"]["rps"])
        why = f"best service req/s with p99 <= {TARGET_P99_MS_8:g} ms"
    else:
        best = min(rows, key=lambda label: rows[label]["service"]["p99_ms"])
        why = f"NO setting had p99 <= {TARGET_P99_MS_8:g} ms; this one has the lowest"
    s = rows[best]["service"]
    return {"setting": best, "text": f"recommended ({why}): {best}: {s['rps']:.1f} req/s, p50 {s['p50_ms']:.2f} ms, "
                                     f"p99 {s['p99_ms']:.2f} ms"}


def _finish(args, result: dict, kind: str, lines: list[str], ok: bool) -> int:
    if not args.no_write:
        path = write_result(result, kind, args.out)
        lines.append(f"result: {path}")
    if args.compare:
        lines += ["", f"compared with {args.compare}:"] + compare_lines(json.loads(args.compare.read_text()), result)
    print("\n".join(lines))
    return 0 if ok else 1


def compare(args, parser) -> int:
    """Print the deltas between two result files."""
    new = args.new
    if new is None:
        candidates = sorted(RESULTS_DIR.glob("*.json"), key=lambda p: p.stat().st_mtime)
        if not candidates:
            parser.error(f"no result files in {RESULTS_DIR}; name NEW.json")
        new = candidates[-1]
    try:
        old_result, new_result = json.loads(args.old.read_text()), json.loads(new.read_text())
    except (OSError, json.JSONDecodeError) as error:
        parser.error(f"cannot read a result file: {error}")
    print(f"{args.old} -> {new}")
    print("\n".join(compare_lines(old_result, new_result)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Dispatch to run, gunicorn or compare."""
    parser = _parser()
    args = parser.parse_args(argv)
    args.command_line = "python -m bench.speed " + " ".join(sys.argv[1:] if argv is None else argv)
    command = {"run": run, "gunicorn": study, "compare": compare}[args.command]
    try:
        return command(args, parser)
    except (RuntimeError, psycopg2.Error, subprocess.SubprocessError) as error:
        print(f"error: {error}\nIs Postgres reachable at --postgres-url?", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
