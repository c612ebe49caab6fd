"""The webhook inbox sensor and the `drain_webhooks` job it launches, one run per inbox batch.

Why an op job and not an asset: the raw tables already are assets (`raw/<source>/<endpoint>`,
one partition per day, owned by the raw factory), and one batch of events writes into several
of them and several of their partitions at once. A second asset over the same tables would
split their ownership; an asset per batch would be a made-up table. So the drain is a plain
op job that loads through the raw layer's own loader and reports an AssetMaterialization for
every raw partition it touched: the asset's history shows webhook loads beside the pulls, and
downstream freshness and automation see the new rows.

The sensor keeps a cursor per source (the last arrival number handed to a run) and asks for a
run per batch of undrained events after it, with the batch as the run key, so a tick evaluated
twice asks for nothing new. A batch waits until its oldest event has waited
`batch_window_seconds` (5 minutes by default) or it holds `max_batch_events`: a source that
pushes all the time makes about 12 drain runs an hour, not one per tick, and the Runs view
stays readable. While a drain of a source is queued or running it waits, and the next batch
simply grows. Events a failed run left behind are asked for again `stranded_after_seconds`
after they were due (at most once per such interval). Dagster's run retries (dagster.yaml)
retry a failed drain first. Drain runs carry the tag `integration_platform/kind=webhook_drain`.
(No `from __future__ import annotations`: Dagster reads the config and resource annotations.)
"""

import json
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dagster import (
    AssetMaterialization,
    Config,
    ConfigurableResource,
    DagsterInstance,
    DagsterRunStatus,
    JobDefinition,
    MetadataValue,
    OpExecutionContext,
    RunConfig,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    job,
    op,
    partition_loading_context,
    sensor,
)

from integration_platform.assets.partitions import partition_key, partitions_for
from integration_platform.assets.raw import raw_asset_key
from integration_platform.assets.resources import LandingZoneResource, WarehouseResource
from integration_platform.automation.switch import default_status
from integration_platform.celery_workers import WAREHOUSE_STEP_TAGS, run_executor
from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.run_kinds import KIND_TAG, WEBHOOK_DRAIN
from integration_platform.specs.models import SourceSpec
from integration_platform.webhooks.drain import BatchDrain
from integration_platform.webhooks.inbox import Batch, Inbox, inbox_path

DRAIN_JOB = "drain_webhooks"
DRAIN_OP = "drain_webhook_batch"
SENSOR_NAME = "webhook_inbox_sensor"
SOURCE_TAG = "integration_platform/webhook_source"
BATCH_TAG = "integration_platform/webhook_batch"
BATCH_WINDOW_VARIABLE = "WEBHOOK_BATCH_WINDOW_SECONDS"
IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


class WebhookInboxResource(ConfigurableResource["WebhookInboxResource"]):
    """The receiver's durable inbox (SQLite), read by the sensor and drained by the job."""

    path: str
    max_batch_events: int = 10_000
    """Events per drain run at most; a longer backlog becomes several runs, launched at once."""
    batch_window_seconds: float = 300.0
    """A source's next drain waits until its oldest undrained event has waited this long (or
    `max_batch_events` are waiting): about 3600 / window drain runs an hour per busy source.
    0 drains whatever is waiting at every tick."""
    retention_days: float = 7.0
    """How long drained events (and rejections) stay, to recognise late redeliveries."""

    def inbox(self) -> Inbox:
        return Inbox(Path(self.path))


def default_inbox_resource() -> WebhookInboxResource:
    """The inbox of `inbox_path()`; `WEBHOOK_BATCH_WINDOW_SECONDS` sets the batch window."""
    window = os.environ.get(BATCH_WINDOW_VARIABLE)
    if not window:
        return WebhookInboxResource(path=str(inbox_path()))
    try:
        seconds = float(window)
    except ValueError:
        raise ValueError(
            f"{BATCH_WINDOW_VARIABLE}={window!r} is not a number of seconds "
            "(e.g. 300; 0 drains at every sensor tick)"
        ) from None
    return WebhookInboxResource(path=str(inbox_path()), batch_window_seconds=seconds)


class DrainConfig(Config):
    source: str
    """The source whose events to drain."""
    first_seq: int
    """First arrival number of the batch (inclusive)."""
    last_seq: int
    """Last arrival number of the batch (inclusive)."""


def build_drain_job(specs: Mapping[str, SourceSpec]) -> JobDefinition:
    @op(
        name=DRAIN_OP,
        tags=WAREHOUSE_STEP_TAGS,
        description="Land one batch of inbox events in the raw tables (merge "
        "on primary key) and mark them drained.",
    )
    def drain_webhook_batch(
        context: OpExecutionContext,
        config: DrainConfig,
        webhook_inbox: WebhookInboxResource,
        warehouse: WarehouseResource,
        landing: LandingZoneResource,
    ) -> None:
        spec = specs[config.source]
        with webhook_inbox.inbox() as inbox:
            drain = BatchDrain(
                spec,
                inbox,
                landing.zone(),
                warehouse.warehouse(),
                publish=warehouse.publish,
                keep_attempts=landing.keep_attempts,
            )
            result = drain.run(config.first_seq, config.last_seq, context.run_id)
            forgotten = inbox.prune(
                (datetime.now(UTC) - timedelta(days=webhook_inbox.retention_days)).isoformat()
            )
        if forgotten:
            context.log.info(
                f"forgot {forgotten} inbox row(s) older than {webhook_inbox.retention_days:g} days"
            )
        if not result.events:
            context.log.info(
                f"batch {config.source}:{config.first_seq}-{config.last_seq} "
                "was drained already; nothing to do"
            )
        for drained in result.partitions:
            # Pushed events are the demo client's (the receiver verifies its secret).
            endpoint = spec.endpoints[drained.endpoint]
            key = partition_key(
                DEMO_CLIENT_ID, drained.partition if endpoint.is_partitioned else None
            )
            with partition_loading_context(dynamic_partitions_store=context.instance):
                known = partitions_for(endpoint).has_partition_key(key)
            if not known:
                context.log.warning(
                    f"{drained.endpoint}: loaded {drained.result.rows} row(s) under "
                    f"{key}, outside the asset's partitions"
                )
                continue
            context.log_event(
                AssetMaterialization(
                    asset_key=raw_asset_key(spec.source, drained.endpoint),
                    partition=key,
                    description=f"{drained.events} webhook event(s) merged on primary key",
                    metadata={
                        "via": "webhooks",
                        "webhook_events": drained.events,
                        "rows_loaded": drained.result.rows,
                        "rows_replaced": drained.result.rows_replaced,
                        "dead_letters": drained.result.dead_letters,
                        "table": drained.result.table,
                        "load_mode": "merge",
                        "landing_attempt": MetadataValue.path(str(drained.attempt)),
                        "inbox_batch": f"{config.source}:{config.first_seq}-{config.last_seq}",
                    },
                )
            )
        context.log.info(
            f"drained {result.marked} event(s) into {len(result.partitions)} raw partition(s)"
        )

    # One op, in the run's own process (a step subprocess would only add start-up time), or,
    # with workers, on the warehouse's queue: it writes to the warehouse.
    @job(
        name=DRAIN_JOB,
        executor_def=run_executor(),
        description="Drain one batch of the webhook inbox into the raw tables through the "
        f"raw loader (launched by {SENSOR_NAME}).",
    )
    def drain_webhooks() -> None:
        drain_webhook_batch()

    return drain_webhooks


def _drain_in_flight(instance: DagsterInstance, source: str) -> bool:
    runs = instance.get_runs(
        filters=RunsFilter(job_name=DRAIN_JOB, statuses=IN_FLIGHT, tags={SOURCE_TAG: source}),
        limit=1,
    )
    return bool(runs)


def _run_request(batch: Batch, run_key: str) -> RunRequest:
    return RunRequest(
        run_key=run_key,
        run_config=RunConfig(
            ops={
                DRAIN_OP: DrainConfig(
                    source=batch.source, first_seq=batch.first_seq, last_seq=batch.last_seq
                )
            }
        ),
        tags={SOURCE_TAG: batch.source, BATCH_TAG: batch.key, KIND_TAG: WEBHOOK_DRAIN},
    )


def _waited_seconds(batch: Batch, now: float) -> float:
    """How long the batch's oldest event has waited."""
    return now - datetime.fromisoformat(batch.first_received_at).timestamp()


def build_webhook_sensor(
    specs: Mapping[str, SourceSpec],
    drain_job: JobDefinition,
    *,
    minimum_interval_seconds: int = 10,
    stranded_after_seconds: float = 300.0,
    max_runs_per_tick: int = 5,
) -> SensorDefinition:
    sources = sorted(name for name, spec in specs.items() if spec.webhooks is not None)

    @sensor(
        name=SENSOR_NAME,
        job=drain_job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status(),
        description="Launches a drain_webhooks run per batch of webhook events waiting in "
        "the inbox, once the batch's oldest event has waited the inbox "
        "resource's batch_window_seconds (default 300) or max_batch_events "
        "are waiting; cursor: the last arrival number handed to a run, per "
        "source.",
    )
    def webhook_inbox_sensor(
        context: SensorEvaluationContext, webhook_inbox: WebhookInboxResource
    ) -> SensorResult:
        cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        requests: list[RunRequest] = []
        waiting: list[str] = []
        batching: list[str] = []
        now = time.time()
        window = webhook_inbox.batch_window_seconds
        # A handed-out event was due `window` after it arrived; stranded this long after that.
        cutoff = (
            datetime.now(UTC) - timedelta(seconds=stranded_after_seconds + window)
        ).isoformat()
        with webhook_inbox.inbox() as inbox:
            for source in sources:
                if _drain_in_flight(context.instance, source):
                    waiting.append(source)
                    continue
                after = int(cursor.get(source, 0))
                stranded = inbox.stranded_batch(
                    source,
                    up_to_seq=after,
                    received_before=cutoff,
                    max_events=webhook_inbox.max_batch_events,
                )
                if stranded is not None:
                    attempt = int(now // max(stranded_after_seconds, 1.0))
                    requests.append(_run_request(stranded, f"{stranded.key}:again-{attempt}"))
                while len(requests) < max_runs_per_tick:
                    batch = inbox.next_batch(
                        source, after_seq=after, max_events=webhook_inbox.max_batch_events
                    )
                    if batch is None:
                        break
                    waited = _waited_seconds(batch, now)
                    if batch.events < webhook_inbox.max_batch_events and waited < window:
                        batching.append(
                            f"{source} ({batch.events} event(s), the oldest {waited:.0f} s old)"
                        )
                        break
                    requests.append(_run_request(batch, batch.key))
                    after = batch.last_seq
                cursor[source] = after
        skip = None
        if not requests:
            reasons = []
            if waiting:
                reasons.append(f"a drain is already queued or running for {', '.join(waiting)}")
            if batching:
                reasons.append(
                    f"batching until the oldest event has waited {window:g} s or "
                    f"{webhook_inbox.max_batch_events} are waiting: "
                    f"{', '.join(batching)}"
                )
            skip = "; ".join(reasons) or "no undrained webhook events"
        return SensorResult(
            run_requests=requests, cursor=json.dumps(cursor, sort_keys=True), skip_reason=skip
        )

    return webhook_inbox_sensor
