"""One source's HTTP stack: auth → retries → circuit breaker → shared rate limiter → httpx →
aiohttp (http/transport.py).

`SourceClient.fetch` returns one page, raw bytes and parsed JSON, after retrying transient
failures (429, 5xx, timeouts, dropped connections, truncated bodies) with full-jitter
exponential backoff, or Retry-After when the API gives one. Permanent failures raise at once;
so does a source where nothing answers (connections refused), after one quick second try.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from integration_platform.http.auth import build_auth
from integration_platform.http.circuit import CircuitBreaker
from integration_platform.http.clock import Clock, SystemClock
from integration_platform.http.errors import (
    Attempt,
    AuthError,
    ConnectionRefused,
    PermanentHTTPError,
    RetriesExhausted,
    SourceUnreachable,
    TransientHTTPError,
    is_connection_refused,
)
from integration_platform.http.pagination import PageRequest
from integration_platform.http.ratelimit import SharedRateLimiter, parse_retry_after
from integration_platform.http.transport import build_transport
from integration_platform.logs import get_logger
from integration_platform.redaction import Scrubber, origin, redact_url
from integration_platform.specs.models import SourceSpec
from integration_platform.specs.secrets import secret_query_params, secret_values

_log = get_logger("integration_platform.http")
# Which try of a request is on the wire, for the request log line.
CURRENT_ATTEMPT: contextvars.ContextVar[int] = contextvars.ContextVar("attempt", default=1)
# A source that has never answered and refuses connections is not running (or base_url is
# wrong): one more try after a second (a server in the middle of a restart), then fail, rather
# than spend the whole retry policy (a minute or more) on it. Once the source has answered, a
# refusal is a restart and gets the normal retries.
REFUSED_ATTEMPTS = 2
REFUSED_RETRY_DELAY_SECONDS = 1.0


@dataclass
class RequestStats:
    """What one extraction cost: the figures an operator wants to see."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    server_errors: int = 0
    transport_errors: int = 0
    bytes: int = 0
    rate_limit_wait_seconds: float = 0.0

    def as_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


@dataclass
class FetchedPage:
    """One response as received: raw bytes kept unchanged for the landing zone."""

    request: PageRequest
    url: str  # secrets redacted
    status_code: int
    headers: httpx.Headers
    content: bytes
    body: Any
    fetched_at: datetime
    graphql_errors: list[dict[str, Any]] = field(default_factory=list)


class GovernedTransport(httpx.AsyncBaseTransport):
    """Every HTTP attempt of a source, token requests included, passes the rate limiter here."""

    def __init__(self, inner: httpx.AsyncBaseTransport, client: SourceClient) -> None:
        self._inner = inner
        self._client = client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        stats, limiter = self._client.stats, self._client.limiter
        waited = await limiter.acquire() if limiter is not None else 0.0
        stats.rate_limit_wait_seconds += waited
        stats.requests += 1
        request_id = uuid.uuid4().hex[:12]
        started = time.monotonic()
        fields = {
            "request_id": request_id,
            "source": self._client.spec.source,
            "method": request.method,
            "attempt": CURRENT_ATTEMPT.get(),
            "url": self._client.redact(request.url),
        }
        try:
            response = await self._inner.handle_async_request(request)
        except httpx.TransportError as exc:
            _log.warning(
                "http_request",
                **fields,
                error=type(exc).__name__,
                latency_ms=round((time.monotonic() - started) * 1000, 1),
            )
            raise
        self._client.answered = True
        _log.info(
            "http_request",
            **fields,
            status=response.status_code,
            latency_ms=round((time.monotonic() - started) * 1000, 1),
            rate_limit_wait_ms=round(waited * 1000, 1),
        )
        if limiter is not None:
            limiter.observe(response.headers, response.status_code)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class SourceClient:
    """The HTTP client of one source; share one instance across that source's endpoints."""

    def __init__(
        self,
        spec: SourceSpec,
        *,
        state_dir: Path | None = None,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.spec = spec
        self.clock = clock or SystemClock()
        self.stats = RequestStats()
        self.secret_params = secret_query_params(spec)
        # Every form of every secret (URL-encoded, base64, values put into paths and queries):
        # for URLs, messages and the error bodies APIs echo requests into.
        self.scrub = Scrubber(secret_values(spec))
        self.answered = False  # whether any response came back from the source yet
        rate = spec.rate_limit
        self.limiter = (
            None
            if rate is None
            else SharedRateLimiter(
                spec.source,
                rate.requests_per_second,
                burst=rate.burst,
                state_dir=state_dir,
                clock=self.clock,
                respect_headers=rate.respect_headers,
            )
        )
        self.breaker = CircuitBreaker.from_spec(spec.circuit_breaker, spec.source, self.clock)
        timeout = spec.timeout
        self.timeout = httpx.Timeout(
            connect=timeout.connect_seconds,
            read=timeout.read_seconds,
            write=timeout.write_seconds,
            pool=timeout.total_seconds,
        )
        inner = transport or build_transport(spec.concurrency)
        self.auth = build_auth(spec.auth, spec.base_url, self.clock, scrub=self.scrub)
        self.http = httpx.AsyncClient(
            base_url=spec.base_url,
            headers=spec.headers,
            auth=self.auth,
            timeout=self.timeout,
            transport=GovernedTransport(inner, self),
            follow_redirects=True,
        )

    async def __aenter__(self) -> SourceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    def redact(self, url: httpx.URL | str) -> str:
        """The URL as logs, messages and raw tables may show it: no secret in any part."""
        return self.scrub(redact_url(url, self.secret_params))

    def describe(self, method: str, url: httpx.URL | str) -> str:
        return f"{self.spec.source}: {method} {self.redact(url)}"

    # -- requests ---------------------------------------------------------------------------

    async def fetch(
        self, request: PageRequest, *, method: str = "GET", json_body: Any = None
    ) -> FetchedPage:
        """GET (or POST) one page and parse its JSON, retrying what is worth retrying."""

        async def attempt() -> FetchedPage:
            return await self._attempt(request, method, json_body)

        page: FetchedPage = await self.retrying(
            attempt, lambda: self.describe(method, self._url(request))
        )
        return page

    async def retrying(
        self, attempt: Callable[[], Any], description: str | Callable[[], str]
    ) -> Any:
        """Run `attempt` under the source's retry policy; raise RetriesExhausted with history.

        `description` may be a function: it is called only if every attempt fails."""
        policy = self.spec.retry
        history: list[Attempt] = []
        started = time.monotonic()
        jitter = wait_random_exponential(
            multiplier=policy.initial_delay_seconds, max=policy.max_delay_seconds
        )

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, ConnectionRefused) and not self.answered:
                return REFUSED_RETRY_DELAY_SECONDS
            if isinstance(exc, TransientHTTPError) and exc.retry_after is not None:
                return exc.retry_after  # the API said when: its word beats our backoff
            return float(jitter(state))

        refusals = 0

        def worth_retrying(state: RetryCallState) -> bool:
            nonlocal refusals
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, ConnectionRefused) and not self.answered:
                refusals += 1
                return refusals < REFUSED_ATTEMPTS
            return isinstance(exc, TransientHTTPError)

        def record(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            waited = state.next_action.sleep if state.next_action else 0.0
            history.append(
                Attempt(state.attempt_number, str(exc), time.monotonic() - started, waited)
            )
            self.stats.retries += 1

        attempts = 0

        async def numbered() -> Any:
            nonlocal attempts
            attempts += 1
            CURRENT_ATTEMPT.set(attempts)
            return await attempt()

        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.max_attempts)
            | stop_after_delay(policy.max_elapsed_seconds),
            wait=wait,
            retry=worth_retrying,
            sleep=self.clock.sleep,
            before_sleep=record,
        )

        def describe() -> str:
            return description if isinstance(description, str) else description()

        try:
            return await retrying(numbered)
        except ConnectionRefused as exc:
            history.append(Attempt(attempts, str(exc), time.monotonic() - started))
            raise self._unreachable(describe(), history, exc.origin) from exc
        except RetryError as exc:
            last = exc.last_attempt.exception()
            history.append(
                Attempt(exc.last_attempt.attempt_number, str(last), time.monotonic() - started)
            )
            if isinstance(last, ConnectionRefused) and not self.answered:
                raise self._unreachable(describe(), history, last.origin) from last
            limit = (
                "retry.max_attempts"
                if exc.last_attempt.attempt_number >= policy.max_attempts
                else "retry.max_elapsed_seconds"
            )
            raise RetriesExhausted(describe(), history, limit) from last

    def _unreachable(self, request: str, history: list[Attempt], at: str) -> SourceUnreachable:
        # Token requests are not in the http_request lines: this one says what was tried.
        _log.warning(
            "source_unreachable", source=self.spec.source, origin=at, attempts=len(history)
        )
        return SourceUnreachable(request, history, self.spec.source, at)

    def _url(self, request: PageRequest) -> httpx.URL:
        return self.http.build_request("GET", request.path, params=dict(request.params) or None).url

    async def _attempt(self, request: PageRequest, method: str, json_body: Any) -> FetchedPage:
        self.breaker.check()

        def description() -> str:
            # Only failures need it: building and redacting the URL up front cost each
            # successful request about a fifth of this client's CPU (benchmarks/README.md).
            return self.describe(method, self._url(request))

        try:
            async with asyncio.timeout(self.spec.timeout.total_seconds):
                # `params=None` when empty: httpx drops a URL's own query whenever params is given.
                response = await self.http.request(
                    method, request.path, params=dict(request.params) or None, json=json_body
                )
        except (httpx.TimeoutException, TimeoutError) as exc:
            self._failed()
            self.stats.transport_errors += 1
            raise TransientHTTPError(f"{description()}: timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            self._failed()
            self.stats.transport_errors += 1
            failed = (
                f"{description()}: connection failed ({type(exc).__name__}: {self.scrub(str(exc))})"
            )
            if is_connection_refused(exc):
                raise ConnectionRefused(failed, origin(self._url(request))) from exc
            raise TransientHTTPError(failed) from exc
        self.stats.bytes += len(response.content)
        if response.status_code >= 400:
            self._check_status(response, description())
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            self._failed()
            raise TransientHTTPError(
                f"{description()}: the body is not valid JSON ({len(response.content)} bytes, "
                f"{exc}); it was probably cut off"
            ) from exc
        self.breaker.record_success()
        return FetchedPage(
            request=request,
            url=self.redact(response.url),
            status_code=response.status_code,
            headers=response.headers,
            content=response.content,
            body=body,
            fetched_at=datetime.now(UTC),
        )

    def _failed(self) -> None:
        self.breaker.record_failure()

    def _check_status(self, response: httpx.Response, description: str) -> None:
        status = response.status_code
        if status < 400:
            return
        # Scrub before cutting: APIs echo the request (key included) in their error bodies.
        snippet = self.scrub(response.text[:4000])[:300].replace("\n", " ")
        if status in self.spec.retry.retry_statuses:
            self._failed()
            if status == 429:
                self.stats.throttled += 1
            else:
                self.stats.server_errors += 1
            retry_after = parse_retry_after(response.headers.get("retry-after"), self.clock.now())
            raise TransientHTTPError(
                f"{description}: HTTP {status}: {snippet}",
                status_code=status,
                retry_after=retry_after,
            )
        if status == 401:
            raise AuthError(
                f"{description}: HTTP 401 (credentials refused): {snippet}. Check the "
                f"credentials the spec of {self.spec.source!r} reads from the environment."
            )
        if status == 403:
            raise PermanentHTTPError(
                f"{description}: HTTP 403 (forbidden): {snippet}. The credentials work but "
                "lack permission for this resource.",
                status,
            )
        raise PermanentHTTPError(f"{description}: HTTP {status}: {snippet}", status)
