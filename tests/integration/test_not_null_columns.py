"""The project's `not_null_columns` test (dbt_project/tests/generic/not_null_columns.sql), one
node per model for its not-null columns, through real dbt on DuckDB: it passes on a clean table
and fails on nulls, counting the null values as `not_null` would, column by column."""

from __future__ import annotations

import json
from pathlib import Path

from integration_platform.specs.loader import load_spec, spec_paths
from tests.integration.dbt_warehouse import DbtWarehouse


def test_not_null_columns_passes_on_a_clean_table_and_counts_each_null_value(
    tmp_path: Path,
) -> None:
    specs = {spec.source: spec for spec in map(load_spec, spec_paths())}
    warehouse = DbtWarehouse.create(tmp_path, specs)
    warehouse.dbt("seed", "--select", "fx_rates")
    assert "not_null_fx_rates pass" in warehouse.dbt("test", "--select", "not_null_fx_rates")

    # one row with two nulls, one with a third: 3 null values in 2 columns
    warehouse.execute(
        "insert into reference.fx_rates values (null, null, 1.0), ('2031-01-01', 'EUR', null)"
    )
    statuses = warehouse.dbt("test", "--select", "not_null_fx_rates", check=False)
    assert "not_null_fx_rates fail" in statuses
    (result,) = (
        r
        for r in json.loads((warehouse.project / "target" / "run_results.json").read_text())[
            "results"
        ]
        if r["unique_id"].startswith("test.")
    )
    assert result["failures"] == 3
    assert "Got 3 results" in result["message"]

    # which columns: what `dbt test --store-failures` would keep, the test's own rows
    compiled = next((warehouse.project / "target" / "compiled").rglob("not_null_fx_rates.sql"))
    rows = warehouse.execute(compiled.read_text())
    assert sorted(rows) == [("currency", 1), ("date", 1), ("rate_to_usd", 1)]
