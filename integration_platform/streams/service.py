"""The stream consumer process: every selected stream of the specs, side by side, until stopped.

SIGTERM and SIGINT stop it cleanly: each stream stops reading, flushes what it has read into
raw (checkpoint included) and publishes the read-only copy; a second signal is not needed. A
SIGKILL loses nothing either: the next start resumes after the checkpoint in the warehouse.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop

from integration_platform import environment
from integration_platform.landing.warehouse import Warehouse
from integration_platform.landing.zone import Folder, landing_root
from integration_platform.logs import get_logger
from integration_platform.specs.models import SourceSpec
from integration_platform.streams.consumer import ConsumerStats, StreamConsumer
from integration_platform.streams.dagster_reports import StreamLoadReporter
from integration_platform.streams.raw_sink import RawStreamSink

_log = get_logger("integration_platform.streams")


@dataclass(frozen=True)
class Locations:
    """Where the consumer writes: the same places the raw assets use. `landing` is a folder or
    object storage (LANDING_URL); `landing_scratch` holds what object storage cannot (leases,
    DuckDB's spill files), as the landing resource's `state_root` does for the pulls."""

    warehouse: Path
    landing: Folder
    rate_limit_state: Path
    landing_scratch: Path | None = None

    @classmethod
    def from_environment(cls) -> Locations:
        """The warehouse, `LANDING_URL` (default the data folder's `landing/`) and the state
        folder, resolved as the raw assets' resources resolve them (assets/resources.py)."""
        state = environment.data_dir() / "state"
        return cls(
            environment.warehouse_path(),
            landing_root(environment.landing_url()),
            state / "ratelimit",
            landing_scratch=state / "landing" / "_streams",
        )


def select_streams(
    specs: dict[str, SourceSpec], source: str | None, stream: str | None
) -> list[tuple[SourceSpec, str]]:
    """(spec, stream name) for every stream the filters let through; ValueError if none do."""
    if source is not None and source not in specs:
        raise ValueError(f"no source {source!r}; known: {', '.join(sorted(specs)) or 'none'}")
    chosen = [
        (spec, name)
        for spec in specs.values()
        if source in (None, spec.source)
        for name in spec.streams
        if stream in (None, name)
    ]
    if not chosen:
        declared = [f"{spec.source}.{name}" for spec in specs.values() for name in spec.streams]
        wanted = ".".join(part for part in (source, stream) if part) or "any source"
        raise ValueError(
            f"no stream matches {wanted}; declared streams: "
            f"{', '.join(declared) or 'none (add `streams:` to a spec)'}"
        )
    return chosen


async def consume_streams(
    chosen: list[tuple[SourceSpec, str]],
    where: Locations,
    *,
    stop: asyncio.Event,
    max_events: int | None = None,
    idle_timeout_seconds: float = 60.0,
    publish_every_seconds: float = 60.0,
    reporter: StreamLoadReporter | None = None,
) -> list[ConsumerStats]:
    """Run one consumer per stream; the first to fail stops the others (cleanly), then raises.
    With a `reporter`, the loads are reported to Dagster (and what is pending once they stop)."""
    run_id = f"stream-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    warehouse = Warehouse(where.warehouse)
    consumers = [
        StreamConsumer(
            spec,
            name,
            RawStreamSink(
                spec,
                name,
                warehouse=warehouse,
                landing_root=where.landing,
                landing_scratch=where.landing_scratch,
                run_id=run_id,
                publish_every_seconds=publish_every_seconds,
                reporter=reporter,
            ),
            idle_timeout_seconds=idle_timeout_seconds,
            max_events=max_events,
            rate_limit_dir=where.rate_limit_state,
        )
        for spec, name in chosen
    ]
    tasks = [asyncio.create_task(consumer.run(stop)) for consumer in consumers]
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    if any(task.exception() for task in done):
        stop.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    if reporter is not None:
        await asyncio.to_thread(reporter.flush)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [consumer.stats for consumer in consumers]


def run_streams(
    chosen: list[tuple[SourceSpec, str]], where: Locations, **options: Any
) -> list[ConsumerStats]:
    """`consume_streams` in its own event loop, stopped by SIGTERM or SIGINT."""

    async def main() -> list[ConsumerStats]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, _stopper(stop, signum))
        return await consume_streams(chosen, where, stop=stop, **options)

    # uvloop, as the sandbox and uvicorn use: measured 1.5x the events/s of asyncio's own loop
    # when reading the stream alone (the reader's share of a core matters on small machines).
    return uvloop.run(main())


def _stopper(stop: asyncio.Event, signum: int) -> Any:
    def handle() -> None:
        _log.info("stream_stop_requested", signal=signal.Signals(signum).name)
        stop.set()

    return handle
