"""Golden-record survivorship through real dbt on DuckDB, on customers built by hand.

The raw tables are the sandbox's (one sandbox record per customer endpoint, loaded through the
real loader, so that every table exists); the customers under test are inserted as raw records
of crm, billing, support and analytics, then `dbt build` (models, seeds and their tests)
resolves them into dim_customers with the project's own `customer_survivorship` (name: crm,
billing, support, analytics; phone and address: billing first).

`integration-platform er explain` is tested on the same customers at the end: what it prints
is read from the tables this build wrote, and must add up.
"""

from __future__ import annotations

import json
import re
import shutil
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
def built(
    tmp_path_factory: pytest.TempPathFactory, sandbox_credentials: SandboxCredentials
) -> DbtWarehouse:
    """The warehouse with the hand-built customers resolved by `dbt build`."""
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
    return warehouse


@pytest.fixture(scope="module")
def golden(built: DbtWarehouse) -> dict[str, dict[str, Any]]:
    """dim_customers rows of the hand-built customers, by their email."""
    rows = built.execute(
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


# -- `integration-platform er explain` on the same warehouse ------------------------------------


def explain(built: DbtWarehouse, *keys: str) -> tuple[int, str]:
    """The command's exit code and output, reading the build's warehouse as its published
    copy (a publish is a byte copy of the closed file)."""
    from click.testing import CliRunner

    from integration_platform.cli import main

    shutil.copyfile(built.path, built.path.with_name(f"{built.path.stem}.published.duckdb"))
    result = CliRunner().invoke(
        main, ["er", "explain", *keys], env={"WAREHOUSE_PATH": str(built.path)}
    )
    return result.exit_code, result.output


def weights(output: str) -> tuple[list[float], float, float, float]:
    """(the fields' weights, the prior, the match weight, the probability) as printed."""
    fields, prior, total, probability = [], 0.0, 0.0, 0.0
    for line in output.splitlines():
        if line.startswith("prior "):
            prior = float(line.split()[-1])
        elif line.startswith("match weight "):
            total = float(line.split()[-1])
        elif line.startswith("probability "):
            probability = float(line.split()[1])
        elif re.match(r"^\w+ +(\w+|\(missing\)) +[+-]\d+\.\d\d$", line):
            fields.append(float(line.split()[-1]))
    return fields, prior, total, probability


def test_explain_shows_why_two_records_link_and_its_figures_add_up(built: DbtWarehouse) -> None:
    code, output = explain(built, "billing:customers:cus_hw1", "support:customers:sup_hw1")
    assert code == 0, output
    assert "Compared: blocking rule(s) " in output
    assert re.search(r"^email +exact +\+\d", output, re.MULTILINE), output
    # billing's typo against support's spelling: not an exact last name
    assert re.search(r"^last_name +(fuzzy|different)", output, re.MULTILINE), output
    fields, prior, total, probability = weights(output)
    assert len(fields) >= 8  # every compared field has its line
    assert total == pytest.approx(prior + sum(fields), abs=0.02)
    assert probability == pytest.approx(1 / (1 + 2 ** (-total)), abs=1e-4)
    assert "(threshold 0.99): a link" in output
    assert "One customer, " in output


def test_explain_says_two_people_are_two_customers(built: DbtWarehouse) -> None:
    code, output = explain(built, "billing:customers:cus_hw1", "billing:customers:cus_aj1")
    assert code == 0, output
    assert "Not compared: no blocking rule" in output or "not a link" in output
    assert "Two customers: " in output


def test_explain_of_one_record_lists_its_customer_and_the_links_holding_it(
    built: DbtWarehouse,
) -> None:
    code, output = explain(built, key("analytics__users", "usr_hw1"))
    assert code == 0, output
    assert "is one of 3 record(s) of customer " in output
    for table, primary_key in [
        ("billing__customers", "cus_hw1"),
        ("support__customers", "sup_hw1"),
        ("analytics__users", "usr_hw1"),
    ]:
        assert f"  {key(table, primary_key)}\n" in output
    links = re.search(r"Held together by (\d+) link", output)
    assert links and int(links.group(1)) >= 2, output  # three records need two links at least


def test_explain_of_an_unknown_key_says_what_to_give(built: DbtWarehouse) -> None:
    code, output = explain(built, "billing:customers:nobody")
    assert code == 1
    assert "No customer record 'billing:customers:nobody'" in output
    assert "source:endpoint:id" in output
