"""The sandbox's customer records loaded into raw tables without HTTP: fast data for ER runs.

Entity-resolution tests and benchmarks need every customer record of every vendor; fetching
200,000 of them through the APIs takes minutes. Here the vendors' own record functions build
the same records the APIs would serve, in the same page envelopes, and the real loader
(`landing.loader.load_attempt`) writes them, so the raw tables look exactly as after an
extraction (one unpartitioned load per endpoint).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson

from integration_platform.http.pagination import PageRequest
from integration_platform.landing.loader import load_attempt
from integration_platform.landing.zone import LandingZone
from integration_platform.sandbox.chaos import PROFILES, ChaosEngine
from integration_platform.sandbox.vendors import analytics, billing, crm, support
from integration_platform.sandbox.world import World
from integration_platform.specs.models import SourceSpec

PAGE_SIZE = 5000
SUPPORT_FIELDS = ("name", "email", "phone", "organization", "createdAt", "updatedAt")


@dataclass(frozen=True)
class CustomerEndpoint:
    """One vendor endpoint holding customers: its spec names and how to build record i."""

    vendor: str
    source: str
    endpoint: str
    count: int
    record: Callable[[int], dict[str, Any]]
    envelope: Callable[[list[dict[str, Any]]], dict[str, Any]]


def customer_endpoints(world: World) -> list[CustomerEndpoint]:
    """The four customer endpoints of the sandbox, with the records their APIs would serve."""
    engine = ChaosEngine(PROFILES["none"], world.settings.seed)
    crm_vendor = crm.CRM(world, engine)
    billing_vendor = billing.Billing(world, engine)
    support_vendor = support.Support(world, engine)
    analytics_vendor = analytics.Analytics(world, engine)

    def support_node(position: int) -> dict[str, Any]:
        record = support_vendor.customer_record(position)
        return {"id": world.record_id(support.CUSTOMER_PREFIX, position),
                **{name: record[name] for name in SUPPORT_FIELDS}}

    def data(records: list[dict[str, Any]]) -> dict[str, Any]:
        return {"data": records}

    def relay(records: list[dict[str, Any]]) -> dict[str, Any]:
        return {"data": {"customers": {"edges": [{"node": r} for r in records]}}}

    return [
        CustomerEndpoint("crm", "crm", "contacts", len(crm_vendor.roster), crm_vendor.contact,
                         data),
        CustomerEndpoint("billing", "billing", "customers", len(billing_vendor.roster),
                         billing_vendor.customer, data),
        CustomerEndpoint("support", "support", "customers", len(support_vendor.roster),
                         support_node, relay),
        CustomerEndpoint("analytics", "analytics", "users", len(analytics_vendor.roster),
                         analytics_vendor.user, data),
    ]


def _pages(endpoint: CustomerEndpoint, positions: range) -> Iterator[list[dict[str, Any]]]:
    for start in range(positions.start, positions.stop, PAGE_SIZE):
        yield [endpoint.record(p) for p in range(start, min(start + PAGE_SIZE, positions.stop))]


def load_customers(connection: duckdb.DuckDBPyConnection, specs: dict[str, SourceSpec],
                   world: World, landing_root: Path, *,
                   only: Callable[[CustomerEndpoint], range] | None = None,
                   run_id: str = "sandbox-projection") -> dict[str, int]:
    """Load every customer endpoint of the sandbox into its raw table; return rows per table.

    `only` narrows an endpoint to a range of roster positions (default: all of them).
    """
    zone = LandingZone(landing_root)
    loaded: dict[str, int] = {}
    for endpoint in customer_endpoints(world):
        spec = specs[endpoint.source]
        attempt = zone.open_attempt(endpoint.source, endpoint.endpoint, None, run_id,
                                    resume=False)
        positions = only(endpoint) if only else range(endpoint.count)
        for number, records in enumerate(_pages(endpoint, positions), start=1):
            attempt.write_page(
                number, orjson.dumps(endpoint.envelope(records)), records=len(records),
                url=f"sandbox://{endpoint.vendor}/{endpoint.endpoint}?page={number}",
                fetched_at=datetime.now(UTC), run_id=run_id,
                request=PageRequest(path=f"/{endpoint.endpoint}", params={"page": number}),
                next_request=None)
        attempt.mark_complete()
        result = load_attempt(connection, spec=spec, endpoint=endpoint.endpoint,
                              attempt=attempt, partition=None, run_id=run_id)
        loaded[result.table] = result.rows
    return loaded
