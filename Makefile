# Two commands do all set-up on a fresh machine (Python 3.11; network: the package registry):
#   make demo   create .venv, install tabguard, run the demo on the bundled data
#   make test   create .venv if needed, run lint and the whole test suite
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check
BASE   := $(VENV)/.installed-base
DEV    := $(VENV)/.installed-dev
# Tested versions: installs are reproducible; regenerate with `make lock`.
CONSTRAINTS := constraints.txt

.PHONY: demo test lint format serve lock clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"

# The whole toolkit (extras `all`: audits, training, PostgreSQL, Redis, XGBoost); a serving-only
# deployment installs the core alone (`pip install tabguard`, see docs/operations.md).
$(BASE): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install --quiet -c $(CONSTRAINTS) -e ".[all]"
	touch $@

$(DEV): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install --quiet -c $(CONSTRAINTS) -e ".[dev]"
	touch $@ $(BASE)

demo: $(BASE)
	$(BIN)/tabguard demo

# The service on the demo's clean model (`make demo` writes it to demo-out/model); the bundled
# training data is profiled for out-of-distribution probing detection.
SERVE_MODEL ?= demo-out/model
serve: $(BASE)
	@test -f $(SERVE_MODEL)/manifest.json || { echo "no model in $(SERVE_MODEL): run make demo first"; exit 2; }
	@echo "API key for curl: $(BIN)/tabguard keys create demo --scopes decide,score | tail -1"
	$(BIN)/tabguard serve $(SERVE_MODEL) --reference src/tabguard/datasets/credit_default.csv.gz

lint: $(DEV)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

format: $(DEV)
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

# The suite in TEST_WORKERS processes (pytest-xdist). Tests go to the workers a file at a time,
# those of a costly session fixture (Spark, the simulated month) to one worker, the costliest
# first: tests/conftest.py (pytest_collection_modifyitems). TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
test: $(DEV) lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

bench: $(DEV)
	$(BIN)/python benchmarks/poisoning.py

lock: $(DEV)
	$(PIP) freeze --exclude-editable | grep -v '^-e' > $(CONSTRAINTS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist src/*.egg-info
