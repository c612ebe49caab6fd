"""A client's status per source, read from Dagster: each raw asset's latest run for the client,
its figures, the last error and when each asset last materialized for this client; and the
dbt stage, from the dbt assets' latest runs and materializations (shared by every client)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from integration_platform.orchestration.orchestrator import Orchestrator
from integration_platform.orchestration.planner import CLIENT_TAG, AssetKey
from integration_platform.orchestration.runs import Run

# Run statuses as a person reads them.
RUN_STATES = {
    "QUEUED": "queued",
    "NOT_STARTED": "queued",
    "STARTING": "queued",
    "MANAGED": "queued",
    "STARTED": "running",
    "CANCELING": "running",
    "SUCCESS": "succeeded",
    "FAILURE": "failed",
    "CANCELED": "canceled",
}
FIGURES = {
    "records": "records",
    "rows_loaded": "rows_loaded",
    "retries": "retries",
    "429s": "throttled_429s",
    "dead_letters": "dead_letters",
}
RUNS_LOOKED_AT = 100


@dataclass(frozen=True)
class LastError:
    message: str
    run_id: str
    at: datetime


@dataclass(frozen=True)
class StageStatus:
    """One source's raw stage, or the transform stage, as the latest runs tell it."""

    state: str  # never_run, queued, running, retrying, succeeded, failed, canceled
    run_id: str | None = None
    run_started_at: datetime | None = None
    run_ended_at: datetime | None = None
    figures: dict[str, int] = field(default_factory=dict)
    last_error: LastError | None = None
    freshness: dict[str, datetime] = field(default_factory=dict)


def _state(run: Run | None) -> str:
    if run is None:
        return "never_run"
    if run.will_retry:
        return "retrying"
    return RUN_STATES.get(run.status, run.status.lower())


class StatusReader:
    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator
        self.reader = orchestrator.reader

    def client_runs(self, client_id: str) -> list[Run]:
        return self.reader.runs({CLIENT_TAG: client_id}, limit=RUNS_LOOKED_AT)

    def source_status(self, runs: list[Run], source: str) -> StageStatus:
        """A source's raw stage from each of its raw assets' latest run for the client (its
        daily and its reference assets run apart, since a run has one kind of partition),
        read as one."""
        keys = [a.key for a in self.orchestrator.raw_assets(source)]
        groups: dict[str, set[AssetKey]] = {}
        for key in keys:
            latest = next((r for r in runs if key in r.assets), None)
            if latest is not None:
                groups.setdefault(latest.run_id, set()).add(key)
        stages = [
            self._stage([r for r in runs if group & set(r.assets)], group)
            for group in groups.values()
        ]
        if len(stages) < 2:
            return stages[0] if stages else StageStatus("never_run")
        return _combined(stages)

    def transform_status(self, sources: list[str]) -> StageStatus:
        """The dbt stage: the newest run of the dbt assets downstream of these sources, and
        when each of them last materialized."""
        dbt = [a.key for a in self.orchestrator.dbt_assets_after(sources)]
        infos = self.reader.assets_latest(dbt)
        latest = max(
            (i.latest_run for i in infos if i.latest_run is not None),
            key=lambda run: run.created_at,
            default=None,
        )
        freshness = {
            "/".join(i.asset_key): i.materialized_at for i in infos if i.materialized_at is not None
        }
        if latest is None:
            return StageStatus("never_run", freshness=dict(sorted(freshness.items())))
        last_error = None
        if latest.status == "FAILURE":
            message = self.reader.failure(latest.run_id) or "the run failed (no step error)"
            last_error = LastError(message, latest.run_id, latest.ended_at or latest.created_at)
        return StageStatus(
            _state(latest),
            latest.run_id,
            latest.started_at,
            latest.ended_at,
            {},
            last_error,
            dict(sorted(freshness.items())),
        )

    def _stage(self, runs: list[Run], keys: set[AssetKey]) -> StageStatus:
        """`runs` (of these assets) newest first."""
        if not runs:
            return StageStatus("never_run")
        latest = runs[0]
        figures: dict[str, int] = {}
        for key, asset_figures in latest.figures_per_asset().items():
            if key not in keys:
                continue
            for label, name in FIGURES.items():
                if label in asset_figures:
                    figures[name] = figures.get(name, 0) + int(asset_figures[label])
        freshness: dict[str, datetime] = {}
        for run in runs:
            for materialization in run.materializations:
                if materialization.asset_key not in keys:
                    continue
                shown = "/".join(materialization.asset_key)
                if shown not in freshness or materialization.at > freshness[shown]:
                    freshness[shown] = materialization.at
        failed = next((r for r in runs if r.status == "FAILURE"), None)
        last_error = None
        if failed is not None:
            message = self.reader.failure(failed.run_id) or "the run failed (no step error)"
            last_error = LastError(message, failed.run_id, failed.ended_at or failed.created_at)
        return StageStatus(
            _state(latest),
            latest.run_id,
            latest.started_at,
            latest.ended_at,
            figures,
            last_error,
            dict(sorted(freshness.items())),
        )


# The state that speaks for several parts: the one most in need of attention.
_STATE_WEIGHT = {
    "running": 0,
    "retrying": 1,
    "queued": 2,
    "failed": 3,
    "canceled": 4,
    "succeeded": 5,
    "never_run": 6,
}


def _combined(stages: list[StageStatus]) -> StageStatus:
    newest = max(stages, key=lambda s: s.run_started_at or datetime.min.replace(tzinfo=UTC))
    figures: dict[str, int] = {}
    freshness: dict[str, datetime] = {}
    for stage in stages:
        for name, value in stage.figures.items():
            figures[name] = figures.get(name, 0) + value
        freshness.update(stage.freshness)
    errors = [s.last_error for s in stages if s.last_error is not None]
    return StageStatus(
        state=min((s.state for s in stages), key=lambda state: _STATE_WEIGHT.get(state, 0)),
        run_id=newest.run_id,
        run_started_at=newest.run_started_at,
        run_ended_at=newest.run_ended_at,
        figures=figures,
        last_error=max(errors, key=lambda e: e.at) if errors else None,
        freshness=dict(sorted(freshness.items())),
    )
