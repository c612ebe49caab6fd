"""One stream into raw: a reader task fills a bounded queue, a writer cuts it into micro-batches.

The queue holds at most `buffer_events` events. When the writer falls behind, `put` blocks the
reader, which then stops reading the socket, and TCP holds the server back: memory stays within
`buffer_events` + `batch_size` events whatever the stream's rate. A batch closes at `batch_size`
events or `batch_seconds` after its first event, whichever comes first, and is written in a
worker thread, so reading goes on meanwhile. When `stop` is set (SIGTERM), the reader ends and
the writer flushes every event already received before `run` returns.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from integration_platform.http.client import SourceClient
from integration_platform.http.clock import Clock
from integration_platform.landing.warehouse import WarehouseBusyError
from integration_platform.logs import get_logger
from integration_platform.specs.models import SourceSpec
from integration_platform.streams.reader import SSEReader, StreamEvent

_log = get_logger("integration_platform.streams")
PROGRESS_EVERY_SECONDS = 30.0
BUSY_WAREHOUSE_PAUSE_SECONDS = 1.0


class BatchSink(Protocol):
    """Where micro-batches go. `write` runs in a worker thread, never two at once."""

    def resume(self) -> str | None:
        """Get ready; the id of the last event already written (None: nothing yet)."""
        ...

    def write(self, events: Sequence[StreamEvent]) -> object: ...

    def close(self) -> None: ...


@dataclass
class ConsumerStats:
    source: str
    stream: str
    resumed_after: str | None = None
    events: int = 0
    batches: int = 0
    connections: int = 0
    max_buffered: int = 0
    buffer_events: int = 0
    last_event_id: str | None = None
    first_event_at: float | None = None  # time.monotonic()
    finished_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        seconds = (
            (self.finished_at or time.monotonic()) - self.first_event_at
            if self.first_event_at is not None
            else 0.0
        )
        return {
            "source": self.source,
            "stream": self.stream,
            "resumed_after": self.resumed_after,
            "last_event_id": self.last_event_id,
            "events": self.events,
            "batches": self.batches,
            "connections": self.connections,
            "max_buffered": self.max_buffered,
            "buffer_events": self.buffer_events,
            "seconds": round(seconds, 3),
            "events_per_second": round(self.events / seconds, 1) if seconds else None,
        }


class StreamConsumer:
    def __init__(
        self,
        spec: SourceSpec,
        stream: str,
        sink: BatchSink,
        *,
        clock: Clock | None = None,
        idle_timeout_seconds: float = 60.0,
        max_events: int | None = None,
        rate_limit_dir: Path | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.spec, self.stream, self.sink = spec, stream, sink
        self.config = spec.streams[stream]
        self.clock = clock
        self.idle_timeout_seconds = idle_timeout_seconds
        self.max_events = max_events
        self.rate_limit_dir = rate_limit_dir
        self.transport = transport
        self.stats = ConsumerStats(spec.source, stream, buffer_events=self.config.buffer_events)
        self.queue: asyncio.Queue[StreamEvent] = asyncio.Queue(maxsize=self.config.buffer_events)
        self._last_progress = time.monotonic()

    async def run(self, stop: asyncio.Event | None = None) -> ConsumerStats:
        """Consume until `stop` is set, `max_events` are written, or a permanent error (raised)."""
        stop = stop or asyncio.Event()
        resumed: str | None = await self._when_warehouse_free(self.sink.resume)
        self.stats.resumed_after = self.stats.last_event_id = resumed
        _log.info(
            "stream_starting",
            stream=f"{self.spec.source}.{self.stream}",
            resume_after=resumed,
            batch_size=self.config.batch_size,
            batch_seconds=self.config.batch_seconds,
            buffer_events=self.config.buffer_events,
        )
        async with SourceClient(
            self.spec, state_dir=self.rate_limit_dir, transport=self.transport
        ) as client:
            reader = SSEReader(
                client,
                self.stream,
                clock=self.clock,
                idle_timeout_seconds=self.idle_timeout_seconds,
            )
            reading = asyncio.create_task(
                reader.read_into(self.queue, resumed, max_events=self.max_events),
                name=f"read {self.spec.source}.{self.stream}",
            )
            stopping = asyncio.create_task(stop.wait())
            stopping.add_done_callback(lambda _: reading.cancel())
            try:
                await self._write_batches(reading)
            finally:
                stopping.cancel()
                reading.cancel()
                await asyncio.gather(reading, stopping, return_exceptions=True)
                self.stats.connections = reader.connections
                self.stats.max_buffered = reader.max_buffered
                self.stats.finished_at = time.monotonic()
        error = None if reading.cancelled() else reading.exception()
        if error is not None:
            raise error  # a permanent failure: everything read before it is written
        await asyncio.to_thread(self.sink.close)
        _log.info("stream_stopped", **self.stats.as_dict())
        return self.stats

    async def _write_batches(self, reading: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        size, seconds = self.config.batch_size, self.config.batch_seconds
        queue = self.queue
        while True:
            first = await self._next_event(reading, None)
            if first is None:
                return  # the reader has finished and everything it read is written
            if self.stats.first_event_at is None:
                self.stats.first_event_at = time.monotonic()
            batch = [first]
            deadline = loop.time() + seconds
            while len(batch) < size:
                if not queue.empty():
                    batch.append(queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                event = await self._next_event(reading, remaining) if remaining > 0 else None
                if event is None:
                    break
                batch.append(event)
            await self._write(batch)

    async def _next_event(
        self, reading: asyncio.Task[None], timeout: float | None
    ) -> StreamEvent | None:
        """The next event; None once `timeout` passes, or the reader is done and all is read."""
        if not self.queue.empty():
            return self.queue.get_nowait()
        if reading.done():
            return None
        getter = asyncio.ensure_future(self.queue.get())
        done, _ = await asyncio.wait(
            {getter, reading}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if getter in done:
            return getter.result()
        getter.cancel()  # asyncio.Queue leaves the item in the queue for a cancelled get
        await asyncio.gather(getter, return_exceptions=True)
        return None if getter.cancelled() else getter.result()  # it may have won the race

    async def _when_warehouse_free(self, call: Callable[..., Any], *args: Any) -> Any:
        """`call(*args)` in a worker thread, again and again while the warehouse is busy.

        A long backfill or dbt run may hold the write lock for minutes; meanwhile backpressure
        holds the stream and the events read so far wait in memory. A batch written twice (its
        first partition committed before the failure) merges on the primary key: no doubles.
        """
        while True:
            try:
                return await asyncio.to_thread(call, *args)
            except WarehouseBusyError as exc:
                _log.warning("stream_waiting_for_warehouse", stream=self.stream, error=str(exc))
                await asyncio.sleep(BUSY_WAREHOUSE_PAUSE_SECONDS)

    async def _write(self, batch: list[StreamEvent]) -> None:
        await self._when_warehouse_free(self.sink.write, batch)
        stats = self.stats
        stats.events += len(batch)
        stats.batches += 1
        stats.last_event_id = batch[-1].id or stats.last_event_id
        if time.monotonic() - self._last_progress >= PROGRESS_EVERY_SECONDS:
            self._last_progress = time.monotonic()
            _log.info("stream_progress", **stats.as_dict())
