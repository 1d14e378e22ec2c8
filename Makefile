# Rekindle — the two commands a newcomer runs are `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
# uv from the PATH when the machine has it, else a pinned copy bootstrapped into .tools/.
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.synced

# Everything a local run writes stays inside the project's ignored folders.
export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__COSMOS__ENABLE_TELEMETRY := False
export DO_NOT_TRACK := 1
export SCARF_ANALYTICS := false
export DBT_PROFILES_DIR := $(CURDIR)/dbt_project
export UV_PYTHON_DOWNLOADS := never
export REKINDLE_LANDING ?= data/landing
export REKINDLE_WAREHOUSE ?= warehouse/rekindle.duckdb
export REKINDLE_OUT ?= out

DEMO_USERS ?= 20000
DEMO_DAYS ?= 30
DEMO_END ?= 2026-10-31
DEMO_SEED ?= 42
# A manual run processes the day that ends at its date: run the day after the last day of data.
DEMO_RUN_DATE := $(shell date -u -d '$(DEMO_END) + 1 day' +%F)
BENCH_USERS ?= 20000
BENCH_DAYS ?= 30

.PHONY: help demo test lint docs bench clean airflow-init

help:
	@echo "make demo   build the environment, generate sample data, run rekindle_daily through Airflow"
	@echo "make test   build the environment and run the whole test suite"
	@echo "make lint   ruff and sqlfluff"
	@echo "make docs   dbt docs as a static site in $(REKINDLE_OUT)/docs/dbt (GX Data Docs: $(REKINDLE_OUT)/docs/gx)"
	@echo "make bench  time each stage on generated data (BENCH_USERS=$(BENCH_USERS) BENCH_DAYS=$(BENCH_DAYS))"
	@echo "make clean  remove everything generated (environment included)"

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

# The environment is rebuilt whenever the project or the lock file changes; --frozen installs exactly
# what uv.lock pins and fails instead of re-resolving.
$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet
	touch $@

airflow-init: $(STAMP)
	@mkdir -p $(AIRFLOW_HOME)
	@$(VENV)/bin/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || { tail -n 30 $(AIRFLOW_HOME)/db-migrate.log; exit 1; }
	@$(VENV)/bin/airflow pools set rekindle_warehouse 1 "DuckDB allows one writing process" > /dev/null

demo: airflow-init
	@echo "==> generating $(DEMO_USERS) users x $(DEMO_DAYS) days of sample data into $(REKINDLE_LANDING)"
	rm -rf $(REKINDLE_LANDING) $(REKINDLE_WAREHOUSE) $(REKINDLE_OUT)/exports $(REKINDLE_OUT)/outbox
	$(PY) -m loaders.generate --users $(DEMO_USERS) --days $(DEMO_DAYS) --end $(DEMO_END) --seed $(DEMO_SEED) --out $(REKINDLE_LANDING)
	@echo "==> airflow dags test rekindle_daily $(DEMO_RUN_DATE)   (log: $(REKINDLE_OUT)/demo-airflow.log)"
	@mkdir -p $(REKINDLE_OUT)
	@$(VENV)/bin/airflow dags test rekindle_daily $(DEMO_RUN_DATE) > $(REKINDLE_OUT)/demo-airflow.log 2>&1 \
		|| { grep -v 'Skipping registering' $(REKINDLE_OUT)/demo-airflow.log | tail -n 40; exit 1; }
	@grep -q "state=success" $(REKINDLE_OUT)/demo-airflow.log || { echo "rekindle_daily did not succeed; see $(REKINDLE_OUT)/demo-airflow.log"; exit 1; }
	@$(MAKE) --no-print-directory docs > /dev/null
	@$(PY) -m loaders.summary

# tests/test_report_email.py renders the report email's HTML with headless Chromium: Debian's package,
# installed when missing (CI runs as root); the test fails, not skips, when it is still absent.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

# Three workers, whole test files each (module fixtures stay in one process): much of a test's time is spent
# waiting on dbt, Airflow or Postgres, so a third worker fills the two cores. The slowest tests are listed.
test: $(STAMP) $(CHROMIUM)
	$(PY) -m pytest -n 3 --dist loadfile --durations=20

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@mkdir -p target
	# The dbt templater opens the warehouse (is_incremental() looks for the table): lint against an empty one.
	REKINDLE_WAREHOUSE=$(CURDIR)/target/lint.duckdb $(VENV)/bin/sqlfluff lint models

docs: $(STAMP)
	$(VENV)/bin/dbt docs generate --static --quiet
	@mkdir -p $(REKINDLE_OUT)/docs/dbt
	cp target/static_index.html $(REKINDLE_OUT)/docs/dbt/index.html
	@echo "dbt docs: $(abspath $(REKINDLE_OUT))/docs/dbt/index.html"
	@# The quality gate writes its Great Expectations Data Docs on every run, next to the dbt docs.
	@if [ -f $(REKINDLE_OUT)/docs/gx/index.html ]; then echo "GX Data Docs: $(abspath $(REKINDLE_OUT))/docs/gx/index.html"; \
		else echo "GX Data Docs: written to $(abspath $(REKINDLE_OUT))/docs/gx/ by the quality gate (make demo)"; fi

bench: airflow-init
	$(PY) tests/bench/run_bench.py --users $(BENCH_USERS) --days $(BENCH_DAYS)

clean:
	rm -rf .venv .tools .airflow target dbt_packages logs data warehouse out .pytest_cache .ruff_cache
