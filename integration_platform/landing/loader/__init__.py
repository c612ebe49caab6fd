"""The DuckDB loader: landed pages into `raw.<source>__<endpoint>`, one transaction a partition.

DuckDB reads the gzipped pages itself (`read_json_objects`), unnests the records where they
sit (`locate`) and joins the manifest for lineage; Python never touches rows one by one. Each
record's JSON is parsed as few times as possible (it dominates the cost). The steps: `stage`
(pages into staging tables, their schema observed), `load` (contract, transaction, counts),
and `stager` (staging beside the extraction while pages still land).
"""

from __future__ import annotations

from integration_platform.landing.loader.keys import PrimaryKeySQL, primary_key_sql
from integration_platform.landing.loader.load import (
    SCHEMA_SQL,
    DriftPolicy,
    LoadCountError,
    LoadMemoryError,
    LoadMode,
    LoadResult,
    ensure_schema,
    load_attempt,
    raw_table_sql,
    table_name,
)
from integration_platform.landing.loader.locate import RecordsLocator, records_locator
from integration_platform.landing.loader.stage import DEFAULT_LOAD_MEMORY_MB, merge_observed
from integration_platform.landing.loader.stager import Stager

__all__ = [
    "DEFAULT_LOAD_MEMORY_MB",
    "SCHEMA_SQL",
    "DriftPolicy",
    "LoadCountError",
    "LoadMemoryError",
    "LoadMode",
    "LoadResult",
    "PrimaryKeySQL",
    "RecordsLocator",
    "Stager",
    "ensure_schema",
    "load_attempt",
    "merge_observed",
    "primary_key_sql",
    "raw_table_sql",
    "records_locator",
    "table_name",
]
