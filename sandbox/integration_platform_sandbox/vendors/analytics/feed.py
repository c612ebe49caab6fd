"""Sandbox analytics' live event feed (SSE): batches of pre-framed events after the
Last-Event-ID, at a set rate, and the chaos that breaks a feed off mid-event."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from integration_platform_sandbox.chaos import ChaosEngine, ChaosMiddleware, DroppedConnection
from integration_platform_sandbox.population import mix64
from integration_platform_sandbox.vendors.analytics.records import AnalyticsRecords
from integration_platform_sandbox.vendors.common import error_response
from integration_platform_sandbox.world import World

STREAM_PATH = "/v1/stream"
STREAM_RETRY_MS = 2000
STREAM_PING_SECONDS = 15
# Events framed per write, by hand. Measured on a 2-core box at rate 0, counting events off the
# raw socket: one sse-starlette ServerSentEvent per event (one ASGI send each) gave 23-33k
# events/s; 500 pre-framed events per send gave 93-133k events/s, where generating the events
# is the limit. sse-starlette still runs the response (pings, client disconnects).
STREAM_BATCH = 500
MAX_EVENT_ID = 10**10
_CHAOS_CUT_SALT = 0xA7E3
# Set on the ASGI scope by `StreamChaos`: the stream then breaks off mid-event by itself.
STREAM_FAULT_KEY = "sandbox.stream_fault"


class AnalyticsFeed(AnalyticsRecords):
    """One tenant's analytics with its open event streams."""

    def __init__(self, world: World, engine: ChaosEngine) -> None:
        super().__init__(world, engine)
        self._hangup = asyncio.Event()
        self.streams_opened = 0
        self.streams_open = 0
        self.events_streamed = 0

    def _frame(self, event_id: int, drift_from_us: int | None) -> bytes:
        data = orjson.dumps(self.event(event_id, drift_from_us))
        return b"event: usage\nid: %d\ndata: %b\n\n" % (event_id, data)

    def _frames(self, first: int, stop: int, drift_from_us: int | None) -> bytes:
        return b"".join([self._frame(i, drift_from_us) for i in range(first, stop)])

    def _last_event_id(self, request: Request) -> int:
        # The header wins: a browser's EventSource reconnects to its original URL, so a
        # last_event_id in the query is the starting point and the header the latest progress.
        raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
        if not raw:
            return self.historical_events
        try:
            value = int(raw)
        except ValueError:
            raise HTTPException(
                400, f"Last-Event-ID {raw!r} is not an event id: ids are integers"
            ) from None
        if not 0 <= value <= MAX_EVENT_ID:
            raise HTTPException(400, f"Last-Event-ID {value} is out of range 0..{MAX_EVENT_ID}")
        return value

    async def _feed(self, first_id: int, fault: str | None) -> AsyncIterator[bytes]:
        hangup = self._hangup
        self.streams_opened += 1
        self.streams_open += 1
        try:
            yield b"retry: %d\n\n" % STREAM_RETRY_MS
            if not len(self.roster):
                await hangup.wait()  # no users, no events: an idle feed
                return
            cut_at = None
            if fault is not None:
                cut_at = first_id + mix64(self.world.settings.seed, _CHAOS_CUT_SALT, first_id) % 100
            rate = self.world.settings.stream_events_per_second
            loop = asyncio.get_running_loop()
            started = loop.time()
            next_id = first_id
            while not hangup.is_set():
                stop = next_id + STREAM_BATCH
                if rate > 0:
                    elapsed = loop.time() - started
                    stop = min(stop, first_id + int(elapsed * rate) + 1)
                    if stop <= next_id:
                        await _pause(hangup, (next_id - first_id) / rate - elapsed)
                        continue
                drift_from_us = self._drift_from_us()
                if cut_at is not None and stop > cut_at:
                    broken = self._frame(cut_at, drift_from_us)
                    yield self._frames(next_id, cut_at, drift_from_us) + broken[: len(broken) // 2]
                    self.events_streamed += cut_at - next_id
                    if fault == "drop":
                        raise DroppedConnection("chaos: event stream dropped mid-event")
                    return  # "malformed": the body ends cleanly, half an event short
                yield self._frames(next_id, stop, drift_from_us)
                self.events_streamed += stop - next_id
                next_id = stop
                # Sends only yield to the loop when the socket is full; without this, a rate-0
                # feed would starve the disconnect listener and every other connection.
                await asyncio.sleep(0)
        finally:
            self.streams_open -= 1

    def disconnect_streams(self) -> int:
        """End every open stream; returns how many there were."""
        open_streams = self.streams_open
        self._hangup.set()
        self._hangup = asyncio.Event()
        return open_streams


class StreamChaos:
    """Chaos for the endless SSE feed, which `ChaosMiddleware` must not damage itself.

    The middleware buffers a whole body before cutting it in half; an SSE body never ends, so a
    "drop" or "malformed" there would hang the client and, at rate 0, grow the buffer without
    bound. Here those faults make the feed break off mid-event; the others behave as usual.
    """

    def __init__(self, chaos_app: ChaosMiddleware) -> None:
        self.chaos_app = chaos_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != STREAM_PATH:
            await self.chaos_app(scope, receive, send)
            return
        engine = self.chaos_app.engine
        fault = engine.decide()
        if fault == "429":
            response = error_response(
                429, "rate_limited", "slow down", {"retry-after": engine.retry_after()}
            )
            await response(scope, receive, send)
            return
        if fault in ("500", "502", "503"):
            await error_response(int(fault), "server_error", fault)(scope, receive, send)
            return
        if fault == "slow":
            await asyncio.sleep(engine.settings.slow_seconds)
        elif fault is not None:
            scope = {**scope, STREAM_FAULT_KEY: fault}
        await self.chaos_app.app(scope, receive, send)


async def _pause(hangup: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake at once when the admin route hangs up every stream."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, seconds)):
            await hangup.wait()
