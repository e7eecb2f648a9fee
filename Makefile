# Two commands: `make run` (set up, load demo data, serve) and `make test` (set up, run every test).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# implicit and numpy want one BLAS thread per process (DESIGN.md, "Other measured traps").
export OPENBLAS_NUM_THREADS := 1

.PHONY: install run test bench bench-ingest clean

# Re-installs whenever pyproject.toml changes; the stamp lives inside the venv.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/nbo serve --demo

test: install chromium
	$(BIN)/python -m pytest -q

# The whole suite again with the wall clock moved (tests/conftest.py: time-machine in process, the
# product's NBO_NOW for the servers and commands the tests start). 03:30 on 1 January 2032 in the
# stores' zone (Asia/Shanghai) with the host in America/Los_Angeles: 03:30 is inside every channel's
# quiet hours and before the daily run's 09:00; in UTC (19:30) and on the host (11:30) it is still
# 31 December 2031, so a day, month or year taken in the wrong zone is wrong in all three; 2032 is
# none of the data's years (the tests' shop 2025-10..2026-03, the real logs 2010-11 and 2014-15).
TEST_CLOCK ?= 2032-01-01T03:30:00+08:00
TEST_TZ    ?= America/Los_Angeles
.PHONY: test-clock
test-clock: install chromium
	TZ=$(TEST_TZ) NBO_TEST_CLOCK=$(TEST_CLOCK) $(BIN)/python -m pytest -q

# The console's browser tests drive Debian's chromium (never a browser build downloaded by a tool);
# installed here when missing and we may (root with apt), else those tests skip and say why.
.PHONY: chromium
chromium:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium fonts-noto-cjk; } >/dev/null 2>&1; } || \
	  echo "chromium is not installed and could not be: the console's browser tests will be skipped"

bench: bench-ingest

# The API under wrk (Debian's package, installed here when missing and we may), one server worker on one
# core and wrk on the other; `make bench-api COMPARE=feast` adds Feast's feature server in the same run.
COMPARE ?=
.PHONY: bench-api wrk
bench-api: install wrk
	$(BIN)/nbo bench api $(if $(COMPARE),--compare $(COMPARE))

wrk:
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; } >/dev/null 2>&1; } || \
	  echo "wrk is not installed and could not be: nbo bench api needs it (apt-get install wrk)"

bench-ingest: install
	$(BIN)/nbo bench ingest

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis

# Models vs baselines on the full real logs (../shared/data), training times and latencies.
.PHONY: bench-models
bench-models: install
	$(BIN)/nbo bench models

# The tests marked `cluster` (feature store, coupons, limits, event stream, triggers...) against a
# local 3-master Redis Cluster of real redis-server processes on loopback ports, started and
# stopped by the suite (tests/conftest.py, engine.redis_server.start_redis_cluster).
.PHONY: cluster-test
cluster-test: install
	$(BIN)/python -m pytest -q --redis-cluster

# Reliability evidence (issue 8): the demo in a throw-away Redis and MLflow store, served by a real
# `nbo serve` process. soak: 10 minutes of mixed traffic at 200/s (one worker holds ~400/s on 2 cores);
# chaos: Redis stopped/restarted and paused under load, corrupt/deleted model artifacts, a broken
# rule file. Both exit 1 if a check fails; `make test` runs short versions (tests/reliability).
SOAK_MINUTES ?= 10
SOAK_RATE    ?= 200
SOAK_WORKERS ?= 1
.PHONY: soak chaos
soak: install
	$(BIN)/nbo bench soak --minutes $(SOAK_MINUTES) --rate $(SOAK_RATE) --workers $(SOAK_WORKERS) --out soak.json

chaos: install
	$(BIN)/nbo bench chaos --seconds 60 --rate 100 --out chaos.json

# Bad input, deeper than `make test`: the tests marked `fuzz` (the API through schemathesis with every
# role's key, rule files, event batches) with FUZZ_SCALE times their hypothesis examples.
FUZZ_SCALE ?= 10
.PHONY: fuzz
fuzz: install
	NBO_FUZZ_SCALE=$(FUZZ_SCALE) $(BIN)/python -m pytest -q -m fuzz

# Known vulnerabilities of the installed dependencies (the venv's, not the project itself): pip-audit asks the
# advisory service (PyPI's JSON API by default; AUDIT_SERVICE=osv for OSV) about every package and version.
# --strict: a package it could not look up fails the audit, so "no known vulnerabilities" means every one was checked.
AUDIT_SERVICE ?= pypi
.PHONY: audit
audit: install
	$(BIN)/pip-audit --local --skip-editable --strict --progress-spinner off --vulnerability-service $(AUDIT_SERVICE) --desc on
