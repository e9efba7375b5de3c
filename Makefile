# Two entry points (see README): `make serve` installs and starts the service, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# The whole dependency tree the test suite last passed with: every install here is pinned by it, so a
# new upstream release changes nothing until `make lock` has run the suite on it (docs/development.md).
LOCK ?= requirements.lock
PIN := -c $(LOCK)
# PyTorch's CPU-only wheels: PyPI's Linux x86_64 torch is the CUDA build (~15 NVIDIA wheels, GBs).
# The index is probed once per install (scripts/torch_index.py); TORCH_INDEX= uses only pip's own indexes.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_INDEX_ARGS = $$($(BIN)/python scripts/torch_index.py '$(TORCH_INDEX)' '$(LOCK)')
DEMO_MODELS ?= demo-models
# One stamp per install: an install runs again only when pyproject.toml or the lock changed.
STAMP := $(VENV)/.installed

CHROMIUM ?= /usr/bin/chromium

.PHONY: serve install install-export demo install-dev install-fast test test-fast lint lock bench clean haproxy chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The base install (no extras): what `serve` needs, OpenVINO included.
$(STAMP)-base: pyproject.toml $(wildcard $(LOCK)) | $(BIN)/python
	$(PIP) install --quiet $(PIN) -e .
	@touch $@

$(STAMP)-export: pyproject.toml $(wildcard $(LOCK)) | $(BIN)/python
	$(PIP) install --quiet $(PIN) $(TORCH_INDEX_ARGS) -e '.[export]'
	@touch $@

$(STAMP)-fast: pyproject.toml $(wildcard $(LOCK)) | $(BIN)/python
	$(PIP) install --quiet $(PIN) -e '.[test-fast]'
	@touch $@

$(STAMP)-dev: pyproject.toml $(wildcard $(LOCK)) | $(BIN)/python
	$(PIP) install --quiet $(PIN) $(TORCH_INDEX_ARGS) -e '.[test]'
	@touch $@

install: $(STAMP)-base
install-export: $(STAMP)-export
install-fast: $(STAMP)-fast
install-dev: $(STAMP)-dev

serve: install
	$(BIN)/pi-axera-sd serve

# A tiny model with random weights (128x128 images of noise), served: the whole API, no model download.
demo: install install-export
	test -f $(DEMO_MODELS)/manifest.json || $(BIN)/pi-axera-sd models random $(DEMO_MODELS)
	$(BIN)/pi-axera-sd serve --models $(DEMO_MODELS)

lint: install-dev
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/ruff format --check src tests scripts bench

# Debian packages a test needs, installed once: as root (CI) apt-get runs as is, otherwise through
# sudo; where neither is possible, one line names the packages and the command, and make stops.
apt_install = if [ "$$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; \
	else echo "error: the tests need Debian's $(1): run 'sudo apt-get install -y $(1)' as an administrator, then make test again" >&2; \
	exit 2; fi; $$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(1)

# Debian's HAProxy for the load-balancing test (tests/system/test_haproxy_failover.py).
haproxy:
	@command -v haproxy >/dev/null 2>&1 || test -x /usr/sbin/haproxy || { $(call apt_install,haproxy); }

# The browser tests drive Debian's chromium package (Playwright's own browser download is not used).
chromium:
	@test -x $(CHROMIUM) || { $(call apt_install,chromium); }

# PI_AXERA_SD_LOCK: the lock the base-install tests pin their fresh venvs with (the one under test).
# Two pytest workers, each test file kept on one (module fixtures start servers once): the suite
# spends much of its time waiting on subprocesses, so 2 workers help even on 2 cores.
TEST_WORKERS ?= 2
test: install-dev lint haproxy chromium
	PI_AXERA_SD_LOCK=$(LOCK) $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=15

# The unit tier (tests/unit: no model, no server) on a base install plus pytest, without torch: seconds.
test-fast: install-fast
	$(BIN)/python -m pytest tests/unit -m "not torch"

# Refresh the lock on purpose: today's releases (torch held at constraints.txt's pin) in a fresh venv,
# the whole suite run on them, and only when it passes does requirements.lock change. Commit the diff.
LOCK_VENV := .venv-lock
lock:
	rm -rf $(LOCK_VENV) $(LOCK).new
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet -c constraints.txt \
		$$($(LOCK_VENV)/bin/python scripts/torch_index.py '$(TORCH_INDEX)' '') -e '.[test,bench]'
	{ echo "# The dependency tree 'make test' passed with, made by 'make lock' on $$(date -u +%F)"; \
	  echo "# ($$($(LOCK_VENV)/bin/python -c 'import platform; print(platform.python_version(), platform.machine())')). Used as pip constraints by every make install."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable | sed -E 's/\+[[:alnum:].]+$$//'; } > $(LOCK).new
	$(MAKE) test VENV=$(LOCK_VENV) LOCK=$(LOCK).new
	mv $(LOCK).new $(LOCK)
	@echo "requirements.lock refreshed; review 'git diff $(LOCK)' and commit it"

bench: $(BIN)/python
	$(PIP) install --quiet $(PIN) $(TORCH_INDEX_ARGS) -e '.[bench]'
	$(BIN)/python bench/run.py
	$(BIN)/python bench/startup.py

clean:
	rm -rf $(VENV) $(LOCK_VENV) $(DEMO_MODELS) build dist .pytest_cache .ruff_cache .cache/venvs src/*.egg-info
