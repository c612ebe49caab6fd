"""The dbt build's column lineage cache: a cached lineage is dagster-dbt's, and a changed model
SQL or a changed column schema is computed again."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from dagster import AssetKey, TableColumnLineage

from integration_platform.transform.column_metadata import (
    ColumnLineageCache,
    Columns,
    cached_lineage,
    compiled_sql_path,
    dagster_dbt_lineage,
)
from integration_platform.transform.dbt_assets import IntegrationDbtTranslator

SOURCE = "source.integration_platform.crm.contacts"
MODEL = "model.integration_platform.stg_crm__contacts"
SOURCE_RELATION = '"warehouse"."raw"."crm__contacts"'
SQL = f"select lower(email) as email, first_name || last_name as full_name from {SOURCE_RELATION}"
COLUMNS: Columns = {"email": {"data_type": "VARCHAR"}, "full_name": {"data_type": "VARCHAR"}}
RAW: Columns = {c: {"data_type": "VARCHAR"} for c in ("email", "first_name", "last_name")}


def _node(
    unique_id: str, resource_type: str, name: str, schema: str, **extra: Any
) -> dict[str, Any]:
    return {
        "unique_id": unique_id,
        "resource_type": resource_type,
        "name": name,
        "alias": name,
        "identifier": name,
        "database": "warehouse",
        "schema": schema,
        "relation_name": f'"warehouse"."{schema}"."{extra.pop("table", name)}"',
        "package_name": "integration_platform",
        "fqn": ["integration_platform", name],
        "config": {"materialized": "view", "tags": [], "meta": {}, "group": None},
        "tags": [],
        "meta": {},
        "description": "",
        "columns": {},
        "depends_on": {"nodes": [], "macros": []},
        **extra,
    }


@pytest.fixture
def invocation(tmp_path: Path) -> SimpleNamespace:
    """What the lineage reads of a dbt invocation: its manifest, its target folder (where the
    compiled SQL is), the translator."""
    source = _node(SOURCE, "source", "contacts", "raw", table="crm__contacts", source_name="crm")
    source["original_file_path"] = "models/generated/_sources.yml"
    model = _node(
        MODEL,
        "model",
        "stg_crm__contacts",
        "staging",
        original_file_path="models/generated/stg_crm__contacts.sql",
    )
    model["depends_on"]["nodes"] = [SOURCE]
    manifest = {
        "metadata": {"adapter_type": "duckdb"},
        "nodes": {MODEL: model},
        "sources": {SOURCE: source},
        "parent_map": {MODEL: [SOURCE], SOURCE: []},
        "child_map": {SOURCE: [MODEL], MODEL: []},
        "exposures": {},
        "metrics": {},
        "semantic_models": {},
        "saved_queries": {},
        "unit_tests": {},
        "selectors": {},
        "groups": {},
    }
    found = SimpleNamespace(
        manifest=manifest,
        target_path=tmp_path / "target",
        dagster_dbt_translator=IntegrationDbtTranslator(),
        project=None,
    )
    write_sql(found, SQL)
    return found


def write_sql(invocation: SimpleNamespace, sql: str) -> None:
    path = compiled_sql_path(invocation.target_path, invocation.manifest["nodes"][MODEL])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sql)


def lineage(
    invocation: SimpleNamespace, cache: ColumnLineageCache, raw: Columns = RAW
) -> dict[str, set[tuple[AssetKey, str]]]:
    """The model's lineage through the cache, checked against dagster-dbt's fresh computation,
    as {column: {(parent asset key, parent column)}} (dagster-dbt's dependency order is a set's)."""
    props = invocation.manifest["nodes"][MODEL]
    got = cached_lineage(invocation, props, COLUMNS, {SOURCE_RELATION: raw}, cache)  # type: ignore[arg-type]
    fresh = dagster_dbt_lineage(invocation, props, COLUMNS, {SOURCE_RELATION: raw})  # type: ignore[arg-type]
    assert _as_sets(got) == _as_sets(fresh)
    return _as_sets(got)


def _as_sets(metadata: dict[str, Any]) -> dict[str, set[tuple[AssetKey, str]]]:
    value = metadata["dagster/column_lineage"]
    assert isinstance(value, TableColumnLineage)
    return {
        column: {(dep.asset_key, dep.column_name) for dep in deps}
        for column, deps in value.deps_by_column.items()
    }


def test_a_cached_lineage_is_dagster_dbts_when_the_next_build_reads_it(
    invocation: SimpleNamespace, tmp_path: Path
) -> None:
    path = tmp_path / "warehouse.column_lineage.json"
    first = ColumnLineageCache.load(path)
    computed = lineage(invocation, first)
    first.save()
    raw = AssetKey(["raw", "crm", "contacts"])
    assert computed == {
        "email": {(raw, "email")},
        "full_name": {(raw, "first_name"), (raw, "last_name")},
    }
    assert (first.hits, first.misses) == (0, 1)

    later = ColumnLineageCache.load(path)
    assert lineage(invocation, later) == computed
    assert (later.hits, later.misses) == (1, 0)


def test_the_lineage_is_computed_again_when_the_models_sql_changed(
    invocation: SimpleNamespace, tmp_path: Path
) -> None:
    cache = ColumnLineageCache(tmp_path / "cache.json")
    before = lineage(invocation, cache)
    write_sql(invocation, SQL.replace("lower(email)", "lower(last_name)"))
    after = lineage(invocation, cache)
    assert (cache.hits, cache.misses) == (0, 2)
    assert (
        after["email"] == {(AssetKey(["raw", "crm", "contacts"]), "last_name")} != before["email"]
    )


@pytest.mark.parametrize(
    "raw",
    [
        {**RAW, "email": {"data_type": "VARCHAR(256)"}},  # a parent column's type changed
        {**RAW, "phone": {"data_type": "VARCHAR"}},  # a parent column was added
    ],
)
def test_the_lineage_is_computed_again_when_a_parents_columns_changed(
    invocation: SimpleNamespace, tmp_path: Path, raw: Columns
) -> None:
    cache = ColumnLineageCache(tmp_path / "cache.json")
    lineage(invocation, cache)
    lineage(invocation, cache, raw=raw)
    assert (cache.hits, cache.misses) == (0, 2)


def test_saving_keeps_only_what_the_last_build_used_when_a_model_changed(
    invocation: SimpleNamespace, tmp_path: Path
) -> None:
    path = tmp_path / "cache.json"
    first = ColumnLineageCache.load(path)
    lineage(invocation, first)
    first.save()
    write_sql(invocation, SQL.replace("lower(email)", "upper(email)"))
    second = ColumnLineageCache.load(path)
    lineage(invocation, second)
    second.save()
    assert second.misses == 1 and len(json.loads(path.read_text())) == 1


def test_a_damaged_cache_file_is_recomputed_when_a_build_reads_it(
    invocation: SimpleNamespace, tmp_path: Path
) -> None:
    path = tmp_path / "cache.json"
    path.write_text('{"truncated')
    cache = ColumnLineageCache.load(path)
    lineage(invocation, cache)
    assert cache.misses == 1
