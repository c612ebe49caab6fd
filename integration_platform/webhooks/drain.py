"""Lands inbox batches in the raw tables through the same landing zone and loader as pulls.

Per (endpoint, partition) of the batch: the events' objects land as pages of records (each page
the JSON list of them, its provenance the webhook delivery: arrival numbers first..last), in an
attempt that is complete before anything can see it, then `load_attempt(mode="merge")` under
the warehouse write lock
replaces the rows whose primary keys arrived and adds the new ones. Only after the warehouse
committed are the events marked drained, so a crash in between means a re-run merges the same
records again: the rows end up the same, never doubled. The read-only copy is published at
most once per `publish_every_seconds`: drains come every few seconds, and each publish copies
the whole warehouse file.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import orjson

from integration_platform.landing.loader import LoadResult, load_attempt
from integration_platform.landing.provenance import WebhookDelivery
from integration_platform.landing.warehouse import Warehouse
from integration_platform.landing.zone import (
    WEBHOOK_ATTEMPT_SUFFIX,
    Attempt,
    Folder,
    LandingZone,
)
from integration_platform.specs.models import SourceSpec
from integration_platform.webhooks.app import route_path
from integration_platform.webhooks.inbox import Inbox, StoredEvent
from integration_platform.webhooks.routing import EventRouter

RECORDS_PER_PAGE = 1000


@dataclass
class DrainedPartition:
    endpoint: str
    partition: str
    events: int
    result: LoadResult
    attempt: Folder


@dataclass
class DrainResult:
    source: str
    first_seq: int
    last_seq: int
    events: int = 0
    marked: int = 0
    partitions: list[DrainedPartition] = field(default_factory=list)


class BatchDrain:
    """Drains one batch (arrival numbers first..last of one source); safe to run again."""

    def __init__(
        self,
        spec: SourceSpec,
        inbox: Inbox,
        zone: LandingZone,
        warehouse: Warehouse,
        *,
        publish: bool = True,
        publish_every_seconds: float = 60.0,
        keep_attempts: int = 2,
    ) -> None:
        self.spec = spec
        self.router = EventRouter(spec)
        self.inbox, self.zone, self.warehouse = inbox, zone, warehouse
        self.publish = publish
        self.publish_every_seconds = publish_every_seconds
        self.keep_attempts = keep_attempts

    def run(self, first_seq: int, last_seq: int, run_id: str) -> DrainResult:
        result = DrainResult(self.spec.source, first_seq, last_seq)
        events = self.inbox.undrained(self.spec.source, first_seq, last_seq)
        result.events = len(events)
        if not events:
            return result  # drained already (a re-run of a finished batch)
        groups: dict[tuple[str, str], list[StoredEvent]] = defaultdict(list)
        for event in events:  # arrival order: the later state of an object wins in the merge
            groups[(event.endpoint, event.partition_key)].append(event)
        gone = sorted({endpoint for endpoint, _ in groups} - set(self.spec.endpoints))
        if gone:
            raise ValueError(
                f"{self.spec.source}: inbox events of batch {first_seq}-{last_seq} go to "
                f"endpoint(s) {', '.join(gone)}, no longer in the spec: put the endpoint back "
                "and re-run (the events wait in the inbox until they are drained)"
            )
        landed = {key: self._land(key[0], key[1], group, run_id) for key, group in groups.items()}
        with self.warehouse.locked():
            connection = duckdb.connect(str(self.warehouse.path))
            try:
                for (endpoint, partition), attempt in landed.items():
                    loaded = load_attempt(
                        connection,
                        spec=self.spec,
                        endpoint=endpoint,
                        attempt=attempt,
                        partition=partition,
                        run_id=run_id,
                        mode="merge",
                        on_breaking_drift="dead_letter",
                        memory_limit_mb=self.warehouse.load_memory_mb,
                    )
                    result.partitions.append(
                        DrainedPartition(
                            endpoint,
                            partition,
                            len(groups[(endpoint, partition)]),
                            loaded,
                            attempt.folder,
                        )
                    )
            finally:
                connection.close()
            if self.publish and self._publish_due():
                self.warehouse.publish()
        for drained in result.partitions:
            self.zone.prune(
                self.spec.source, drained.endpoint, drained.partition, keep=self.keep_attempts
            )
        result.marked = self.inbox.mark_drained(
            self.spec.source, [event.seq for event in events], run_id
        )
        return result

    def _publish_due(self) -> bool:
        published = self.warehouse.published_path
        return (
            not published.exists()
            or time.time() - published.stat().st_mtime >= self.publish_every_seconds
        )

    def _land(
        self, endpoint: str, partition: str, events: list[StoredEvent], run_id: str
    ) -> Attempt:
        """A complete attempt in the partition's folder, built aside and moved in whole.

        Built aside so a pull of the same partition running now never mistakes it for an
        unfinished attempt of its own to continue.
        """
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{run_id[:8]}{WEBHOOK_ATTEMPT_SUFFIX}"
        attempt = self.zone.staging_attempt(f"{self.spec.source}-{endpoint}-{partition}-{name}")
        url = f"webhook:{route_path(self.spec)}"
        for number, start in enumerate(range(0, len(events), RECORDS_PER_PAGE), start=1):
            chunk = events[start : start + RECORDS_PER_PAGE]
            records = [self.router.record(orjson.loads(event.body)) for event in chunk]
            attempt.write_page(
                number,
                orjson.dumps(records),
                records=len(records),
                url=url,
                fetched_at=max(datetime.fromisoformat(e.received_at) for e in chunk),
                run_id=run_id,
                provenance=WebhookDelivery(
                    route=route_path(self.spec), first_seq=chunk[0].seq, last_seq=chunk[-1].seq
                ),
            )
        attempt.mark_complete()
        return self.zone.move_in(attempt, self.spec.source, endpoint, partition, name)
