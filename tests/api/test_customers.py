"""The access layer over HTTP, on marts a real dbt build made for two clients: each client's
golden records and customer 360 exactly as the warehouse holds them, typed as its columns are,
paged, cached with ETags, and never another client's rows."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from integration_platform.api.app import create_app
from integration_platform.api.settings import ApiSettings
from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.transform.dbt_assets import DBT_BUILD
from integration_platform.webhooks.server import ReceiverServer
from tests.api.conftest import ADMIN_KEY, Api
from tests.api.test_clients import register
from tests.api.warehouse_fixture import SECOND_CLIENT, BuiltWarehouse

# The first test of the session waits for the warehouse build: about a minute alone, several
# on a crowded 2-core machine.
pytestmark = pytest.mark.timeout(900)

CLIENTS = (DEMO_CLIENT_ID, SECOND_CLIENT)
PROVENANCE_SUFFIX = "_source_record_key"


@pytest.fixture
def published_warehouse(marts_warehouse: BuiltWarehouse) -> Path:
    return marts_warehouse.path


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """What these tests read is the marts, not the store: SQLite only (the store's own tests
    run on PostgreSQL too)."""
    return f"sqlite:///{tmp_path / 'platform.sqlite'}"


def as_json(value: Any, column_type: str) -> Any:
    """What the API must answer for a value of a column of this DuckDB type."""
    if value is None:
        return None
    if column_type == "VARCHAR":
        assert isinstance(value, str)
        return value
    if column_type in ("BIGINT", "HUGEINT", "INTEGER"):
        assert isinstance(value, int)
        return value
    if column_type == "BOOLEAN":
        assert isinstance(value, bool)
        return value
    if column_type.startswith("DECIMAL"):  # a JSON number, not a string
        assert isinstance(value, Decimal)
        return float(value)
    if column_type == "DATE":
        assert isinstance(value, date)
        return value.isoformat()
    if column_type == "TIMESTAMP WITH TIME ZONE":
        assert isinstance(value, datetime)
        assert value.utcoffset() is not None
        return value.astimezone(UTC).isoformat()
    if column_type == "TIMESTAMP":  # the marts' naive times are UTC
        assert isinstance(value, datetime)
        assert value.tzinfo is None
        return value.replace(tzinfo=UTC).isoformat()
    if column_type == "VARCHAR[]":
        assert all(isinstance(item, str) for item in value)
        return list(value)
    if column_type == "MAP(VARCHAR, VARCHAR)":
        return dict(value)
    raise AssertionError(f"the test states no JSON form for {column_type}: add it")


def expected_rows(marts: BuiltWarehouse, table: str, client_id: str) -> list[dict[str, Any]]:
    """The client's rows of a mart, ordered by customer_id, as the API must write them."""
    types = marts.column_types(table)
    rows = marts.rows(
        f"select * from {table} where client_id = ? order by customer_id",
        client_id,
    )
    return [{name: as_json(value, types[name]) for name, value in row.items()} for row in rows]


def assert_same_json(answered: dict[str, Any], expected: dict[str, Any]) -> None:
    """Equal, and of the same JSON types (1 == 1.0 == True in Python; not in JSON)."""
    assert answered == expected
    for name, value in expected.items():
        assert type(answered[name]) is type(value), (name, answered[name], value)


def listing(api: Api, client_id: str, limit: int) -> list[dict[str, Any]]:
    """Every page of a client's customers, in order."""
    pages: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = api.http.get(f"/clients/{client_id}/customers", params=params)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return pages


def test_marts_hold_both_clients_customers_when_built_by_the_pipeline(
    marts_warehouse: BuiltWarehouse,
) -> None:
    counts = dict(
        marts_warehouse.query(
            "select client_id, count(*) from marts.dim_customers group by client_id"
        )
    )
    assert set(counts) == set(CLIENTS)
    assert all(count > 100 for count in counts.values()), counts
    shared = marts_warehouse.query(
        "select count(*) from marts.dim_customers a join marts.dim_customers b "
        "using (customer_id) where a.client_id <> b.client_id"
    )
    assert shared == [(0,)]


def test_the_builds_dbt_log_holds_info_lines_not_every_query_when_built_by_the_pipeline(
    marts_warehouse: BuiltWarehouse,
) -> None:
    root = marts_warehouse.path.parents[1]  # <root>/data/warehouse.published.duckdb
    (build,) = (root / "dbt_project" / "target").glob(f"{DBT_BUILD}-*")
    levels = Counter(
        json.loads(line)["info"]["level"] for line in (build / "dbt.log").read_text().splitlines()
    )
    assert levels["info"] > 0
    assert levels["debug"] == 0, levels  # dbt's default file level writes every query


@pytest.mark.parametrize("client_id", CLIENTS)
def test_every_golden_record_of_the_client_is_paged_once_as_the_mart_holds_it_when_listed(
    api: Api, marts_warehouse: BuiltWarehouse, client_id: str
) -> None:
    register(api, client_id)
    expected = expected_rows(marts_warehouse, "marts.dim_customers", client_id)
    limit = len(expected) // 3 + 1  # three pages, the last one shorter
    pages = listing(api, client_id, limit)
    assert [len(page["data"]) for page in pages] == [limit, limit, len(expected) - 2 * limit]
    for page in pages[:-1]:
        assert page["next_cursor"] == page["data"][-1]["customer_id"]
    answered = [customer for page in pages for customer in page["data"]]
    assert len(answered) == len(expected)
    for customer, row in zip(answered, expected, strict=True):
        row.pop("client_id")
        assert_same_json(customer, row)


def test_one_client_never_sees_another_clients_customers_when_listing(
    api: Api, marts_warehouse: BuiltWarehouse
) -> None:
    seen = {}
    for client_id in CLIENTS:
        register(api, client_id)
        customers = [c for page in listing(api, client_id, 1000) for c in page["data"]]
        seen[client_id] = {c["customer_id"] for c in customers}
        in_mart = marts_warehouse.query(
            "select customer_id from marts.dim_customers where client_id = ?", client_id
        )
        assert seen[client_id] == {customer_id for (customer_id,) in in_mart}
        # Every source record behind a client's customers is that client's.
        keys = [key for c in customers for key in c["record_keys"]]
        assert keys
        assert all(key.startswith(f"{client_id}:") for key in keys)
        assert all(c["email"] is None or isinstance(c["email"], str) for c in customers)
    assert seen[DEMO_CLIENT_ID]
    assert seen[SECOND_CLIENT]
    assert not seen[DEMO_CLIENT_ID] & seen[SECOND_CLIENT]


def test_guessing_another_clients_customer_id_finds_nothing_when_read(
    api: Api, marts_warehouse: BuiltWarehouse
) -> None:
    for client_id in CLIENTS:
        register(api, client_id)
    for owner, other in ((SECOND_CLIENT, DEMO_CLIENT_ID), (DEMO_CLIENT_ID, SECOND_CLIENT)):
        [(theirs, email)] = marts_warehouse.query(
            "select customer_id, email from marts.dim_customers "
            "where client_id = ? and email is not null order by customer_id limit 1",
            owner,
        )
        guessed = api.http.get(f"/clients/{other}/customers/{theirs}")
        assert guessed.status_code == 404
        assert guessed.json()["error"]["code"] == "customer_not_found"
        assert email not in guessed.text
        own = api.http.get(f"/clients/{owner}/customers/{theirs}")
        assert own.status_code == 200
        assert own.json()["customer"]["customer_id"] == theirs


@pytest.mark.parametrize("client_id", CLIENTS)
def test_one_customer_comes_with_its_360_figures_and_provenance_when_read(
    api: Api, marts_warehouse: BuiltWarehouse, client_id: str
) -> None:
    register(api, client_id)
    # The customer resolved from the most source records, with the most figures to show.
    [(customer_id,)] = marts_warehouse.query(
        "select customer_id from marts.dim_customers join marts.customer_360 "
        "using (client_id, customer_id) where client_id = ? "
        "order by record_count desc, mrr_reporting desc, customer_id limit 1",
        client_id,
    )
    [customer] = [
        row
        for row in expected_rows(marts_warehouse, "marts.dim_customers", client_id)
        if row["customer_id"] == customer_id
    ]
    [figures] = [
        row
        for row in expected_rows(marts_warehouse, "marts.customer_360", client_id)
        if row["customer_id"] == customer_id
    ]
    assert customer["record_count"] > 1

    body = api.http.get(f"/clients/{client_id}/customers/{customer_id}").json()

    field_sources = {
        name.removesuffix(PROVENANCE_SUFFIX): customer.pop(name)
        for name in list(customer)
        if name.endswith(PROVENANCE_SUFFIX)
    }
    assert field_sources
    assert body["provenance"] == {
        "field_sources": field_sources,
        "record_keys": customer["record_keys"],
        "source_systems": customer["source_systems"],
    }
    assert set(customer["source_systems"]) == {k.split(":")[1] for k in customer["record_keys"]}
    customer.pop("client_id")
    assert_same_json(body["customer"], customer)
    for name in ("client_id", "customer_id", "source_record_keys"):
        figures.pop(name)
    assert_same_json(body["customer_360"], figures)


def test_every_column_reaches_json_as_its_type_gives_it_when_a_customer_is_read(
    api: Api, marts_warehouse: BuiltWarehouse
) -> None:
    """Each column of both marts, read where the build gave it a value, whichever client."""
    for client_id in CLIENTS:
        register(api, client_id)
    types_seen: set[str] = set()
    for mart, part in (("dim_customers", "customer"), ("customer_360", "customer_360")):
        types = marts_warehouse.column_types(f"marts.{mart}")
        for column, column_type in types.items():
            if column in ("client_id", "customer_id", "source_record_keys"):
                continue  # the path's, not the body's; source_record_keys: provenance
            found = marts_warehouse.query(
                f"select client_id, customer_id, {column} from marts.{mart} "
                f"where {column} is not null order by client_id, customer_id limit 1"
            )
            if not found:
                continue
            [(client_id, customer_id, value)] = found
            body = api.http.get(f"/clients/{client_id}/customers/{customer_id}").json()
            if column.endswith(PROVENANCE_SUFFIX):
                answered = body["provenance"]["field_sources"][
                    column.removesuffix(PROVENANCE_SUFFIX)
                ]
            else:
                answered = body[part][column]
            expected = as_json(value, column_type)
            assert answered == expected, (mart, column)
            assert type(answered) is type(expected), (mart, column, answered)
            types_seen.add(column_type)
    # Every kind of column the marts have was read back with a value at least once.
    assert {
        "VARCHAR",
        "BIGINT",
        "BOOLEAN",
        "DATE",
        "TIMESTAMP WITH TIME ZONE",
        "TIMESTAMP",
        "VARCHAR[]",
    } <= types_seen
    assert any(t.startswith("DECIMAL") for t in types_seen)


def test_a_page_starts_after_the_cursor_when_one_is_given(
    api: Api, marts_warehouse: BuiltWarehouse
) -> None:
    register(api, SECOND_CLIENT)
    ids = [
        customer_id
        for (customer_id,) in marts_warehouse.query(
            "select customer_id from marts.dim_customers where client_id = ? order by 1",
            SECOND_CLIENT,
        )
    ]
    middle = ids[len(ids) // 2]
    page = api.http.get(
        f"/clients/{SECOND_CLIENT}/customers", params={"cursor": middle, "limit": 5}
    ).json()
    assert [c["customer_id"] for c in page["data"]] == ids[len(ids) // 2 + 1 :][:5]
    assert page["next_cursor"] == ids[len(ids) // 2 + 5]
    last = api.http.get(
        f"/clients/{SECOND_CLIENT}/customers", params={"cursor": ids[-2], "limit": 5}
    ).json()
    assert last == {"data": [last["data"][0]], "next_cursor": None}
    assert last["data"][0]["customer_id"] == ids[-1]


def test_an_unchanged_page_answers_304_until_a_new_copy_is_published(
    api: Api, marts_warehouse: BuiltWarehouse
) -> None:
    register(api, SECOND_CLIENT)
    customers = f"/clients/{SECOND_CLIENT}/customers"
    first = api.http.get(customers, params={"limit": 5})
    etag = first.headers["ETag"]
    again = api.http.get(customers, params={"limit": 5}, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    other_page = api.http.get(customers, params={"limit": 6}, headers={"If-None-Match": etag})
    assert other_page.status_code == 200
    one = f"{customers}/{first.json()['data'][1]['customer_id']}"
    detail = api.http.get(one)
    assert api.http.get(one, headers={"If-None-Match": detail.headers["ETag"]}).status_code == 304


def own_api(api: Api, published: Path) -> ReceiverServer:
    settings = ApiSettings(
        database_url=api.store_url,
        dagster_url=api.settings.dagster_url,
        published_warehouse=published,
    )
    return ReceiverServer(create_app(settings), port=0, name="API")


def test_the_etag_changes_when_a_new_copy_is_published(
    tmp_path: Path, api: Api, marts_warehouse: BuiltWarehouse
) -> None:
    published = tmp_path / "own" / "warehouse.published.duckdb"
    published.parent.mkdir()
    shutil.copyfile(marts_warehouse.path, published)
    register(api, SECOND_CLIENT)
    customers = f"/clients/{SECOND_CLIENT}/customers"
    with (
        own_api(api, published) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http,
    ):
        before = http.get(customers, params={"limit": 3})
        first, *rest = [c["customer_id"] for c in before.json()["data"]]
        # The next build no longer has the first customer (say its records were merged away).
        newer = tmp_path / "next.duckdb"
        shutil.copyfile(marts_warehouse.path, newer)
        with duckdb.connect(str(newer)) as connection:
            connection.execute("delete from marts.dim_customers where customer_id = ?", [first])
        newer.replace(published)  # publishing swaps the file in
        after = http.get(
            customers, params={"limit": 3}, headers={"If-None-Match": before.headers["ETag"]}
        )
    assert after.status_code == 200
    assert after.headers["ETag"] != before.headers["ETag"]
    assert [c["customer_id"] for c in after.json()["data"]][:2] == rest


def test_a_warehouse_without_client_ids_is_refused_rather_than_mixing_clients(
    tmp_path: Path, api: Api, marts_warehouse: BuiltWarehouse
) -> None:
    published = tmp_path / "untenanted.duckdb"
    shutil.copyfile(marts_warehouse.path, published)
    with duckdb.connect(str(published)) as connection:  # the marts as built before clients
        connection.execute("alter table marts.dim_customers drop column client_id")
        [(email,)] = connection.execute(
            "select min(email) from marts.dim_customers where email is not null"
        ).fetchall()
    register(api, SECOND_CLIENT)
    with own_api(api, published) as server:
        response = httpx.get(
            f"{server.url}/clients/{SECOND_CLIENT}/customers",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "warehouse_not_tenant_aware"
    assert email not in response.text


def test_an_empty_page_is_returned_when_nothing_is_published_yet(
    api: Api, tmp_path: Path, marts_warehouse: BuiltWarehouse
) -> None:
    [(existing,)] = marts_warehouse.query(
        "select min(customer_id) from marts.dim_customers where client_id = ?", SECOND_CLIENT
    )
    register(api, SECOND_CLIENT)
    with (
        own_api(api, tmp_path / "missing.duckdb") as server,
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http,
    ):
        listed = http.get(f"/clients/{SECOND_CLIENT}/customers")
        one = http.get(f"/clients/{SECOND_CLIENT}/customers/{existing}")
        ready = http.get("/health/ready")
    assert listed.json() == {"data": [], "next_cursor": None}
    assert one.status_code == 404
    assert ready.json()["checks"]["warehouse"]["detail"].startswith("nothing published yet")


def test_customers_of_an_unknown_client_are_not_found(api: Api) -> None:
    response = api.http.get("/clients/initech/customers")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "client_not_found"
