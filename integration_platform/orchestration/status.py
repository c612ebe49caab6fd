"""A client's status per source, read from Dagster: the latest run, its figures, the last error,
and when each asset last materialized for this client."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from integration_platform.orchestration.orchestrator import (
    CLIENT_TAG,
    PART_TAG,
    SOURCE_TAG,
    STAGE_TAG,
    TRANSFORM_STAGE,
)
from integration_platform.orchestration.runs import Run, RunReader

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
RUNS_LOOKED_AT = 50


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
    def __init__(self, reader: RunReader) -> None:
        self.reader = reader

    def client_runs(self, client_id: str) -> list[Run]:
        return self.reader.runs({CLIENT_TAG: client_id}, limit=RUNS_LOOKED_AT)

    def source_status(self, runs: list[Run], source: str) -> StageStatus:
        """A source's raw stage: its daily part and its reference part (separate runs, since a
        run has one kind of partition) read as one."""
        mine = [r for r in runs if r.tags.get(SOURCE_TAG) == source]
        parts: dict[str, list[Run]] = {}
        for run in mine:
            parts.setdefault(run.tags.get(PART_TAG, source), []).append(run)
        stages = [self._stage(part_runs) for part_runs in parts.values()]
        if len(stages) < 2:
            return stages[0] if stages else StageStatus("never_run")
        return _combined(stages)

    def transform_status(self, runs: list[Run]) -> StageStatus:
        return self._stage([r for r in runs if r.tags.get(STAGE_TAG) == TRANSFORM_STAGE])

    def _stage(self, runs: list[Run]) -> StageStatus:
        """`runs` newest first."""
        if not runs:
            return StageStatus("never_run")
        latest = runs[0]
        figures: dict[str, int] = {}
        for asset_figures in latest.figures_per_asset().values():
            for label, name in FIGURES.items():
                if label in asset_figures:
                    figures[name] = figures.get(name, 0) + int(asset_figures[label])
        freshness: dict[str, datetime] = {}
        for run in runs:
            for materialization in run.materializations:
                key = "/".join(materialization.asset_key)
                if key not in freshness or materialization.at > freshness[key]:
                    freshness[key] = materialization.at
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
