"""Two clients, the same records: each gets its own customers, and nothing crosses between them.

One warehouse for the module: every endpoint of the sandbox extracted once over HTTP and loaded
twice, as the `demo` client's rows and as `acme`'s (the same people under two clients'
credentials, the hardest case for isolation: every email, phone and name is shared), then the
whole dbt project built on a copy (`dbt build`: models, data tests, unit tests), as a user's
build would.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dagster import AssetCheckResult, build_asset_check_context

from integration_platform.assets.raw import api_resource_key
from integration_platform.assets.resources import WarehouseResource, api_resource
from integration_platform.checks.entity_resolution import build_entity_resolution_check
from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.specs.loader import load_specs
from integration_platform.specs.models import SourceSpec
from integration_platform_sandbox.roster import VENDOR_URL_VARIABLES
from integration_platform_sandbox.server import Sandbox
from tests.integration.dbt_warehouse import DbtWarehouse, land_sandbox, load_landed

OTHER_CLIENT = "acme"
CLIENTS = (DEMO_CLIENT_ID, OTHER_CLIENT)
# marts whose customer_id comes from entity resolution
FACTS = (
    "fct_invoices",
    "fct_payments",
    "fct_subscriptions",
    "fct_tickets",
    "fct_product_usage_daily",
)


@dataclass
class TwoClients(DbtWarehouse):
    specs: dict[str, SourceSpec]
    sandbox: Sandbox
    built: list[str]  # "<node name> <status>" of the build

    def per_client(self, sql: str) -> dict[str, Any]:
        """`sql` selects (client_id, value): value by client."""
        return dict(self.execute(sql))


@pytest.fixture(scope="module")
def two_clients(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> TwoClients:
    root = tmp_path_factory.mktemp("client_isolation")
    env = {**os.environ, **{VENDOR_URL_VARIABLES[v]: url for v, url in sandbox.urls.items()}}
    specs = load_specs(env=env)
    warehouse = DbtWarehouse.create(root, specs)
    landed = asyncio.run(
        land_sandbox(
            [(spec, endpoint, None) for spec in specs.values() for endpoint in spec.endpoints], root
        )
    )
    for client_id in CLIENTS:
        load_landed(warehouse.path, landed, client_id)
    built = warehouse.dbt("build", "--threads", "2")
    return TwoClients(warehouse.path, warehouse.project, specs, sandbox, built)


def test_each_client_gets_its_own_customers_with_the_same_counts_when_both_load_the_same_records(
    two_clients: TwoClients,
) -> None:
    for model in (
        "marts.dim_customers",
        "marts.customer_360",
        "intermediate.int_customer_clusters",
        "intermediate.int_customer_pair_scores",
        "staging.stg_billing__invoices",
        "marts.fct_invoices",
    ):
        counts = two_clients.per_client(f"select client_id, count(*) from {model} group by 1")
        assert set(counts) == set(CLIENTS), model
        assert counts[DEMO_CLIENT_ID] == counts[OTHER_CLIENT] > 0, (model, counts)
    # the same records resolve to the same people: the two clients' partitions of their
    # records into customers are identical
    partitions = []
    for client_id in CLIENTS:
        members: dict[str, set[str]] = {}
        for record, customer in two_clients.clusters(client_id).items():
            members.setdefault(customer, set()).add(record)
        partitions.append({frozenset(records) for records in members.values()})
    assert partitions[0] == partitions[1]
    assert sum(len(cluster) > 1 for cluster in partitions[0]) > 50


def test_customer_ids_differ_between_clients_when_their_records_are_identical(
    two_clients: TwoClients,
) -> None:
    ids = {
        client_id: {
            customer
            for (customer,) in two_clients.execute(
                "select customer_id from marts.dim_customers where client_id = ?", client_id
            )
        }
        for client_id in CLIENTS
    }
    assert ids[DEMO_CLIENT_ID] and ids[OTHER_CLIENT]
    assert not ids[DEMO_CLIENT_ID] & ids[OTHER_CLIENT]


def test_no_pair_or_customer_spans_two_clients_when_their_records_are_identical(
    two_clients: TwoClients,
) -> None:
    [(cross_pairs, pairs)] = two_clients.execute(
        "select count(*) filter (where l.client_id <> r.client_id), count(*) "
        "from intermediate.int_customer_candidate_pairs as pairs "
        "join intermediate.int_customer_identities_enriched as l on l.record_key = left_key "
        "join intermediate.int_customer_identities_enriched as r on r.record_key = right_key"
    )
    assert pairs > 0 and cross_pairs == 0
    mixed = two_clients.execute(
        "select customer_id from intermediate.int_customer_clusters "
        "group by customer_id having count(distinct client_id) > 1"
    )
    assert mixed == []
    # how many records share an email or phone (a shared inbox weighs less) counts the
    # client's own records only, though the other client has the very same ones
    [(miscounted, shared)] = two_clients.execute(
        "select count(*) filter (where email_record_count <> (select count(*) "
        "  from intermediate.int_customer_identities_enriched as same_client "
        "  where same_client.client_id = identities.client_id "
        "    and same_client.email = identities.email) "
        "or phone_record_count <> (select count(*) "
        "  from intermediate.int_customer_identities_enriched as same_client "
        "  where same_client.client_id = identities.client_id "
        "    and same_client.phone = identities.phone)), "
        "count(*) filter (where email_record_count > 1) "
        "from intermediate.int_customer_identities_enriched as identities"
    )
    assert shared > 0 and miscounted == 0
    passed = set(two_clients.built)
    assert "assert_customer_pairs_within_one_client pass" in passed
    assert "assert_customers_belong_to_one_client pass" in passed


def test_every_mart_row_has_a_client_id_when_two_clients_are_loaded(
    two_clients: TwoClients,
) -> None:
    marts = [
        table
        for (table,) in two_clients.execute(
            "select table_name from information_schema.tables where table_schema = 'marts' "
            "order by 1"
        )
    ]
    assert {"dim_customers", "customer_360", *FACTS} <= set(marts)
    for mart in marts:
        clients = two_clients.execute(
            f"select client_id, count(*) from marts.{mart} group by 1 order by 1"
        )
        assert [client_id for client_id, _ in clients] == sorted(CLIENTS), (mart, clients)


def test_facts_resolve_only_to_customers_of_their_own_client_when_two_clients_are_loaded(
    two_clients: TwoClients,
) -> None:
    for fact in FACTS:
        [(resolved, foreign)] = two_clients.execute(
            "select count(*), count(*) filter (where customers.client_id <> facts.client_id) "
            f"from marts.{fact} as facts "
            "join marts.dim_customers as customers using (customer_id)"
        )
        assert resolved > 0 and foreign == 0, fact
        per_client = two_clients.per_client(
            f"select client_id, count(*) from marts.{fact} where customer_id is not null group by 1"
        )
        assert per_client[DEMO_CLIENT_ID] == per_client[OTHER_CLIENT], (fact, per_client)
    revenue = two_clients.per_client(
        "select client_id, sum(lifetime_revenue_reporting) from marts.customer_360 group by 1"
    )
    assert revenue[DEMO_CLIENT_ID] == revenue[OTHER_CLIENT] > 0


def test_late_event_lands_in_its_clients_day_and_leaves_the_other_client_alone_when_usage_rebuilds(
    two_clients: TwoClients,
) -> None:
    usage = (
        "select client_id, usage_date, customer_id, event_type, event_count, "
        "total_quantity from marts.fct_product_usage_daily where client_id = ? "
        "order by all"
    )
    before = {client_id: two_clients.execute(usage, client_id) for client_id in CLIENTS}
    # a late event of an acme user, on a day that already has usage
    [(user_id, day, customer_id)] = two_clients.execute(
        "select analytics_user_id, event_date, customer_id "
        "from staging.stg_analytics__events as events "
        "join intermediate.int_customer_clusters as clusters "
        "on clusters.record_key = events.user_record_key "
        "where events.client_id = ? and failed_rule is null "
        "order by event_date, event_id limit 1",
        OTHER_CLIENT,
    )
    occurred = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=23)
    two_clients.execute(
        "insert into raw.analytics__events (record, _source, _endpoint, _partition_key, "
        "_run_id, _fetched_at, _primary_key, _loaded_at, _client_id) "
        "values (?, 'analytics', 'events', ?, 'late', now(), 'late-1', now(), ?)",
        json.dumps(
            {
                "event_id": 987654321,
                "user_id": user_id,
                "event_type": "tenancy_probe",
                "occurred_at": occurred.isoformat(),
                "quantity": 5,
            }
        ),
        day.isoformat(),
        OTHER_CLIENT,
    )
    two_clients.dbt("build", "--select", "stg_analytics__events+")
    after = {client_id: two_clients.execute(usage, client_id) for client_id in CLIENTS}
    assert after[DEMO_CLIENT_ID] == before[DEMO_CLIENT_ID]
    added = set(after[OTHER_CLIENT]) - set(before[OTHER_CLIENT])
    assert added == {(OTHER_CLIENT, day, customer_id, "tenancy_probe", 1, 5)}
    assert set(before[OTHER_CLIENT]) <= set(after[OTHER_CLIENT])


@pytest.fixture
def check_resources(two_clients: TwoClients, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for vendor, url in two_clients.sandbox.urls.items():
        monkeypatch.setenv(VENDOR_URL_VARIABLES[vendor], url)
    return {
        "warehouse": WarehouseResource(path=str(two_clients.path), publish=False),
        **{api_resource_key(name): api_resource(spec) for name, spec in two_clients.specs.items()},
    }


def test_quality_check_scores_the_demo_client_only_when_another_client_shares_the_warehouse(
    two_clients: TwoClients, check_resources: dict[str, Any]
) -> None:
    check = build_entity_resolution_check(two_clients.specs)
    result = check(build_asset_check_context(resources=check_resources))
    assert isinstance(result, AssetCheckResult)
    metadata = {name: value.value for name, value in result.metadata.items()}
    demo_records = len(two_clients.clusters(DEMO_CLIENT_ID))
    assert metadata["scored_client"] == DEMO_CLIENT_ID
    assert metadata["records_compared"] == demo_records
    assert metadata["clients_not_scored"] == OTHER_CLIENT
    assert metadata["records_not_scored"] == demo_records
    assert result.passed, result.description
    assert "not scored" in (result.description or "")
