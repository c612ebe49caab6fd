"""Reading runs back from Dagster: a client's or a sync's runs, their materializations, errors,
and the latest materialization and run of assets.

A raw run over a partition range reports one materialization per partition, each carrying the
whole run's figures (records, retries, ...): figures are taken once per asset and run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from integration_platform.orchestration.dagster_graphql import DagsterGraphQL, DagsterRefused

RUNS_QUERY = """
query Runs($filter: RunsFilter, $limit: Int) {
  runsOrError(filter: $filter, limit: $limit) {
    __typename
    ... on Runs { results {
  runId status creationTime startTime endTime
  tags { key value }
  assetSelection { path }
  stepStats { stepKey status
    materializations { assetKey { path } timestamp
      metadataEntries { label
        ... on IntMetadataEntry { intValue }
        ... on FloatMetadataEntry { floatValue } } } } } }
    ... on Error { message }
  }
}
"""
LOGS_QUERY = """
query Logs($runId: ID!, $cursor: String) {
  logsForRun(runId: $runId, afterCursor: $cursor, limit: 500) {
    __typename
    ... on EventConnection { cursor hasMore events {
      __typename
      ... on ExecutionStepFailureEvent { stepKey message
        error { message } failureMetadata { description } }
      ... on RunFailureEvent { message error { message } } } }
    ... on Error { message }
  }
}
"""
ASSETS_LATEST_QUERY = """
query AssetsLatest($keys: [AssetKeyInput!]!) {
  assetsLatestInfo(assetKeys: $keys) {
    assetKey { path }
    latestMaterialization { runId timestamp }
    latestRun { runId status creationTime startTime endTime tags { key value } }
  }
}
"""
ACTIVE_RUN_STATUSES = frozenset(
    {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "MANAGED", "CANCELING"}
)


@dataclass(frozen=True)
class Materialization:
    asset_key: tuple[str, ...]
    at: datetime
    figures: dict[str, float]


@dataclass(frozen=True)
class Run:
    run_id: str
    status: str
    tags: dict[str, str]
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    materializations: list[Materialization] = field(default_factory=list)
    assets: tuple[tuple[str, ...], ...] = ()  # the run's asset selection

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_RUN_STATUSES

    @property
    def will_retry(self) -> bool:
        """Dagster's run retries will launch another run for this failed one."""
        return self.status == "FAILURE" and self.tags.get("dagster/will_retry") == "true"

    def figures_per_asset(self) -> dict[tuple[str, ...], dict[str, float]]:
        """Each asset's figures in this run, counted once however many partitions it had."""
        found: dict[tuple[str, ...], dict[str, float]] = {}
        for materialization in self.materializations:
            found.setdefault(materialization.asset_key, materialization.figures)
        return found


def _time(value: float | str | None) -> datetime | None:
    if value is None:
        return None
    seconds = float(value)
    if seconds > 1e11:  # event timestamps come in milliseconds
        seconds /= 1000
    return datetime.fromtimestamp(seconds, UTC)


def _run(node: dict[str, Any]) -> Run:
    materializations = []
    for step in node.get("stepStats") or []:
        for event in step.get("materializations") or []:
            figures: dict[str, float] = {}
            for entry in event.get("metadataEntries") or []:
                value = entry.get("intValue", entry.get("floatValue"))
                if value is not None:
                    figures[entry["label"]] = value
            materializations.append(
                Materialization(
                    tuple(event["assetKey"]["path"]),
                    _time(event["timestamp"]) or datetime.now(UTC),
                    figures,
                )
            )
    created = _time(node.get("creationTime")) or datetime.now(UTC)
    return Run(
        run_id=node["runId"],
        status=node["status"],
        tags={t["key"]: t["value"] for t in node.get("tags") or []},
        created_at=created,
        started_at=_time(node.get("startTime")),
        ended_at=_time(node.get("endTime")),
        materializations=materializations,
        assets=tuple(tuple(a["path"]) for a in node.get("assetSelection") or []),
    )


@dataclass(frozen=True)
class AssetLatest:
    """An asset's latest materialization (its run and when) and the latest run planned to
    materialize it."""

    asset_key: tuple[str, ...]
    materialized_by: str | None
    materialized_at: datetime | None
    latest_run: Run | None


class RunReader:
    def __init__(self, graphql: DagsterGraphQL) -> None:
        self.graphql = graphql

    def runs(self, tags: dict[str, str], limit: int = 50) -> list[Run]:
        """Runs carrying every one of `tags`, newest first."""
        data = self.graphql.execute(
            RUNS_QUERY,
            {
                "filter": {"tags": [{"key": k, "value": v} for k, v in sorted(tags.items())]},
                "limit": limit,
            },
        )
        result = data["runsOrError"]
        if result["__typename"] != "Runs":
            raise DagsterRefused(f"Dagster could not list runs: {result.get('message')}")
        return [_run(node) for node in result["results"]]

    def by_ids(self, run_ids: set[str]) -> dict[str, Run]:
        if not run_ids:
            return {}
        data = self.graphql.execute(
            RUNS_QUERY, {"filter": {"runIds": sorted(run_ids)}, "limit": len(run_ids)}
        )
        result = data["runsOrError"]
        if result["__typename"] != "Runs":
            raise DagsterRefused(f"Dagster could not list runs: {result.get('message')}")
        return {run.run_id: run for run in map(_run, result["results"])}

    def assets_latest(self, keys: list[tuple[str, ...]]) -> list[AssetLatest]:
        if not keys:
            return []
        data = self.graphql.execute(
            ASSETS_LATEST_QUERY, {"keys": [{"path": list(key)} for key in keys]}
        )
        found = []
        for info in data["assetsLatestInfo"]:
            materialization = info.get("latestMaterialization") or {}
            found.append(
                AssetLatest(
                    tuple(info["assetKey"]["path"]),
                    materialization.get("runId"),
                    _time(materialization.get("timestamp")),
                    _run(info["latestRun"]) if info.get("latestRun") else None,
                )
            )
        return found

    def failure(self, run_id: str) -> str | None:
        """What made a finished run fail, in plain words (the step's Failure description)."""
        return _failure(self.graphql, run_id)


@lru_cache(maxsize=512)  # a finished run's failure never changes
def _failure(graphql: DagsterGraphQL, run_id: str) -> str | None:
    cursor: str | None = None
    step_errors: dict[str, str] = {}  # by step: its last failure (a retried step fails again)
    run_error: str | None = None
    for _ in range(20):  # at most 10,000 events
        data = graphql.execute(LOGS_QUERY, {"runId": run_id, "cursor": cursor})
        connection = data["logsForRun"]
        if connection["__typename"] != "EventConnection":
            return None
        for event in connection["events"]:
            if event["__typename"] == "ExecutionStepFailureEvent":
                step_errors[event.get("stepKey") or ""] = _plain(event)
            elif event["__typename"] == "RunFailureEvent":
                run_error = _plain(event)
        if not connection["hasMore"]:
            break
        cursor = connection["cursor"]
    if step_errors:
        # A run holds several assets (a sync's sources): every step that failed.
        return "; ".join(dict.fromkeys(step_errors.values()))
    return run_error


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
# A quoted command line (dbt's lists every model it selected): noise in a reason.
LONG_QUOTED = re.compile(r"`[^`]{200,}`")
MAX_ERROR_CHARS = 1500


def _plain(event: dict[str, Any]) -> str:
    """A Failure's description as written; else the exception's first line, never a trace."""
    description = (event.get("failureMetadata") or {}).get("description")
    if description:
        text = LONG_QUOTED.sub("`…`", ANSI_ESCAPE.sub("", str(description))).strip()
        if len(text) > MAX_ERROR_CHARS:
            text = text[:MAX_ERROR_CHARS].rstrip() + " … (the whole message is in the run's logs)"
        return text
    error = (event.get("error") or {}).get("message") or event.get("message") or ""
    first = str(error).strip().splitlines()[0] if str(error).strip() else "the run failed"
    prefix = f"{event['stepKey']}: " if event.get("stepKey") else ""
    return prefix + first
