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

test: install
	$(BIN)/python -m pytest -q

bench: bench-ingest

bench-ingest: install
	$(BIN)/nbo bench ingest

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis

# Models vs baselines on the full real logs (../shared/data), training times and latencies.
.PHONY: bench-models
bench-models: install
	$(BIN)/nbo bench models
