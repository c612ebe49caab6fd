"""The SSE consumer against the sandbox's analytics stream, over real HTTP, into a real warehouse.

Tests that stream start a private sandbox (the stream disconnect route ends every open stream)
and run `StreamConsumer` in this process with a `FakeClock`, so a reconnect costs no real time
and every delay the consumer chose is recorded in `clock.sleeps`. The backpressure test reads a
body generated only as it is read, so "produced" is exactly "read"; the checkpoint tests drive
`RawStreamSink` directly.
"""

from __future__ import annotations

import asyncio
import os
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson
import pytest

from integration_platform import environment
from integration_platform.landing.loader import load_attempt
from integration_platform.landing.warehouse import Warehouse
from integration_platform.specs.loader import load_spec
from integration_platform.specs.models import SourceSpec
from integration_platform.streams import checkpoints
from integration_platform.streams.consumer import StreamConsumer
from integration_platform.streams.raw_sink import RawStreamSink, checkpoint_plan
from integration_platform.streams.reader import StreamEvent
from integration_platform_sandbox.chaos import ChaosSettings
from integration_platform_sandbox.server import Sandbox
from integration_platform_sandbox.vendors import analytics
from tests.fake_clock import FakeClock

SPEC_FILE = environment.PROJECT_ROOT / "sources" / "analytics.yaml"
MakeSandbox = Callable[..., Sandbox]


def analytics_spec(url: str, **stream_settings: Any) -> SourceSpec:
    """sources/analytics.yaml pointed at `url`, its `usage` stream's settings changed."""
    environment.load_sandbox_env()  # the demo credentials, as the CLI loads them
    spec = load_spec(SPEC_FILE, env={**os.environ, "ANALYTICS_BASE_URL": url})
    stream = spec.streams["usage"].model_copy(update=stream_settings)
    return spec.model_copy(update={"streams": {"usage": stream}})


def raw_sink(spec: SourceSpec, data: Path, run_id: str = "test-run") -> RawStreamSink:
    return RawStreamSink(
        spec,
        "usage",
        warehouse=Warehouse(data / "warehouse.duckdb"),
        landing_root=data / "landing",
        run_id=run_id,
        publish_every_seconds=3600,
    )


def stream_stats(server: Sandbox) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(
        f"{server.urls['analytics']}/_sandbox/stats", timeout=10
    ).json()
    return body


def disconnect(server: Sandbox) -> int:
    response = httpx.post(f"{server.urls['analytics']}/_sandbox/stream/disconnect", timeout=10)
    return int(response.json()["disconnected"])


def raw_events(data: Path) -> list[tuple[int, str, str]]:
    """(event_id, record JSON, partition) of every row of raw.analytics__events, by event id."""
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as connection:
        rows = connection.execute(
            "SELECT (record ->> 'event_id')::BIGINT, record::VARCHAR, _partition_key "
            'FROM raw."analytics__events" ORDER BY 1'
        ).fetchall()
    return [(int(i), str(r), str(p)) for i, r, p in rows]


def stored_checkpoint(data: Path) -> str | None:
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as connection:
        return checkpoints.read(connection, "analytics", "usage")


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the consumer"
        await asyncio.sleep(0.02)


async def consume(consumer: StreamConsumer, scenario: Callable[[], Awaitable[None]]) -> None:
    """Run the consumer while `scenario` plays, then stop it as SIGTERM would."""
    stop = asyncio.Event()
    running = asyncio.create_task(consumer.run(stop))
    try:
        await scenario()
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=30)


def expected_records(server: Sandbox, ids: Sequence[int]) -> list[dict[str, Any]]:
    """What the sandbox's deterministic generator says events `ids` are."""
    vendor = analytics.Analytics(server.world, server.engines["analytics"])
    return [vendor.event(event_id, None) for event_id in ids]


# -- reconnecting ------------------------------------------------------------------------------


def test_consumer_resumes_after_last_event_id_without_gap_or_duplicate_when_server_disconnects(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    server = make_sandbox(stream_events_per_second=2000)
    spec = analytics_spec(server.urls["analytics"], batch_size=200, batch_seconds=0.1)
    clock = FakeClock()
    consumer = StreamConsumer(spec, "usage", raw_sink(spec, tmp_path), clock=clock)
    hung_up: list[int] = []

    async def scenario() -> None:
        await until(lambda: consumer.stats.events >= 600)
        hung_up.append(disconnect(server))
        await until(lambda: consumer.stats.events >= 1500 and len(clock.sleeps) == 1)

    asyncio.run(consume(consumer, scenario))

    history = stream_stats(server)["counts"]["events"]
    rows = raw_events(tmp_path)
    ids = [event_id for event_id, _, _ in rows]
    assert hung_up == [1]
    assert stream_stats(server)["stream"]["connections"] == 2
    assert ids == list(range(history + 1, history + 1 + len(ids))), "a gap or a duplicate"
    assert len(ids) == consumer.stats.events >= 1500
    assert stored_checkpoint(tmp_path) == str(ids[-1])
    assert [orjson.loads(record) for _, record, _ in rows] == expected_records(server, ids)
    assert {partition for _, _, partition in rows} == {
        record["occurred_at"][:10] for record in expected_records(server, ids)
    }


def test_consumer_continues_after_the_warehouse_checkpoint_when_started_again(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    server = make_sandbox(stream_events_per_second=0)
    spec = analytics_spec(server.urls["analytics"], batch_size=250)
    first = StreamConsumer(spec, "usage", raw_sink(spec, tmp_path, "run-1"), max_events=1000)
    second = StreamConsumer(spec, "usage", raw_sink(spec, tmp_path, "run-2"), max_events=1000)

    first_stats = asyncio.run(first.run())
    second_stats = asyncio.run(second.run())

    ids = [event_id for event_id, _, _ in raw_events(tmp_path)]
    history = stream_stats(server)["counts"]["events"]
    assert second_stats.resumed_after == first_stats.last_event_id == str(history + 1000)
    assert ids == list(range(history + 1, history + 2001))
    assert stored_checkpoint(tmp_path) == str(history + 2000)


def test_reconnect_waits_the_servers_retry_delay_when_the_server_disconnects(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    server = make_sandbox(stream_events_per_second=500)
    spec = analytics_spec(server.urls["analytics"], batch_seconds=0.05)
    clock = FakeClock()
    consumer = StreamConsumer(spec, "usage", raw_sink(spec, tmp_path), clock=clock)

    async def scenario() -> None:
        await until(lambda: consumer.stats.events >= 20)
        disconnect(server)
        await until(lambda: stream_stats(server)["stream"]["connections"] == 2)
        await until(lambda: consumer.stats.events >= 60)

    asyncio.run(consume(consumer, scenario))

    assert clock.sleeps == [analytics.STREAM_RETRY_MS / 1000]  # `retry: 2000`, not our default


def test_reconnect_backs_off_beyond_the_servers_retry_when_reconnecting_fails(
    make_sandbox: MakeSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(analytics.feed, "STREAM_RETRY_MS", 100)
    server = make_sandbox(stream_events_per_second=500)
    spec = analytics_spec(server.urls["analytics"], batch_seconds=0.05)
    clock = FakeClock()
    consumer = StreamConsumer(spec, "usage", raw_sink(spec, tmp_path), clock=clock)

    async def scenario() -> None:
        await until(lambda: consumer.stats.events >= 20)
        server.engines["analytics"].configure(ChaosSettings(), script=["503", "503", "503"])
        disconnect(server)
        await until(lambda: stream_stats(server)["stream"]["connections"] == 2)
        await until(lambda: consumer.stats.events >= 60)

    asyncio.run(consume(consumer, scenario))

    # retry 0.1 s after the clean hang-up; then the spec's backoff (0.2 s doubling) wins.
    assert clock.sleeps == [0.1, 0.2, 0.4, 0.8]
    ids = [event_id for event_id, _, _ in raw_events(tmp_path)]
    assert ids == list(range(ids[0], ids[0] + len(ids)))


def test_no_event_is_lost_or_doubled_when_chaos_cuts_the_stream_mid_event(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    server = make_sandbox(stream_events_per_second=2000)
    # The first connection drops mid-event; the second ends cleanly, half an event short.
    server.engines["analytics"].configure(ChaosSettings(), script=["drop", "malformed"])
    spec = analytics_spec(server.urls["analytics"], batch_size=100, batch_seconds=0.05)
    clock = FakeClock()
    consumer = StreamConsumer(spec, "usage", raw_sink(spec, tmp_path), clock=clock)

    async def scenario() -> None:
        await until(lambda: len(clock.sleeps) == 2 and consumer.stats.events >= 500)

    asyncio.run(consume(consumer, scenario))

    ids = [event_id for event_id, _, _ in raw_events(tmp_path)]
    history = stream_stats(server)["counts"]["events"]
    assert server.engines["analytics"].injected["drop"] == 1
    assert server.engines["analytics"].injected["malformed"] == 1
    assert ids == list(range(history + 1, history + 1 + len(ids))), "a gap or a duplicate"
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as connection:
        assert connection.execute("SELECT count(*) FROM raw._dead_letters").fetchall() == [(0,)]
    assert clock.sleeps == [2.0, 2.0]


# -- backpressure ------------------------------------------------------------------------------


class SlowSink:
    """A writer far slower than the stream: each batch takes `seconds`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ids: list[int] = []

    def resume(self) -> str | None:
        return None

    def write(self, events: Sequence[StreamEvent]) -> None:
        time.sleep(self.seconds)
        self.ids.extend(int(event.id) for event in events)

    def close(self) -> None:
        pass


class EndlessStream:
    """An SSE body produced only as the client reads it, counting what it produced."""

    def __init__(self, events_per_chunk: int = 100) -> None:
        self.events_per_chunk = events_per_chunk
        self.produced = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=self.body()
        )

    async def body(self) -> AsyncIterator[bytes]:
        yield b"retry: 2000\n\n"
        while True:
            first = self.produced + 1
            self.produced += self.events_per_chunk
            yield b"".join(
                b'event: usage\nid: %d\ndata: {"event_id": %d, "padding": "%b"}\n\n'
                % (i, i, b"x" * 200)
                for i in range(first, self.produced + 1)
            )
            await asyncio.sleep(0)  # a socket read lets other tasks run now and then


def test_reader_stops_reading_and_memory_stays_flat_when_the_writer_is_slow() -> None:
    buffer, batch = 2000, 500
    spec = analytics_spec(
        "http://stream.test", batch_size=batch, batch_seconds=0.05, buffer_events=buffer
    )
    source = EndlessStream()
    sink = SlowSink(0.25)  # 2,000 events/s; reading alone goes many times faster
    consumer = StreamConsumer(spec, "usage", sink, transport=httpx.MockTransport(source.handler))
    depths: list[int] = []
    memory: list[int] = []
    ahead: list[int] = []

    async def scenario() -> None:
        started = time.monotonic()
        while time.monotonic() - started < 2.5:
            depths.append(consumer.queue.qsize())
            if time.monotonic() - started > 0.5:
                memory.append(tracemalloc.get_traced_memory()[0])
                ahead.append(source.produced - len(sink.ids))
            await asyncio.sleep(0.01)

    tracemalloc.start()
    try:
        asyncio.run(consume(consumer, scenario))
    finally:
        tracemalloc.stop()

    assert max(depths) <= buffer and consumer.stats.max_buffered == buffer
    assert len(sink.ids) >= 3 * batch
    assert sink.ids == list(range(1, len(sink.ids) + 1))
    # Produced only as read: at most the buffer, the batch being written and one chunk ahead.
    assert max(ahead) <= buffer + batch + 2 * source.events_per_chunk, max(ahead)
    growth = max(memory) - memory[0]
    assert growth < 1_000_000, f"memory grew by {growth / 1e6:.1f} MB while the writer lagged"


# -- the checkpoint rides with the rows ------------------------------------------------------


def test_rows_and_checkpoint_roll_back_together_when_the_load_transaction_fails(
    tmp_path: Path,
) -> None:
    spec = analytics_spec("http://127.0.0.1:9")
    sink = raw_sink(spec, tmp_path)
    assert sink.resume() is None
    events = [
        StreamEvent(
            str(i),
            orjson.dumps(
                {
                    "event_id": i,
                    "user_id": "usr_1",
                    "event_type": "login",
                    "quantity": 1,
                    "occurred_at": "2026-01-02T03:04:05Z",
                    "properties": {},
                }
            ).decode(),
        )
        for i in (1, 2)
    ]
    sink.write(events[:1])
    attempt = sink._land("2026-01-02", events[1:], sink._published_at)
    broken = [checkpoints.advance("analytics", "usage", "2"), ("SELECT 1 / 'not a number'", [])]

    with (
        Warehouse(tmp_path / "warehouse.duckdb").connect() as connection,
        pytest.raises(duckdb.Error),
    ):
        load_attempt(
            connection,
            spec=spec,
            endpoint="events",
            attempt=attempt,
            partition="2026-01-02",
            run_id="r",
            mode="merge",
            extra_statements=broken,
        )

    assert [event_id for event_id, _, _ in raw_events(tmp_path)] == [1]
    assert stored_checkpoint(tmp_path) == "1"


def test_checkpoint_never_passes_an_unloaded_event_when_a_batch_spans_two_days() -> None:
    events = [StreamEvent(str(i), "{}") for i in range(1, 7)]
    owners = ["d1", "d1", "d2", "d1", "d2", "d2"]

    # d1 commits first: events 1-2 are then in raw, 3 (d2) is not, so the checkpoint is 2.
    assert checkpoint_plan(events, owners, ["d1", "d2"]) == ["2", "6"]
    assert checkpoint_plan(events, ["d2", "d2", "d1"], ["d2", "d1"]) == ["2", "3"]
    assert checkpoint_plan(events[:2], ["d1", "d1"], ["d1"]) == ["2"]


def test_batch_lands_in_each_events_utc_day_with_one_checkpoint_when_it_spans_midnight(
    tmp_path: Path,
) -> None:
    spec = analytics_spec("http://127.0.0.1:9")
    sink = raw_sink(spec, tmp_path)
    sink.resume()
    times = ["2026-01-01T23:59:59.5Z", "2026-01-02T01:00:00+02:00", "2026-01-02T00:00:00.1Z"]
    events = [
        StreamEvent(
            str(i),
            orjson.dumps(
                {
                    "event_id": i,
                    "user_id": "usr_1",
                    "event_type": "login",
                    "quantity": 1,
                    "occurred_at": at,
                    "properties": {},
                }
            ).decode(),
        )
        for i, at in enumerate(times, start=10)
    ]

    result = sink.write(events)

    assert [(i, p) for i, _, p in raw_events(tmp_path)] == [
        (10, "2026-01-01"),
        (11, "2026-01-01"),
        (12, "2026-01-02"),
    ]
    assert result.partitions == ["2026-01-01", "2026-01-02"]
    assert stored_checkpoint(tmp_path) == "12"


def test_undecodable_event_goes_to_dead_letters_and_the_checkpoint_moves_on_when_data_is_bad(
    tmp_path: Path,
) -> None:
    spec = analytics_spec("http://127.0.0.1:9")
    sink = raw_sink(spec, tmp_path)
    sink.resume()
    good = orjson.dumps(
        {
            "event_id": 1,
            "user_id": "usr_1",
            "event_type": "login",
            "quantity": 1,
            "occurred_at": "2026-01-01T00:00:00Z",
            "properties": {},
        }
    ).decode()
    events = [
        StreamEvent("1", good),
        StreamEvent("2", '{"event_id": 2, "occurred'),
        StreamEvent("3", '{"event_id": 3}'),
    ]

    result = sink.write(events)

    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as connection:
        dead = connection.execute(
            "SELECT record::VARCHAR, reason FROM raw._dead_letters ORDER BY reason"
        ).fetchall()
    assert [event_id for event_id, _, _ in raw_events(tmp_path)] == [1]
    assert result.dead_letters == 2 and len(dead) == 2
    assert "stream event 2" in dead[0][1] and "stream event 3" in dead[1][1]
    assert "occurred_at" in dead[1][1]
    assert stored_checkpoint(tmp_path) == "3"
