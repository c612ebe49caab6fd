"""`integration-platform materialize` and the demo: parse the range, prepare the instance, run
the main job, print the summary."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import click
from dagster import DagsterInstance, Definitions

from integration_platform import environment
from integration_platform.assets.partitions import CLIENTS_PARTITIONS, register_clients
from integration_platform.assets.raw import api_resource_key
from integration_platform.assets.resources import ApiSourceResource
from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.dagster_warnings import silence_dagster_notices
from integration_platform.definitions import defs as load_definitions
from integration_platform.orchestration.instance import prepare_dagster_home
from integration_platform.runs.main_job import (
    MainJobError,
    MainJobResult,
    Stage,
    plan,
    quiet_dagster,
    run,
)
from integration_platform.runs.progress import Echo
from integration_platform.specs.credentials import referenced_variables
from integration_platform.specs.loader import load_specs
from integration_platform.transform.dbt_assets import prepare_dbt_project


def parse_days(days: str | None, day: str | None) -> tuple[date, date]:
    """`START...END`, one day, or (neither) yesterday, UTC."""
    if days and day:
        raise click.UsageError("give --partition-range or --partition, not both")
    try:
        if days:
            start, separator, end = days.partition("...")
            if not separator:
                raise ValueError(days)
            return date.fromisoformat(start.strip()), date.fromisoformat(end.strip())
        if day:
            return date.fromisoformat(day), date.fromisoformat(day)
    except ValueError:
        raise click.BadParameter(
            f"{days or day!r} is not a UTC day or START...END range of days "
            "(e.g. 2025-03-01...2025-03-07)"
        ) from None
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    return yesterday, yesterday


def run_main_job(
    *,
    client_id: str,
    start: date,
    end: date,
    selection: str | None,
    full_refresh: bool,
    echo: Echo,
    log_name: str,
) -> MainJobResult:
    """Plan and run the main job in the instance of DAGSTER_HOME (prepared like `make run`'s
    when unset); what the runs print goes to `data/logs/<log_name>.log`."""
    silence_dagster_notices()
    home = environment.dagster_home()
    if not (home / "dagster.yaml").exists():  # a new instance: set up as make run's is
        home = prepare_dagster_home()
    os.environ["DAGSTER_HOME"] = str(home)
    echo(f"loading the definitions (sources from {os.environ.get('SOURCES_PATH', 'sources/')})")
    with quiet_dagster():  # dagster-dbt narrates the dbt parse of a new project at INFO
        prepare_dbt_project(load_specs())  # the definitions load a prepared project
        defs = load_definitions()

    with DagsterInstance.get() as instance:
        register_clients(instance, DEMO_CLIENT_ID)  # the demo client always has its days
        if not instance.has_dynamic_partition(CLIENTS_PARTITIONS, client_id):
            raise click.ClickException(
                f"client {client_id!r} is not registered in the Dagster instance at "
                f"{os.environ['DAGSTER_HOME']}: register it with the API (POST /clients), "
                "or use the demo client"
            )
        try:
            stages = plan(defs, client_id=client_id, start=start, end=end, selection=selection)
        except (MainJobError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
        if client_id == DEMO_CLIENT_ID:
            _require_variables(defs, stages)
        log_file = environment.data_dir() / "logs" / f"{log_name}.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        echo(f"progress below; everything the runs print goes to {log_file}")
        with log_file.open("a") as log:
            return run(defs, instance, stages, echo=echo, log=log, full_refresh=full_refresh)


def _require_variables(defs: Definitions, stages: list[Stage]) -> None:
    """Before any run: every variable the selected sources' specs need (without a default)
    is set, or one line says which are missing, in which spec, and where the sandbox's are.
    (Another client's come from the client store; its run says if they are missing.)"""
    sources = sorted({key.path[1] for stage in stages if stage.raw for key in stage.keys})
    resources = defs.resources or {}
    missing = []
    for source in sources:
        resource = resources.get(api_resource_key(source))
        if not isinstance(resource, ApiSourceResource):
            continue
        spec_file = Path(resource.spec_file)
        unset = sorted(
            name
            for name, has_default in referenced_variables(spec_file).items()
            if not has_default and not os.environ.get(name)
        )
        if unset:
            missing.append(f"{', '.join(unset)} ({source}: {_shown(spec_file)})")
    if missing:
        raise click.ClickException(
            f"not set: {'; '.join(missing)}. Export them in your environment or put them in "
            "the repository's .env (config/sandbox.env, which the CLI reads after both, holds "
            "only the sandbox's demo values)"
        )


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def materialize_command(
    *,
    client_id: str,
    days: str | None,
    day: str | None,
    selection: str | None,
    full_refresh: bool,
    echo: Echo,
) -> bool:
    start, end = parse_days(days, day)
    result = run_main_job(
        client_id=client_id,
        start=start,
        end=end,
        selection=selection,
        full_refresh=full_refresh,
        echo=echo,
        log_name="materialize",
    )
    assert result.progress is not None
    echo("")
    for line in result.progress.summary():
        echo(line)
    echo(
        f"\n{'done' if result.success else 'FAILED'}: {len(result.run_ids)} run(s) in "
        f"{os.environ['DAGSTER_HOME']} ({', '.join(r[:8] for r in result.run_ids)}); "
        f"warehouse {environment.warehouse_path()}, and its published copy for BI tools "
        "beside it"
    )
    return result.success
