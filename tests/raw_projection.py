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
from integration_platform.landing.provenance import Pull
from integration_platform.landing.zone import LandingZone
from integration_platform.specs.models import SourceSpec
from integration_platform_sandbox.chaos import PROFILES, ChaosEngine
from integration_platform_sandbox.roster import ALL_VENDORS, VENDORS
from integration_platform_sandbox.vendors import analytics, billing, clinic, crm, insurer, support
from integration_platform_sandbox.world import World

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


def customer_endpoints(world: World, vendors: tuple[str, ...] = VENDORS) -> list[CustomerEndpoint]:
    """The customer endpoints of `vendors`, with the records their APIs would serve."""
    engine = ChaosEngine(PROFILES["none"], world.settings.seed)

    def data(records: list[dict[str, Any]]) -> dict[str, Any]:
        return {"data": records}

    def relay(records: list[dict[str, Any]]) -> dict[str, Any]:
        return {"data": {"customers": {"edges": [{"node": r} for r in records]}}}

    def keyed(name: str) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
        return lambda records: {name: records}

    def crm_endpoint() -> CustomerEndpoint:
        vendor = crm.CRM(world, engine)
        return CustomerEndpoint("crm", "crm", "contacts", len(vendor.roster), vendor.contact, data)

    def billing_endpoint() -> CustomerEndpoint:
        vendor = billing.Billing(world, engine)
        return CustomerEndpoint(
            "billing", "billing", "customers", len(vendor.roster), vendor.customer, data
        )

    def support_endpoint() -> CustomerEndpoint:
        vendor = support.Support(world, engine)

        def node(position: int) -> dict[str, Any]:
            record = vendor.customer_record(position)
            return {
                "id": world.record_id(support.CUSTOMER_PREFIX, position),
                **{name: record[name] for name in SUPPORT_FIELDS},
            }

        return CustomerEndpoint("support", "support", "customers", len(vendor.roster), node, relay)

    def analytics_endpoint() -> CustomerEndpoint:
        vendor = analytics.Analytics(world, engine)
        return CustomerEndpoint(
            "analytics", "analytics", "users", len(vendor.roster), vendor.user, data
        )

    def clinic_endpoint() -> CustomerEndpoint:
        vendor = clinic.Clinic(world)
        return CustomerEndpoint(
            "clinic", "clinic", "patients", len(vendor.roster), vendor.patient, keyed("patients")
        )

    def insurer_endpoint() -> CustomerEndpoint:
        vendor = insurer.Insurer(world)
        return CustomerEndpoint(
            "insurer", "insurer", "members", len(vendor.roster), vendor.member, keyed("members")
        )

    builders: dict[str, Callable[[], CustomerEndpoint]] = {
        "crm": crm_endpoint,
        "billing": billing_endpoint,
        "support": support_endpoint,
        "analytics": analytics_endpoint,
        "clinic": clinic_endpoint,
        "insurer": insurer_endpoint,
    }
    return [builders[vendor]() for vendor in vendors]


def _pages(endpoint: CustomerEndpoint, positions: range) -> Iterator[list[dict[str, Any]]]:
    for start in range(positions.start, positions.stop, PAGE_SIZE):
        yield [endpoint.record(p) for p in range(start, min(start + PAGE_SIZE, positions.stop))]


def load_customers(
    connection: duckdb.DuckDBPyConnection,
    specs: dict[str, SourceSpec],
    world: World,
    landing_root: Path,
    *,
    only: Callable[[CustomerEndpoint], range] | None = None,
    run_id: str = "sandbox-projection",
) -> dict[str, int]:
    """Load the customer endpoint of every sandbox vendor that `specs` declares (the four SaaS
    vendors, the registry's clinic and insurer) into its raw table; return rows per table.

    `only` narrows an endpoint to a range of roster positions (default: all of them).
    """
    zone = LandingZone(landing_root)
    loaded: dict[str, int] = {}
    vendors = tuple(vendor for vendor in ALL_VENDORS if vendor in specs)
    for endpoint in customer_endpoints(world, vendors):
        spec = specs[endpoint.source]
        attempt = zone.open_attempt(endpoint.source, endpoint.endpoint, None, run_id, resume=False)
        positions = only(endpoint) if only else range(endpoint.count)
        for number, records in enumerate(_pages(endpoint, positions), start=1):
            attempt.write_page(
                number,
                orjson.dumps(endpoint.envelope(records)),
                records=len(records),
                url=f"sandbox://{endpoint.vendor}/{endpoint.endpoint}?page={number}",
                fetched_at=datetime.now(UTC),
                run_id=run_id,
                provenance=Pull(
                    request=PageRequest(f"/{endpoint.endpoint}", {"page": number}).to_checkpoint()
                ),
            )
        attempt.mark_complete()
        result = load_attempt(
            connection,
            spec=spec,
            endpoint=endpoint.endpoint,
            attempt=attempt,
            partition=None,
            run_id=run_id,
        )
        loaded[result.table] = result.rows
    return loaded
