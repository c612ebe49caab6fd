"""Auth schemes against httpx.MockTransport: headers sent, token caching and refresh, failures."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from pydantic import SecretStr, TypeAdapter

from integration_platform.http import auth
from integration_platform.http.errors import AuthError, TransientHTTPError
from integration_platform.specs.models import AuthSpec
from integration_platform_sandbox import signing
from tests.fake_clock import FakeClock

pytestmark = pytest.mark.anyio

BASE_URL = "https://api.example.test/v2"
TOKEN_URL = "https://api.example.test/oauth/token"
ENV = {
    "CLIENT_ID": "client-7",
    "CLIENT_SECRET": "s3cret-client-value",
    "API_KEY": "key-value-123",
    "TOKEN": "bearer-value-456",
    "PASSWORD": "basic-password-789",
    "KEY_ID": "analytics-key",
    "SIGNING_SECRET": "signing-secret-abc",
}
SECRETS = [
    ENV[name] for name in ("CLIENT_SECRET", "API_KEY", "TOKEN", "PASSWORD", "SIGNING_SECRET")
]

Handler = Callable[[httpx.Request], Coroutine[Any, Any, httpx.Response]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def auth_spec(raw: dict[str, Any]) -> AuthSpec:
    return TypeAdapter(AuthSpec).validate_python(raw, context={"env": ENV})


def oauth_spec(**overrides: Any) -> AuthSpec:
    return auth_spec(
        {
            "type": "oauth2_client_credentials",
            "token_url": "/oauth/token",
            "client_id": "${CLIENT_ID}",
            "client_secret": "${CLIENT_SECRET}",
            **overrides,
        }
    )


def hmac_spec(**overrides: Any) -> AuthSpec:
    return auth_spec(
        {"type": "hmac", "key_id": "${KEY_ID}", "secret": "${SIGNING_SECRET}", **overrides}
    )


class FakeVendor:
    """A token endpoint and an API that accepts only tokens it issued and has not revoked."""

    def __init__(self, expires_in: float | None = 60.0, token_delay: float = 0.0) -> None:
        self.expires_in = expires_in
        self.token_delay = token_delay
        self.token_requests: list[httpx.Request] = []
        self.api_requests: list[httpx.Request] = []
        self.api_tokens: list[str] = []  # as sent: a retried request is the same object
        self.valid_tokens: set[str] = set()
        self.token_response: httpx.Response | None = None  # set to fail the token endpoint

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            self.token_requests.append(request)
            await asyncio.sleep(self.token_delay)  # lets concurrent requests pile up
            if self.token_response is not None:
                return self.token_response
            token = f"token-{len(self.token_requests)}"
            self.valid_tokens.add(token)
            body: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
            if self.expires_in is not None:
                body["expires_in"] = self.expires_in
            return httpx.Response(200, json=body)
        self.api_requests.append(request)
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        self.api_tokens.append(token)
        if token not in self.valid_tokens:
            return httpx.Response(
                401,
                json={"error": "invalid_token"},
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return httpx.Response(200, json={"token": token})

    def revoke_all(self) -> None:
        self.valid_tokens.clear()

    def form(self, index: int = -1) -> dict[str, str]:
        return dict(parse_qsl(self.token_requests[index].content.decode()))


def oauth(
    vendor: Handler, clock: FakeClock | None = None, **options: Any
) -> auth.ClientCredentials:
    return auth.ClientCredentials(
        TOKEN_URL,
        ENV["CLIENT_ID"],
        SecretStr(ENV["CLIENT_SECRET"]),
        clock=clock or FakeClock(),
        transport=httpx.MockTransport(vendor),
        **options,
    )


def api_client(auth_flow: httpx.Auth, handler: Handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=BASE_URL, auth=auth_flow, transport=httpx.MockTransport(handler)
    )


async def sent_request(
    auth_flow: httpx.Auth | None, method: str = "GET", url: str = "/items", **kwargs: Any
) -> httpx.Request:
    """The request as it reached the wire, after the auth flow touched it."""
    seen: list[httpx.Request] = []

    async def record(request: httpx.Request) -> httpx.Response:
        await request.aread()
        seen.append(request)
        return httpx.Response(200, json={})

    async with httpx.AsyncClient(
        base_url=BASE_URL, auth=auth_flow, transport=httpx.MockTransport(record)
    ) as client:
        (await client.request(method, url, **kwargs)).raise_for_status()
    return seen[-1]


# -- static schemes ---------------------------------------------------------------------------


async def test_no_auth_builds_nothing_when_the_source_is_open() -> None:
    assert auth.build_auth(auth_spec({"type": "none"}), BASE_URL) is None


async def test_api_key_goes_in_the_named_header_when_location_is_header() -> None:
    built = auth.build_auth(
        auth_spec({"type": "api_key", "name": "X-Api-Key", "value": "${API_KEY}"}), BASE_URL
    )
    request = await sent_request(built)
    assert request.headers["X-Api-Key"] == ENV["API_KEY"]
    assert "api_key" not in str(request.url)


async def test_api_key_is_added_to_the_query_when_location_is_query() -> None:
    built = auth.build_auth(
        auth_spec({"type": "api_key", "name": "api_key", "value": "${API_KEY}", "in": "query"}),
        BASE_URL,
    )
    request = await sent_request(built, params={"page": 2})
    assert request.url.params["api_key"] == ENV["API_KEY"]
    assert request.url.params["page"] == "2"
    assert "x-api-key" not in request.headers


async def test_bearer_token_is_sent_in_authorization_when_configured() -> None:
    built = auth.build_auth(auth_spec({"type": "bearer", "token": "${TOKEN}"}), BASE_URL)
    request = await sent_request(built)
    assert request.headers["Authorization"] == f"Bearer {ENV['TOKEN']}"


async def test_basic_credentials_are_base64_encoded_when_configured() -> None:
    built = auth.build_auth(
        auth_spec({"type": "basic", "username": "reporter", "password": "${PASSWORD}"}), BASE_URL
    )
    request = await sent_request(built)
    scheme, _, encoded = request.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == f"reporter:{ENV['PASSWORD']}"


# -- OAuth2 client credentials ----------------------------------------------------------------


async def test_token_url_is_joined_to_base_url_when_relative() -> None:
    built = auth.build_auth(oauth_spec(), "https://api.example.test/api/")
    assert isinstance(built, auth.ClientCredentials)
    assert built.token_url == "https://api.example.test/api/oauth/token"
    absolute = auth.build_auth(oauth_spec(token_url="https://login.example.test/token"), BASE_URL)
    assert isinstance(absolute, auth.ClientCredentials)
    assert absolute.token_url == "https://login.example.test/token"


async def test_token_is_requested_with_credentials_in_the_form_when_client_auth_is_body() -> None:
    vendor = FakeVendor()
    async with api_client(oauth(vendor, scope="contacts.read"), vendor) as client:
        assert (await client.get("/contacts")).status_code == 200
    assert vendor.form() == {
        "grant_type": "client_credentials",
        "scope": "contacts.read",
        "client_id": ENV["CLIENT_ID"],
        "client_secret": ENV["CLIENT_SECRET"],
    }
    assert "authorization" not in vendor.token_requests[0].headers
    assert vendor.api_tokens == ["token-1"]


async def test_token_is_requested_with_http_basic_when_client_auth_is_basic() -> None:
    vendor = FakeVendor()
    async with api_client(oauth(vendor, client_auth="basic"), vendor) as client:
        assert (await client.get("/contacts")).status_code == 200
    header = vendor.token_requests[0].headers["Authorization"]
    assert base64.b64decode(header.removeprefix("Basic ")).decode() == (
        f"{ENV['CLIENT_ID']}:{ENV['CLIENT_SECRET']}"
    )
    assert vendor.form() == {"grant_type": "client_credentials"}


async def test_cached_token_is_reused_until_the_refresh_margin_when_it_has_not_expired() -> None:
    vendor, clock = FakeVendor(expires_in=60), FakeClock()
    flow = oauth(vendor, clock, refresh_margin_seconds=30)
    async with api_client(flow, vendor) as client:
        for _ in range(3):
            assert (await client.get("/contacts")).status_code == 200
        clock.advance(29)
        assert (await client.get("/contacts")).status_code == 200
        assert flow.token_requests == 1
        clock.advance(2)  # 31 s: inside the 30 s margin before expiry
        assert (await client.get("/contacts")).status_code == 200
    assert flow.token_requests == 2
    assert len(vendor.token_requests) == 2
    assert vendor.api_tokens[-1] == "token-2"


async def test_short_lived_token_is_still_reused_when_the_margin_exceeds_its_lifetime() -> None:
    vendor, clock = FakeVendor(expires_in=10), FakeClock()
    flow = oauth(vendor, clock, refresh_margin_seconds=30)
    async with api_client(flow, vendor) as client:
        await client.get("/contacts")
        clock.advance(4)
        await client.get("/contacts")
        assert flow.token_requests == 1
        clock.advance(2)  # past half the lifetime
        await client.get("/contacts")
    assert flow.token_requests == 2


async def test_token_without_expires_in_is_kept_until_the_api_refuses_it() -> None:
    vendor, clock = FakeVendor(expires_in=None), FakeClock()
    flow = oauth(vendor, clock)
    async with api_client(flow, vendor) as client:
        await client.get("/contacts")
        clock.advance(86_400)
        await client.get("/contacts")
        assert flow.token_requests == 1
        vendor.revoke_all()
        assert (await client.get("/contacts")).status_code == 200
    assert flow.token_requests == 2


async def test_request_is_retried_once_with_a_new_token_when_the_api_answers_401() -> None:
    vendor = FakeVendor()
    flow = oauth(vendor)
    async with api_client(flow, vendor) as client:
        await client.get("/contacts")
        vendor.revoke_all()  # the server forgot the token before it expired
        response = await client.post("/contacts", json={"name": "Ada"})
    assert response.status_code == 200
    assert response.json() == {"token": "token-2"}
    assert flow.token_requests == 2
    assert vendor.api_tokens[-2:] == ["token-1", "token-2"]
    assert json.loads(vendor.api_requests[-1].content) == {"name": "Ada"}


async def test_auth_error_says_the_token_was_refused_after_refresh_when_401_persists() -> None:
    vendor = FakeVendor()

    async def always_401(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return await vendor(request)
        vendor.api_requests.append(request)
        challenge = 'Bearer error="insufficient_scope"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    flow = oauth(vendor)
    async with api_client(flow, always_401) as client:
        with pytest.raises(AuthError) as caught:
            await client.get("/contacts", params={"api_key": "not-in-messages"})
    message = str(caught.value)
    assert "even after a refresh" in message
    assert "client_secret" in message
    assert "scope" in message
    assert "insufficient_scope" in message
    assert "not-in-messages" not in message
    assert ENV["CLIENT_SECRET"] not in message
    assert flow.token_requests == 2
    assert len(vendor.api_requests) == 2


async def test_twenty_parallel_requests_share_one_token_request_when_none_is_cached() -> None:
    vendor = FakeVendor(token_delay=0.02)
    flow = oauth(vendor)
    async with api_client(flow, vendor) as client:
        responses = await asyncio.gather(*(client.get(f"/contacts/{i}") for i in range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    assert flow.token_requests == 1
    assert len(vendor.token_requests) == 1


async def test_twenty_parallel_401s_share_one_refresh_when_the_token_was_revoked() -> None:
    vendor = FakeVendor(token_delay=0.02)
    flow = oauth(vendor)
    async with api_client(flow, vendor) as client:
        await client.get("/contacts")
        vendor.revoke_all()
        responses = await asyncio.gather(*(client.get(f"/contacts/{i}") for i in range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    assert flow.token_requests == 2


def test_refresh_works_in_a_new_event_loop_when_the_auth_outlives_the_first_one() -> None:
    vendor, clock = FakeVendor(token_delay=0.01), FakeClock()
    flow = oauth(vendor, clock)

    async def burst() -> list[int]:
        async with api_client(flow, vendor) as client:
            responses = await asyncio.gather(*(client.get("/contacts") for _ in range(5)))
        return [r.status_code for r in responses]

    assert asyncio.run(burst()) == [200] * 5
    clock.advance(3600)
    assert asyncio.run(burst()) == [200] * 5
    assert flow.token_requests == 2


async def test_token_endpoint_401_raises_auth_error_without_the_secret_when_refused() -> None:
    vendor = FakeVendor()
    vendor.token_response = httpx.Response(
        401,
        json={
            "error": "invalid_client",
            "error_description": f"wrong secret {ENV['CLIENT_SECRET']}",  # a careless server
        },
    )
    async with api_client(oauth(vendor), vendor) as client:
        with pytest.raises(AuthError) as caught:
            await client.get("/contacts")
    message = str(caught.value)
    assert TOKEN_URL in message
    assert "invalid_client" in message
    assert "HTTP 401" in message
    assert ENV["CLIENT_SECRET"] not in message
    assert ENV["CLIENT_SECRET"] not in repr(caught.value)
    assert vendor.api_requests == []


async def test_token_endpoint_400_raises_auth_error_naming_the_server_error_when_refused() -> None:
    vendor = FakeVendor()
    vendor.token_response = httpx.Response(400, json={"error": "invalid_scope"})
    async with api_client(oauth(vendor, scope="admin"), vendor) as client:
        with pytest.raises(AuthError, match="invalid_scope"):
            await client.get("/contacts")


@pytest.mark.parametrize("status", [503, 429])
async def test_token_endpoint_overload_raises_transient_error_when_it_answers(status: int) -> None:
    vendor = FakeVendor()
    vendor.token_response = httpx.Response(
        status, headers={"Retry-After": "7"}, json={"error": "temporarily_unavailable"}
    )
    async with api_client(oauth(vendor), vendor) as client:
        with pytest.raises(TransientHTTPError) as caught:
            await client.get("/contacts")
    assert caught.value.status_code == status
    assert caught.value.retry_after == 7.0
    assert TOKEN_URL in str(caught.value)
    assert vendor.api_requests == []


async def test_unreachable_token_endpoint_raises_transient_error_when_connecting_fails() -> None:
    vendor = FakeVendor()
    down = True

    async def flaky(request: httpx.Request) -> httpx.Response:
        if down and request.url.path == "/oauth/token":
            raise httpx.ConnectError("connection refused", request=request)
        return await vendor(request)

    async with api_client(oauth(flaky), vendor) as client:
        with pytest.raises(TransientHTTPError, match="could not reach the token endpoint"):
            await client.get("/contacts")
        assert vendor.api_requests == []
        down = False  # the endpoint is back: the next attempt recovers
        assert (await client.get("/contacts")).status_code == 200


async def test_token_response_without_access_token_raises_auth_error_when_malformed() -> None:
    vendor = FakeVendor()
    vendor.token_response = httpx.Response(200, text="<html>login page</html>")
    async with api_client(oauth(vendor), vendor) as client:
        with pytest.raises(AuthError, match="without an access_token"):
            await client.get("/contacts")


def test_oauth_refuses_a_sync_client_when_used_with_httpx_client() -> None:
    vendor = FakeVendor()
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    with (
        httpx.Client(auth=oauth(vendor), transport=transport) as client,
        pytest.raises(TypeError, match="AsyncClient"),
    ):
        client.get(f"{BASE_URL}/contacts")


# -- HMAC signing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "kwargs"),
    [
        ("GET", "/v1/users", {"params": {"page": 1, "per_page": 5}}),
        (
            "GET",
            "/v1/users",
            {"params": {"q": "Ada Lovelace & co/é", "since": "2025-01-01T00:00:00Z"}},
        ),
        ("GET", "/v1/users", {}),
        ("POST", "/v1/query?dry_run=true", {"json": {"select": ["user_id"], "limit": 10}}),
    ],
)
async def test_hmac_headers_equal_the_sandbox_scheme_when_using_the_defaults(
    method: str, url: str, kwargs: dict[str, Any]
) -> None:
    clock = FakeClock(start=1_750_000_123.9)
    request = await sent_request(
        auth.build_auth(hmac_spec(), BASE_URL, clock), method, url, **kwargs
    )
    expected = signing.signed_headers(
        ENV["KEY_ID"],
        ENV["SIGNING_SECRET"],
        method,
        request.url.raw_path,
        request.content,
        timestamp=1_750_000_123,
    )
    assert {name: request.headers[name] for name in expected} == expected
    if method == "POST":
        assert request.content  # the body was signed, not an empty string
        assert b"?" in request.url.raw_path


async def test_hmac_signature_changes_when_the_clock_moves() -> None:
    clock = FakeClock()
    signer = auth.build_auth(hmac_spec(), BASE_URL, clock)
    first = await sent_request(signer)
    clock.advance(5)
    second = await sent_request(signer)
    assert int(second.headers["X-Timestamp"]) == int(first.headers["X-Timestamp"]) + 5
    assert second.headers["X-Signature"] != first.headers["X-Signature"]


async def test_hmac_signature_is_base64_when_encoding_is_base64() -> None:
    clock = FakeClock(start=1_700_000_000)
    signer = auth.build_auth(hmac_spec(encoding="base64", algorithm="sha512"), BASE_URL, clock)
    request = await sent_request(signer, params={"page": 2})
    canonical = signing.canonical_request("GET", request.url.raw_path, 1_700_000_000)
    digest = hmac.new(ENV["SIGNING_SECRET"].encode(), canonical, hashlib.sha512).digest()
    assert request.headers["X-Signature"] == base64.b64encode(digest).decode()


async def test_hmac_fills_every_placeholder_when_the_template_is_custom() -> None:
    clock = FakeClock(start=1_700_000_000)
    signer = auth.build_auth(
        hmac_spec(
            canonical="{key_id}|{method}|{path}|{query}|{timestamp}|{body_sha256}",
            headers={"Authorization": "HMAC {key_id}:{signature}", "Date": "{timestamp}"},
        ),
        BASE_URL,
        clock,
    )
    request = await sent_request(signer, "PUT", "/things/a%20b", params={"x": "1"}, content=b"hi")
    canonical = (
        f"{ENV['KEY_ID']}|PUT|/v2/things/a%20b|x=1|1700000000|{hashlib.sha256(b'hi').hexdigest()}"
    )
    signature = hmac.new(
        ENV["SIGNING_SECRET"].encode(), canonical.encode(), hashlib.sha256
    ).hexdigest()
    assert request.headers["Authorization"] == f"HMAC {ENV['KEY_ID']}:{signature}"
    assert request.headers["Date"] == "1700000000"
    assert "X-Signature" not in request.headers


@pytest.mark.parametrize(
    ("field", "template"),
    [
        ("canonical", "{method}\n{uri}"),
        ("canonical", "{method"),
        ("headers", {"X-Signature": "{sig}"}),
    ],
)
async def test_hmac_template_is_rejected_when_it_names_an_unknown_placeholder(
    field: str, template: Any
) -> None:
    with pytest.raises(ValueError, match="hmac"):
        auth.build_auth(hmac_spec(**{field: template}), BASE_URL)


# -- custom -----------------------------------------------------------------------------------


class StaticHeader(httpx.Auth):
    """A custom scheme for the tests: one header with a fixed value."""

    def __init__(self, header: str, value: str) -> None:
        self.header, self.value = header, value

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        request.headers[self.header] = self.value
        yield request


class NotAnAuth:
    def __init__(self, **options: str) -> None:
        self.options = options


async def test_custom_class_is_built_with_options_when_the_spec_names_it() -> None:
    built = auth.build_auth(
        auth_spec(
            {
                "type": "custom",
                "class": "tests.unit.test_http_auth:StaticHeader",
                "options": {"header": "X-Session", "value": "${TOKEN}"},
            }
        ),
        BASE_URL,
    )
    assert isinstance(built, StaticHeader)
    request = await sent_request(built)
    assert request.headers["X-Session"] == ENV["TOKEN"]


@pytest.mark.parametrize(
    ("class_path", "options", "expected"),
    [
        ("tests.unit.test_http_auth:NotAnAuth", {}, "not an httpx.Auth"),
        ("tests.unit.no_such_module:Thing", {}, "cannot import"),
        ("tests.unit.test_http_auth:Missing", {}, "has no class 'Missing'"),
        ("tests.unit.test_http_auth:StaticHeader", {"header": "X", "valu": "${TOKEN}"}, "'valu'"),
    ],
)
async def test_custom_auth_raises_a_clear_value_error_when_the_class_is_unusable(
    class_path: str, options: dict[str, str], expected: str
) -> None:
    spec = auth_spec({"type": "custom", "class": class_path, "options": options})
    with pytest.raises(ValueError, match=expected) as caught:
        auth.build_auth(spec, BASE_URL)
    assert class_path in str(caught.value)
    assert ENV["TOKEN"] not in str(caught.value)


# -- secrets stay hidden ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "api_key", "name": "X-Api-Key", "value": "${API_KEY}"},
        {"type": "bearer", "token": "${TOKEN}"},
        {"type": "basic", "username": "reporter", "password": "${PASSWORD}"},
        {
            "type": "oauth2_client_credentials",
            "token_url": "/oauth/token",
            "client_id": "${CLIENT_ID}",
            "client_secret": "${CLIENT_SECRET}",
        },
        {"type": "hmac", "key_id": "${KEY_ID}", "secret": "${SIGNING_SECRET}"},
    ],
)
async def test_repr_hides_the_secret_when_an_auth_is_printed(raw: dict[str, Any]) -> None:
    built = auth.build_auth(auth_spec(raw), BASE_URL)
    text = f"{built!r} {built} {vars(built)}"
    assert type(built).__name__ in repr(built)
    assert "***" in repr(built)
    for secret in SECRETS:
        assert secret not in text
        assert base64.b64encode(f"reporter:{secret}".encode()).decode() not in repr(built)


async def test_cached_access_token_is_hidden_when_the_oauth_auth_is_printed() -> None:
    vendor = FakeVendor()
    flow = oauth(vendor)
    async with api_client(flow, vendor) as client:
        await client.get("/contacts")
    assert "token-1" not in f"{flow!r} {vars(flow)}"
