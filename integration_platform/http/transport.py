"""The wire under every source's httpx client: aiohttp, through httpx-aiohttp's transport.

httpx's own transport (httpcore over anyio) costs about twice the CPU per request of aiohttp's
(measured on the same cached sandbox pages, 200 pages of 500 invoices, 4 in flight, medians of
3 fresh processes: httpx 0.28 s of CPU, httpx over aiohttp 0.13 s; JSON parsing of the same
100 KB page: orjson 0.27 ms, msgspec 0.29 ms, so orjson stays). Everything above the transport
is still httpx: auth flows, the rate limiter's GovernedTransport, retries, redirects, timeouts.

httpx-aiohttp maps aiohttp's errors onto httpx's coarsely (a refused connection, or a server
that hangs up, comes out as `httpx.ConnectTimeout`), and the engine decides on the error's type
whether to retry and whether the source is down: `AiohttpTransport` raises what httpx's own
transport would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import httpx
import httpx_aiohttp
import yarl

from integration_platform.http.tls import tls_context


def build_transport(concurrency: int) -> httpx.AsyncBaseTransport:
    """The transport of one source: `concurrency` requests in flight, twice that many
    connections kept open (token requests and a child endpoint's pages share the pool)."""
    connections = concurrency * 2
    return AiohttpTransport(
        verify=tls_context(),  # one per process (tls.py), not one per source client
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


def as_httpx_error(exc: aiohttp.ClientError | TimeoutError) -> httpx.TransportError:
    """The httpx error httpx's own transport raises for what aiohttp raised."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return httpx.ReadTimeout(message)
    if isinstance(exc, TimeoutError):
        return httpx.TimeoutException(message)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message)  # chained: a ConnectionRefusedError stays visible
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(message)  # a body cut off, a connection dropped
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(message)
    if isinstance(exc, aiohttp.ClientConnectionError):
        return httpx.ReadError(message)
    return httpx.TransportError(message)


class _ResponseStream(httpx.AsyncByteStream):
    """The body as aiohttp reads it, its errors mapped as the request's are."""

    CHUNK_SIZE = 64 * 1024

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(self.CHUNK_SIZE):
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise as_httpx_error(exc) from exc

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx_aiohttp.AiohttpTransport):
    """httpx-aiohttp's transport (its session, connector, TLS and limits), sending each request
    as httpx built it, and raising httpx's own error types.

    The library hands aiohttp the URL as a string, which aiohttp quotes again (`%3A` in a query
    becomes `:`): a request signed over its path and query as httpx built it (HMAC auth) would
    then no longer match its signature. Here the URL goes out as it is (`encoded=True`)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        timeout = request.extensions.get("timeout", {})
        data: bytes | httpx.AsyncByteStream | None
        try:
            data = request.content or None
        except httpx.RequestNotRead:
            data = request.stream  # type: ignore[assignment]
            request.headers.pop("transfer-encoding", None)  # aiohttp chunks it itself
        try:
            response = await self.client.request(
                request.method,
                yarl.URL(str(request.url), encoded=True),
                headers=request.headers.multi_items(),
                data=data,
                allow_redirects=False,  # httpx follows redirects (and re-signs each request)
                auto_decompress=False,  # httpx decodes the body, as with its own transport
                compress=False,
                timeout=aiohttp.ClientTimeout(
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                    connect=timeout.get("pool"),
                ),
                server_hostname=request.extensions.get("sni_hostname"),
                proxy=str(self.proxy.url) if self.proxy else None,
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise as_httpx_error(exc) from exc
        extensions: dict[str, object] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_ResponseStream(response),
            request=request,
            extensions=extensions,
        )
