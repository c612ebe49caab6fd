# The commands the README names. Everything installs into ./.venv; nothing global is touched.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export DAGSTER_HOME ?= $(abspath .dagster_home)

.PHONY: install run test demo lint sandbox bench-extract bench-raw clean

# Bytecode is compiled once here: where PYTHONDONTWRITEBYTECODE is set (as on these machines),
# Python would otherwise compile every module it imports in every process, again and again: a
# process that loads the definitions took 7.2 s instead of 3.8 s (every Dagster run, the code
# server, each CLI command).
$(VENV)/.installed: pyproject.toml sandbox/pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -c constraints.txt \
		-e ".[dev]"
	$(BIN)/python -m compileall -q -j 0 integration_platform sandbox/integration_platform_sandbox
	touch $@

# The dbt manifest is built at install time (as `dagster-dbt project prepare-and-package` would
# in a deployment), so the first demo or run does not parse the project; redone when a spec or
# a dbt file changes.
DBT_MANIFEST := dbt_project/target/manifest.json
DBT_INPUTS := $(wildcard sources/*.yaml) $(shell find dbt_project \( -name target -o -name logs \
	-o -name dbt_packages -o -name generated \) -prune -o -type f -print)
$(DBT_MANIFEST): $(VENV)/.installed $(DBT_INPUTS)
	$(BIN)/integration-platform prepare

install: $(VENV)/.installed $(DBT_MANIFEST)

# DuckDB releases that BI tools bundle, each in a venv of its own: the test that opens the
# published copy with them (tests/integration/test_published_copy_clients.py) runs them.
# Exact pins; a new pin reinstalls. A few seconds from uv's cache, quiet.
BI_CLIENTS := .venv-bi
BI_DUCKDB_PYTHON := 1.4.0
BI_DUCKDB_CLI := 1.5.6
$(BI_CLIENTS)/duckdb-1.4/.installed-$(BI_DUCKDB_PYTHON): $(VENV)/.installed
	rm -rf $(@D) && $(BIN)/uv venv --quiet --python $(BIN)/python $(@D)
	$(BIN)/uv pip install --quiet --python $(@D)/bin/python duckdb==$(BI_DUCKDB_PYTHON)
	touch $@
$(BI_CLIENTS)/duckdb-cli/.installed-$(BI_DUCKDB_CLI): $(VENV)/.installed
	rm -rf $(@D) && $(BIN)/uv venv --quiet --python $(BIN)/python $(@D)
	$(BIN)/uv pip install --quiet --python $(@D)/bin/python duckdb-cli==$(BI_DUCKDB_CLI)
	touch $@

## bi-clients: DuckDB 1.4 (Python) and the duckdb CLI from PyPI, in .venv-bi/
.PHONY: bi-clients
bi-clients: $(BI_CLIENTS)/duckdb-1.4/.installed-$(BI_DUCKDB_PYTHON) \
	$(BI_CLIENTS)/duckdb-cli/.installed-$(BI_DUCKDB_CLI)

## run: the sandbox vendor APIs plus the Dagster UI on http://127.0.0.1:3000; on Ctrl-C the
## runs in progress get GRACE_SECONDS to finish (`make run GRACE_SECONDS=300`), then are canceled
GRACE_SECONDS ?= 60
run: install
	$(BIN)/integration-platform up --grace-seconds $(GRACE_SECONDS)

## test: lint, type-check, the import graph's layers and the whole test suite (what CI runs), on
## two pytest-xdist workers: much of the suite waits on servers, daemons and ticks, not the CPU
## (`make test PYTEST_WORKERS=` runs it in one process; the 30 slowest tests are listed)
PYTEST_WORKERS ?= -n 2 --no-loadscope-reorder --durations=30
test: install bi-clients
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy integration_platform sandbox/integration_platform_sandbox
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest $(PYTEST_WORKERS)

## demo: the main job end to end, headless, with a printed summary
demo: install
	$(BIN)/integration-platform demo

## sandbox: only the sandbox vendor APIs
sandbox: install
	$(BIN)/integration-platform sandbox up

## bench-extract: engine vs a bare loop of its transport at 1M records, RSS at 100k vs 1M,
## shared rate limit
## (about 5 minutes; writes benchmarks/README.md; not part of `make test`)
bench-extract: install
	$(BIN)/python -m benchmarks.extract_benchmark

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy integration_platform sandbox/integration_platform_sandbox
	$(BIN)/lint-imports --no-cache

clean:
	rm -rf $(VENV) $(BI_CLIENTS) .dagster_home data dbt_project/target dbt_project/logs .pytest_cache .mypy_cache .ruff_cache

## bench-demo: `make demo`'s wall time, 3 rounds in fresh data folders, with the marts and ER
## figures each printed (about 5 minutes; rewrites its section of benchmarks/README.md; not part
## of `make test`)
.PHONY: bench-demo
bench-demo: install
	$(BIN)/python -m benchmarks.demo_benchmark --readme

## bench-webhooks: receiver vs a bare ASGI endpoint on loopback, verified events/s and p99 ack
## (about 1 minute; rewrites its section of benchmarks/README.md; not part of `make test`)
.PHONY: bench-webhooks
bench-webhooks: install
	$(BIN)/python -m benchmarks.webhook_benchmark --write-readme

## bench-raw: extract + load of 1M billing invoices into the raw table, ours vs dlt's rest_api
## vs a bare loop of our transport, peak RSS at 100k vs 1M, a pyinstrument profile of one 1M run
## (about 12 minutes; installs the `bench` extra: dlt, pyinstrument; rewrites its section of
## benchmarks/README.md; not part of `make test`)
$(VENV)/.bench-installed: $(VENV)/.installed
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt -e ".[dev,bench]"
	touch $@

bench-raw: $(VENV)/.bench-installed
	$(BIN)/python -m benchmarks.raw_load_benchmark --readme

## bench-sse: the analytics SSE stream into raw at 200k events, events/s and peak RSS (about
## 2 minutes; rewrites its section of benchmarks/README.md; not part of `make test`)
.PHONY: bench-sse
bench-sse: install
	$(BIN)/python -m benchmarks.sse_benchmark

## bench-er: entity resolution (dbt, blocking → scores → clusters → golden records) of 50k,
## 200k and 1M customer records on 2 cores (wall, CPU, peak memory, time per model, a projection
## to 10M), the registry variant (no email, no phone) at 10k and 50k people, and quality at the
## sandbox's heavy and extreme noise (50k records, 10k registry people): precision/recall/F1
## (overall, across sources, within one) and pair completeness against the ground truth (about
## 14 minutes on a 2-core machine at load 4-8, a quarter of it building the 1M raw tables; rewrites its
## section of benchmarks/README.md; exits non-zero when a result is wrong or a target missed;
## not part of `make test`)
.PHONY: bench-er
bench-er: install
	$(BIN)/python -m benchmarks.entity_resolution_benchmark --readme --noise default heavy extreme

## bench-api: the Integration Platform API, sync-request p50/p99 (new, repeated, status) and
## access-API records/s through 100k golden records (about 1 minute; rewrites its section of
## benchmarks/README.md; not part of `make test`)
.PHONY: bench-api
bench-api: install
	$(BIN)/python -m benchmarks.api_benchmark --readme

## bench-dbt: one dbt build of the demo's warehouse, alone and through Dagster with and without
## the column metadata (lineage) (about 5 minutes after `make demo`; rewrites its section of
## benchmarks/README.md; not part of `make test`)
.PHONY: bench-dbt
bench-dbt: install
	$(BIN)/python -m benchmarks.dbt_build_benchmark --readme

## bench-sync: the real platform (Dagster daemon, sandbox, API): a scheduled day's lag to the
## marts, single client-week syncs from POST to succeeded, and 10 clients syncing at once
## (about 15 minutes; rewrites its section of benchmarks/README.md; not part of `make test`)
.PHONY: bench-sync
bench-sync: install
	$(BIN)/python -m benchmarks.sync_benchmark --readme

## bench-tick: what one tick of the automation sensor costs, on a copy of the demo's instance
## (`make demo` first; seconds; rewrites its section of benchmarks/README.md; not part of `make test`)
.PHONY: bench-tick
bench-tick: install
	$(BIN)/python -m benchmarks.automation_tick_benchmark --readme

## bench-profiles: the demo and a client-week sync on each Dagster instance profile, SQLite
## (local) and PostgreSQL (production, on this machine's server), in one run (about 15 minutes;
## rewrites its section of benchmarks/README.md; not part of `make test`)
.PHONY: bench-profiles
bench-profiles: install
	$(BIN)/python -m benchmarks.profiles_benchmark --readme
