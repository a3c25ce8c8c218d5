# make run: set up .venv and serve on $PORT (default 5000) with the embedded SQLite and the committed model.
# make test: set up .venv with the dev tools and run the whole suite on SQLite and on Postgres at TEST_POSTGRES_URL.
# make test-fast: the quick loop while editing (SQLite only, no slow tests); make lint: ruff, as CI runs it.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PORT ?= 5000
TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test
export TEST_POSTGRES_URL

# Stamps are keyed on the requirement files' content, so an unchanged setup costs nothing and any pin change reinstalls.
REQ_KEY := $(shell cat requirements.txt | sha256sum | cut -c1-12)
DEV_KEY := $(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-12)
RUNTIME_STAMP := $(VENV)/.installed-runtime-$(REQ_KEY)
DEV_STAMP := $(VENV)/.installed-dev-$(DEV_KEY)

DEMO_REQUESTS ?= 4000

.PHONY: help run migrate demo test test-fast lint bench docker-test

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "need Python 3.11 (see .python-version): set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): requirements.txt | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	rm -f $(VENV)/.installed-runtime-* && touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-dev-* && touch $@

migrate: $(RUNTIME_STAMP)  ## apply pending migrations to DATABASE_URL (default: the embedded SQLite file)
	$(VENV)/bin/python -m migrations

# Without API_KEYS, make run serves WITHOUT authentication, and says so: the service refuses to start keyless unless
# API_AUTH_DISABLED=local-development is set explicitly (and never on a Heroku dyno). With API_KEYS set, keys are on.
run: migrate  ## serve on PORT (default 5000) with gunicorn.conf.py; no API keys needed unless API_KEYS is set
	$(if $(API_KEYS),,@echo "make run: API_KEYS is not set, so API_AUTH_DISABLED=local-development (no authentication)")
	PORT=$(PORT) $(if $(API_KEYS),,API_AUTH_DISABLED=local-development) \
	    exec $(VENV)/bin/python -m gunicorn --config gunicorn.conf.py "app:create_app()"

demo: migrate  ## load DEMO_REQUESTS (4000) generated requests and outcomes into DATABASE_URL through the service's code
	$(VENV)/bin/python -m demo --requests $(DEMO_REQUESTS)

test: $(DEV_STAMP)  ## the whole suite, SQLite and Postgres (TEST_POSTGRES_URL)
	$(VENV)/bin/python -m pytest

test-fast: $(DEV_STAMP)  ## the quick loop: SQLite only, no slow tests (no gunicorn, subprocess or fuzz tests)
	$(VENV)/bin/python -m pytest -m "not slow and not postgres" -q

lint: $(DEV_STAMP)  ## ruff over the whole tree (settings in pyproject.toml)
	$(VENV)/bin/python -m ruff check .

bench: $(DEV_STAMP)  ## /should_search against a minimal Flask app and the floor app, model and insert alone (~4 min; Postgres at TEST_POSTGRES_URL; wrk)
	$(VENV)/bin/python -m bench.speed run --rounds 3 --seconds 5 --postgres-url $(TEST_POSTGRES_URL)

docker-test:  ## build the image and run it against TEST_POSTGRES_URL (starts dockerd if none runs; see docker/test.sh)
	bash docker/test.sh
