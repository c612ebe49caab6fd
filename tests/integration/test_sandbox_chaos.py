"""Each chaos knob does what it says, seen by a real HTTP client on loopback."""

from __future__ import annotations

import json
from collections import Counter
from email.utils import parsedate_to_datetime

import httpx
import pytest

from integration_platform_sandbox.chaos import ChaosSettings
from integration_platform_sandbox.server import Sandbox
from integration_platform_sandbox.world import SandboxCredentials
from tests.conftest import ChaosSwitch
from tests.integration.sandbox_client import crm_token


@pytest.fixture
def crm_get(sandbox: Sandbox, sandbox_credentials: SandboxCredentials):  # type: ignore[no-untyped-def]
    url = sandbox.urls["crm"]
    token = crm_token(url, sandbox_credentials)

    def get(timeout: float = 5.0) -> httpx.Response:
        return httpx.get(
            f"{url}/v2/contacts",
            params={"limit": 50},
            timeout=timeout,
            headers={"authorization": f"Bearer {token}"},
        )

    return get


def test_scripted_429_carries_retry_after_seconds_when_rate_limit_chaos_fires(
    chaos: ChaosSwitch, crm_get
) -> None:
    chaos("crm", ChaosSettings(retry_after_seconds=2.5), script=["429"])
    limited = crm_get()
    assert limited.status_code == 429
    assert float(limited.headers["retry-after"]) == 2.5
    assert crm_get().status_code == 200, "the script holds one fault; the next call is clean"


def test_retry_after_is_an_http_date_when_the_date_share_is_one(
    chaos: ChaosSwitch, crm_get
) -> None:
    chaos("crm", ChaosSettings(rate_limit_429=1.0, retry_after_http_date=1.0))
    limited = crm_get()
    assert limited.status_code == 429
    assert parsedate_to_datetime(limited.headers["retry-after"]).tzinfo is not None


def test_server_errors_come_in_bursts_when_a_burst_starts(chaos: ChaosSwitch, crm_get) -> None:
    chaos("crm", ChaosSettings(server_error_burst=1.0, burst_length=4))
    statuses = [crm_get().status_code for _ in range(4)]
    assert set(statuses) <= {500, 502, 503}
    chaos("crm", ChaosSettings(), script=["500", "502", "503", None])
    assert [crm_get().status_code for _ in range(4)] == [500, 502, 503, 200]


def test_slow_response_outlasts_the_client_timeout_when_slow_chaos_fires(
    chaos: ChaosSwitch, crm_get
) -> None:
    chaos("crm", ChaosSettings(slow_seconds=1.0), script=["slow"])
    with pytest.raises(httpx.ReadTimeout):
        crm_get(timeout=0.3)


def test_connection_drops_mid_body_when_drop_chaos_fires(chaos: ChaosSwitch, crm_get) -> None:
    chaos("crm", ChaosSettings(), script=["drop"])
    with pytest.raises(httpx.RemoteProtocolError):
        crm_get()
    assert crm_get().status_code == 200, "the server keeps serving after a drop"


def test_body_is_not_json_when_malformed_chaos_fires(chaos: ChaosSwitch, crm_get) -> None:
    chaos("crm", ChaosSettings(), script=["malformed"])
    response = crm_get()
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_heavy_profile_mixes_every_transport_fault_when_hammered(
    sandbox: Sandbox, chaos: ChaosSwitch, crm_get
) -> None:
    chaos(
        "crm", ChaosSettings(rate_limit_429=0.1, server_error_burst=0.05, drop=0.05, malformed=0.05)
    )
    outcomes: Counter[str] = Counter()
    for _ in range(300):
        try:
            response = crm_get()
        except httpx.RemoteProtocolError:
            outcomes["drop"] += 1
            continue
        try:
            response.json()
            outcomes[str(response.status_code)] += 1
        except json.JSONDecodeError:
            outcomes["malformed"] += 1
    assert outcomes["200"] > 100
    assert outcomes["429"] and outcomes["drop"] and outcomes["malformed"]
    assert outcomes["500"] + outcomes["502"] + outcomes["503"] > 0
    injected = httpx.get(f"{sandbox.urls['crm']}/_sandbox/stats").json()["chaos_injected"]
    assert injected["drop"] >= outcomes["drop"]


def test_admin_route_switches_chaos_when_posted_to(
    sandbox: Sandbox, chaos: ChaosSwitch, crm_get
) -> None:
    url = f"{sandbox.urls['crm']}/_sandbox/chaos"
    answer = httpx.post(url, json={"settings": {"rate_limit_429": 1.0}})
    assert answer.status_code == 200 and answer.json()["rate_limit_429"] == 1.0
    assert crm_get().status_code == 429
    bad = httpx.post(url, json={"settings": {"not_a_knob": 1}})
    assert bad.status_code == 422 and "not_a_knob" in bad.text


def test_admin_routes_never_suffer_chaos_when_everything_fails(
    sandbox: Sandbox, chaos: ChaosSwitch
) -> None:
    chaos("crm", ChaosSettings(server_error_burst=1.0))
    assert httpx.get(f"{sandbox.urls['crm']}/_sandbox/health").status_code == 200
