"""The Dagster code location: every asset, check, resource, job, schedule and sensor."""

from __future__ import annotations

from dagster import Definitions
from dagster_duckdb import DuckDBResource

from integration_platform import environment

defs = Definitions(
    resources={
        "warehouse": DuckDBResource(database=str(environment.warehouse_path())),
    },
)
