"""The access layer over HTTP: a client's golden records and customer 360, paged, cached with
ETags, and never another client's rows."""

from __future__ import annotations

from pathlib import Path

import duckdb
import httpx

from integration_platform.api.app import create_app
from integration_platform.api.settings import ApiSettings
from integration_platform.webhooks.server import ReceiverServer
from tests.api.conftest import ADMIN_KEY, Api
from tests.api.test_clients import register
from tests.api.warehouse_fixture import CLIENT_CUSTOMERS, build_published_warehouse


def all_customers(api: Api, client_id: str, limit: int) -> list[dict]:
    found, cursor = [], None
    while True:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = api.http.get(f"/clients/{client_id}/customers", params=params)
        assert response.status_code == 200, response.text
        found += response.json()["data"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return found


def test_every_golden_record_of_the_client_is_paged_once_when_listed(api: Api) -> None:
    register(api, "acme")
    customers = all_customers(api, "acme", limit=70)
    assert [c["customer_id"] for c in customers] == CLIENT_CUSTOMERS["acme"]
    first = customers[0]
    assert first["email"] == "cust-0001@acme.example"
    assert first["emails"] == ["cust-0001@acme.example"]
    assert "client_id" not in first


def test_one_client_never_sees_another_clients_customers_when_listing(api: Api) -> None:
    register(api, "acme")
    register(api, "globex")
    globex = all_customers(api, "globex", limit=2)
    assert [c["customer_id"] for c in globex] == sorted(CLIENT_CUSTOMERS["globex"])
    assert all(c["email"].endswith("@globex.example") for c in globex)
    acme = all_customers(api, "acme", limit=500)
    assert all(c["email"].endswith("@acme.example") for c in acme)


def test_guessing_another_clients_customer_id_finds_nothing_when_read(api: Api) -> None:
    register(api, "acme")
    register(api, "globex")
    guessed = api.http.get("/clients/acme/customers/globex-only-1")
    assert guessed.status_code == 404
    assert guessed.json()["error"]["code"] == "customer_not_found"
    assert api.http.get("/clients/globex/customers/globex-only-1").status_code == 200
    # The same customer_id in both clients: each reads its own record.
    acme = api.http.get("/clients/acme/customers/cust-0001").json()
    globex = api.http.get("/clients/globex/customers/cust-0001").json()
    assert acme["customer"]["email"] == "cust-0001@acme.example"
    assert globex["customer"]["email"] == "cust-0001@globex.example"


def test_one_customer_comes_with_its_360_figures_and_provenance_when_read(api: Api) -> None:
    register(api, "acme")
    body = api.http.get("/clients/acme/customers/cust-0007").json()
    assert body["customer"]["customer_id"] == "cust-0007"
    assert body["customer_360"]["mrr_reporting"] == 9.5
    assert body["customer_360"]["as_of_date"] == "2025-06-30"
    provenance = body["provenance"]
    assert provenance["field_sources"]["email"] == "crm:contacts:acme-cust-0007"
    assert provenance["record_keys"] == ["crm:contacts:acme-cust-0007"]
    assert provenance["source_systems"] == ["crm"]
    assert "email_source_record_key" not in body["customer"]


def test_an_unchanged_page_answers_304_until_a_new_copy_is_published(
    api: Api,
    tmp_path: Path,
) -> None:
    register(api, "acme")
    first = api.http.get("/clients/acme/customers", params={"limit": 5})
    etag = first.headers["ETag"]
    again = api.http.get(
        "/clients/acme/customers", params={"limit": 5}, headers={"If-None-Match": etag}
    )
    assert again.status_code == 304
    assert again.content == b""
    other_page = api.http.get(
        "/clients/acme/customers", params={"limit": 6}, headers={"If-None-Match": etag}
    )
    assert other_page.status_code == 200
    detail = api.http.get("/clients/acme/customers/cust-0002")
    assert (
        api.http.get(
            "/clients/acme/customers/cust-0002", headers={"If-None-Match": detail.headers["ETag"]}
        ).status_code
        == 304
    )


def test_the_etag_changes_when_a_new_copy_is_published(tmp_path: Path, api: Api) -> None:
    published = build_published_warehouse(
        tmp_path / "own" / "warehouse.published.duckdb", {"acme": ["a-1"]}
    )
    settings = ApiSettings(
        database_url=api.store_url,
        dagster_url=api.settings.dagster_url,
        published_warehouse=published,
        sync_poll_seconds=5,
    )
    register(api, "acme")
    with (
        ReceiverServer(create_app(settings, supervise=False), port=0, name="API") as server,
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http,
    ):
        before = http.get("/clients/acme/customers")
        assert [c["customer_id"] for c in before.json()["data"]] == ["a-1"]
        newer = build_published_warehouse(tmp_path / "next.duckdb", {"acme": ["a-1", "a-2"]})
        newer.replace(published)  # publishing swaps the file in
        after = http.get(
            "/clients/acme/customers", headers={"If-None-Match": before.headers["ETag"]}
        )
    assert after.status_code == 200
    assert [c["customer_id"] for c in after.json()["data"]] == ["a-1", "a-2"]


def test_a_warehouse_without_client_ids_is_refused_rather_than_mixing_clients(
    tmp_path: Path,
    api: Api,
) -> None:
    published = tmp_path / "untenanted.duckdb"
    with duckdb.connect(str(published)) as connection:
        connection.execute(
            "create schema marts; create table marts.dim_customers as "
            "select 'c1' as customer_id, 'x@y.z' as email"
        )
    settings = ApiSettings(
        database_url=api.store_url,
        dagster_url=api.settings.dagster_url,
        published_warehouse=published,
        sync_poll_seconds=5,
    )
    register(api, "acme")
    with ReceiverServer(create_app(settings, supervise=False), port=0, name="API") as server:
        response = httpx.get(
            f"{server.url}/clients/acme/customers", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "warehouse_not_tenant_aware"
    assert "x@y.z" not in response.text


def test_an_empty_page_is_returned_when_nothing_is_published_yet(api: Api, tmp_path: Path) -> None:
    settings = ApiSettings(
        database_url=api.store_url,
        dagster_url=api.settings.dagster_url,
        published_warehouse=tmp_path / "missing.duckdb",
        sync_poll_seconds=5,
    )
    register(api, "acme")
    with (
        ReceiverServer(create_app(settings, supervise=False), port=0, name="API") as server,
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http,
    ):
        listing = http.get("/clients/acme/customers")
        one = http.get("/clients/acme/customers/cust-0001")
        ready = http.get("/health/ready")
    assert listing.json() == {"data": [], "next_cursor": None}
    assert one.status_code == 404
    assert ready.json()["checks"]["warehouse"]["detail"].startswith("nothing published yet")


def test_customers_of_an_unknown_client_are_not_found(api: Api) -> None:
    response = api.http.get("/clients/initech/customers")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "client_not_found"
