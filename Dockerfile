# The CTRP3 search service: gunicorn on $PORT with the committed model.
# Build: docker build -t ctrp3-search .   Migrate: docker run --rm -e DATABASE_URL=... ctrp3-search python -m migrations
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=5000

WORKDIR /app

# Dependencies first, so a code change does not reinstall them.
COPY requirements.txt .
RUN pip install -r requirements.txt

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin app
# Code stays root-owned (read-only to the service); only instance/ (embedded SQLite) is writable.
COPY . .
RUN mkdir -p /app/instance && chown app:app /app/instance

USER app
EXPOSE 5000

# python, not curl: the slim image has no curl. A 503 (schema behind, DB down) raises, so the check fails.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '5000'), timeout=4)"]

# Exec form: gunicorn is PID 1 and receives SIGTERM directly; gunicorn.conf.py binds 0.0.0.0:$PORT.
CMD ["gunicorn", "--config", "gunicorn.conf.py", "app:create_app()"]
