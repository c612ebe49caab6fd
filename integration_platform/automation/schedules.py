"""Schedules from the specs: each source's cron (UTC) fills the day that just ended.

They start RUNNING (`INTEGRATION_PLATFORM_AUTOMATION=off` starts them stopped); the dbt models
downstream refresh by themselves when the raw data lands (automation/marts.py).

A source with `schedule:` gets a job over its daily-partitioned raw assets, run for the last
complete day at the cron's time, and (if it has any) a job over its reference endpoints: one
run per registered client (the `clients` dynamic partitions), each with its own credentials.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from dagster import (
    AssetSelection,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
)

from integration_platform.assets.partitions import CLIENT_TAG, CLIENTS_PARTITIONS, partition_key
from integration_platform.assets.raw import raw_asset_key
from integration_platform.automation.switch import default_schedule_status
from integration_platform.run_kinds import KIND_TAG, SCHEDULED
from integration_platform.specs.models import SourceSpec

if TYPE_CHECKING:  # not exported at dagster's top level
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


def source_automation(
    specs: dict[str, SourceSpec],
) -> tuple[list[UnresolvedAssetJobDefinition], list[ScheduleDefinition]]:
    jobs: list[UnresolvedAssetJobDefinition] = []
    schedules: list[ScheduleDefinition] = []
    for source, spec in sorted(specs.items()):
        if not spec.schedule:
            continue
        daily = [e for e, c in spec.endpoints.items() if c.is_partitioned]
        reference = [e for e, c in spec.endpoints.items() if not c.is_partitioned]
        if daily:
            first_day = spec.endpoints[daily[0]].partitions.start
            job = define_asset_job(
                f"{source}_daily",
                selection=AssetSelection.assets(*(raw_asset_key(source, e) for e in daily)),
                description=f"Pull one day of every partitioned {source} endpoint.",
            )
            jobs.append(job)
            assert first_day is not None
            schedules.append(_daily_schedule(source, spec.schedule, job, first_day))
        if reference:
            job = define_asset_job(
                f"{source}_reference",
                selection=AssetSelection.assets(*(raw_asset_key(source, e) for e in reference)),
                description=f"Reload the {source} reference endpoints (not partitioned).",
            )
            jobs.append(job)
            schedules.append(_reference_schedule(source, spec.schedule, job))
    return jobs, schedules


def registered_clients(context: ScheduleEvaluationContext) -> list[str]:
    return sorted(context.instance.get_dynamic_partitions(CLIENTS_PARTITIONS))


def last_complete_day(
    source: str, when: datetime, first_day: date, clients: list[str]
) -> list[RunRequest] | SkipReason:
    """One run per client that fills the UTC day before `when` (the day that just ended)."""
    day = (when.astimezone(UTC) - timedelta(days=1)).date()
    if day < first_day:
        return SkipReason(f"{day} is before the first partition ({first_day})")
    if not clients:
        return SkipReason("no client is registered (the clients dynamic partitions are empty)")
    key = day.isoformat()
    return [
        RunRequest(
            run_key=f"{source}:{client}:{key}",
            partition_key=partition_key(client, key),
            tags={CLIENT_TAG: client, KIND_TAG: SCHEDULED},
        )
        for client in clients
    ]


def _daily_schedule(
    source: str, cron: str, job: UnresolvedAssetJobDefinition, first_day: date
) -> ScheduleDefinition:
    @schedule(
        name=f"{source}_daily_schedule",
        cron_schedule=cron,
        job=job,
        execution_timezone="UTC",
        default_status=default_schedule_status(),
        description=f"At {cron} (UTC), pull the {source} day that just ended, for each client.",
    )
    def _fill_last_day(context: ScheduleEvaluationContext) -> list[RunRequest] | SkipReason:
        return last_complete_day(
            source, context.scheduled_execution_time, first_day, registered_clients(context)
        )

    return _fill_last_day


def _reference_schedule(
    source: str, cron: str, job: UnresolvedAssetJobDefinition
) -> ScheduleDefinition:
    @schedule(
        name=f"{source}_reference_schedule",
        cron_schedule=cron,
        job=job,
        execution_timezone="UTC",
        default_status=default_schedule_status(),
        description=f"At {cron} (UTC), reload the {source} reference endpoints, for each client.",
    )
    def _reload(context: ScheduleEvaluationContext) -> list[RunRequest] | SkipReason:
        clients = registered_clients(context)
        if not clients:
            return SkipReason("no client is registered")
        stamp = (context.scheduled_execution_time or datetime.now(UTC)).isoformat()
        return [
            RunRequest(
                run_key=f"{source}:{client}:{stamp}",
                partition_key=client,
                tags={CLIENT_TAG: client, KIND_TAG: SCHEDULED},
            )
            for client in clients
        ]

    return _reload
