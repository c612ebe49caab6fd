"""A published warehouse copy with the customer marts as dbt builds them (with `client_id`).

Columns come from the marts' yml files, so the fixture follows the models; the types follow
the column names. Two clients' rows: `acme` with many customers, `globex` with a few, one of
them sharing a customer_id with acme.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import yaml

from integration_platform.environment import PROJECT_ROOT

MARTS = PROJECT_ROOT / "dbt_project" / "models" / "marts" / "customers"
LISTS = {"emails", "phones", "record_keys", "source_systems", "source_record_keys"}
INTEGERS = {
    "record_count",
    "active_subscriptions",
    "succeeded_payments",
    "open_tickets",
    "tickets",
    "usage_events_30d",
    "active_days_30d",
    "days_since_last_payment",
}
DECIMALS = {"mrr_reporting", "lifetime_revenue_reporting", "usage_quantity_30d"}
DATES = {"date_of_birth", "as_of_date"}


def model_columns(model: str) -> list[str]:
    document = yaml.safe_load((MARTS / f"{model}.yml").read_text())
    return [c["name"] for c in document["models"][0]["columns"]]


def column_type(name: str) -> str:
    if name in LISTS:
        return "VARCHAR[]"
    if name.endswith("_conflict"):
        return "BOOLEAN"
    if name in INTEGERS:
        return "INTEGER"
    if name in DECIMALS:
        return "DECIMAL(18, 2)"
    if name in DATES:
        return "DATE"
    if name.endswith("_at"):
        return "TIMESTAMPTZ"
    return "VARCHAR"


def sample_value(name: str, client_id: str, customer_id: str) -> Any:
    kind = column_type(name)
    if name == "client_id":
        return client_id
    if name == "customer_id":
        return customer_id
    if name in ("email", "emails"):
        email = f"{customer_id}@{client_id}.example"
        return [email] if kind == "VARCHAR[]" else email
    if name in ("record_keys", "source_record_keys"):
        return [f"crm:contacts:{client_id}-{customer_id}"]
    if name == "source_systems":
        return ["crm"]
    if name.endswith("_source_record_key"):
        return f"crm:contacts:{client_id}-{customer_id}"
    return {
        "VARCHAR[]": [],
        "BOOLEAN": False,
        "INTEGER": 1,
        "DECIMAL(18, 2)": 9.5,
        "DATE": date(2025, 6, 30),
        "TIMESTAMPTZ": datetime(2025, 6, 30, tzinfo=UTC),
        "VARCHAR": f"{name} of {customer_id}",
    }[kind]


CLIENT_CUSTOMERS = {
    "acme": [f"cust-{i:04d}" for i in range(1, 251)],
    "globex": ["cust-0001", "globex-only-1", "globex-only-2"],
}


def build_published_warehouse(path: Path, customers: dict[str, list[str]] | None = None) -> Path:
    customers = customers or CLIENT_CUSTOMERS
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = duckdb.connect(str(path))
    try:
        connection.execute("create schema if not exists marts")
        for model in ("dim_customers", "customer_360"):
            columns = model_columns(model)
            assert "client_id" in columns, f"{model}.yml documents no client_id"
            connection.execute(
                f"create or replace table marts.{model} ("
                + ", ".join(f"{c} {column_type(c)}" for c in columns)
                + ")"
            )
            rows = [
                [sample_value(c, client_id, customer_id) for c in columns]
                for client_id, ids in customers.items()
                for customer_id in ids
            ]
            connection.executemany(
                f"insert into marts.{model} values (" + ", ".join("?" for _ in columns) + ")",
                rows,
            )
    finally:
        connection.close()
    return path
