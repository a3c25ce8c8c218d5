# The CTRP3 search service: gunicorn on $PORT with the committed model. Built and run by `make docker-test`.
#   Build:    docker build -t ctrp3-search .
#   Migrate:  docker run --rm -e DATABASE_URL=... ctrp3-search python -m migrations
#   Serve:    docker run -e DATABASE_URL=... -e API_KEYS=... -p 5000:5000 ctrp3-search
# Build arguments (none needed where python:3.11-slim can be pulled):
#   BASE_IMAGE       another Python 3.11 base with python at /usr/local/bin (docker/local-base.sh makes one from
#                    Debian's packages where no registry is reachable).
#   EXTRA_CA_CERTS   PEM text of extra CA certificates pip must trust, for networks that intercept TLS:
#                    --build-arg EXTRA_CA_CERTS="$(cat /usr/local/share/ca-certificates/*.crt)". Used by the build
#                    stage only; the final image neither holds nor trusts them.
ARG BASE_IMAGE=python:3.11-slim

# Build stage: the dependencies into a virtual environment (a Debian-packaged python refuses pip outside one:
# externally-managed-environment), without what serving never reads: pip and setuptools, test suites, C and Cython
# sources, type stubs. (Not strip: it corrupts the wheels' patchelf-ed libraries, and numpy then fails to import.)
FROM ${BASE_IMAGE} AS build
ARG EXTRA_CA_CERTS=""
COPY requirements.txt /tmp/requirements.txt
RUN set -eu; \
    if [ -n "$EXTRA_CA_CERTS" ]; then \
        printf '%s\n' "$EXTRA_CA_CERTS" > /tmp/extra-ca.pem; \
        cat /etc/ssl/certs/ca-certificates.crt /tmp/extra-ca.pem > /tmp/ca-bundle.pem; \
        export PIP_CERT=/tmp/ca-bundle.pem; \
    fi; \
    python -m venv /opt/venv; \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
        /opt/venv/bin/pip install -q --no-compile -r /tmp/requirements.txt; \
    /opt/venv/bin/pip uninstall -q --yes pip setuptools; \
    find /opt/venv -depth -type d \( -name tests -o -name __pycache__ \) -exec rm -rf {} +; \
    find /opt/venv -type f \( -name '*.c' -o -name '*.cpp' -o -name '*.h' -o -name '*.pyx' -o -name '*.pxd' \
        -o -name '*.pyi' \) -delete; \
    rm -f /tmp/extra-ca.pem /tmp/ca-bundle.pem
# Byte-code only for the library modules the service loads, and nothing for those it never does (docker/precompile.py).
COPY . /tmp/app
RUN cd /tmp/app && /opt/venv/bin/python docker/precompile.py && rm -rf /tmp/app

# Final stage: the base, the virtual environment and the code; no compilers, caches or pip.
FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH PORT=5000
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# Code stays root-owned (read-only to the service, compiled here); only instance/ (embedded SQLite) is writable.
COPY . .
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin app \
    && mkdir -p /app/instance && chown app:app /app/instance && python -m compileall -q /app >/dev/null

USER app
EXPOSE 5000

# python, not curl: the slim image has no curl. A 503 (schema behind, DB down) raises, so the check fails.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '5000'), timeout=4)"]

# Exec form: gunicorn is PID 1 and receives SIGTERM directly; gunicorn.conf.py binds 0.0.0.0:$PORT.
CMD ["gunicorn", "--config", "gunicorn.conf.py", "app:create_app()"]
