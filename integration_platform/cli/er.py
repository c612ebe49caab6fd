"""`integration-platform er`: entity resolution, explained from the published warehouse."""

from __future__ import annotations

import click
import yaml

from integration_platform import environment
from integration_platform.access.published import PublishedWarehouse
from integration_platform.access.resolution import (
    ExplainError,
    explain_pair,
    explain_record,
    record,
)
from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.landing.warehouse import Warehouse

THRESHOLD_VARIABLE = "er_match_probability_threshold"


@click.group()
def er() -> None:
    """Entity resolution: why customer records are one customer or two."""


@er.command()
@click.argument("keys", nargs=-1, required=True, metavar="KEY [KEY]")
@click.option(
    "--client",
    default=DEMO_CLIENT_ID,
    show_default=True,
    help="Whose records a key without a client (`source:endpoint:id`) names.",
)
def explain(keys: tuple[str, ...], client: str) -> None:
    """Why two records linked or did not (blocking rules, each field's level and weight, the
    prior, the probability, and the links between them); with one key, the customer it is
    part of and the pairs that hold it together. A KEY is a record key
    (`client:source:endpoint:id`, or `source:endpoint:id` with --client) or a customer_id.
    Reads the published copy, so it works while the platform runs."""
    if len(keys) > 2:
        raise click.UsageError("give one record key, or two")
    threshold = match_threshold()
    published = PublishedWarehouse(Warehouse(environment.warehouse_path()).published_path)
    with published.cursor() as connection:
        if connection is None:
            raise click.ClickException(
                f"Nothing is published at {published.path} yet: run a build first "
                "(`make demo`, or a sync), or set WAREHOUSE_PATH to the warehouse to read."
            )
        try:
            found = [record(connection, key, client) for key in keys]
            text = (
                explain_record(connection, found[0], threshold)
                if len(found) == 1
                else explain_pair(connection, found[0], found[1], threshold)
            )
        except ExplainError as e:
            raise click.ClickException(str(e)) from None
    click.echo(text)


def match_threshold() -> float:
    """The dbt project's `er_match_probability_threshold` (the probability that links)."""
    project = environment.dbt_project_dir() / "dbt_project.yml"
    variables = yaml.safe_load(project.read_text()).get("vars", {})
    return float(variables[THRESHOLD_VARIABLE])
