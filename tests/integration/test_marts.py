"""The marts end to end: every record of a small sandbox loaded raw, `dbt build`, and the numbers
checked against the vendors' own.

One module fixture lands every endpoint of every spec (the whole sandbox, no partition window),
lands billing's invoices and payments a second time for one day (so those records sit in two
partitions), injects records that break validation rules, and runs the real dbt project on
that warehouse, the way a user's `dbt build` would. That build also runs the dbt unit tests
(incremental day selection of fct_product_usage_daily, status and money rules, customer_360).
"""

from __future__ import annotations

import asyncio
import csv
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from integration_platform import environment
from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.specs.loader import load_specs
from integration_platform.specs.models import SourceSpec
from integration_platform.transform.generate import generate
from integration_platform_sandbox.roster import VENDOR_URL_VARIABLES
from integration_platform_sandbox.server import Sandbox
from tests.integration.dbt_warehouse import land_sandbox, load_landed

DBT_PROJECT = environment.PROJECT_ROOT / "dbt_project"
DBT = str(Path(sys.executable).parent / "dbt")
TWICE_LOADED_DAY = "2025-08-24"  # invoices and payments of this day land in two partitions
MARTS_AND_QUARANTINES = {
    "fct_invoices": "qua_invoices",
    "fct_payments": "qua_payments",
    "fct_subscriptions": "qua_subscriptions",
    "fct_tickets": "qua_tickets",
}
# Copies of real records, each breaking one rule: (table, new primary key, patch, expected rule).
BROKEN_RECORDS = [
    ("billing__invoices", "in_weird", '{"id": "in_weird", "status": "weird"}', "unknown_status"),
    (
        "billing__payments",
        "py_negative",
        '{"id": "py_negative", "amount": "-29.00"}',
        "negative_amount",
    ),
    (
        "billing__subscriptions",
        "sub_xyz",
        '{"id": "sub_xyz", "currency": "XYZ"}',
        "unknown_currency",
    ),
    (
        "analytics__events",
        "999999999",
        '{"event_id": 999999999, "quantity": "lots"}',
        "unparseable_quantity",
    ),
]


@dataclass
class Built:
    warehouse: Path
    target: Path
    logs: Path
    billing_stats: dict[str, Any]

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.warehouse), read_only=True) as connection:
            return connection.execute(sql, params or []).fetchall()

    def dbt(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                DBT,
                *args,
                "--project-dir",
                str(DBT_PROJECT),
                "--profiles-dir",
                str(DBT_PROJECT),
                "--target-path",
                str(self.target),
                "--log-path",
                str(self.logs),
            ],
            env={**os.environ, "WAREHOUSE_PATH": str(self.warehouse)},
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )


@pytest.fixture(scope="module")
def built(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Built:
    data = tmp_path_factory.mktemp("marts")
    env = {**os.environ, **{VENDOR_URL_VARIABLES[v]: url for v, url in sandbox.urls.items()}}
    specs = load_specs(env=env)
    built = Built(
        data / "warehouse.duckdb",
        data / "target",
        data / "logs",
        httpx.get(f"{sandbox.urls['billing']}/_sandbox/stats", timeout=30).json(),
    )
    _land_everything(specs, data, built.warehouse)
    _inject_broken_records(built.warehouse)
    generate(load_specs(), DBT_PROJECT)  # the spec-derived dbt files, as Dagster makes them
    result = built.dbt("build", "--threads", "4")
    assert result.returncode == 0, result.stdout[-6000:]
    return built


def _land_everything(specs: dict[str, SourceSpec], data: Path, warehouse: Path) -> None:
    loads: list[tuple[SourceSpec, str, str | None]] = [
        (spec, endpoint, None) for spec in specs.values() for endpoint in spec.endpoints
    ]
    loads += [
        (specs["billing"], endpoint, TWICE_LOADED_DAY) for endpoint in ("invoices", "payments")
    ]
    load_landed(warehouse, asyncio.run(land_sandbox(loads, data)))


def _inject_broken_records(warehouse: Path) -> None:
    with duckdb.connect(str(warehouse)) as connection:
        for table, key, patch, _rule in BROKEN_RECORDS:
            connection.execute(
                f"""
                INSERT INTO raw."{table}" BY NAME
                SELECT * REPLACE (json_merge_patch(record, ?::JSON) AS record, ? AS _primary_key,
                                  'injected' AS _run_id, now() AS _fetched_at, now() AS _loaded_at)
                FROM raw."{table}" LIMIT 1""",
                [patch, key],
            )


def _money_by_currency(built: Built, sql: str) -> dict[str, Any]:
    return {currency: value for currency, value in built.query(sql)}


def test_paid_invoice_totals_equal_the_vendors_when_the_sandbox_is_loaded_whole(
    built: Built,
) -> None:
    revenue = built.billing_stats["revenue"]
    minor = _money_by_currency(
        built,
        "SELECT currency, sum(amount_due_minor) FROM "
        "marts.fct_invoices WHERE status = 'paid' GROUP BY 1",
    )
    major = _money_by_currency(
        built,
        "SELECT currency, sum(amount_due) FROM marts.fct_invoices WHERE status = 'paid' GROUP BY 1",
    )
    counts = _money_by_currency(
        built, "SELECT currency, count(*) FROM marts.fct_invoices WHERE status = 'paid' GROUP BY 1"
    )
    assert set(minor) == set(revenue) == {"USD", "GBP", "EUR", "CAD"}
    for currency, totals in revenue.items():
        assert minor[currency] == totals["invoices_paid_amount_due_minor"], currency
        assert major[currency] * 100 == totals["invoices_paid_amount_due_minor"], currency
        assert counts[currency] == totals["invoices_paid"], currency


def test_succeeded_payment_totals_equal_the_vendors_when_the_sandbox_is_loaded_whole(
    built: Built,
) -> None:
    revenue = built.billing_stats["revenue"]
    paid = _money_by_currency(
        built,
        "SELECT currency, sum(amount) FROM marts.fct_payments "
        "WHERE status = 'succeeded' GROUP BY 1",
    )
    assert set(paid) == set(revenue)
    for currency, totals in revenue.items():
        assert paid[currency] == Decimal(totals["payments_succeeded_amount"]), currency


def test_reporting_amounts_use_the_rate_of_the_payment_date(built: Built) -> None:
    rates: dict[tuple[date, str], Decimal] = {}
    with (DBT_PROJECT / "seeds" / "fx_rates.csv").open() as seed:
        for row in csv.DictReader(seed):
            rates[date.fromisoformat(row["date"]), row["currency"]] = Decimal(row["rate_to_usd"])
    rows = built.query(
        "SELECT currency, payment_date, amount, amount_reporting, "
        "reporting_currency FROM marts.fct_payments"
    )
    assert rows and {row[4] for row in rows} == {"USD"}
    for currency, day, amount, reporting, _ in rows:
        expected = (amount * rates[day, currency]).quantize(Decimal("0.01"))
        assert abs(reporting - expected) <= Decimal("0.01"), (currency, day)
        if currency == "USD":
            assert reporting == amount


def test_each_record_is_counted_once_when_it_was_loaded_in_two_partitions(built: Built) -> None:
    counts = built.billing_stats["counts"]
    for table, key in (("invoices", "invoice_id"), ("payments", "payment_id")):
        twice = built.query(
            f'SELECT count(*) FROM raw."billing__{table}" WHERE _partition_key = ?',
            [TWICE_LOADED_DAY],
        )[0][0]
        assert twice > 0
        facts, distinct, latest = built.query(
            f"SELECT count(*), count(DISTINCT {key}), "
            "count(*) FILTER (WHERE source_partition_key = ?) FROM marts.fct_" + table,
            [TWICE_LOADED_DAY],
        )[0]
        quarantined = built.query(f"SELECT count(*) FROM quality.qua_{table}")[0][0]
        assert facts == distinct
        assert facts + quarantined == counts[table] + 1  # + the injected broken copy
        assert latest == twice  # the most recently fetched version is the one kept


def test_broken_records_are_quarantined_with_their_rule_and_kept_out_of_the_marts(
    built: Built,
) -> None:
    quarantines = {
        "billing__invoices": ("qua_invoices", "fct_invoices"),
        "billing__payments": ("qua_payments", "fct_payments"),
        "billing__subscriptions": ("qua_subscriptions", "fct_subscriptions"),
        "analytics__events": ("qua_events", None),
    }
    for table, key, _patch, rule in BROKEN_RECORDS:
        quarantine, mart = quarantines[table]
        found = built.query(
            f"SELECT failed_rule, raw_record FROM quality.{quarantine} WHERE source_record_id = ?",
            [key],
        )
        assert len(found) == 1, (table, key)
        assert found[0][0] == rule
        assert found[0][1] is not None  # the raw record, exactly as received
        if mart:
            assert not built.query(
                f"SELECT 1 FROM marts.{mart} WHERE source_record_key LIKE ?",
                [f"%:{key}"],
            )
    assert not built.query(
        "SELECT 1 FROM marts.fct_product_usage_daily WHERE list_contains(source_record_keys, ?)",
        [f"{DEMO_CLIENT_ID}:analytics:events:999999999"],
    )


def test_no_mart_row_comes_from_a_quarantined_record(built: Built) -> None:
    for mart, quarantine in MARTS_AND_QUARANTINES.items():
        leaked = built.query(
            f"SELECT count(*) FROM marts.{mart} JOIN quality.{quarantine} USING (source_record_key)"
        )[0][0]
        assert leaked == 0, mart
    events_counted = built.query("SELECT sum(event_count) FROM marts.fct_product_usage_daily")
    valid_events = built.query(
        "SELECT count(*) FROM staging.stg_analytics__events WHERE failed_rule IS NULL"
    )
    assert events_counted == valid_events


# customer_360 and the customer_id columns rest on the entity-resolution models
# (int_customer_clusters, dim_customers), built by the same `dbt build`.
def test_customer_360_has_one_row_per_customer_when_resolution_has_run(built: Built) -> None:
    dim = built.query("SELECT customer_id FROM marts.dim_customers")
    rows = built.query("SELECT customer_id FROM marts.customer_360")
    assert len(rows) == len(dim) > 0
    assert sorted(rows) == sorted(dim)
    revenue = built.query("SELECT sum(lifetime_revenue_reporting) FROM marts.customer_360")[0][0]
    resolved = built.query(
        "SELECT sum(amount_reporting) FROM marts.fct_payments WHERE "
        "is_succeeded AND customer_id IS NOT NULL AND payment_date <= "
        "(SELECT max(as_of_date) FROM marts.customer_360)"
    )[0][0]
    assert revenue == resolved > 0
