"""Reconciliation: a daily pull of the endpoints webhooks feed, filling whatever a push missed.

Webhooks are at-least-once at best: a vendor gives up after its retries, an event is lost in
transit, the receiver was down. So for every source with webhooks, a job pulls the endpoints
its routes feed (billing: invoices and payments) for one day through the ordinary raw assets
with `full_refresh: true`, which replaces that day's rows with what the API has now: the
table then equals the API for that partition, whatever the webhooks did.

The schedule runs it for the day that just ended (UTC) at the source's `schedule:` cron, or
03:00 UTC without one. When the source has its own `schedule:`, its daily pull (see
`schedules.py`) already re-fetches that day, so the reconciliation schedule starts stopped
to avoid pulling the same day twice; switch it on in the UI to reconcile regardless.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from dagster import (
    AssetSelection,
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    RunConfig,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
)

from integration_platform.assets.partitions import CLIENT_TAG, partition_key
from integration_platform.assets.raw import RawLoadConfig, raw_asset_key
from integration_platform.automation.switch import default_schedule_status
from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.run_kinds import KIND_TAG, RECONCILIATION
from integration_platform.specs.models import SourceSpec

if TYPE_CHECKING:  # not exported at dagster's top level
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

DEFAULT_CRON = "0 3 * * *"


def reconciliation_job_name(source: str) -> str:
    return f"reconcile_{source}_webhooks"


def pushed_endpoints(spec: SourceSpec) -> list[str]:
    """The daily-partitioned endpoints the source's webhook routes write into."""
    if spec.webhooks is None:
        return []
    targets = set(spec.webhooks.routes.values())
    return sorted(e for e in targets if spec.endpoints[e].is_partitioned)


def build_reconciliation(
    specs: Mapping[str, SourceSpec],
) -> tuple[list[UnresolvedAssetJobDefinition], list[ScheduleDefinition]]:
    jobs: list[UnresolvedAssetJobDefinition] = []
    schedules: list[ScheduleDefinition] = []
    for source, spec in sorted(specs.items()):
        endpoints = pushed_endpoints(spec)
        if not endpoints:
            continue
        windows = {
            (spec.endpoints[e].partitions.start, spec.endpoints[e].partitions.end)
            for e in endpoints
        }
        if len(windows) > 1:
            raise ValueError(
                f"{source}: the endpoints webhooks feed ({', '.join(endpoints)}) have different "
                "partition start/end dates, so one reconciliation job cannot cover them; give "
                "them the same `partitions.start` and `end`"
            )
        keys = [raw_asset_key(source, e) for e in endpoints]
        job = define_asset_job(
            reconciliation_job_name(source),
            selection=AssetSelection.assets(*keys),
            config=RunConfig(
                ops={key.to_python_identifier(): RawLoadConfig(full_refresh=True) for key in keys}
            ),
            description=f"Pull one day of the {source} endpoints its webhooks feed "
            f"({', '.join(endpoints)}) and replace that day's raw rows with the "
            "API's, filling whatever the webhooks missed.",
            tags={"integration_platform/reconciliation": source},
        )
        jobs.append(job)
        schedules.append(_reconciliation_schedule(spec, job))
    return jobs, schedules


def _reconciliation_schedule(
    spec: SourceSpec, job: UnresolvedAssetJobDefinition
) -> ScheduleDefinition:
    source = spec.source
    cron = spec.schedule or DEFAULT_CRON
    window = spec.endpoints[pushed_endpoints(spec)[0]].partitions
    assert window.start is not None
    days = DailyPartitionsDefinition(
        start_date=window.start.isoformat(),
        timezone="UTC",
        end_date=window.end.isoformat() if window.end else None,
    )
    # A source with a schedule pulls its days anyway: its reconciliation starts stopped.
    status = DefaultScheduleStatus.STOPPED if spec.schedule else default_schedule_status()

    @schedule(
        name=f"{reconciliation_job_name(source)}_daily",
        cron_schedule=cron,
        job=job,
        execution_timezone="UTC",
        default_status=status,
        description=f"At {cron} (UTC), reconcile the {source} day that just ended with "
        "its API (webhooks may have missed events).",
    )
    def _reconcile_last_day(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        now = context.scheduled_execution_time or datetime.now(UTC)
        day = (now.astimezone(UTC).date() - timedelta(days=1)).isoformat()
        if not days.has_partition_key(day):
            return SkipReason(f"{day} is not a partition of the {source} endpoints")
        # Webhooks arrive for the demo client (the receiver checks its signing secret).
        return RunRequest(
            run_key=f"{reconciliation_job_name(source)}:{day}",
            partition_key=partition_key(DEMO_CLIENT_ID, day),
            tags={CLIENT_TAG: DEMO_CLIENT_ID, KIND_TAG: RECONCILIATION},
        )

    return _reconcile_last_day
