"""Where the project keeps its local state, and the sandbox's demo credentials."""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SANDBOX_ENV_FILE = PROJECT_ROOT / "config" / "sandbox.env"


def load_sandbox_env(path: Path = SANDBOX_ENV_FILE) -> dict[str, str]:
    """Export the sandbox-only demo credentials for every variable not already set.

    Variables already in the environment win, so real values are never overwritten.
    Returns what was set.
    """
    added = {}
    for key, value in dotenv_values(path).items():
        if value is not None and key not in os.environ:
            os.environ[key] = value
            added[key] = value
    return added


def data_dir() -> Path:
    """Local state (warehouse, landing zone); `INTEGRATION_PLATFORM_DATA_DIR` moves it."""
    return Path(os.environ.get("INTEGRATION_PLATFORM_DATA_DIR", PROJECT_ROOT / "data"))


def warehouse_path() -> Path:
    """The DuckDB warehouse file; `WAREHOUSE_PATH` overrides it (dbt's profile reads it too)."""
    configured = os.environ.get("WAREHOUSE_PATH")
    return Path(configured) if configured else data_dir() / "warehouse.duckdb"


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME", PROJECT_ROOT / ".dagster_home"))
