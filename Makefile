# Attest: `make run` serves the app, `make test` runs the tests.
# Both do the whole set-up first, and the set-up is idempotent: a second run
# only does what changed (stamps track requirements.txt and package-lock.json).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
FLASK := $(VENV)/bin/flask --app app
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup run test test-fast lint compile bench bench-neardup serve-prod clean-data browser

setup: $(VENV)/.requirements-stamp node_modules/.package-lock-stamp

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# torch first and alone: 2.13.0 is a CPU build on this machine's disk; letting
# the resolver pick torch for sentence-transformers would pull a CUDA build.
$(VENV)/.requirements-stamp: requirements.txt pyproject.toml $(VENV)/bin/python
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -r requirements.txt
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m plagiarism.build_model
	touch $@

node_modules/.package-lock-stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's chromium for the browser tests (never a browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; }

# Debian's redis-server and postgresql: the tests start their own servers on
# loopback (a Redis broker, a PostgreSQL cluster), never a system service.
services:
	@missing=""; command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	  [ -x /usr/lib/postgresql/15/bin/initdb ] || missing="$$missing postgresql"; \
	  if [ -n "$$missing" ]; then echo "installing Debian's$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

run: setup
	$(FLASK) serve

test: setup browser services
	$(VENV)/bin/pytest

# The whole suite again with PostgreSQL as the database (a cluster on loopback,
# a fresh database per test) and Redis as the queue where a test uses one.
test-postgres: setup browser services
	ATTEST_TEST_DATABASE=postgresql $(VENV)/bin/pytest

test-fast: setup
	$(VENV)/bin/pytest -m "not browser and not slow"

lint: setup
	$(VENV)/bin/ruff check .

compile: setup
	$(PY) -m contracts.compile

# The production shape: gunicorn (2 workers x 4 threads) on 127.0.0.1:8000, two
# job worker processes, Redis on loopback as their broker (unless ATTEST_QUEUE_URL
# is set) and the embedded chain (unless ATTEST_RPC_URL is set).
serve-prod: setup services
	$(FLASK) serve-prod --port 8000 --web-workers 2 --threads 4 --job-workers 2

bench: setup services
	$(PY) bench/bench_chain.py
	$(PY) bench/bench_accreditation.py
	$(PY) bench/bench_queue.py
	$(PY) bench/bench_issue.py
	$(PY) bench/bench_dataintegrity.py
	$(PY) bench/bench_verify.py
	$(PY) bench/verify_cost.py
	$(PY) bench/bench_embedding.py
	$(PY) bench/bench_index.py
	$(PY) bench/bench_extract.py
	@if [ -n "$$ATTEST_CORPORA_DIR" ]; then $(MAKE) bench-neardup && $(PY) bench/eval_anomalies.py; \
	  else echo "bench-neardup and eval_anomalies skipped: ATTEST_CORPORA_DIR is not set (see bench/CORPORA.md)"; fi

# Near-duplicate detection on real corpora beside copydetect, Dolos, SIM and 3-gram containment,
# and the 100-answer scan. Needs ATTEST_CORPORA_DIR (bench/CORPORA.md) and two Debian packages:
# similarity-tester (SIM's sim_text) and wordnet-base (synonyms for the synthetic edits).
bench-neardup: setup
	@command -v sim_text >/dev/null 2>&1 && test -e /usr/share/wordnet/data.noun || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq similarity-tester wordnet-base >/dev/null; }
	$(PY) bench/eval_near_duplicates.py
	$(PY) bench/bench_scan.py
