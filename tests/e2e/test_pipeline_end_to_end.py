"""Everything through Dagster for one partition: raw → staging → resolution → marts, checked."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import httpx
import pytest
from dagster import (
    AssetSelection,
    DagsterInstance,
    MultiPartitionsDefinition,
    materialize,
)
from dagster_dbt import DbtCliResource

from integration_platform.assets.partitions import CLIENTS, demo_partition, register_clients
from integration_platform.assets.resources import (
    LandingZoneResource,
    WarehouseResource,
    api_resource,
)
from integration_platform.clients.slugs import DEMO_CLIENT_ID
from integration_platform.environment import PROJECT_ROOT
from integration_platform.launcher import VENDOR_URL_VARIABLES
from integration_platform.sandbox.server import Sandbox
from integration_platform.specs.loader import load_specs
from integration_platform.transform.dbt_assets import dbt_executable

DAY = "2025-06-10"
ER_FIGURES = {"precision": "1.000", "recall": "0.964", "f1": "0.982"}
PAID = {"paid", "1"}


@pytest.mark.slow
@pytest.mark.timeout(900)  # ~3 min alone; more than the default 5 on a crowded 2-core machine
def test_marts_match_the_sandbox_when_every_asset_is_materialized_for_a_partition(
    make_sandbox: type[Sandbox],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox = make_sandbox(customers=600)
    for vendor, url in sandbox.urls.items():
        monkeypatch.setenv(VENDOR_URL_VARIABLES[vendor], url)
    monkeypatch.setenv("INTEGRATION_PLATFORM_DATA_DIR", str(tmp_path))
    from integration_platform.definitions import dbt_project, defs

    warehouse = tmp_path / "warehouse.duckdb"
    resources = {
        "warehouse": WarehouseResource(path=str(warehouse)),
        "landing": LandingZoneResource(
            root=str(tmp_path / "landing"), state_root=str(tmp_path / "state")
        ),
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable()),
        **{f"api_{name}": api_resource(spec) for name, spec in load_specs().items()},
    }
    assets = list(defs.assets)
    raw_daily = [a for a in assets if isinstance(a.partitions_def, MultiPartitionsDefinition)]
    raw_reference = [a for a in assets if a.partitions_def == CLIENTS]
    dbt_models = [a for a in assets if any(k.path[0] != "raw" for k in a.keys)]
    instance = DagsterInstance.ephemeral()
    register_clients(instance, DEMO_CLIENT_ID)

    assert materialize(
        raw_daily, partition_key=demo_partition(DAY), resources=resources, instance=instance
    ).success
    assert materialize(
        raw_reference, partition_key=DEMO_CLIENT_ID, resources=resources, instance=instance
    ).success
    dbt_keys = [k for a in dbt_models for k in a.keys]
    checks = list(defs.asset_checks or [])
    assert checks, "the entity-resolution quality check should be defined"
    result = materialize(
        [*assets, *checks],
        selection=AssetSelection.assets(*dbt_keys) | AssetSelection.checks(*checks),
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    assert result.success, [e.message for e in result.get_step_failure_events()]
    failed_checks = [
        e
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.severity.value == "ERROR"
    ]
    assert not failed_checks, [(e.asset_key, e.check_name) for e in failed_checks]
    quality = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "entity_resolution_quality"
    ]
    assert len(quality) == 1
    assert quality[0].passed
    # The figures README.md states for this run (seed 7, 600 customers, one day).
    scores = {
        name: f"{float(quality[0].metadata[name].value):.3f}"  # type: ignore[arg-type]
        for name in ("precision", "recall", "f1")
    }
    assert scores == ER_FIGURES, scores
    stated = "precision {precision} / recall {recall} / F1 {f1}".format(**ER_FIGURES)
    assert stated in " ".join((PROJECT_ROOT / "README.md").read_text().split())

    # Revenue: paid invoices of the day, straight from the API, equal fct_invoices.
    invoices = httpx.get(
        f"{sandbox.urls['billing']}/v1/invoices",
        params={
            "created_since": f"{DAY}T00:00:00Z",
            "created_before": "2025-06-11T00:00:00Z",
            "limit": 500,
        },
        headers={"X-API-Key": sandbox.world.credentials.billing_api_key},
    ).json()
    expected: dict[str, Decimal] = {}
    for invoice in invoices["data"]:
        if str(invoice["status"]).lower() in PAID:
            currency = invoice["currency"].upper()
            expected[currency] = (
                expected.get(currency, Decimal(0)) + Decimal(invoice["amount_due"]) / 100
            )
    assert expected, "the chosen day should have paid invoices"

    connection = duckdb.connect(str(warehouse), read_only=True)
    try:
        actual = dict(
            connection.execute(
                "SELECT currency, sum(amount_due) FROM marts.fct_invoices "
                "WHERE status = 'paid' GROUP BY 1"
            ).fetchall()
        )
        customers = connection.execute("SELECT count(*) FROM marts.dim_customers").fetchall()
        three_sixty = connection.execute(
            "SELECT count(*), count(DISTINCT customer_id) FROM marts.customer_360"
        ).fetchall()
    finally:
        connection.close()
    assert {k: Decimal(str(v)) for k, v in actual.items()} == expected
    # One golden record per resolved cluster, and a 360 row for each.
    assert customers[0][0] == quality[0].metadata["clusters"].value
    assert three_sixty[0][0] == three_sixty[0][1] == customers[0][0]
