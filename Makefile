# One entry point for people and CI. Every target creates the virtualenv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(wildcard protos/trading/v1/*.proto)

.PHONY: help install gen gen-check lint test test-fast run accuracy bench bench-smoke compose-check clean

help:  ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)  ## Create .venv and install the locked dependencies.

gen: $(STAMP)  ## Regenerate gen/ from protos/ with the pinned grpcio-tools.
	$(PY) -m devstack.protogen --out gen

gen-check: $(STAMP)  ## Fail when gen/ is not what protos/ generate.
	$(PY) -m devstack.protogen --check gen

lint: $(STAMP)  ## ruff, mypy --strict and buf lint.
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy tradekit devstack proxy processor vwap simulator bench
	$(VENV)/bin/buf lint protos

compose-check: $(STAMP)  ## Validate docker-compose.yml and the Dockerfile against the code.
	$(PY) -m devstack.compose_check

test: $(STAMP) lint gen-check compose-check  ## Everything CI checks: lint, types, gen freshness, the test suite.
	$(VENV)/bin/pytest -q -p no:cacheprovider

test-fast: $(STAMP)  ## The test suite without the slow end-to-end scenarios.
	$(VENV)/bin/pytest -q -m "not slow"

run: $(STAMP)  ## Start the whole stack on embedded defaults (Ctrl-C stops it).
	$(PY) -m devstack

PROFILE ?= hostile
DURATION ?= 120

accuracy: $(STAMP)  ## Grade the stack against the simulator's truth (PROFILE=hostile DURATION=120); exit 1 unless exact.
	$(PY) -m devstack.accuracy --profile $(PROFILE) --duration $(DURATION) --out .stack-data/accuracy-$(PROFILE).json

bench: $(STAMP)  ## Run the benchmarks; results in bench-results/*.json and bench-results/SUMMARY.md.
	$(PY) -m bench

bench-smoke: $(STAMP)  ## Each benchmark in its tiny configuration (structure and correctness only).
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/bench

clean:  ## Remove the virtualenv and local run data.
	rm -rf $(VENV) .stack-data
