"""The main job in this process: a client's days of raw data, its reference data, then dbt.

`integration-platform materialize` and the demo run it. Each stage is one Dagster run in the
instance of `DAGSTER_HOME` (the UI lists them), executed in process: no step subprocesses, so
no start-up gap between steps, and a progress line per asset partition instead of Dagster's
console log.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TextIO

from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    DagsterInstance,
    Definitions,
    MultiPartitionsDefinition,
    define_asset_job,
)

from integration_platform.assets.partitions import CLIENT_TAG, CLIENTS, partition_key
from integration_platform.run_kinds import KIND_TAG, MATERIALIZE
from integration_platform.runs.progress import Echo, Progress

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"


class MainJobError(ValueError):
    """A request the main job cannot run (unknown client, empty selection, bad range)."""


@dataclass(frozen=True)
class Stage:
    """One run: assets that share a kind of partition."""

    name: str
    keys: tuple[AssetKey, ...]
    tags: dict[str, str]
    raw: bool
    # Checks the stage's assets' ops own on assets outside it: dbt's tests of its sources
    # (the raw tables) run in the dbt build, so they are checks of this stage.
    checks: tuple[AssetCheckKey, ...] = ()


@dataclass
class MainJobResult:
    success: bool
    run_ids: list[str] = field(default_factory=list)
    progress: Progress | None = None


def plan(
    defs: Definitions, *, client_id: str, start: date, end: date, selection: str | None = None
) -> list[Stage]:
    """The runs that materialize `selection` (default: everything) for a client's days."""
    if end < start:
        raise MainJobError(f"the range ends ({end}) before it starts ({start})")
    graph = defs.resolve_asset_graph()
    chosen = AssetSelection.from_string(selection) if selection else AssetSelection.all()
    keys = sorted(chosen.resolve(graph), key=lambda k: k.to_user_string())
    materializable = [k for k in keys if graph.get(k).is_materializable]
    if not materializable:
        raise MainJobError(
            f"the selection {selection!r} matches no asset that can be "
            "materialized; see the asset keys in the UI (raw/<source>/"
            "<endpoint>, staging/..., marts/...)"
        )
    by_day, by_client, rest = [], [], []
    for key in materializable:
        partitions = graph.get(key).partitions_def
        if isinstance(partitions, MultiPartitionsDefinition):
            by_day.append(key)
        elif partitions == CLIENTS:
            by_client.append(key)
        else:
            rest.append(key)
    client = {CLIENT_TAG: client_id, KIND_TAG: MATERIALIZE}
    stages = []
    if by_day:
        stages.append(
            Stage(
                "raw_days",
                tuple(by_day),
                {
                    **client,
                    RANGE_START_TAG: partition_key(client_id, start.isoformat()),
                    RANGE_END_TAG: partition_key(client_id, end.isoformat()),
                },
                raw=True,
            )
        )
    if by_client:
        stages.append(
            Stage("raw_reference", tuple(by_client), {**client, PARTITION_TAG: client_id}, raw=True)
        )
    if rest:
        owned = {
            check
            for assets_def in defs.assets or []
            if isinstance(assets_def, AssetsDefinition) and set(assets_def.keys) & set(rest)
            for check in assets_def.check_keys
        }
        stages.append(
            Stage("transform", tuple(rest), client, raw=False, checks=tuple(sorted(owned, key=str)))
        )
    return stages


def run(
    defs: Definitions,
    instance: DagsterInstance,
    stages: Sequence[Stage],
    *,
    echo: Echo,
    log: TextIO,
    full_refresh: bool = False,
) -> MainJobResult:
    """Run the stages in order, stopping after one that failed; what the runs print goes to
    `log`, progress lines to `echo`."""
    progress = Progress(echo)
    jobs = [
        define_asset_job(
            f"cli_{stage.name}",
            selection=AssetSelection.assets(*stage.keys) | AssetSelection.checks(*stage.checks),
        )
        for stage in stages
    ]
    runnable = Definitions(
        assets=list(defs.assets or []),
        asset_checks=list(defs.asset_checks or []),
        resources=dict(defs.resources or {}),
        jobs=jobs,
        loggers={"progress": progress.logger_definition()},
    )
    result = MainJobResult(success=True, progress=progress)
    for stage in stages:
        echo(
            f"-- {stage.name}: {len(stage.keys)} asset(s)"
            + (
                f", {stage.tags.get(RANGE_START_TAG)} ... {stage.tags.get(RANGE_END_TAG)}"
                if RANGE_START_TAG in stage.tags
                else ""
            )
        )
        run_config: dict[str, Any] = {"loggers": {"progress": {}}}
        if full_refresh and stage.raw:
            run_config["ops"] = {
                key.to_python_identifier(): {"config": {"full_refresh": True}} for key in stage.keys
            }
        job = runnable.resolve_job_def(f"cli_{stage.name}")
        # dbt's own console output goes to the log file, not the console: the progress lines
        # say what happened, the log file says everything.
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), quiet_dagster():
            outcome = job.execute_in_process(
                instance=instance, tags=stage.tags, run_config=run_config, raise_on_error=False
            )
        result.run_ids.append(outcome.run_id)
        if not outcome.success:
            result.success = False
            break
    return result


@contextlib.contextmanager
def quiet_dagster() -> Iterator[None]:
    """Dagster's own lines stay out of the console while a run goes: dagster-dbt narrates
    each dbt command at INFO and warns about every dbt source test it logs as an observation
    (dbt tests of the raw tables, which run in the build). What went wrong reaches the console
    as step failures and failed checks, through the progress lines."""
    loggers = [logging.getLogger(name) for name in ("dagster", "dagster.builtin")]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)
