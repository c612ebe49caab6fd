"""Everything through Dagster for a client's week: raw → staging → resolution → marts, checked
against the vendors' own answers. The week is the session's `make demo` (tests/e2e/demo_run.py),
whose runs and checks the demo's Dagster instance holds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import duckdb
import httpx
import pytest
from dagster import DagsterEventType, DagsterInstance

from integration_platform.demo import DEMO_END, DEMO_START
from integration_platform_sandbox.server import Sandbox
from tests.e2e.demo_run import DemoRun

# `make demo`'s sandbox (its defaults): the same seed and size serve the same records.
DEMO_SEED, DEMO_CUSTOMERS = 42, 1000
PAID = {"paid", "1"}


@pytest.mark.slow
@pytest.mark.timeout(900)  # the session's `make demo` (demo_run): ~70 s alone, 5+ min crowded
def test_marts_match_the_sandbox_when_every_asset_is_materialized_for_a_week(
    demo_run: DemoRun,
    make_sandbox: Callable[..., Sandbox],
) -> None:
    assert demo_run.returncode == 0, demo_run.report()
    # Every check the runs evaluated (dbt's tests and the entity-resolution quality check),
    # as the demo's Dagster instance recorded them.
    with DagsterInstance.from_config(str(demo_run.folder / "dagster_home")) as instance:
        evaluations = [
            entry.dagster_event.event_specific_data
            for run in instance.get_runs()
            for entry in instance.all_logs(
                run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
            )
            if entry.dagster_event is not None
        ]
    assert evaluations, "the runs should have evaluated the asset checks"
    failed_checks = [
        (e.asset_key, e.check_name)  # type: ignore[union-attr]
        for e in evaluations
        if not e.passed and e.severity.value == "ERROR"  # type: ignore[union-attr]
    ]
    assert not failed_checks, failed_checks
    quality = [
        e
        for e in evaluations
        if e.check_name == "entity_resolution_quality"  # type: ignore[union-attr]
    ]
    assert len(quality) == 1, "the entity-resolution quality check should run once"
    assert quality[0].passed  # type: ignore[union-attr]
    clusters = quality[0].metadata["clusters"].value  # type: ignore[union-attr]

    # Revenue: paid invoices of the week, straight from the API, equal fct_invoices.
    sandbox = make_sandbox(seed=DEMO_SEED, customers=DEMO_CUSTOMERS)
    invoices = httpx.get(
        f"{sandbox.urls['billing']}/v1/invoices",
        params={
            "created_since": f"{DEMO_START.isoformat()}T00:00:00Z",
            "created_before": f"{(DEMO_END + timedelta(days=1)).isoformat()}T00:00:00Z",
            "limit": 500,
        },
        headers={"X-API-Key": sandbox.world.credentials.billing_api_key},
        timeout=60,
    ).json()
    assert invoices["total"] == len(invoices["data"]), "the week's invoices fit one page"
    expected: dict[str, Decimal] = {}
    for invoice in invoices["data"]:
        if str(invoice["status"]).lower() in PAID:
            currency = invoice["currency"].upper()
            expected[currency] = (
                expected.get(currency, Decimal(0)) + Decimal(invoice["amount_due"]) / 100
            )
    assert expected, "the week should have paid invoices"

    published = demo_run.folder / "warehouse.published.duckdb"
    with duckdb.connect(str(published), read_only=True) as connection:
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
    assert {k: Decimal(str(v)) for k, v in actual.items()} == expected
    # One golden record per resolved cluster, and a 360 row for each.
    assert customers[0][0] == clusters
    assert three_sixty[0][0] == three_sixty[0][1] == customers[0][0]
