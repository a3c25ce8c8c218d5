"""gunicorn settings for Heroku, Docker and `make run`: $PORT, WEB_CONCURRENCY buffering workers, model loaded once."""
import os
import tempfile

# Heroku and Docker publish the port in $PORT; 5000 is the local default.
bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
# Chosen by measurement on 2 cores (`python -m bench.speed gunicorn --settings sync:2,sync:3,gthread:3:4 --rounds 5
# --seconds 6`, 8 connections, Postgres with synchronous commit, bench/results/gunicorn-20261128T195859Z.json):
#   sync, 2 workers          1247 req/s  p50 6.1 ms  p99 10.4 ms  (32.4% of a minimal Flask app on the same settings)
#   sync, 3 workers          1227 req/s  p50 6.1 ms  p99 12.3 ms  (32.0%)
#   gthread, 3 workers x 4   1411 req/s  p50 5.2 ms  p99 14.7 ms  (36.1%; p99 31-35 ms in 2 of 5 rounds)
# A third sync worker buys nothing on 2 cores; gthread's ~10% is within the rounds' spread and would have threads
# share one model and one connection pool. So: sync, one request (and one pooled database connection) per process
# at a time. Heroku sets WEB_CONCURRENCY per dyno size. Re-measured with the buffering worker below and everything
# on (issue 15, bench/README.md "Everything on, profiled"): each request waits ~0.5-0.7 ms for its commit's fsync with
# its worker's CPU idle, and a third worker fills that wait. 3 workers against 2, 8 connections, in four runs of
# 2026-11-29 (bench/results/gunicorn-20261129T142227Z.json, -143142Z, -144835Z, speed-20261129T144557Z/-144715Z):
# service 596 / 454 / 384 / 830 req/s against 436 / 463 / 351 / 669 (w3 / w2 medians; load average 1.4-5 from other
# work): higher in three of the four, p99 lower in three; the minimal app moved either way (1236-2796 against
# 1265-2387). So one worker per core, plus one for the fsync wait. A fourth adds nothing: 605 against 598 req/s at 8
# connections (bench/results/gunicorn-20261129T165405Z.json, 5 rounds).
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
# The sync worker's model (one request per process at a time), with the request read first by a non-blocking loop:
# a client trickling its headers or body costs a socket, not a worker, and is answered 408 after 5 s
# (service/gunicorn_worker.py; issue 17's measurements, `python -m bench.hostile slow`, are in its docstring).
worker_class = "service.gunicorn_worker.BufferingWorker"

# The database bounds every request first: its limits and the outage timings they add up to are stated once, in
# models/database.py ("The worst case of one write"). This is the backstop for what no database timeout sees (a
# frozen server whose kernel still ACKs, a stuck worker, every step of a write stalling just under its own limit):
# the worker is recycled, its uncommitted transaction rolls back with its connection, and it stays well under
# Heroku's 30 s router limit, so no client sees an H12.
timeout = 15
# On SIGTERM (Heroku: SIGKILL 30 s later) in-flight requests get 10 s, over twice the slowest outage answer
# (models/database.py). The master's exit time is measured by tests/test_fault_load.py (master_exit_s in its
# fault_load.json; 0.42 s in the run of 2026-11-28), inside Heroku's window and the test's 20 s. Stated here only.
graceful_timeout = 10
# Ignored by sync workers and BufferingWorker (they close the connection after each response); used by gthread.
keepalive = 5

# Load the app (and the model) in the master once; workers share its pages copy-on-write after fork, and a worker
# replaced after a crash or a timeout serves at once instead of reloading and re-checking the model.
preload_app = True

# The heartbeat file on a tmpfs, so a slow disk (Docker overlay) cannot stall workers (gunicorn's own advice).
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# gunicorn >= 25 opens a control socket at a fixed per-user path; several instances (tests, bench) would collide.
control_socket_disable = True

# No gunicorn access log: its lines carry the raw request line (path and query string, which may hold personal
# data) and would duplicate the app's own request log, one JSON line per request on stdout (service/request_log.py).
accesslog = None
# ... and not even built: with a logconfig_dict gunicorn formats each request's access atoms for its null handler.
logger_class = "service.gunicorn_worker.NoAccessLogger"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

# gunicorn configures only its own loggers; without this the app's INFO lines (model served, schema state) would be
# dropped and only warnings would reach stderr through Python's last-resort handler. A dict (applied by gunicorn
# before it preloads the app) rather than logging calls here, so reading this file has no side effects.
# gunicorn merges it into its defaults key by key, so its own two loggers are restated.
# gunicorn's own DEBUG lines quote request paths and malformed request lines (client data): never below INFO.
_GUNICORN_LEVEL = "INFO" if loglevel == "debug" else loglevel.upper()
_GENERIC = {"format": "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
            "datefmt": "%Y-%m-%d %H:%M:%S %z"}
logconfig_dict = {
    "root": {"level": loglevel.upper(), "handlers": ["error_console"]},
    "loggers": {
        "gunicorn.error": {"level": _GUNICORN_LEVEL, "handlers": ["error_console"], "propagate": False},
        # A logconfig_dict alone switches gunicorn's access logging back on; a null handler keeps it off.
        "gunicorn.access": {"level": "INFO", "handlers": ["null"], "propagate": False},
        # The request log is the evidence behind every claim about the model: INFO whatever LOG_LEVEL says, bare
        # JSON lines on stdout, and not repeated through the root logger.
        "service.requests": {"level": "INFO", "handlers": ["request_console"], "propagate": False},
        # peewee logs every query with its parameters (protected attributes) at DEBUG: never, even at LOG_LEVEL=debug.
        "peewee": {"level": "INFO"},
    },
    "handlers": {
        "error_console": {"class": "logging.StreamHandler", "formatter": "generic", "stream": "ext://sys.stderr"},
        "request_console": {"class": "logging.StreamHandler", "formatter": "bare", "stream": "ext://sys.stdout"},
        "null": {"class": "logging.NullHandler"},
    },
    "formatters": {"generic": _GENERIC, "bare": {"format": "%(message)s"}},
}


# /metrics sums every worker's counts from files in this directory (prometheus_client's multiprocess mode). It must be
# in the environment before the preloaded app imports prometheus_client, hence here and not in a hook. Each gunicorn
# instance gets its own (two on one machine must not add up or wipe each other's counts) unless the operator names
# one; on a tmpfs when there is one, as the counts are rewritten on every request.
# (A reload on SIGHUP reads this file again and keeps the directory: the variable is set by then.)
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ["CTRP3_CREATED_METRICS_DIR"] = tempfile.mkdtemp(
        prefix="ctrp3-metrics-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)


def on_starting(server):
    """Empty the metrics directory: counts of a previous run (same PROMETHEUS_MULTIPROC_DIR) must not be added in."""
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))


def child_exit(server, worker):
    """Drop a dead worker's live gauges (the model it served); its counts stay, so totals never go down."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the metrics directory this instance created."""
    import shutil

    if os.environ.get("CTRP3_CREATED_METRICS_DIR") == os.environ["PROMETHEUS_MULTIPROC_DIR"]:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def pre_fork(server, worker):
    """Close any connection the master opened while preloading, so no worker inherits a shared socket."""
    from models import database

    if database.obj is not None and not database.is_closed():
        database.close()


def when_ready(server):
    """Freeze what the master preloaded, so no collection in a worker walks it (copy-on-write, exit time).

    Measured by the fault test (tests/test_fault_load.py): without it a worker's final collection at exit took
    1.2-2 s and the master exited 2.8-3.7 s after SIGTERM; with it, see graceful_timeout above.
    """
    import gc

    gc.freeze()


def worker_exit(server, worker):
    """Release the listening socket as soon as the worker stops serving, not at interpreter teardown.

    Otherwise connections arriving between SIGTERM and the process's end (0.5-3 s measured) are accepted by the
    kernel and then reset unread; closed, they are refused at once and the client can fail over.
    """
    for listener in worker.sockets:
        listener.close()
