"""A sync's state as Dagster tells it, read when asked (nothing drives it).

Raw runs queued or running: `extracting`. One failed or was canceled: `failed`, with the step's
error in plain words. All succeeded: `transforming` until every dbt asset downstream of the
sync's raw assets has a materialization from a run created after the last raw run ended
(Dagster's automation launches that run), and that run has ended (it published the copy the
API reads): `succeeded`. The newest such dbt run failed: `failed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from integration_platform.clients.syncs import Sync, SyncState
from integration_platform.clients.tables import utc_now
from integration_platform.orchestration.orchestrator import Orchestrator
from integration_platform.orchestration.planner import PART_TAG, RAW_STAGE, STAGE_TAG, SYNC_TAG
from integration_platform.orchestration.runs import Run, RunReader

# A sync still `queued` this long after its request: the request launching its runs never
# finished (the API stopped mid-launch); it fails so the client can sync again.
LAUNCH_ABANDONED_AFTER = timedelta(minutes=15)


@dataclass(frozen=True)
class Observed:
    state: SyncState
    error: str | None
    raw_runs: dict[str, str]
    transform_run_id: str | None


class SyncStateReader:
    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator
        self.reader: RunReader = orchestrator.reader

    def observe(self, sync: Sync) -> Observed:
        """The sync's state now (DagsterUnavailable / DagsterRefused: Dagster could not say)."""
        if sync.state == "queued":  # its request is still launching its runs
            if utc_now() - sync.created_at < LAUNCH_ABANDONED_AFTER:
                return Observed("queued", None, sync.raw_runs, None)
            return Observed(
                "failed",
                "the request that launched this sync's runs never finished (was the API "
                "stopped?); sync again",
                sync.raw_runs,
                None,
            )
        runs = self.reader.runs({SYNC_TAG: sync.id, STAGE_TAG: RAW_STAGE})
        latest: dict[str, Run] = {}
        for run in runs:  # newest first: Dagster's retries of a run carry its tags
            latest.setdefault(run.tags.get(PART_TAG, ""), run)
        raw_runs = {**sync.raw_runs, **{part: run.run_id for part, run in latest.items()}}
        missing = sorted(part for part in sync.raw_runs if part not in latest)
        if missing:
            return Observed(
                "failed",
                f"Dagster has no run of this sync for {', '.join(missing)} any more (deleted?); "
                "sync again",
                raw_runs,
                None,
            )
        if any(run.active or run.will_retry for run in latest.values()):
            return Observed("extracting", None, raw_runs, None)
        failed = {part: run for part, run in latest.items() if run.status != "SUCCESS"}
        if failed:
            reasons = [self.reason(run) for _, run in sorted(failed.items())]
            return Observed("failed", "; ".join(reasons), raw_runs, None)
        raw_ended = max(
            (run.ended_at or run.created_at for run in latest.values()), default=sync.created_at
        )
        return self._transform(sync, raw_ended, raw_runs)

    def _transform(self, sync: Sync, raw_ended: datetime, raw_runs: dict[str, str]) -> Observed:
        dbt = [a.key for a in self.orchestrator.dbt_assets_after(sync.sources)]
        if not dbt:
            return Observed("succeeded", None, raw_runs, None)
        infos = self.reader.assets_latest(dbt)
        materializing = self.reader.by_ids({i.materialized_by for i in infos if i.materialized_by})
        built = [materializing.get(i.materialized_by or "") for i in infos]
        # Ended too: a dbt build writes each model's materialization as the model ends, then
        # publishes the copy the API and BI tools read; until then the client would read the
        # marts as they were.
        if len(infos) == len(dbt) and all(
            run and run.created_at > raw_ended and not run.active for run in built
        ):
            newest = max((run for run in built if run), key=lambda run: run.created_at)
            return Observed("succeeded", None, raw_runs, newest.run_id)
        after = [
            i.latest_run
            for i in infos
            if i.latest_run is not None and i.latest_run.created_at > raw_ended
        ]
        newest_run = max(after, key=lambda run: run.created_at, default=None)
        if newest_run is None:
            return Observed("transforming", None, raw_runs, None)
        if newest_run.status in ("FAILURE", "CANCELED") and not newest_run.will_retry:
            return Observed(
                "failed", f"transform: {self.reason(newest_run)}", raw_runs, newest_run.run_id
            )
        return Observed("transforming", None, raw_runs, newest_run.run_id)

    def reason(self, run: Run) -> str:
        if run.status == "CANCELED":
            return f"run {run.run_id} was canceled"
        return self.reader.failure(run.run_id) or f"run {run.run_id} failed"
