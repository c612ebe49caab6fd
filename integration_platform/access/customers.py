"""A client's golden customer records (`marts.dim_customers`) and customer 360 view.

Every query filters on `client_id`, bound as a parameter: a client never reads another's
rows, whatever id it guesses.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import duckdb
import orjson

from integration_platform.access.published import CATALOG, PublishedWarehouse

CUSTOMERS = f"{CATALOG}.marts.dim_customers"
CUSTOMER_360 = f"{CATALOG}.marts.customer_360"
TENANT_COLUMN = "client_id"


class WarehouseNotTenantAware(RuntimeError):
    """The published marts have no client_id column, so no client's rows can be told apart."""

    def __init__(self) -> None:
        super().__init__(
            f"the published warehouse's marts.dim_customers has no {TENANT_COLUMN} column yet, "
            "so one client's customers cannot be told from another's; rebuild the warehouse "
            "with a tenant-aware version of the platform"
        )


@dataclass(frozen=True)
class CustomerPage:
    customers: list[dict[str, Any]]
    next_after: str | None  # the last customer_id of this page when more follow


def json_default(value: Any) -> Any:
    """What orjson cannot write itself: decimals (as numbers), UUIDs, naive times (as UTC)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime | dt.time):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json(body: Any) -> bytes:
    """Rows as JSON without a per-value Python pass (orjson writes dates and times itself)."""
    return orjson.dumps(body, default=json_default, option=orjson.OPT_NAIVE_UTC)


def _rows(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [column[0] for column in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


class CustomerReader:
    def __init__(self, warehouse: PublishedWarehouse) -> None:
        self.warehouse = warehouse

    def version(self) -> str | None:
        return self.warehouse.version()

    def page(self, client_id: str, *, after: str | None, limit: int) -> CustomerPage:
        with self.warehouse.cursor() as cursor:
            if cursor is None or not self._tenant_aware(cursor, CUSTOMERS):
                return CustomerPage([], None)
            cursor.execute(
                f"select * exclude ({TENANT_COLUMN}) from {CUSTOMERS} "  # noqa: S608
                f"where {TENANT_COLUMN} = ? and customer_id > ? order by customer_id limit ?",
                [client_id, after or "", limit + 1],
            )
            rows = _rows(cursor)
        more = len(rows) > limit
        rows = rows[:limit]
        return CustomerPage(rows, str(rows[-1]["customer_id"]) if more and rows else None)

    def detail(self, client_id: str, customer_id: str) -> dict[str, Any] | None:
        """The golden record, its 360 figures and where each field came from (None: not found)."""
        with self.warehouse.cursor() as cursor:
            if cursor is None or not self._tenant_aware(cursor, CUSTOMERS):
                return None
            cursor.execute(
                f"select * exclude ({TENANT_COLUMN}) from {CUSTOMERS} "  # noqa: S608
                f"where {TENANT_COLUMN} = ? and customer_id = ?",
                [client_id, customer_id],
            )
            found = _rows(cursor)
            if not found:
                return None
            figures: dict[str, Any] | None = None
            if self._tenant_aware(cursor, CUSTOMER_360):
                cursor.execute(
                    f"select * exclude ({TENANT_COLUMN}, customer_id) "  # noqa: S608
                    f"from {CUSTOMER_360} where {TENANT_COLUMN} = ? and customer_id = ?",
                    [client_id, customer_id],
                )
                rows_360 = _rows(cursor)
                figures = rows_360[0] if rows_360 else None
        customer = found[0]
        field_sources = {
            name.removesuffix("_source_record_key"): customer.pop(name)
            for name in list(customer)
            if name.endswith("_source_record_key")
        }
        source_record_keys = (figures or {}).pop("source_record_keys", None)
        return {
            "customer": customer,
            "customer_360": figures,
            "provenance": {
                "field_sources": field_sources,
                "record_keys": customer.get("record_keys") or source_record_keys or [],
                "source_systems": customer.get("source_systems") or [],
            },
        }

    @staticmethod
    def _tenant_aware(cursor: duckdb.DuckDBPyConnection, table: str) -> bool:
        """False when the table is not there (nothing built yet); raises without client_id."""
        catalog, schema, name = table.split(".")
        cursor.execute(
            "select column_name from information_schema.columns "
            "where table_catalog = ? and table_schema = ? and table_name = ?",
            [catalog, schema, name],
        )
        columns = {row[0] for row in cursor.fetchall()}
        if not columns:
            return False
        if TENANT_COLUMN not in columns:
            raise WarehouseNotTenantAware
        return True
