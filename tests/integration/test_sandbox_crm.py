"""The sandbox CRM's contract over real HTTP: OAuth2, cursor pages, filters, drift, ground truth."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

import httpx
import pytest

from integration_platform_sandbox.chaos import ChaosSettings
from integration_platform_sandbox.server import Sandbox
from integration_platform_sandbox.vendors import crm
from integration_platform_sandbox.world import SandboxCredentials
from tests.conftest import ChaosSwitch
from tests.integration.sandbox_client import TIMEOUT, crm_pages, crm_token, ground_truth_ids


def _as_datetime(value: str | int) -> datetime:
    if isinstance(value, int):
        return datetime.fromtimestamp(value, UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_paging_contacts_returns_exactly_the_ground_truth_when_following_cursors(
    sandbox: Sandbox, sandbox_credentials: SandboxCredentials
) -> None:
    url = sandbox.urls["crm"]
    pages = crm_pages(url, crm_token(url, sandbox_credentials), "/v2/contacts", limit=37)
    ids = [record["id"] for page in pages for record in page["data"]]

    truth = ground_truth_ids(url, "contacts")
    assert len(ids) == len(set(ids)), "a record was served twice"
    assert set(ids) == set(truth)
    assert truth == {row.record_id: row.entity_id for row in crm.ground_truth(sandbox.world)}
    assert "next_cursor" not in pages[-1]
    assert all(len(page["data"]) == 37 for page in pages[:-1])


def test_contacts_hold_deliberate_duplicates_when_one_person_signed_up_twice(
    sandbox: Sandbox,
) -> None:
    truth = ground_truth_ids(sandbox.urls["crm"], "contacts")
    entities = list(truth.values())
    assert len(set(entities)) < len(entities), "the CRM should contain duplicate people"


def test_timestamps_come_in_mixed_formats_when_integrations_wrote_them_differently(
    sandbox: Sandbox, sandbox_credentials: SandboxCredentials
) -> None:
    url = sandbox.urls["crm"]
    records = [
        r
        for p in crm_pages(url, crm_token(url, sandbox_credentials), "/v2/contacts")
        for r in p["data"]
    ]
    kinds = {type(r["updated_at"]).__name__ for r in records}
    offsets = {r["created_at"][-6:] for r in records if isinstance(r["created_at"], str)}
    assert kinds == {"int", "str"}
    assert any(o.startswith(("-", "+")) and o != "+00:00" for o in offsets)
    assert any(isinstance(r["created_at"], str) and r["created_at"].endswith("Z") for r in records)


def test_updated_since_returns_only_newer_records_when_filtering(
    sandbox: Sandbox, sandbox_credentials: SandboxCredentials
) -> None:
    url = sandbox.urls["crm"]
    token = crm_token(url, sandbox_credentials)
    since = datetime(2025, 7, 1, tzinfo=UTC)
    everything = [r for p in crm_pages(url, token, "/v2/contacts") for r in p["data"]]
    newer = [
        r
        for p in crm_pages(url, token, "/v2/contacts", updated_since=since.isoformat())
        for r in p["data"]
    ]
    expected = [r["id"] for r in everything if _as_datetime(r["updated_at"]) >= since]
    assert [r["id"] for r in newer] == expected
    assert 0 < len(newer) < len(everything)
    epoch = [
        r
        for p in crm_pages(url, token, "/v2/contacts", updated_since=int(since.timestamp()))
        for r in p["data"]
    ]
    assert [r["id"] for r in epoch] == expected


def test_companies_page_like_contacts_when_listing_reference_data(
    sandbox: Sandbox, sandbox_credentials: SandboxCredentials
) -> None:
    url = sandbox.urls["crm"]
    pages = crm_pages(url, crm_token(url, sandbox_credentials), "/v2/companies", limit=7)
    companies = [r for p in pages for r in p["data"]]
    stats = httpx.get(f"{url}/_sandbox/stats").json()
    assert len(companies) == stats["counts"]["companies"] == len({c["id"] for c in companies})
    assert all(c["name"] and c["domain"].endswith(".example.com") for c in companies)


def test_token_endpoint_rejects_wrong_secret_when_credentials_are_bad(
    sandbox: Sandbox, sandbox_credentials: SandboxCredentials
) -> None:
    response = httpx.post(
        f"{sandbox.urls['crm']}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": sandbox_credentials.crm_client_id,
            "client_secret": "wrong",
        },
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_token_endpoint_accepts_basic_auth_when_client_authenticates_by_header(
    sandbox: Sandbox, sandbox_credentials: SandboxCredentials
) -> None:
    response = httpx.post(
        f"{sandbox.urls['crm']}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(sandbox_credentials.crm_client_id, sandbox_credentials.crm_client_secret),
    )
    assert response.status_code == 200
    assert response.json()["token_type"] == "Bearer"


def test_contacts_answer_401_when_no_token_is_sent(sandbox: Sandbox) -> None:
    response = httpx.get(f"{sandbox.urls['crm']}/v2/contacts")
    assert response.status_code == 401
    assert "Bearer" in response.headers["www-authenticate"]


def test_expired_token_gets_401_when_its_ttl_has_passed(
    make_sandbox: type[Sandbox], sandbox_credentials: SandboxCredentials
) -> None:
    ttl = 5.0  # the first request lands well within it, even on a crowded machine
    server = make_sandbox(token_ttl_seconds=ttl, customers=50)
    url = server.urls["crm"]
    warm_up = {"authorization": f"Bearer {crm_token(url, sandbox_credentials)}"}
    httpx.get(f"{url}/v2/contacts", headers=warm_up, timeout=TIMEOUT)  # builds the record pools
    requested = time.monotonic()  # the token is issued after this: it expires after + ttl
    token = crm_token(url, sandbox_credentials)
    headers = {"authorization": f"Bearer {token}"}
    response = httpx.get(f"{url}/v2/contacts", headers=headers, timeout=TIMEOUT)
    assert response.status_code == 200
    # Ask until it is refused: never before the TTL has passed, and soon after.
    deadline = requested + ttl + 60
    while response.is_success:
        assert time.monotonic() < deadline, "the token was still accepted 60 s after its TTL"
        time.sleep(0.1)
        response = httpx.get(f"{url}/v2/contacts", headers=headers, timeout=TIMEOUT)
    assert time.monotonic() - requested >= ttl, "refused before its TTL had passed"
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_a_page_repeats_its_cursor_when_the_repeat_cursor_knob_is_on(
    sandbox: Sandbox, sandbox_credentials: SandboxCredentials, chaos: ChaosSwitch
) -> None:
    url = sandbox.urls["crm"]
    token = crm_token(url, sandbox_credentials)
    chaos("crm", ChaosSettings(repeat_cursor_at_page=3))
    headers = {"authorization": f"Bearer {token}"}
    first = httpx.get(f"{url}/v2/contacts", params={"limit": 10}, headers=headers).json()
    second = httpx.get(
        f"{url}/v2/contacts", headers=headers, params={"limit": 10, "cursor": first["next_cursor"]}
    ).json()
    third = httpx.get(
        f"{url}/v2/contacts", headers=headers, params={"limit": 10, "cursor": second["next_cursor"]}
    ).json()
    assert second["next_cursor"] != first["next_cursor"]
    assert third["next_cursor"] == second["next_cursor"]


def test_contacts_change_schema_from_the_drift_date_when_drift_is_on(
    sandbox: Sandbox, sandbox_credentials: SandboxCredentials, chaos: ChaosSwitch
) -> None:
    url = sandbox.urls["crm"]
    token = crm_token(url, sandbox_credentials)
    drift_from = date(2025, 9, 1)
    chaos("crm", ChaosSettings(schema_drift_from=drift_from))
    records = [r for p in crm_pages(url, token, "/v2/contacts") for r in p["data"]]
    before = [r for r in records if _as_datetime(r["updated_at"]).date() < drift_from]
    after = [r for r in records if _as_datetime(r["updated_at"]).date() >= drift_from]
    assert before and after
    assert all("email" in r and isinstance(r["lead_score"], int) for r in before)
    assert all("email" not in r and "email_address" in r for r in after)
    assert all(isinstance(r["lead_score"], str) for r in after)


def test_bad_cursor_gets_a_400_that_says_so_when_the_client_invents_one(
    sandbox: Sandbox, sandbox_credentials: SandboxCredentials
) -> None:
    url = sandbox.urls["crm"]
    response = httpx.get(
        f"{url}/v2/contacts",
        params={"cursor": "not-a-cursor"},
        headers={"authorization": f"Bearer {crm_token(url, sandbox_credentials)}"},
    )
    assert response.status_code == 400
    assert "cursor" in response.json()["message"]


@pytest.mark.parametrize("limit", [0, 501, "ten"])
def test_limit_out_of_range_gets_400_when_asking_for_an_impossible_page(
    sandbox: Sandbox, sandbox_credentials: SandboxCredentials, limit: object
) -> None:
    url = sandbox.urls["crm"]
    response = httpx.get(
        f"{url}/v2/contacts",
        params={"limit": str(limit)},
        headers={"authorization": f"Bearer {crm_token(url, sandbox_credentials)}"},
    )
    assert response.status_code == 400
    assert "limit" in response.json()["message"]
