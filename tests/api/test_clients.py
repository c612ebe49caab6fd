"""Registering clients over HTTP: CRUD, paging, credentials write-only and encrypted at rest."""

from __future__ import annotations

import json
import os
import re
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from integration_platform.clients.credentials import credentials_for
from integration_platform.logs import configure_logging
from tests.api.conftest import Api

CRM = {
    "CRM_CLIENT_ID": "acme-crm-client",
    "CRM_CLIENT_SECRET": "acme-crm-secret-9f8e7d",
    "CRM_BASE_URL": "http://127.0.0.1:9/crm",
}


def register(api: Api, client_id: str, **extra: object) -> dict:
    response = api.http.post(
        "/clients", json={"id": client_id, "name": f"{client_id} Inc.", **extra}
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_client_is_read_back_with_variable_names_but_no_values_when_registered(api: Api) -> None:
    created = register(api, "acme", credentials={"crm": CRM})
    assert created["id"] == "acme"
    assert created["credentials"]["crm"]["variables"] == sorted(CRM)
    for answer in (created, api.http.get("/clients/acme").json(), api.http.get("/clients").text):
        assert CRM["CRM_CLIENT_SECRET"] not in json.dumps(answer)
        assert CRM["CRM_CLIENT_ID"] not in json.dumps(answer)


def test_credentials_are_encrypted_in_the_database_when_stored(api: Api) -> None:
    register(api, "acme", credentials={"crm": CRM})
    engine = create_engine(api.store_url)
    with engine.connect() as connection:
        row = connection.execute(
            text("select ciphertext, variables from client_credentials where client_id = 'acme'")
        ).one()
    engine.dispose()
    stored = bytes(row[0])
    assert CRM["CRM_CLIENT_SECRET"].encode() not in stored
    assert CRM["CRM_BASE_URL"].encode() not in stored
    key = os.environ["INTEGRATION_PLATFORM_SECRET_KEY"].encode()
    assert json.loads(Fernet(key).decrypt(stored)) == CRM


def test_unknown_source_and_variable_are_refused_with_their_paths_when_registering(
    api: Api,
) -> None:
    response = api.http.post(
        "/clients",
        json={
            "id": "acme",
            "name": "Acme",
            "credentials": {"crm": {**CRM, "CRM_PASSWORD": "x1"}, "erp": {"ERP_KEY": "x2"}},
        },
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    paths = {f["path"]: f["message"] for f in error["fields"]}
    assert set(paths) == {"credentials.crm.CRM_PASSWORD", "credentials.erp"}
    assert "CRM_CLIENT_SECRET" in paths["credentials.crm.CRM_PASSWORD"]  # says what it uses
    assert "crm" in paths["credentials.erp"]  # lists the known sources
    assert api.http.get("/clients/acme").status_code == 404


def test_a_missing_required_variable_is_named_when_a_source_is_incomplete(api: Api) -> None:
    response = api.http.post(
        "/clients",
        json={
            "id": "acme",
            "name": "Acme",
            "credentials": {"crm": {"CRM_CLIENT_ID": "x", "CRM_BASE_URL": "http://h"}},
        },
    )
    assert response.status_code == 422
    assert [f["path"] for f in response.json()["error"]["fields"]] == [
        "credentials.crm.CRM_CLIENT_SECRET"
    ]


def test_the_schema_names_each_sources_variables_when_served(api: Api) -> None:
    schemas = api.http.get("/openapi.json").json()["components"]["schemas"]
    create = schemas["ClientCreate"]["properties"]["credentials"]
    assert create["additionalProperties"] is False
    crm = create["properties"]["crm"]
    assert (set(crm["properties"]), crm["required"], crm["additionalProperties"]) == (
        set(CRM),
        sorted(CRM),
        False,
    )
    [patch, _null] = schemas["ClientPatch"]["properties"]["credentials"]["anyOf"]
    [crm_patch, _null] = patch["properties"]["crm"]["anyOf"]
    # A required variable can be replaced, never removed: null is not offered.
    assert crm_patch["properties"]["CRM_CLIENT_SECRET"]["type"] == "string"
    assert "required" not in crm_patch


def test_malformed_fields_are_reported_with_paths_when_the_body_is_wrong(api: Api) -> None:
    response = api.http.post(
        "/clients",
        json={"id": "Not A Slug", "name": "", "credentials": {"crm": {"CRM_CLIENT_ID": 5}}},
    )
    assert response.status_code == 422
    paths = {f["path"] for f in response.json()["error"]["fields"]}
    assert {"id", "name", "credentials.crm.CRM_CLIENT_ID"} <= paths


def test_id_is_derived_from_the_name_when_none_is_given(api: Api) -> None:
    response = api.http.post("/clients", json={"name": "Globex Corporation (EU)"})
    assert response.status_code == 201
    assert response.json()["id"] == "globex-corporation-eu"
    assert response.headers["Location"] == "/clients/globex-corporation-eu"
    assert api.http.post("/clients", json={"id": None, "name": "Initech"}).json()["id"] == (
        "initech"
    )


@pytest.mark.parametrize("name", ["株式会社", "0", "X"])
def test_a_name_too_short_for_a_slug_gets_a_hashed_id_when_none_is_given(
    api: Api, name: str
) -> None:
    response = api.http.post("/clients", json={"id": None, "name": name})
    assert response.status_code == 201, response.text
    client_id = response.json()["id"]
    assert re.fullmatch(r"client-[0-9a-f]{8}", client_id)
    assert response.json()["name"] == name
    again = api.http.post("/clients", json={"name": name})  # the same name, the same id
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "client_exists"


@pytest.mark.parametrize("name", ["Acme\u0000", "Ac\nme", "Acme\u007f Corp"])
def test_a_name_with_a_control_character_is_refused_saying_so_when_registering(
    api: Api, name: str
) -> None:
    # NUL once reached PostgreSQL and came back as a 500.
    response = api.http.post("/clients", json={"id": "acme", "name": name})
    assert response.status_code == 422, response.text
    [field] = response.json()["error"]["fields"]
    assert field["path"] == "name"
    assert "control characters" in field["message"]
    register(api, "acme")
    assert api.http.patch("/clients/acme", json={"name": name}).status_code == 422
    assert api.http.get("/clients/acme").json()["name"] == "acme Inc."


def test_a_blank_name_or_credential_value_is_refused_when_registering(api: Api) -> None:
    response = api.http.post(
        "/clients",
        json={"id": "acme", "name": " \t", "credentials": {"crm": {**CRM, "CRM_BASE_URL": " "}}},
    )
    assert response.status_code == 422
    paths = {f["path"] for f in response.json()["error"]["fields"]}
    assert paths == {"name"}  # the body's shape first; then the values against the specs
    response = api.http.post(
        "/clients",
        json={"id": "acme", "name": "Acme", "credentials": {"crm": {**CRM, "CRM_BASE_URL": " "}}},
    )
    assert response.status_code == 422
    [field] = response.json()["error"]["fields"]
    assert field["path"] == "credentials.crm.CRM_BASE_URL"
    assert "empty value" in field["message"]


def test_a_second_registration_conflicts_when_the_id_is_taken(api: Api) -> None:
    register(api, "acme")
    response = api.http.post("/clients", json={"id": "acme", "name": "Other"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "client_exists"


def test_every_client_is_listed_once_across_pages_when_paged_with_cursors(api: Api) -> None:
    ids = [f"client-{i:02d}" for i in range(7)]
    for client_id in reversed(ids):
        register(api, client_id)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.http.get("/clients", params=params).json()
        seen += [c["id"] for c in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert cursor == seen[-1]  # the page's last client: the next page starts after it
    assert seen == ids
    assert pages == 3


def test_a_page_starts_after_any_id_given_as_cursor_when_listing(api: Api) -> None:
    for client_id in ("acme", "globex", "initech"):
        register(api, client_id)
    # Not an id that exists: the page starts after where it would be.
    page = api.http.get("/clients", params={"cursor": "b-never-registered"}).json()
    assert [c["id"] for c in page["data"]] == ["globex", "initech"]


def test_a_cursor_that_is_no_client_id_is_refused_naming_the_pattern_when_listing(
    api: Api,
) -> None:
    response = api.http.get("/clients", params={"cursor": "not-a-cursor!"})
    assert response.status_code == 422
    [field] = response.json()["error"]["fields"]
    assert (field["path"], field["location"]) == ("cursor", "query")
    assert "^[a-z][a-z0-9-]{1,38}[a-z0-9]$" in field["message"]


def test_rotating_one_secret_keeps_the_other_variables_when_patched(
    api: Api,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = register(api, "acme", credentials={"crm": CRM})
    response = api.http.patch(
        "/clients/acme", json={"credentials": {"crm": {"CRM_CLIENT_SECRET": "rotated-secret-123"}}}
    )
    assert response.status_code == 200
    rotated = response.json()["credentials"]["crm"]
    assert rotated["variables"] == sorted(CRM)
    assert rotated["rotated_at"] > first["credentials"]["crm"]["rotated_at"]
    monkeypatch.setenv("DATABASE_URL", api.store_url)
    assert credentials_for("acme", "crm") == {**CRM, "CRM_CLIENT_SECRET": "rotated-secret-123"}


def test_removing_a_required_variable_is_refused_when_patched(api: Api) -> None:
    register(api, "acme", credentials={"crm": CRM})
    response = api.http.patch(
        "/clients/acme", json={"credentials": {"crm": {"CRM_CLIENT_SECRET": None}}}
    )
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["path"] == "credentials.crm.CRM_CLIENT_SECRET"
    assert api.http.get("/clients/acme").json()["credentials"]["crm"]["variables"] == sorted(CRM)


def test_a_source_new_to_the_client_needs_every_required_variable_when_patched(
    api: Api,
) -> None:
    """What the schema cannot state (it depends on what is stored), said per variable."""
    register(api, "acme", credentials={"crm": CRM})
    response = api.http.patch(
        "/clients/acme", json={"credentials": {"billing": {"BILLING_API_KEY": "k-123"}}}
    )
    assert response.status_code == 422
    paths = {f["path"] for f in response.json()["error"]["fields"]}
    assert paths == {
        "credentials.billing.BILLING_BASE_URL",
        "credentials.billing.BILLING_WEBHOOK_SECRET",
    }
    assert list(api.http.get("/clients/acme").json()["credentials"]) == ["crm"]


def test_deactivated_client_keeps_its_record_but_loses_credentials_when_deleted(
    api: Api,
) -> None:
    register(api, "acme", credentials={"crm": CRM})
    response = api.http.delete("/clients/acme")
    assert response.status_code == 200
    assert response.json()["active"] is False
    assert response.json()["credentials"] == {}
    assert (
        api.http.post("/integrations/acme/sync", json={}).json()["error"]["code"]
        == "client_inactive"
    )
    assert api.http.patch("/clients/acme", json={"name": "x"}).status_code == 409
    assert [c["id"] for c in api.http.get("/clients").json()["data"]] == []
    listed = api.http.get("/clients", params={"include_inactive": "true"}).json()["data"]
    assert [c["id"] for c in listed] == ["acme"]


def test_no_credential_value_reaches_a_log_line_when_credentials_are_written(api: Api) -> None:
    stream = StringIO()
    configure_logging("DEBUG", stream=stream)
    try:
        register(api, "acme", credentials={"crm": CRM})
        api.http.patch(
            "/clients/acme",
            json={"credentials": {"crm": {"CRM_CLIENT_SECRET": "rotated-secret-456"}}},
            headers={"X-Request-ID": "req-rotate-1"},
        )
        api.http.post(
            "/clients",
            json={
                "id": "bad",
                "name": "x",
                "credentials": {"crm": {**CRM, "CRM_PASSWORD": "never-log-this-789"}},
            },
        )
    finally:
        configure_logging()
    logged = stream.getvalue()
    for secret in (*CRM.values(), "rotated-secret-456", "never-log-this-789"):
        if len(secret) >= 6 and not secret.startswith("http"):
            assert secret not in logged
    lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("event") == "api_request"]
    patch = next(line for line in requests if line["request_id"] == "req-rotate-1")
    assert patch["client_id"] == "acme"
    assert patch["route"] == "/clients/{client_id}"
    assert patch["status"] == 200
    assert patch["latency_ms"] > 0


def test_request_id_is_returned_and_a_fresh_one_made_when_the_given_one_is_unsafe(
    api: Api,
) -> None:
    given = api.http.get("/health", headers={"X-Request-ID": "abc-123"})
    assert given.headers["X-Request-ID"] == "abc-123"
    unsafe = api.http.get("/health", headers={"X-Request-ID": "a b\tc"})
    assert unsafe.headers["X-Request-ID"] not in ("a b\tc", "")


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/clients"), ("post", "/clients"), ("get", "/clients/acme/customers")],
)
def test_answers_401_with_a_json_body_when_no_key_is_sent(api: Api, method: str, path: str) -> None:
    with api.anonymous() as anonymous:
        response = anonymous.request(method.upper(), path, json={"name": "x"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthenticated"


def test_answers_401_when_the_key_is_unknown_or_revoked(api: Api) -> None:
    from integration_platform.clients.api_keys import ApiKeys
    from integration_platform.clients.database import open_store

    keys = ApiKeys(open_store(api.store_url))
    issued = keys.create("reader", ["clients:read"])
    with api.as_key(issued.token) as reader:
        assert reader.get("/clients").status_code == 200
        keys.revoke(issued.principal.key_id)
        revoked = reader.get("/clients")
    assert revoked.status_code == 401
    assert revoked.json()["error"]["code"] == "invalid_api_key"
    with api.as_key(issued.token[:-4] + "AAAA") as forged:
        assert forged.get("/clients").status_code == 401


def test_answers_403_naming_the_scope_when_the_key_lacks_it(api: Api) -> None:
    from integration_platform.clients.api_keys import ApiKeys
    from integration_platform.clients.database import open_store

    issued = ApiKeys(open_store(api.store_url)).create("reader", ["clients:read"])
    with api.as_key(issued.token) as reader:
        response = reader.post("/clients", json={"name": "Acme"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_scope"
    assert "clients:write" in response.json()["error"]["message"]


def test_a_key_limited_to_one_client_reaches_only_that_client(api: Api) -> None:
    from integration_platform.clients.api_keys import SCOPES, ApiKeys
    from integration_platform.clients.database import open_store

    register(api, "acme")
    register(api, "globex")
    issued = ApiKeys(open_store(api.store_url)).create("acme's key", list(SCOPES), "acme")
    with api.as_key(issued.token) as acme:
        assert [c["id"] for c in acme.get("/clients").json()["data"]] == ["acme"]
        assert acme.get("/clients/acme").status_code == 200
        for path in ("/clients/globex", "/clients/globex/customers", "/integrations/globex/status"):
            response = acme.get(path)
            assert response.status_code == 403, path
            assert response.json()["error"]["code"] == "client_forbidden"
        assert acme.post("/integrations/globex/sync", json={}).status_code == 403
        assert acme.post("/clients", json={"name": "New"}).status_code == 403
