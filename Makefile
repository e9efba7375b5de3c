# Two entry points (see README): `make serve` installs and starts the service, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# PyTorch's CPU-only wheels: PyPI's Linux torch is the CUDA build (~15 NVIDIA wheels, GBs).
# TORCH_INDEX= (empty) uses only the indexes pip is configured with (e.g. a local wheel mirror).
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_INDEX_ARG := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),)
DEMO_MODELS ?= demo-models
# OpenVINO has wheels for these machines; make serve installs it so runtime=auto can pick it.
ARCH := $(shell uname -m)
SERVE_EXTRAS := $(if $(filter x86_64 aarch64 arm64 AMD64,$(ARCH)),[openvino],)

CHROMIUM ?= /usr/bin/chromium

.PHONY: serve install install-export demo install-dev install-fast test test-fast lint bench clean haproxy chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

install: $(BIN)/python
	$(PIP) install --quiet -e '.$(SERVE_EXTRAS)'

install-export: $(BIN)/python
	$(PIP) install --quiet -c constraints.txt $(TORCH_INDEX_ARG) -e '.[export]'

# A tiny model with random weights, served: the whole API to try, no download (images are noise).
demo: install install-export
	test -f $(DEMO_MODELS)/manifest.json || $(BIN)/pi-axera-sd models random $(DEMO_MODELS)
	$(BIN)/pi-axera-sd serve --models $(DEMO_MODELS)

install-fast: $(BIN)/python
	$(PIP) install --quiet -e '.[test-fast]'

install-dev: $(BIN)/python
	$(PIP) install --quiet -c constraints.txt -e '.[test]'

serve: install
	$(BIN)/pi-axera-sd serve

lint: install-dev
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/ruff format --check src tests scripts bench

# Debian's HAProxy for the load-balancing test (tests/test_haproxy_failover.py); needs root (CI is).
haproxy:
	@command -v haproxy >/dev/null 2>&1 || test -x /usr/sbin/haproxy || \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends haproxy; }


# The browser tests drive Debian's chromium package (Playwright's own browser download is not used).
chromium:
	@test -x $(CHROMIUM) || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

test: install-dev lint haproxy chromium
	$(BIN)/python -m pytest

# The tests that need no torch/diffusers/transformers/openvino, on a base install (seconds); the two
# that wait out the hub client's retries (marked slow) run in make test only.
test-fast: install-fast
	$(BIN)/python -m pytest -m "not torch and not slow"

bench: $(BIN)/python
	$(PIP) install --quiet -c constraints.txt -e '.[bench]'
	$(BIN)/python bench/run.py
	$(BIN)/python bench/startup.py

clean:
	rm -rf $(VENV) $(DEMO_MODELS) build dist .pytest_cache .ruff_cache src/*.egg-info
