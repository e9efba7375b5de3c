# Two entry points (see README): `make serve` installs and starts the service, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip

CHROMIUM ?= /usr/bin/chromium

.PHONY: serve install install-dev test lint bench clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

install: $(BIN)/python
	$(PIP) install --quiet -e .

install-dev: $(BIN)/python
	$(PIP) install --quiet -c constraints.txt -e '.[test]'

serve: install
	$(BIN)/pi-axera-sd serve

lint: install-dev
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/ruff format --check src tests scripts bench

# The browser tests drive Debian's chromium package (Playwright's own browser download is not used).
chromium:
	@test -x $(CHROMIUM) || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

test: install-dev lint chromium
	$(BIN)/python -m pytest

bench: $(BIN)/python
	$(PIP) install --quiet -c constraints.txt -e '.[bench]'
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache src/*.egg-info
