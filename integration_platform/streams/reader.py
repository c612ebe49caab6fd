"""One SSE stream read into a bounded queue, over the source's own HTTP client.

The request goes through `SourceClient.http`, so it is signed (or carries a token) like every
other request of the source and counts against its shared rate limit. Each (re)connection sends
`Last-Event-ID`; between connections the reader waits the server's `retry:` delay, or longer
after errors (`ReconnectDelay`). `queue.put` blocks when the queue is full, and while it blocks
nothing reads the socket: TCP flow control then holds the server back (backpressure).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
from httpx_sse import SSEError, aconnect_sse

from integration_platform.http.client import SourceClient
from integration_platform.http.clock import Clock, SystemClock
from integration_platform.http.errors import PermanentHTTPError, TransientHTTPError
from integration_platform.logs import get_logger
from integration_platform.streams.reconnect import ReconnectDelay

_log = get_logger("integration_platform.streams")


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event as received: its id and its `data` text, unchanged."""

    id: str
    data: str


class SSEReader:
    """Reads `spec.streams[stream]` into a queue until cancelled or `max_events` are queued.

    Transient failures (dropped connections, idle timeouts, 429/5xx) reconnect forever; a
    permanent one (401, 403, 404, a body that is not an event stream) raises.
    """

    def __init__(
        self,
        client: SourceClient,
        stream: str,
        *,
        clock: Clock | None = None,
        idle_timeout_seconds: float = 60.0,
    ) -> None:
        spec = client.spec
        self.client = client
        self.stream = spec.streams[stream]
        self.name = f"{spec.source}.{stream}"
        self.keep = frozenset(self.stream.event_types) or None
        self.delay = ReconnectDelay.from_spec(spec.retry)
        self.clock = clock or SystemClock()
        self.idle_timeout_seconds = idle_timeout_seconds
        # A stream has no total time; `read` is the longest silence (servers ping every ~15 s).
        self.timeout = httpx.Timeout(
            connect=spec.timeout.connect_seconds,
            read=idle_timeout_seconds,
            write=spec.timeout.write_seconds,
            pool=spec.timeout.total_seconds,
        )
        self.last_event_id: str | None = None
        self.connections = 0
        self.queued = 0
        self.max_buffered = 0

    async def read_into(
        self,
        queue: asyncio.Queue[StreamEvent],
        last_event_id: str | None,
        *,
        max_events: int | None = None,
    ) -> None:
        """Read from after `last_event_id` (None: wherever the server starts new clients)."""
        self.last_event_id = last_event_id
        while True:
            if self.connections:
                wait = self.delay.next_delay()
                _log.info(
                    "stream_reconnecting",
                    stream=self.name,
                    wait_seconds=wait,
                    last_event_id=self.last_event_id,
                    failures=self.delay.failures,
                )
                await self.clock.sleep(wait)
            try:
                received = await self._read_connection(queue, max_events)
            except TransientHTTPError as exc:
                self.delay.failed(exc.retry_after)
                _log.warning(
                    "stream_interrupted",
                    stream=self.name,
                    error=str(exc),
                    last_event_id=self.last_event_id,
                )
                continue
            if max_events is not None and self.queued >= max_events:
                return
            if not received:
                self.delay.failed()  # accepted, then closed without an event: do not hammer it
            _log.info(
                "stream_ended_by_server",
                stream=self.name,
                events=received,
                last_event_id=self.last_event_id,
            )

    async def _read_connection(
        self, queue: asyncio.Queue[StreamEvent], max_events: int | None
    ) -> int:
        """One connection: the number of events it delivered (kept or not)."""
        headers = {"Last-Event-ID": self.last_event_id} if self.last_event_id else {}
        self.connections += 1
        keep, delay = self.keep, self.delay
        received = 0
        description = self.client.describe("GET", self.stream.path)
        try:
            async with aconnect_sse(
                self.client.http, "GET", self.stream.path, headers=headers, timeout=self.timeout
            ) as source:
                response = source.response
                if response.status_code != 200:
                    await response.aread()
                    self._refuse(response, description)
                _log.info(
                    "stream_connected",
                    stream=self.name,
                    last_event_id=self.last_event_id,
                    connection=self.connections,
                )
                async for event in source.aiter_sse():
                    if event.retry is not None:
                        delay.server_retry(event.retry)
                    if not event.data:
                        continue  # a `retry:`-only block; the SSE spec dispatches no empty event
                    if not received:
                        delay.delivered()
                    received += 1
                    if event.id:
                        self.last_event_id = event.id
                    if keep is not None and event.event not in keep:
                        continue
                    await queue.put(StreamEvent(event.id, event.data))
                    self.queued += 1
                    depth = queue.qsize()
                    if depth > self.max_buffered:
                        self.max_buffered = depth
                    if max_events is not None and self.queued >= max_events:
                        break
        except SSEError as exc:
            raise PermanentHTTPError(
                f"{description}: {exc}; is {self.stream.path!r} an event "
                "stream? Check `streams.*.path` in the spec"
            ) from exc
        except httpx.TimeoutException as exc:
            raise TransientHTTPError(
                f"{description}: nothing received for {self.idle_timeout_seconds:g} s "
                f"({type(exc).__name__})"
            ) from exc
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise TransientHTTPError(
                f"{description}: connection lost after {received} event(s) "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        return received

    def _refuse(self, response: httpx.Response, description: str) -> None:
        """Raise for a non-200 answer: transient (retry) or permanent, as for any request."""
        if response.status_code < 400:
            raise PermanentHTTPError(
                f"{description}: HTTP {response.status_code} instead of an event stream (204 "
                "means the server asks its clients to stop reconnecting)",
                response.status_code,
            )
        # The client's own classification: retry_statuses and Retry-After from the spec,
        # 401/403 with the messages every other request of the source gives.
        self.client._check_status(response, description)
        raise PermanentHTTPError(
            f"{description}: HTTP {response.status_code}", response.status_code
        )  # pragma: no cover (_check_status raised)
