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
twice asks for nothing new. While a drain of a source is queued or running it waits, and the
next batch simply grows. Events a failed run left behind are asked for again after
`stranded_after_seconds` (at most once per such interval). Dagster's run retries
(dagster.yaml) retry a failed drain first.
(No `from __future__ import annotations`: Dagster reads the config and resource annotations.)
"""

import json
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
    DefaultSensorStatus,
    JobDefinition,
    MetadataValue,
    OpExecutionContext,
    RunConfig,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    in_process_executor,
    job,
    op,
    partition_loading_context,
    sensor,
)

from integration_platform.assets.partitions import partition_key, partitions_for
from integration_platform.assets.raw import raw_asset_key
from integration_platform.assets.resources import LandingZoneResource, WarehouseResource
from integration_platform.clients.slugs import DEMO_CLIENT_ID
from integration_platform.specs.models import SourceSpec
from integration_platform.webhooks.drain import BatchDrain
from integration_platform.webhooks.inbox import Batch, Inbox, inbox_path

DRAIN_JOB = "drain_webhooks"
DRAIN_OP = "drain_webhook_batch"
SENSOR_NAME = "webhook_inbox_sensor"
SOURCE_TAG = "integration_platform/webhook_source"
BATCH_TAG = "integration_platform/webhook_batch"
IN_FLIGHT = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
             DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


class WebhookInboxResource(ConfigurableResource["WebhookInboxResource"]):
    """The receiver's durable inbox (SQLite), read by the sensor and drained by the job."""

    path: str
    max_batch_events: int = 10_000
    """Events per drain run at most; a longer backlog becomes several runs."""
    retention_days: float = 7.0
    """How long drained events (and rejections) stay, to recognise late redeliveries."""

    def inbox(self) -> Inbox:
        return Inbox(Path(self.path))


def default_inbox_resource() -> WebhookInboxResource:
    return WebhookInboxResource(path=str(inbox_path()))


class DrainConfig(Config):
    source: str
    """The source whose events to drain."""
    first_seq: int
    """First arrival number of the batch (inclusive)."""
    last_seq: int
    """Last arrival number of the batch (inclusive)."""


def build_drain_job(specs: Mapping[str, SourceSpec]) -> JobDefinition:
    @op(name=DRAIN_OP, description="Land one batch of inbox events in the raw tables (merge "
                                   "on primary key) and mark them drained.")
    def drain_webhook_batch(context: OpExecutionContext, config: DrainConfig,
                            webhook_inbox: WebhookInboxResource,
                            warehouse: WarehouseResource, landing: LandingZoneResource) -> None:
        spec = specs[config.source]
        with webhook_inbox.inbox() as inbox:
            drain = BatchDrain(spec, inbox, landing.zone(), warehouse.warehouse(),
                               publish=warehouse.publish, keep_attempts=landing.keep_attempts)
            result = drain.run(config.first_seq, config.last_seq, context.run_id)
            forgotten = inbox.prune(
                (datetime.now(UTC) - timedelta(days=webhook_inbox.retention_days)).isoformat())
        if forgotten:
            context.log.info(f"forgot {forgotten} inbox row(s) older than "
                             f"{webhook_inbox.retention_days:g} days")
        if not result.events:
            context.log.info(f"batch {config.source}:{config.first_seq}-{config.last_seq} "
                             "was drained already; nothing to do")
        for drained in result.partitions:
            # Pushed events are the demo client's (the receiver verifies its secret).
            endpoint = spec.endpoints[drained.endpoint]
            key = partition_key(DEMO_CLIENT_ID,
                                drained.partition if endpoint.is_partitioned else None)
            with partition_loading_context(dynamic_partitions_store=context.instance):
                known = partitions_for(endpoint).has_partition_key(key)
            if not known:
                context.log.warning(
                    f"{drained.endpoint}: loaded {drained.result.rows} row(s) under "
                    f"{key}, outside the asset's partitions")
                continue
            context.log_event(AssetMaterialization(
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
                }))
        context.log.info(f"drained {result.marked} event(s) into "
                         f"{len(result.partitions)} raw partition(s)")

    # One op: a step subprocess (the multiprocess default) would only add start-up time.
    @job(name=DRAIN_JOB, executor_def=in_process_executor,
         description="Drain one batch of the webhook inbox into the raw tables through the "
                     f"raw loader (launched by {SENSOR_NAME}).")
    def drain_webhooks() -> None:
        drain_webhook_batch()

    return drain_webhooks


def _drain_in_flight(instance: DagsterInstance, source: str) -> bool:
    runs = instance.get_runs(filters=RunsFilter(job_name=DRAIN_JOB, statuses=IN_FLIGHT,
                                                tags={SOURCE_TAG: source}), limit=1)
    return bool(runs)


def _run_request(batch: Batch, run_key: str) -> RunRequest:
    return RunRequest(
        run_key=run_key,
        run_config=RunConfig(ops={DRAIN_OP: DrainConfig(
            source=batch.source, first_seq=batch.first_seq, last_seq=batch.last_seq)}),
        tags={SOURCE_TAG: batch.source, BATCH_TAG: batch.key})


def build_webhook_sensor(specs: Mapping[str, SourceSpec], drain_job: JobDefinition, *,
                         minimum_interval_seconds: int = 10,
                         stranded_after_seconds: float = 300.0,
                         max_runs_per_tick: int = 5) -> SensorDefinition:
    sources = sorted(name for name, spec in specs.items() if spec.webhooks is not None)

    @sensor(name=SENSOR_NAME, job=drain_job, minimum_interval_seconds=minimum_interval_seconds,
            default_status=DefaultSensorStatus.RUNNING,
            description="Launches a drain_webhooks run per batch of webhook events waiting in "
                        "the inbox; cursor: the last arrival number handed to a run, per "
                        "source.")
    def webhook_inbox_sensor(context: SensorEvaluationContext,
                             webhook_inbox: WebhookInboxResource) -> SensorResult:
        cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        requests: list[RunRequest] = []
        waiting: list[str] = []
        now = time.time()
        cutoff = (datetime.now(UTC) - timedelta(seconds=stranded_after_seconds)).isoformat()
        with webhook_inbox.inbox() as inbox:
            for source in sources:
                if _drain_in_flight(context.instance, source):
                    waiting.append(source)
                    continue
                after = int(cursor.get(source, 0))
                stranded = inbox.stranded_batch(source, up_to_seq=after, received_before=cutoff,
                                                max_events=webhook_inbox.max_batch_events)
                if stranded is not None:
                    attempt = int(now // max(stranded_after_seconds, 1.0))
                    requests.append(_run_request(stranded, f"{stranded.key}:again-{attempt}"))
                while len(requests) < max_runs_per_tick:
                    batch = inbox.next_batch(source, after_seq=after,
                                             max_events=webhook_inbox.max_batch_events)
                    if batch is None:
                        break
                    requests.append(_run_request(batch, batch.key))
                    after = batch.last_seq
                cursor[source] = after
        skip = None
        if not requests:
            skip = (f"a drain is already queued or running for {', '.join(waiting)}" if waiting
                    else "no undrained webhook events")
        return SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True),
                            skip_reason=skip)

    return webhook_inbox_sensor
