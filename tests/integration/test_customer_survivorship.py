"""Golden-record survivorship through real dbt on DuckDB, on customers built by hand.

The raw tables are the sandbox's (one sandbox record per customer endpoint, loaded through the
real loader, so that every table exists); the customers under test are inserted as raw records
of crm, billing, support and analytics, then `dbt build` (models, seeds and their tests)
resolves them into dim_customers with the project's own `customer_survivorship` (name: crm,
billing, support, analytics; phone and address: billing first).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import duckdb
import pytest

from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.specs.loader import load_spec, spec_paths
from integration_platform_sandbox.world import SandboxCredentials, SandboxSettings, World
from tests import raw_projection
from tests.integration.dbt_warehouse import ER_SELECTION, DbtWarehouse

FETCHED_AT = datetime(2025, 7, 1, tzinfo=UTC)
ANN_CONTACT: dict[str, Any] = {
    "id": "con_aj1",
    "first_name": "Ann",
    "last_name": "Jones",
    "email": "ann.jones9@example.com",
    "phone": "202-555-0123",
    "address": {
        "street": "5 Elm Street",
        "city": "Cambridge",
        "state": "MA",
        "zip": "02139",
        "country": "US",
    },
    "birthday": None,
    "updated_at": "2025-03-01T00:00:00Z",
}
# (raw table, primary key, record)
RECORDS: list[tuple[str, str, dict[str, Any]]] = [
    # Hans Hellwig: billing (second for names) typed "Ehllwig"; support and analytics agree
    # on "Hellwig". Phones: billing and support differ, one record each: a tie.
    (
        "billing__customers",
        "cus_hw1",
        {
            "id": "cus_hw1",
            "name": "Hans Ehllwig",
            "email": "hans.hellwig7@example.com",
            "phone": "+1 415 555 0100",
        },
    ),
    (
        "support__customers",
        "sup_hw1",
        {
            "id": "sup_hw1",
            "name": "Hans Hellwig",
            "email": "HANS.HELLWIG7@example.com",
            "phone": "(415) 555-0199",
            "organization": None,
            "createdAt": "2025-01-01T00:00:00Z",
            "updatedAt": "2025-01-02T00:00:00Z",
        },
    ),
    (
        "analytics__users",
        "usr_hw1",
        {
            "user_id": "usr_hw1",
            "email": "hans.hellwig7+news@example.com",
            "name": "hans hellwig",
            "country": "US",
        },
    ),
    # Ann Jones: two crm contacts with one address written two ways (billing, first for
    # addresses, has another), and two phones (a tie between two crm records: the newer wins).
    (
        "crm__contacts",
        "con_aj1",
        ANN_CONTACT,
    ),
    (
        "crm__contacts",
        "con_aj2",
        {
            **ANN_CONTACT,
            "id": "con_aj2",
            "phone": "(202) 555-0456",
            "address": {**ANN_CONTACT["address"], "street": "5 ELM ST", "zip": "02139-4321"},
            "updated_at": "2025-06-01T00:00:00Z",
        },
    ),
    (
        "billing__customers",
        "cus_aj1",
        {
            "id": "cus_aj1",
            "name": "Ann Jones",
            "email": "ann.jones9@example.com",
            "phone": None,
            "address": {
                "line1": "77 Oak Ave",
                "city": "New York",
                "state": "NY",
                "postal_code": "10001",
                "country": "US",
            },
        },
    ),
]


@pytest.fixture(scope="module")
def golden(
    tmp_path_factory: pytest.TempPathFactory, sandbox_credentials: SandboxCredentials
) -> dict[str, dict[str, Any]]:
    """dim_customers rows of the hand-built customers, by their email."""
    root = tmp_path_factory.mktemp("survivorship")
    specs = {spec.source: spec for spec in (load_spec(path) for path in spec_paths())}
    warehouse = DbtWarehouse.create(root, specs)
    world = World(SandboxSettings(customers=20, seed=42), sandbox_credentials)
    with duckdb.connect(str(warehouse.path)) as connection:
        raw_projection.load_customers(
            connection, specs, world, root / "landing", only=lambda endpoint: range(1)
        )
        for table, key, record in RECORDS:
            source, endpoint = table.split("__")
            connection.execute(
                f"insert into raw.{table} (record, _source, _endpoint, _partition_key, _run_id, "
                "_fetched_at, _primary_key, _client_id) values (?, ?, ?, '__all__', 'test', ?, "
                "?, ?)",
                [json.dumps(record), source, endpoint, FETCHED_AT, key, DEMO_CLIENT_ID],
            )
    warehouse.dbt("build", *ER_SELECTION)
    rows = warehouse.execute(
        "select email, first_name, last_name, name_source_record_key, name_conflict, phone, "
        "phone_source_record_key, address_line, postcode, address_source_record_key, "
        "email_source_record_key, record_count from marts.dim_customers "
        "where email in ('hanshellwig7@example.com', 'hans.hellwig7@example.com', "
        "'ann.jones9@example.com')"
    )
    columns = [
        "email",
        "first_name",
        "last_name",
        "name_source_record_key",
        "name_conflict",
        "phone",
        "phone_source_record_key",
        "address_line",
        "postcode",
        "address_source_record_key",
        "email_source_record_key",
        "record_count",
    ]
    return {row[0]: dict(zip(columns, row, strict=True)) for row in rows}


def key(table: str, primary_key: str) -> str:
    source, endpoint = table.split("__")
    return f"{DEMO_CLIENT_ID}:{source}:{endpoint}:{primary_key}"


def test_agreed_name_survives_when_a_higher_priority_source_alone_has_a_typo(
    golden: dict[str, dict[str, Any]],
) -> None:
    hans = golden["hans.hellwig7@example.com"]
    assert hans["record_count"] == 3
    assert (hans["first_name"], hans["last_name"]) == ("hans", "hellwig")
    # support and analytics agree; support comes first among them
    assert hans["name_source_record_key"] == key("support__customers", "sup_hw1")
    assert hans["name_conflict"] is True


def test_source_priority_breaks_the_tie_when_two_records_disagree_one_to_one(
    golden: dict[str, dict[str, Any]],
) -> None:
    hans = golden["hans.hellwig7@example.com"]
    assert hans["phone"] == "4155550100"  # billing's, first for phones, over support's
    assert hans["phone_source_record_key"] == key("billing__customers", "cus_hw1")
    # all three agree on the email: billing, first for emails, gives it
    assert hans["email_source_record_key"] == key("billing__customers", "cus_hw1")


def test_agreed_address_survives_and_recency_breaks_the_tie_when_one_source_agrees_twice(
    golden: dict[str, dict[str, Any]],
) -> None:
    ann = golden["ann.jones9@example.com"]
    assert ann["record_count"] == 3
    # the two crm contacts agree (after normalization) over billing, first for addresses;
    # between them the newer gives it
    assert (ann["address_line"], ann["postcode"]) == ("5 elm st", "02139")
    assert ann["address_source_record_key"] == key("crm__contacts", "con_aj2")
    # their phones differ, one each, both crm: the newer wins
    assert ann["phone"] == "2025550456"
    assert ann["phone_source_record_key"] == key("crm__contacts", "con_aj2")
