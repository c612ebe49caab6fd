"""`integration-platform workers`: a celery worker that runs the steps of Dagster runs."""

from __future__ import annotations

import os
import socket

import click

from integration_platform.celery_workers import (
    BROKER_URL_VARIABLE,
    CELERY_SETTINGS,
    QUEUES,
    RESULT_BACKEND,
    WAREHOUSE_QUEUE,
    broker_address,
    broker_url,
    check_broker,
)
from integration_platform.environment import SettingError
from integration_platform.logs import log_level


@click.command()
@click.option(
    "--queue",
    "-q",
    "queues",
    multiple=True,
    type=click.Choice(QUEUES),
    default=QUEUES,
    show_default=True,
    help="Queues to take steps from (repeat for several): `dagster` has extraction and checks, "
    f"`{WAREHOUSE_QUEUE}` the warehouse writes (raw loads, dbt), which one worker must serve "
    "alone: DuckDB has one writer.",
)
@click.option(
    "--name",
    default=None,
    help="The worker's name (unique per host); default integration-platform-<pid>@<host>.",
)
@click.option(
    "--loglevel",
    default=None,
    help="The worker's log level; default LOG_LEVEL, else INFO.",
)
def workers(queues: tuple[str, ...], name: str | None, loglevel: str | None) -> None:
    """Run steps of Dagster runs from the broker CELERY_BROKER_URL names (Dagster's celery
    executor), one step at a time, until stopped; start as many as the work needs."""
    level = log_level(loglevel)  # a bad LOG_LEVEL stops here, before anything starts
    url = broker_url()
    if url is None:
        raise SettingError(
            f"{BROKER_URL_VARIABLE} is not set: set it to the broker the runs use (e.g. "
            "amqp://USER:PASSWORD@HOST:5672//), here and where the code location runs"
        )
    check_broker(url)
    # dagster-celery's app, the one its `dagster-celery worker start` serves, with our settings.
    from dagster_celery.app import app

    app.conf.update(broker_url=url, result_backend=RESULT_BACKEND, **CELERY_SETTINGS)
    worker_name = name or f"integration-platform-{os.getpid()}@{socket.gethostname()}"
    click.echo(
        f"workers: {worker_name} takes steps from {', '.join(queues)} at {broker_address(url)}"
    )
    # The solo pool runs each step in this process: a worker killed mid-step leaves nothing
    # behind, and its unacknowledged step goes back to the queue for another worker.
    app.worker_main(
        [
            "worker",
            "--pool=solo",
            f"--loglevel={level}",
            "-Q",
            ",".join(queues),
            "-n",
            worker_name,
        ]
    )
