"""SourceClient over httpx.MockTransport: what is retried, how long it waits, what it reveals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from integration_platform.http.client import SourceClient
from integration_platform.http.errors import (
    AuthError,
    CircuitOpenError,
    PermanentHTTPError,
    RetriesExhausted,
    SourceUnreachable,
)
from integration_platform.http.pagination import PageRequest
from integration_platform.specs.models import SourceSpec
from tests.fake_clock import FakeClock

pytestmark = pytest.mark.anyio

SECRET = "k3y-that-must-never-show"
BASE_URL = "https://api.vendor.test/v1"
Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def vendor_spec(**changes: Any) -> SourceSpec:
    """A REST source keyed by an API key in the query, under a name only the spec knows."""
    raw: dict[str, Any] = {
        "source": "vendor",
        "kind": "rest",
        "base_url": BASE_URL,
        "auth": {"type": "api_key", "in": "query", "name": "access_key", "value": "${VENDOR_KEY}"},
        "retry": {"max_attempts": 4, "initial_delay_seconds": 0.5, "max_delay_seconds": 8},
        "endpoints": {"items": {"path": "/items", "primary_key": "id"}},
        **changes,
    }
    return SourceSpec.model_validate(raw, context={"env": {"VENDOR_KEY": SECRET}})


class Vendor:
    """Answers with the queued responses in turn (the last one repeats), counting requests."""

    def __init__(self, *answers: httpx.Response | Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        return answer(request) if callable(answer) else answer


def echo(status: int, **headers: str) -> Handler:
    """An error that quotes the request URL back, as many APIs do (the key included)."""
    return lambda request: httpx.Response(
        status, headers=headers, json={"error": "refused", "request": str(request.url)}
    )


OK = httpx.Response(200, json={"data": [{"id": 1}, {"id": 2}]})


def client_for(
    vendor: Vendor,
    clock: FakeClock | None = None,
    spec: SourceSpec | None = None,
    state_dir: Path | None = None,
) -> SourceClient:
    return SourceClient(
        spec or vendor_spec(),
        clock=clock or FakeClock(),
        state_dir=state_dir,
        transport=httpx.MockTransport(vendor),
    )


async def fetch(client: SourceClient, **params: Any) -> Any:
    async with client:
        return await client.fetch(PageRequest("/items", params))


# -- permanent errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 403, 404, 422])
async def test_permanent_error_is_raised_after_one_request_when_the_api_refuses(
    status: int,
) -> None:
    vendor = Vendor(echo(status))
    clock = FakeClock()
    with pytest.raises(PermanentHTTPError) as caught:
        await fetch(client_for(vendor, clock), limit=10)
    assert len(vendor.requests) == 1
    assert clock.sleeps == []
    assert caught.value.status_code == status
    message = str(caught.value)
    assert f"HTTP {status}" in message
    assert f"{BASE_URL}/items?limit=10" in message
    assert vendor.requests[0].url.params["access_key"] == SECRET, "the key was sent"
    assert SECRET not in message
    assert "access_key=***" in message, "the echoed URL stays readable, the key hidden"


async def test_auth_error_is_raised_after_one_request_when_the_api_answers_401() -> None:
    vendor = Vendor(echo(401))
    with pytest.raises(AuthError, match="HTTP 401") as caught:
        await fetch(client_for(vendor))
    assert len(vendor.requests) == 1
    assert SECRET not in str(caught.value)


async def test_page_url_hides_the_key_when_the_key_travels_in_the_query() -> None:
    vendor = Vendor(OK)
    page = await fetch(client_for(vendor), limit=2)
    assert vendor.requests[0].url.params["access_key"] == SECRET
    assert SECRET not in page.url
    assert dict(httpx.URL(page.url).params) == {"limit": "2", "access_key": "***"}
    assert [record["id"] for record in page.body["data"]] == [1, 2]


# -- transient errors and how long they wait ----------------------------------------------------


async def test_client_sleeps_exactly_retry_after_when_the_api_answers_429() -> None:
    vendor = Vendor(httpx.Response(429, headers={"Retry-After": "7"}), OK)
    clock = FakeClock()
    client = client_for(vendor, clock)
    page = await fetch(client)
    assert clock.sleeps == [7.0]
    assert page.status_code == 200
    assert (client.stats.throttled, client.stats.retries, client.stats.requests) == (1, 1, 2)


async def test_client_sleeps_until_the_date_when_retry_after_is_an_http_date() -> None:
    clock = FakeClock(start=1_750_000_000.0)
    when = format_datetime(datetime.fromtimestamp(clock.now() + 30, UTC), usegmt=True)
    vendor = Vendor(httpx.Response(503, headers={"Retry-After": when}), OK)
    await fetch(client_for(vendor, clock))
    assert clock.sleeps == [30.0]


async def test_retry_after_is_waited_once_when_the_rate_limiter_also_sees_it(
    tmp_path: Path,
) -> None:
    spec = vendor_spec(rate_limit={"requests_per_second": 1000, "burst": 10})
    vendor = Vendor(httpx.Response(429, headers={"Retry-After": "7"}), OK)
    clock = FakeClock()
    client = client_for(vendor, clock, spec, state_dir=tmp_path)
    await fetch(client)
    assert clock.sleeps == [7.0]
    assert client.limiter is not None and client.limiter.blocks == 1


async def test_client_backs_off_with_jitter_when_a_5xx_gives_no_retry_after() -> None:
    vendor = Vendor(httpx.Response(500), httpx.Response(502), OK)
    clock = FakeClock()
    client = client_for(vendor, clock)
    await fetch(client)
    first, second = clock.sleeps
    assert 0 <= first <= 0.5 and 0 <= second <= 1.0  # full jitter under 0.5 * 2**n
    assert client.stats.server_errors == 2


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
        httpx.ConnectError("connection refused"),
    ],
)
async def test_request_is_retried_when_the_transport_fails(failure: httpx.TransportError) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise failure

    vendor = Vendor(fail, OK)
    client = client_for(vendor)
    page = await fetch(client)
    assert page.body["data"]
    assert (client.stats.transport_errors, client.stats.retries) == (1, 1)


def refuse(request: httpx.Request) -> httpx.Response:
    """Nothing listens: what httpx raises then (the OSError behind it says so)."""
    try:
        raise ConnectionRefusedError(111, "Connect call failed ('203.0.113.7', 443)")
    except ConnectionRefusedError as exc:
        raise httpx.ConnectError("All connection attempts failed") from exc


async def test_source_is_unreachable_after_one_quick_retry_when_it_never_answered() -> None:
    vendor = Vendor(refuse)
    clock = FakeClock()
    with pytest.raises(SourceUnreachable) as caught:
        await fetch(client_for(vendor, clock))
    assert len(vendor.requests) == 2 and clock.sleeps == [1.0]
    assert str(caught.value) == (
        "vendor: nothing answers at https://api.vendor.test (connection refused, 2 attempts); "
        "check the source's base_url, and that the API is up and reachable from here"
    )
    assert len(caught.value.attempts) == 2 and SECRET not in caught.value.request


async def test_refused_connection_gets_the_normal_retries_when_the_source_answered_before() -> None:
    """An API that answered and then refuses is restarting: worth the whole retry policy."""
    vendor = Vendor(OK, refuse, refuse, refuse, OK)
    clock = FakeClock()
    client = client_for(vendor, clock)
    async with client:
        await client.fetch(PageRequest("/items", {}))
        page = await client.fetch(PageRequest("/items", {}))
    assert page.body["data"] and len(vendor.requests) == 5
    assert len(clock.sleeps) == 3 and 1.0 not in clock.sleeps  # backoff with jitter


async def test_request_is_retried_when_the_body_is_cut_off() -> None:
    vendor = Vendor(httpx.Response(200, content=b'{"data": [{"id": 1}, {"id'), OK)
    client = client_for(vendor)
    page = await fetch(client)
    assert len(vendor.requests) == 2
    assert [record["id"] for record in page.body["data"]] == [1, 2]


# -- giving up ----------------------------------------------------------------------------------


async def test_retries_exhausted_lists_every_attempt_without_the_key_when_api_keeps_failing() -> (
    None
):
    vendor = Vendor(echo(503))
    clock = FakeClock()
    with pytest.raises(RetriesExhausted) as caught:
        await fetch(client_for(vendor, clock), limit=10)
    error = caught.value
    assert len(vendor.requests) == 4
    assert [attempt.number for attempt in error.attempts] == [1, 2, 3, 4]
    assert len(clock.sleeps) == 3
    message = str(error)
    assert "failed after 4 attempts" in message
    assert all(
        f"#{n} vendor: GET {BASE_URL}/items?limit=10: HTTP 503" in message for n in (1, 2, 3, 4)
    )
    assert SECRET not in message


async def test_exhausted_retries_name_the_limit_that_ended_them_when_the_api_keeps_failing() -> (
    None
):
    attempts_limit = client_for(Vendor(echo(503)), FakeClock())
    with pytest.raises(RetriesExhausted, match=r"or raise retry\.max_attempts\.$"):
        await fetch(attempts_limit)
    spec = vendor_spec(retry={"max_attempts": 4, "max_elapsed_seconds": 0.000001})
    time_limit = client_for(Vendor(echo(503)), FakeClock(), spec)
    with pytest.raises(RetriesExhausted, match=r"or raise retry\.max_elapsed_seconds\.$"):
        await fetch(time_limit)


async def test_circuit_opens_then_lets_one_trial_through_when_the_cooldown_ends() -> None:
    spec = vendor_spec(circuit_breaker={"failure_threshold": 2, "cooldown_seconds": 60})
    vendor = Vendor(httpx.Response(503), httpx.Response(503), OK)
    clock = FakeClock()
    client = client_for(vendor, clock, spec)
    async with client:
        with pytest.raises(CircuitOpenError, match="failed 2 times in a row"):
            await client.fetch(PageRequest("/items"))
        assert len(vendor.requests) == 2
        with pytest.raises(CircuitOpenError):
            await client.fetch(PageRequest("/items"))
        assert len(vendor.requests) == 2, "an open circuit sends nothing"
        clock.advance(60)
        page = await client.fetch(PageRequest("/items"))
    assert page.status_code == 200
    assert client.breaker.state == "closed"


# -- TLS ----------------------------------------------------------------------------------------


async def test_clients_share_one_tls_context_that_still_verifies_certificates() -> None:
    """httpx would build (and load the CA bundle into) a context per client: 57 ms each."""
    import ssl

    from integration_platform.http.tls import tls_context

    clients = [SourceClient(vendor_spec(), clock=FakeClock()) for _ in range(3)]
    try:
        contexts = {id(c.http._transport._inner.ssl_context) for c in clients}  # type: ignore[attr-defined]
        assert contexts == {id(tls_context())}
        assert tls_context().verify_mode == ssl.CERT_REQUIRED and tls_context().check_hostname
        assert tls_context().cert_store_stats()["x509_ca"] > 0  # the CA bundle is loaded
    finally:
        for client in clients:
            await client.aclose()
