# Two entry points (see README): `make serve` installs and starts the service, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip

.PHONY: serve install install-dev install-fast test test-fast lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

install: $(BIN)/python
	$(PIP) install --quiet -e .

install-fast: $(BIN)/python
	$(PIP) install --quiet -e '.[test-fast]'

install-dev: $(BIN)/python
	$(PIP) install --quiet -c constraints.txt -e '.[test]'

serve: install
	$(BIN)/pi-axera-sd serve

lint: install-dev
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/ruff format --check src tests scripts bench

test: install-dev lint
	$(BIN)/python -m pytest

# The tests that need no torch/diffusers/transformers/openvino, on a base install (seconds).
test-fast: install-fast
	$(BIN)/python -m pytest -m "not torch"

bench: $(BIN)/python
	$(PIP) install --quiet -c constraints.txt -e '.[bench]'
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache src/*.egg-info
