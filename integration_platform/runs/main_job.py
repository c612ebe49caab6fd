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
    PartitionsDefinition,
    TimeWindowPartitionsDefinition,
    define_asset_job,
)

from integration_platform.assets.partitions import CLIENTS, RANGE_END_TAG, RANGE_START_TAG
from integration_platform.orchestration.planner import PlanNode, plan_runs
from integration_platform.run_kinds import MATERIALIZE
from integration_platform.runs.progress import Echo, Progress


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
    """The runs that materialize `selection` (default: everything) for a client's days, as the
    API's syncs plan theirs (`planner.plan_runs`); days outside the partitions are refused."""
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
    # An asset definition that cannot be split (the dbt project: one build) runs whole.
    for assets_def in defs.assets or []:
        if (
            isinstance(assets_def, AssetsDefinition)
            and not assets_def.can_subset
            and set(assets_def.keys) & set(materializable)
        ):
            materializable = sorted(
                set(materializable) | set(assets_def.keys), key=lambda k: k.to_user_string()
            )
    nodes = [_plan_node(graph.get(key).partitions_def, key) for key in materializable]
    for key in materializable:
        partitions = graph.get(key).partitions_def
        if isinstance(partitions, MultiPartitionsDefinition):
            _check_days(key, partitions, start, end)
    stages = []
    for planned in plan_runs(nodes, client_id=client_id, start=start, end=end, kind=MATERIALIZE):
        stage_keys = tuple(AssetKey(list(k)) for k in planned.keys)
        checks: tuple[AssetCheckKey, ...] = ()
        if not planned.raw:
            owned = {
                check
                for assets_def in defs.assets or []
                if isinstance(assets_def, AssetsDefinition)
                and set(assets_def.keys) & set(stage_keys)
                for check in assets_def.check_keys
            }
            checks = tuple(sorted(owned, key=str))
        stages.append(Stage(planned.name, stage_keys, planned.tags, raw=planned.raw, checks=checks))
    return stages


def _plan_node(partitions: PartitionsDefinition | None, key: AssetKey) -> PlanNode:
    if isinstance(partitions, MultiPartitionsDefinition):
        return PlanNode(tuple(key.path), "client_day")
    if partitions == CLIENTS:
        return PlanNode(tuple(key.path), "client")
    return PlanNode(tuple(key.path), "none")


def _check_days(
    key: AssetKey, partitions: MultiPartitionsDefinition, start: date, end: date
) -> None:
    """Refuse, before any run exists, days a daily asset has no partition for (before its
    first day, or not ended yet): Dagster would refuse them in a run left NOT_STARTED."""
    days = next(
        (
            d.partitions_def
            for d in partitions.partitions_defs
            if isinstance(d.partitions_def, TimeWindowPartitionsDefinition)
        ),
        None,
    )
    if days is None:
        return
    first = days.start.date()
    last_key = days.get_last_partition_key()
    last = date.fromisoformat(last_key) if last_key else None
    shown = key.to_user_string()
    if start < first:
        raise MainJobError(
            f"{start} is before the first day of {shown} ({first}): start the range on or "
            f"after {first}"
        )
    if last is None or end > last:
        raise MainJobError(
            f"{end} has not ended yet: the last complete (UTC) day of {shown} is {last}"
        )


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
