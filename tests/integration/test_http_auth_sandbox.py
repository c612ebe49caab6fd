"""The auth schemes of the shipped source specs against the sandbox vendors, over real HTTP."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from integration_platform.environment import PROJECT_ROOT
from integration_platform.http import auth
from integration_platform.http.errors import AuthError
from integration_platform.specs.loader import load_spec
from integration_platform.specs.models import OAuth2ClientCredentials, SourceSpec
from integration_platform_sandbox.server import Sandbox
from integration_platform_sandbox.world import SandboxCredentials
from tests.fake_clock import FakeClock

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def shipped_spec(source: str, sandbox: Sandbox, **env: str) -> SourceSpec:
    """sources/<source>.yaml, pointed at this sandbox; `env` overrides variables."""
    environment = {**os.environ, f"{source.upper()}_BASE_URL": sandbox.urls[source], **env}
    return load_spec(PROJECT_ROOT / "sources" / f"{source}.yaml", environment)


def client_for(spec: SourceSpec, flow: httpx.Auth | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=spec.base_url, timeout=60, auth=flow or auth.build_auth(spec.auth, spec.base_url)
    )


async def test_requests_keep_succeeding_across_token_expiry_when_tokens_live_two_seconds(
    make_sandbox: Callable[..., Sandbox], sandbox_credentials: SandboxCredentials
) -> None:
    # Tokens live 2 s and are renewed after 1 s (half their life): requests go on until the
    # client has fetched its third token, so the run crosses two renewals however slow the
    # machine is.
    sandbox = make_sandbox(token_ttl_seconds=2)
    spec = shipped_spec("crm", sandbox)
    flow = auth.build_auth(spec.auth, spec.base_url)
    assert isinstance(flow, auth.ClientCredentials)
    statuses: list[int] = []
    async with client_for(spec, flow) as client:
        deadline = time.monotonic() + 60
        while flow.token_requests < 3:
            assert time.monotonic() < deadline, f"{flow.token_requests} tokens in 60 s"
            statuses.append((await client.get("/v2/contacts", params={"limit": 5})).status_code)
            await asyncio.sleep(0.05)
    assert set(statuses) == {200}
    assert flow.token_requests == 3
    assert len(statuses) > 3, "the token should be reused while valid"


async def test_expired_token_is_refreshed_and_the_request_retried_when_the_api_answers_401(
    make_sandbox: Callable[..., Sandbox], sandbox_credentials: SandboxCredentials
) -> None:
    # Tokens live 5 s: the first request and the 21 after the refresh each land well within
    # a token's life on a busy machine.
    ttl = 5.0
    sandbox = make_sandbox(token_ttl_seconds=ttl)
    spec = shipped_spec("crm", sandbox)
    assert isinstance(spec.auth, OAuth2ClientCredentials)
    # A clock that never moves: the client believes its token is fresh, so only the
    # server's 401 can tell it the token expired.
    flow = auth.build_auth(spec.auth, spec.base_url, FakeClock())
    assert isinstance(flow, auth.ClientCredentials)
    async with client_for(spec) as other:  # the first request builds the record pools: slow
        await other.get("/v2/contacts", params={"limit": 5})
    async with client_for(spec, flow) as client:
        first = await client.get("/v2/contacts", params={"limit": 5})
        # The token was issued before `first` was answered: a TTL from now, it has expired.
        await asyncio.sleep(ttl + 0.1)
        second = await client.get("/v2/contacts", params={"limit": 5})
        parallel = await asyncio.gather(
            *(client.get("/v2/contacts", params={"limit": 1}) for _ in range(20))
        )
    assert (first.status_code, second.status_code) == (200, 200)
    assert [r.status_code for r in second.history] == [401]
    assert second.json()["data"] == first.json()["data"]
    assert [r.status_code for r in parallel] == [200] * 20
    assert flow.token_requests == 2


async def test_credentials_in_http_basic_are_accepted_when_client_auth_is_basic(
    sandbox: Sandbox, sandbox_credentials: SandboxCredentials
) -> None:
    spec = shipped_spec("crm", sandbox)
    assert isinstance(spec.auth, OAuth2ClientCredentials)
    basic = spec.auth.model_copy(update={"client_auth": "basic"})
    flow = auth.build_auth(basic, spec.base_url)
    async with client_for(spec, flow) as client:
        response = await client.get("/v2/companies", params={"limit": 3})
    assert response.status_code == 200
    assert len(response.json()["data"]) == 3


async def test_wrong_client_secret_raises_auth_error_when_the_crm_refuses_it(
    sandbox: Sandbox,
) -> None:
    wrong = "not-the-crm-secret-0000"
    spec = shipped_spec("crm", sandbox, CRM_CLIENT_SECRET=wrong)
    async with client_for(spec) as client:
        with pytest.raises(AuthError) as caught:
            await client.get("/v2/contacts")
    message = str(caught.value)
    assert f"{sandbox.urls['crm']}/oauth/token" in message
    assert "invalid_client" in message
    assert wrong not in message


async def test_signed_requests_are_accepted_when_signing_as_the_analytics_spec_says(
    sandbox: Sandbox, sandbox_credentials: SandboxCredentials
) -> None:
    spec = shipped_spec("analytics", sandbox)
    params: list[dict[str, Any]] = [
        {"page": 1, "per_page": 5},
        {"page": 1, "per_page": 3, "since": "2025-03-01T00:00:00+00:00"},
    ]
    async with client_for(spec) as client:
        responses = [await client.get("/v1/users", params=p) for p in params]
    assert [r.status_code for r in responses] == [200, 200]
    assert len(responses[0].json()["data"]) == 5
    assert len(responses[1].json()["data"]) == 3


async def test_analytics_answers_401_when_the_signing_secret_is_wrong(
    sandbox: Sandbox, sandbox_credentials: SandboxCredentials
) -> None:
    spec = shipped_spec("analytics", sandbox, ANALYTICS_SIGNING_SECRET="wrong-signing-secret")
    async with client_for(spec) as client:
        response = await client.get("/v1/users", params={"page": 1, "per_page": 5})
    assert response.status_code == 401
    assert response.json()["error"] == "bad_signature"
