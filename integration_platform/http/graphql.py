"""GraphQL through gql, on the same governed HTTP stack (auth, rate limit, retries) as REST.

Documents come from .graphql files beside the spec and are validated against the server's
schema (introspection) before the first page, so a query that no longer fits the API fails at
once with a clear message. An `errors` array with HTTP 200 fails the page unless the endpoint
says `graphql_errors: record`, in which case the data is kept and the errors travel with it.
"""

from __future__ import annotations

import contextvars
from datetime import UTC, datetime
from typing import Any

import httpx
from gql import Client, GraphQLRequest, gql
from gql.transport.exceptions import (
    TransportConnectionFailed,
    TransportProtocolError,
    TransportQueryError,
    TransportServerError,
)
from gql.transport.httpx import HTTPXAsyncTransport
from graphql import GraphQLError

from integration_platform.http.client import FetchedPage, GovernedTransport, SourceClient
from integration_platform.http.errors import (
    AuthError,
    ConnectionRefused,
    GraphQLResponseError,
    PermanentHTTPError,
    ResponseShapeError,
    TransientHTTPError,
    is_connection_refused,
)
from integration_platform.http.pagination import PageRequest
from integration_platform.http.ratelimit import parse_retry_after
from integration_platform.http.redaction import origin

# The raw responses of the current attempt: the landing zone keeps pages exactly as received,
# and gql hands back only the parsed result. A list, not a value, because gql runs the request
# in a child task that sees a copy of the context: appending to a shared list crosses over.
_RESPONSES: contextvars.ContextVar[list[httpx.Response] | None] = contextvars.ContextVar(
    "graphql_responses", default=None
)


def _last_response() -> httpx.Response | None:
    responses = _RESPONSES.get()
    return responses[-1] if responses else None


class _RecordingTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        content = await response.aread()
        headers = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        recorded = httpx.Response(
            response.status_code, headers=headers, content=content, request=request
        )
        responses = _RESPONSES.get()
        if responses is not None:
            responses.append(recorded)
        return recorded

    async def aclose(self) -> None:
        await self._inner.aclose()


class GraphQLClient:
    """Executes one source's GraphQL documents; use as an async context manager."""

    def __init__(self, source_client: SourceClient, *, validate_schema: bool = True) -> None:
        self.source = source_client
        spec = source_client.spec
        self.url = spec.base_url.rstrip("/") + spec.graphql_path
        self.shown_url = source_client.redact(self.url)  # in messages and raw tables
        inner = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(
                max_connections=spec.concurrency * 2, max_keepalive_connections=spec.concurrency * 2
            )
        )
        transport = HTTPXAsyncTransport(
            url=self.url,
            auth=source_client.auth,
            timeout=source_client.timeout,
            headers=dict(spec.headers),
            transport=_RecordingTransport(GovernedTransport(inner, source_client)),
        )
        self._client = Client(
            transport=transport,
            fetch_schema_from_transport=validate_schema,
            execute_timeout=spec.timeout.total_seconds,
        )
        self._session: Any = None

    async def __aenter__(self) -> GraphQLClient:
        async def connect() -> Any:
            _RESPONSES.set([])
            try:
                return await self._client.connect_async()  # type: ignore[no-untyped-call]
            except Exception as exc:
                raise self._classify(exc, "introspection") from exc

        self._session = await self.source.retrying(connect, f"{self.shown_url} (schema)")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.close_async()  # type: ignore[no-untyped-call]

    @staticmethod
    def parse(document: str, name: str) -> GraphQLRequest:
        try:
            return gql(document)
        except GraphQLError as exc:
            raise ResponseShapeError(
                f"{name}: not a valid GraphQL document: {exc.message}"
            ) from exc

    async def fetch(
        self, document: GraphQLRequest, request: PageRequest, *, errors_policy: str = "fail"
    ) -> FetchedPage:
        """Execute one page of `document` with `request.variables`, retrying transient faults."""
        variables = dict(request.variables or {})

        async def attempt() -> FetchedPage:
            self.source.breaker.check()
            _RESPONSES.set([])
            try:
                result = await self._session.execute(
                    GraphQLRequest(document, variable_values=variables), get_execution_result=True
                )
                data, errors = result.data, list(result.errors or [])
            except TransportQueryError as exc:
                # gql raises on any `errors` array, even next to data: the policy decides.
                data, errors = exc.data, list(exc.errors or [])
            except Exception as exc:
                if isinstance(exc, GraphQLError):
                    raise ResponseShapeError(
                        f"{self.shown_url}: the query no longer fits the API's schema: "
                        f"{exc.message}. Update the .graphql file to the current schema."
                    ) from exc
                raise self._classify(exc, "query") from exc
            self.source.breaker.record_success()
            return self._page(request, data, errors, errors_policy)

        page: FetchedPage = await self.source.retrying(
            attempt, f"{self.source.spec.source}: POST {self.shown_url}"
        )
        return page

    def _page(
        self, request: PageRequest, data: Any, errors: list[Any], errors_policy: str
    ) -> FetchedPage:
        raw = _last_response()
        if errors and (errors_policy == "fail" or data is None):
            summary = "; ".join(
                f"{e.get('message')} at {'.'.join(map(str, e.get('path') or []))}"
                for e in errors[:5]
            )
            raise GraphQLResponseError(
                f"{self.shown_url}: the API answered with {len(errors)} GraphQL error(s): "
                f"{self.source.scrub(summary)}. Set graphql_errors: record on the endpoint to "
                "keep partial data.",
                errors,
            )
        content = raw.content if raw is not None else b""
        self.source.stats.bytes += len(content)
        return FetchedPage(
            request=request,
            url=self.shown_url,
            status_code=raw.status_code if raw is not None else 200,
            headers=raw.headers if raw is not None else httpx.Headers(),
            content=content,
            body=data,
            fetched_at=datetime.now(UTC),
            graphql_errors=errors,
        )

    def _classify(self, exc: Exception, what: str) -> Exception:
        """gql's exceptions mapped onto the engine's transient / permanent split."""
        stats, policy = self.source.stats, self.source.spec.retry
        if isinstance(exc, TransportServerError):
            code = exc.code or 0
            raw = _last_response()
            if code in policy.retry_statuses:
                self.source.breaker.record_failure()
                if code == 429:
                    stats.throttled += 1
                else:
                    stats.server_errors += 1
                header = raw.headers.get("retry-after") if raw is not None else None
                return TransientHTTPError(
                    f"{self.shown_url} ({what}): HTTP {code}",
                    code,
                    parse_retry_after(header, self.source.clock.now()),
                )
            if code == 401:
                return AuthError(
                    f"{self.shown_url} ({what}): HTTP 401 (credentials refused). Check "
                    "the token the spec reads from the environment."
                )
            return PermanentHTTPError(
                f"{self.shown_url} ({what}): HTTP {code}: {self.source.scrub(str(exc))}", code
            )
        if isinstance(
            exc,
            TransportProtocolError
            | TransportConnectionFailed
            | httpx.TransportError
            | TimeoutError,
        ):
            self.source.breaker.record_failure()
            stats.transport_errors += 1
            failed = (
                f"{self.shown_url} ({what}): {type(exc).__name__}: {self.source.scrub(str(exc))}"
            )
            if is_connection_refused(exc):
                return ConnectionRefused(failed, origin(self.url))
            return TransientHTTPError(failed)
        if isinstance(exc, TransportQueryError):
            return GraphQLResponseError(
                f"{self.shown_url} ({what}): {self.source.scrub(str(exc))}", list(exc.errors or [])
            )
        return exc
