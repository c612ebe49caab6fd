"""`integration-platform validate`, `prepare` and `extract`: the source specs checked, the dbt
files derived from them, and one endpoint extracted outside Dagster."""

from __future__ import annotations

import os
import re
from pathlib import Path

import click

from integration_platform import environment
from integration_platform.cli.errors import shown


@click.command("prepare")
def prepare() -> None:
    """Generate the spec-derived dbt files and parse the dbt project, once, so the first run
    does not (make install runs this; any command redoes it when a spec or model changed)."""
    from integration_platform.runs.main_job import quiet_dagster
    from integration_platform.specs.loader import load_specs
    from integration_platform.transform.dbt_assets import prepare_dbt_project

    with quiet_dagster():
        project = prepare_dbt_project(load_specs())
    click.echo(f"dbt project ready: {project.manifest_path}")


@click.command("validate")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Check source spec files (default: those SOURCES_PATH names, or sources/)."""
    from integration_platform.specs.loader import SpecError, load_spec, spec_paths

    try:
        paths = list(files) or spec_paths()
    except SpecError as exc:
        raise click.ClickException(str(exc)) from exc
    failures = 0
    for path in paths:
        try:
            spec = load_spec(path)
        except SpecError as exc:
            failures += 1
            click.echo(f"✗ {exc}", err=True)
            continue
        click.echo(
            f"✓ {path}: source {spec.source} ({spec.kind}), endpoints: {', '.join(spec.endpoints)}"
        )
    if failures:
        raise click.ClickException(f"{failures} of {len(paths)} spec file(s) are invalid")


@click.command("extract")
@click.argument("target", metavar="SOURCE.ENDPOINT")
@click.option("--partition", default=None, metavar="KEY", help="Daily partition, YYYY-MM-DD.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the page files (default: data/extract/SOURCE/ENDPOINT[/KEY]).",
)
@click.option("--full-refresh", is_flag=True, help="Ignore the incremental high-water mark.")
def extract(target: str, partition: str | None, out_dir: Path | None, full_refresh: bool) -> None:
    """Run one extraction outside Dagster; print a JSON summary."""
    import asyncio
    import json

    from integration_platform.extraction.to_files import extract_to_directory
    from integration_platform.extraction.windows import PartitionKeyError, check_partition_key
    from integration_platform.http.errors import ExtractionError
    from integration_platform.paths import path_under
    from integration_platform.specs.loader import SpecError, UnknownSourceError, load_source
    from integration_platform.specs.models import NAME_PATTERN

    source, _, endpoint = target.partition(".")
    if not (re.fullmatch(NAME_PATTERN, source) and re.fullmatch(NAME_PATTERN, endpoint)):
        raise click.BadParameter(
            f"{shown(target)} is not SOURCE.ENDPOINT: expected two names joined by a dot, "
            "each lowercase letters, digits and _ starting with a letter, e.g. crm.contacts "
            "(`integration-platform validate` lists each source's endpoints)",
            param_hint="SOURCE.ENDPOINT",
        )
    environment.load_env()
    try:
        spec = load_source(source, os.environ)  # only this source's variables are needed
    except (SpecError, UnknownSourceError) as exc:
        raise click.ClickException(str(exc)) from exc
    if endpoint not in spec.endpoints:
        raise click.ClickException(
            f"{source} has no endpoint {endpoint!r}; it has: {', '.join(spec.endpoints)}"
        )
    try:  # before any folder is made from it
        check_partition_key(f"{source}.{endpoint}", spec.endpoints[endpoint], partition)
    except PartitionKeyError as exc:
        raise click.BadParameter(str(exc), param_hint="--partition") from None
    folder = out_dir or path_under(
        environment.data_dir() / "extract", source, endpoint, partition or "all"
    )
    try:
        summary = asyncio.run(
            extract_to_directory(
                spec, endpoint, folder, partition=partition, full_refresh=full_refresh
            )
        )
    except (ExtractionError, ValueError) as exc:
        raise click.ClickException(f"{target}: {exc}") from exc
    click.echo(json.dumps({**summary.as_dict(), "out": str(folder)}, indent=2))
