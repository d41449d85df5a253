# The documented way in: `make run` serves glint, `make test` runs every test.
.DEFAULT_GOAL := help
SHELL := /bin/bash

# The first Python 3.11+ that runs (pyenv shims exist for versions that are not enabled).
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 \
	&& { command -v $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.glint-installed
# What `make run` needs: glint's runtime and the glance client of the README's tour, not the
# test tools (`make test` installs those: the test extra).
RUN_STAMP := $(VENV)/.glint-run-installed
# A script package installed the way a deployer installs one (see docs/script-contract.md).
EXAMPLE := examples/glint-verify
EXAMPLE_FILES := $(EXAMPLE)/pyproject.toml $(wildcard $(EXAMPLE)/glint_verify/*.py $(EXAMPLE)/glint_verify/py.typed)
# `make run HOST=0.0.0.0 PORT=9393`; unset, the bind_host and bind_port settings apply
# (GLINT_BIND_HOST, GLINT_BIND_PORT, or the $$GLINT_CONFIG file; 127.0.0.1:9292 by default).
HOST ?=
PORT ?=
PYTEST_ARGS ?=

.PHONY: help venv run test services tools lint clean conformance

help:  ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

venv: $(STAMP)  ## Create .venv and install glint with its test tools (quick when done)

$(STAMP): pyproject.toml $(EXAMPLE_FILES)
	@test -n "$(PYTHON)" || { echo "glint needs Python 3.11 or newer: none found (set PYTHON=...)" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing glint and its test tools into $(VENV) (a few minutes the first time)"
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet ./$(EXAMPLE)
	rm -rf $(EXAMPLE)/build $(EXAMPLE)/*.egg-info
	touch $@

$(RUN_STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "glint needs Python 3.11 or newer: none found (set PYTHON=...)" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing glint and the glance client into $(VENV) (about a minute the first time)"
	set -o pipefail; $(BIN)/python -m pip install --progress-bar off -e . python-glanceclient \
		| { grep --line-buffered -E '^(Collecting|Successfully installed)' || true; }
	$(BIN)/glint --version
	touch $@

run: $(RUN_STAMP)  ## Migrate and serve on 127.0.0.1:9292, or HOST=, PORT= (SQLite and images under ./data)
	$(BIN)/glint db upgrade
	$(BIN)/glint serve $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

services:  ## Start PostgreSQL, RabbitMQ and Redis if they are down
	scripts/ensure-services

tools:  ## Install the command-line tools tests use (qemu-img, chromium, chromedriver) if they are missing
	scripts/ensure-tools

lint: venv  ## ruff, mypy and the layering contracts (import-linter)
	$(BIN)/ruff check glint tests examples
	$(BIN)/mypy
	$(BIN)/lint-imports

test: venv tools services lint  ## Lint, then unit, integration (with the wheel installed in a clean venv), acceptance and example-package tests
	$(BIN)/pytest --cov --cov-report=term --durations=25 $(PYTEST_ARGS) tests/unit tests/integration tests/keystone tests/acceptance \
		$(EXAMPLE)/tests

# OpenStack's tempest Images API suite against glint in keystone mode, with a real Keystone
# (scripts/conformance; installs Keystone and tempest under $$TMPDIR/glint-conformance once).
CONFORMANCE_MIN_PASSED ?= 78
conformance: venv tools  ## Run tempest.api.image.v2 against glint with Keystone (minutes)
	CONFORMANCE_MIN_PASSED=$(CONFORMANCE_MIN_PASSED) scripts/conformance

# Benchmarks (bench/, BENCHMARKS.md): not part of `make test`. BENCH_SIZE_MIB=64 for a quick run.
BENCH_STAMP := $(VENV)/.glint-bench-installed
.PHONY: bench
bench: venv $(BENCH_STAMP)  ## Measure this machine's limits and glint against them (bench/results/latest.json)
	$(BIN)/python -m glint_bench

$(BENCH_STAMP): $(STAMP) bench/pyproject.toml
	$(BIN)/python -m pip install --quiet -e ./bench
	touch $@

clean:  ## Remove caches and build output (keeps .venv and ./data)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov build dist *.egg-info
	find . -path ./.venv -prune -o -name __pycache__ -type d -exec rm -rf {} +
