# propstream — every target installs what it needs first; `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
BOOT := .cache/bootstrap
UV := $(BOOT)/bin/uv
VENV := .venv
PS := $(VENV)/bin/propstream
PYTEST_ARGS ?=
# Two pytest-xdist workers: most of the real-broker tests wait on Kafka and child processes,
# so two overlap well on two cores (docs/operations.md, "Test suite time"). 0 = in-process.
TEST_WORKERS ?= 2

.PHONY: help install run up infra-up infra-down infra-status test unit integration lint typecheck bench schemas clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(UV):
	@echo "installing uv $(UV_VERSION) into $(BOOT)"
	@$(PYTHON) -m venv $(BOOT)
	@$(BOOT)/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	@echo "syncing the Python environment from uv.lock"
	@UV_PYTHON=$(PYTHON) $(UV) sync --frozen --quiet
	@touch $@

install: $(VENV)/.synced ## Install the Python environment (uv, locked)

run: install ## Start infrastructure and every service (Ctrl-C stops)
	@$(PS) up

up: run ## Same as run

infra-up: install ## Start Kafka, PostgreSQL, Redis and stripe-mock only
	@$(PS) infra up

infra-down: install ## Stop what infra-up started
	@$(PS) infra down

infra-status: install ## Show the infrastructure processes
	@$(PS) infra status

test: install ## Lint, type-check and run the whole suite against real Kafka, PostgreSQL, Redis
	@$(PS) infra up
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/mypy schemas kernel market_data core propstream ws_gateway monte_carlo
	@$(VENV)/bin/pytest -q -rs -n $(TEST_WORKERS) --dist loadgroup --durations=25 --durations-min=5 $(PYTEST_ARGS)

unit: install ## Run the unit tests only (no infrastructure)
	@$(VENV)/bin/pytest -q tests/unit $(PYTEST_ARGS)

integration: install ## Run the integration tests only
	@$(PS) infra up
	@$(VENV)/bin/pytest -q -rs -n $(TEST_WORKERS) --dist loadgroup tests/integration $(PYTEST_ARGS)

lint: install ## ruff and mypy
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/mypy schemas kernel market_data core propstream ws_gateway monte_carlo

schemas: install ## Re-export JSON Schema and AsyncAPI after changing a model
	@$(PS) schemas export

bench: install ## Run the benchmarks (prints figures; see bench/RESULTS.md)
	@$(PS) infra up
	@$(VENV)/bin/python -m bench.run_all

clean: ## Stop infrastructure and remove the local caches (jars, data, venv)
	-@$(PS) infra down
	rm -rf .cache $(VENV)
