"""gunicorn settings for Heroku, Docker and `make run`: $PORT, WEB_CONCURRENCY sync workers, model loaded once."""
import logging
import os
import sys

# Heroku and Docker publish the port in $PORT; 5000 is the local default.
bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Sync workers: one request and therefore one peewee connection per worker process at a time.
worker_class = "sync"

# Heroku's router gives up after 30 s, so a stuck worker is recycled well before a client sees an H12.
timeout = 20
# Heroku sends SIGTERM and SIGKILLs 30 s later: in-flight requests must finish inside that window.
graceful_timeout = 25
keepalive = 5

# Load the app (and the model) in the master once; workers share its pages copy-on-write after fork.
preload_app = True

# The heartbeat file on a tmpfs, so a slow disk (Docker overlay) cannot stall workers (gunicorn's own advice).
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# gunicorn >= 25 opens a control socket at a fixed per-user path; several instances (tests, bench) would collide.
control_socket_disable = True

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# %(M)s: request duration in milliseconds, which is what monitoring the 30 s router budget needs.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'

# gunicorn configures only its own loggers; without this the app's INFO lines (model served, schema state) would be
# dropped and only warnings would reach stderr through Python's last-resort handler.
_app_handler = logging.StreamHandler(sys.stderr)
_app_handler.setFormatter(logging.Formatter("[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
                                            "%Y-%m-%d %H:%M:%S %z"))
for _name in ("service", "pipeline", "migrations"):
    _logger = logging.getLogger(_name)
    _logger.setLevel(loglevel.upper())
    _logger.addHandler(_app_handler)
    _logger.propagate = False


def pre_fork(server, worker):
    """Close any connection the master opened while preloading, so no worker inherits a shared socket."""
    from models import database

    if database.obj is not None and not database.is_closed():
        database.close()
