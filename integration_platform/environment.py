"""Where the project keeps its local state, and where unset variables come from (`.env`, then
the sandbox's demo credentials)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SANDBOX_ENV_FILE = PROJECT_ROOT / "config" / "sandbox.env"
# The repository root's, where Dagster's `dg` and `dagster dev` (run from the root) read it too.
DOTENV_FILE = PROJECT_ROOT / ".env"


class SettingError(RuntimeError):
    """A setting the user has to change (a variable unset or wrong, a step not run yet); the
    message says which and how. Commands print it as it is, in one line, with no traceback."""


PUBLISHED_STORAGE_VERSION_VARIABLE = "PUBLISHED_STORAGE_VERSION"
# DuckDB 1.4 (the long-term release) and everything after it open a file of this format.
DEFAULT_PUBLISHED_STORAGE_VERSION = "v1.4.0"
PUBLISHED_AS_IS = "as-is"


def load_env() -> dict[str, str]:
    """Fill the variables the environment leaves unset: from the repository's `.env`, then from
    the sandbox's demo credentials. The environment wins over `.env`, and `.env` over
    config/sandbox.env. Returns what was set."""
    added = load_sandbox_env(DOTENV_FILE)  # none: nothing (python-dotenv reads it as empty)
    return added | load_sandbox_env(SANDBOX_ENV_FILE)


def load_sandbox_env(path: Path = SANDBOX_ENV_FILE) -> dict[str, str]:
    """Export the variables of an env file that are not already set (by default the
    sandbox-only demo credentials; the CLI calls `load_env`, which reads `.env` first).

    Variables already in the environment win, so real values are never overwritten.
    Returns what was set.
    """
    added = {}
    for key, value in dotenv_values(path).items():
        if value is not None and key not in os.environ:
            os.environ[key] = value
            added[key] = value
    return added


def dotenv_disagreements(env: Mapping[str, str]) -> list[str]:
    """Variables that `.env` sets to another value than `env` has. Dagster's `dg dev` and
    `dagster dev` load the `.env` of their folder over their environment, so in their processes
    those variables would take `.env`'s value, unlike everywhere else."""
    return sorted(
        key
        for key, value in dotenv_values(DOTENV_FILE).items()
        if value is not None and key in env and env[key] != value
    )


def data_dir() -> Path:
    """Local state (warehouse, landing zone); `INTEGRATION_PLATFORM_DATA_DIR` moves it."""
    return Path(os.environ.get("INTEGRATION_PLATFORM_DATA_DIR", PROJECT_ROOT / "data"))


def landing_url() -> str:
    """Where raw pages land: `LANDING_URL` (a folder, or `s3://bucket/prefix` for S3-compatible
    object storage that every worker reaches), by default the data folder's `landing/`."""
    return os.environ.get("LANDING_URL") or str(data_dir() / "landing")


def dbt_project_dir() -> Path:
    """`DBT_PROJECT_DIR` moves the dbt project (tests run a copy); default: dbt_project/."""
    return Path(os.environ.get("DBT_PROJECT_DIR", PROJECT_ROOT / "dbt_project"))


def warehouse_path() -> Path:
    """The DuckDB warehouse file; `WAREHOUSE_PATH` overrides it (dbt's profile reads it too)."""
    configured = os.environ.get("WAREHOUSE_PATH")
    return Path(configured) if configured else data_dir() / "warehouse.duckdb"


def published_storage_version() -> str:
    """The DuckDB storage version the published copy is written in (`PUBLISHED_STORAGE_VERSION`);
    `as-is` copies the warehouse file byte for byte."""
    return os.environ.get(PUBLISHED_STORAGE_VERSION_VARIABLE) or DEFAULT_PUBLISHED_STORAGE_VERSION


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME", PROJECT_ROOT / ".dagster_home"))
