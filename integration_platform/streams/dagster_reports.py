"""Stream loads told to Dagster: runless `AssetMaterialization`s of the raw partitions a
consumer wrote, so the UI shows them and declarative automation counts them as updates.

Loads happen outside any run, every few seconds; one event per flush would flood the event log.
Rows are added up per (asset, partition) and reported at most once every `report_every_seconds`
(and once more when the consumer stops).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    PartitionsDefinition,
    partition_loading_context,
)

from integration_platform.assets.partitions import partition_key, partitions_for
from integration_platform.assets.raw import raw_asset_key
from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.logs import get_logger
from integration_platform.specs.models import SourceSpec

_log = get_logger("integration_platform.streams")
DEFAULT_REPORT_EVERY_SECONDS = 300.0


@dataclass
class _Loaded:
    stream: str
    partitions: PartitionsDefinition
    rows: int = 0
    events: int = 0
    batches: int = 0


class StreamLoadReporter:
    """Collects what the sinks loaded; reports it to the Dagster instance, throttled.

    Sinks call `loaded` from their worker threads (one per stream), hence the lock.
    """

    def __init__(
        self,
        instance: DagsterInstance,
        *,
        report_every_seconds: float = DEFAULT_REPORT_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.instance = instance
        self.report_every_seconds = report_every_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[tuple[AssetKey, str], _Loaded] = {}
        self._reported_at = -math.inf

    def loaded(
        self,
        spec: SourceSpec,
        stream: str,
        endpoint: str,
        days: Mapping[str | None, tuple[int, int]],
    ) -> None:
        """One batch is in raw: (rows, events) per UTC day (None: an unpartitioned endpoint)."""
        config = spec.endpoints[endpoint]
        asset_key = raw_asset_key(spec.source, endpoint)
        with self._lock:
            for day, (rows, events) in days.items():
                # Streamed events are the demo client's, as the sink's rows are.
                partition = partition_key(DEMO_CLIENT_ID, day if config.is_partitioned else None)
                pending = self._pending.get((asset_key, partition))
                if pending is None:
                    pending = _Loaded(f"{spec.source}.{stream}", partitions_for(config))
                    self._pending[(asset_key, partition)] = pending
                pending.rows += rows
                pending.events += events
                pending.batches += 1
            if self._clock() - self._reported_at >= self.report_every_seconds:
                self._report_locked()

    def flush(self) -> None:
        """Report what is pending now, whatever the interval (the consumer is stopping)."""
        with self._lock:
            self._report_locked()

    def _report_locked(self) -> None:
        self._reported_at = self._clock()
        pending, self._pending = self._pending, {}
        reported = 0
        for (asset_key, partition), loaded in pending.items():
            with partition_loading_context(dynamic_partitions_store=self.instance):
                known = loaded.partitions.has_partition_key(partition)
            if not known:  # e.g. today's: a daily partition exists once its day has ended
                _log.warning(
                    "stream_load_not_reported",
                    asset=asset_key.to_user_string(),
                    partition=partition,
                    rows=loaded.rows,
                    reason="outside the asset's partitions",
                )
                continue
            try:
                self.instance.report_runless_asset_event(
                    AssetMaterialization(
                        asset_key=asset_key,
                        partition=partition,
                        description=f"{loaded.events} stream event(s) merged on primary key",
                        metadata={
                            "rows": loaded.rows,
                            "events": loaded.events,
                            "batches": loaded.batches,
                            "via": "stream",
                            "stream": loaded.stream,
                        },
                    )
                )
            except Exception as exc:  # the rows are in raw; Dagster hears of them next time
                _log.warning(
                    "stream_report_failed",
                    asset=asset_key.to_user_string(),
                    partition=partition,
                    error=f"{type(exc).__name__}: {exc}",
                )
                self._pending.setdefault((asset_key, partition), loaded)
                continue
            reported += 1
        if reported:
            _log.info("stream_loads_reported", partitions=reported)


@contextmanager
def reporter_for_dagster_home(
    report_every_seconds: float = DEFAULT_REPORT_EVERY_SECONDS,
) -> Iterator[StreamLoadReporter | None]:
    """A reporter into the instance of $DAGSTER_HOME (as `make run` sets it); None without one."""
    home = os.environ.get("DAGSTER_HOME")
    if not home or not os.path.isdir(home):
        reason = f"DAGSTER_HOME {home} is not a directory" if home else "DAGSTER_HOME is not set"
        _log.warning("stream_reports_off", reason=f"{reason}: loads are not reported to Dagster")
        yield None
        return
    with DagsterInstance.get() as instance:
        yield StreamLoadReporter(instance, report_every_seconds=report_every_seconds)
