"""SourceClient over its real transport (aiohttp) and a loopback server: what goes on the wire,
and which failures come back as what."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from integration_platform.http.client import SourceClient
from integration_platform.http.errors import SourceUnreachable
from integration_platform.http.pagination import PageRequest
from integration_platform.specs.models import SourceSpec
from tests.fake_clock import FakeClock

pytestmark = pytest.mark.anyio

BODY = b'{"data": [{"id": 1}, {"id": 2}]}'
Answer = Callable[[int], bytes | None]  # the nth request (from 1) -> raw response, None: hang up


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def spec_for(base_url: str) -> SourceSpec:
    raw: dict[str, Any] = {
        "source": "vendor",
        "kind": "rest",
        "base_url": base_url,
        "retry": {"max_attempts": 3, "initial_delay_seconds": 0.1, "max_delay_seconds": 1},
        "endpoints": {"items": {"path": "/items", "primary_key": "id"}},
    }
    return SourceSpec.model_validate(raw, context={"env": {}})


def ok(body: bytes = BODY) -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


@asynccontextmanager
async def loopback(answer: Answer) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server on 127.0.0.1 that records each request's first line and answers `answer`."""
    lines: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: one connection may carry several requests
                head = await reader.readuntil(b"\r\n\r\n")
                lines.append(head.split(b"\r\n", 1)[0])
                response = answer(len(lines))
                if response is None:
                    return
                writer.write(response)
                await writer.drain()
                if b"Content-Length: 999" in response:  # promised more than it sent
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return  # the client closed the connection
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}", lines


async def test_query_goes_on_the_wire_as_httpx_encoded_it_when_it_holds_reserved_characters() -> (
    None
):
    """A signed request (HMAC over path?query) must reach the API byte for byte as signed."""
    async with (
        loopback(lambda n: ok()) as (url, lines),
        SourceClient(spec_for(url), clock=FakeClock()) as client,
    ):
        page = await client.fetch(
            PageRequest("/items", {"since": "2025-05-18T00:00:00Z", "q": "a b/c"})
        )
    assert lines == [b"GET /items?since=2025-05-18T00%3A00%3A00Z&q=a+b%2Fc HTTP/1.1"]
    assert [record["id"] for record in page.body["data"]] == [1, 2]


async def test_source_is_unreachable_when_nothing_listens_on_its_port() -> None:
    with socket.socket() as probe:  # a free port, closed again: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clock = FakeClock()
    async with SourceClient(spec_for(f"http://127.0.0.1:{port}"), clock=clock) as client:
        with pytest.raises(SourceUnreachable) as caught:
            await client.fetch(PageRequest("/items", {}))
    assert "connection refused, 2 attempts" in str(caught.value)
    assert clock.sleeps == [1.0]


async def test_request_is_retried_when_the_server_cuts_the_body_off() -> None:
    cut = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 999\r\n\r\n{"
    async with loopback(lambda n: cut if n == 1 else ok()) as (url, lines):
        clock = FakeClock()
        async with SourceClient(spec_for(url), clock=clock) as client:
            page = await client.fetch(PageRequest("/items", {}))
            retries = client.stats.retries
    assert len(lines) == 2 and retries == 1
    assert [record["id"] for record in page.body["data"]] == [1, 2]


async def test_request_is_retried_when_the_server_hangs_up_without_answering() -> None:
    """aiohttp sends a request again once by itself when the connection drops before an
    answer; the second drop comes out as a transport error, which the retry policy retries."""
    async with (
        loopback(lambda n: None if n <= 2 else ok()) as (url, lines),
        SourceClient(spec_for(url), clock=FakeClock()) as client,
    ):
        page = await client.fetch(PageRequest("/items", {}))
        errors = client.stats.transport_errors
    assert len(lines) == 3 and errors == 1
    assert page.body["data"]
