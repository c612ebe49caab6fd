"""GraphQL through gql, on the same governed HTTP stack (auth, rate limit, retries) as REST.

Documents come from .graphql files beside the spec and are validated against the server's
schema (introspection) before the first page, so a query that no longer fits the API fails at
once with a clear message. An API that refuses introspection (Apollo Server's production
default) is read unvalidated, with one warning; `graphql_validate: false` skips introspection.
An `errors` array with HTTP 200 fails the page unless the endpoint says `graphql_errors:
record`, in which case the data is kept and the errors travel with it.
"""

from __future__ import annotations

import contextvars
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from gql import Client, GraphQLRequest, gql
from gql.transport.exceptions import (
    TransportConnectionFailed,
    TransportProtocolError,
    TransportQueryError,
    TransportServerError,
)
from gql.transport.httpx import HTTPXAsyncTransport
from graphql import GraphQLError, validate

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
from integration_platform.http.transport import build_transport
from integration_platform.logs import get_logger
from integration_platform.redaction import origin

_log = get_logger("integration_platform.http.graphql")

# (run id, source, URL) whose refused introspection was already reported: every partition of a
# run opens its own client, and one warning per run says all there is to say.
_REFUSALS_REPORTED: set[tuple[str | None, str, str]] = set()

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

    def __init__(self, source_client: SourceClient) -> None:
        self.source = source_client
        spec = source_client.spec
        self.url = spec.base_url.rstrip("/") + spec.graphql_path
        self.shown_url = source_client.redact(self.url)  # in messages and raw tables
        inner = build_transport(spec.concurrency)
        transport = HTTPXAsyncTransport(
            url=self.url,
            auth=source_client.auth,
            timeout=source_client.timeout,
            headers=dict(spec.headers),
            transport=_RecordingTransport(GovernedTransport(inner, source_client)),
        )
        # The schema is fetched in __aenter__, not by gql's connect: gql closes the session
        # when introspection fails, and a refusal must leave the session usable.
        self._client = Client(
            transport=transport,
            fetch_schema_from_transport=False,
            execute_timeout=spec.timeout.total_seconds,
        )
        self._session: Any = None

    async def __aenter__(self) -> GraphQLClient:
        self._session = await self._client.connect_async()  # type: ignore[no-untyped-call]
        if self.source.spec.graphql_validate:
            try:
                await self.source.retrying(self._fetch_schema, f"{self.shown_url} (schema)")
            except BaseException:
                await self._client.close_async()  # type: ignore[no-untyped-call]
                raise
        return self

    async def _fetch_schema(self) -> None:
        _RESPONSES.set([])
        try:
            await self._session.fetch_schema()
        except (TransportQueryError, TypeError, GraphQLError) as exc:
            # The server answered, but with errors or without a usable `__schema` (gql's
            # TypeError "Invalid or incomplete introspection result"): introspection is off.
            raw = _last_response()
            if raw is None:
                raise
            self._raise_for_status(exc, "schema")
            self._report_refusal(exc, raw.status_code)
        except Exception as exc:
            raise self._classify(exc, "schema") from exc

    def _raise_for_status(self, exc: Exception, what: str) -> None:
        """A GraphQL answer that came with a 401 or a status worth retrying is that status's
        error, whatever its body says (gql reads any JSON body with `errors` as an answer)."""
        raw = _last_response()
        if raw is not None and (
            raw.status_code == 401 or raw.status_code in self.source.spec.retry.retry_statuses
        ):
            raise self._classify(TransportServerError(str(exc), raw.status_code), what) from exc

    def _report_refusal(self, exc: Exception, status: int) -> None:
        spec = self.source.spec
        run_id = structlog.contextvars.get_contextvars().get("run_id")
        key = (str(run_id) if run_id is not None else None, spec.source, self.url)
        if key in _REFUSALS_REPORTED:
            return
        _REFUSALS_REPORTED.add(key)
        if isinstance(exc, TransportQueryError) and exc.errors:
            answer = str(exc.errors[0].get("message", exc.errors[0]))
        else:
            answer = f"no usable __schema in the answer ({exc})"
        _log.warning(
            "graphql_schema_not_validated",
            source=spec.source,
            url=self.shown_url,
            status=status,
            reason="the API refused introspection: its queries run without schema validation",
            hint=f"set graphql_validate: false in the {spec.source} spec to skip introspection "
            "and this warning",
            answer=answer[:300],
        )

    def check(self, document: GraphQLRequest, name: str) -> None:
        """Validate `document` (from the query file `name`) against the server's schema, if it
        gave one, before any page."""
        schema = self._client.schema
        if schema is None:
            return
        errors = validate(schema, document.document)
        if errors:
            problems = "; ".join(
                error.message + (f" (line {error.locations[0].line})" if error.locations else "")
                for error in errors[:5]
            )
            raise ResponseShapeError(
                f"the query in {name} does not fit the API's schema: {problems}. "
                "Update the .graphql file to the API's current schema."
            )

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
                # gql raises on any `errors` array, even next to data: the policy decides
                # (unless the status says the request failed).
                self._raise_for_status(exc, "query")
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
                str(e.get("message"))
                + (f" at {'.'.join(map(str, e['path']))}" if e.get("path") else "")
                for e in errors[:5]
            )
            status = raw.status_code if raw is not None else 200
            if data is not None:
                advice = "Set graphql_errors: record on the endpoint to keep partial data."
            elif status == 403:
                advice = "The API refused the request: check the credentials' permissions."
            else:
                advice = "The API returned no data: check the query file against its schema."
            answered = "answered" if status == 200 else f"answered HTTP {status}"
            end = " " if summary.endswith((".", "?", "!")) else ". "
            raise GraphQLResponseError(
                f"{self.shown_url}: the API {answered} with {len(errors)} GraphQL error(s): "
                f"{self.source.scrub(summary)}" + end + advice,
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
