# The commands the README names. Everything installs into ./.venv; nothing global is touched.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export DAGSTER_HOME ?= $(abspath .dagster_home)

.PHONY: install run test demo lint sandbox bench-extract clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt -e ".[dev]"
	touch $@

install: $(VENV)/.installed

## run: the sandbox vendor APIs plus the Dagster UI on http://127.0.0.1:3000
run: install
	$(BIN)/integration-platform up

## test: lint, type-check and the whole test suite (what CI runs)
test: install
	$(BIN)/ruff check .
	$(BIN)/mypy integration_platform
	$(BIN)/pytest

## demo: the main job end to end, headless, with a printed summary
demo: install
	$(BIN)/integration-platform demo

## sandbox: only the sandbox vendor APIs
sandbox: install
	$(BIN)/integration-platform sandbox up

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy integration_platform

clean:
	rm -rf $(VENV) .dagster_home data dbt_project/target dbt_project/logs .pytest_cache .mypy_cache .ruff_cache
