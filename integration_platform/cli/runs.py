"""`integration-platform materialize` and `demo`: the main job headless, in this process, with
progress lines; and how such a command exits."""

from __future__ import annotations

import logging
import multiprocessing.util
import os
import sys
from collections.abc import Callable

import click

from integration_platform.cli.errors import shown
from integration_platform.cli.sandbox_loading import sandbox_for
from integration_platform.client_ids import DEMO_CLIENT_ID, is_client_id
from integration_platform.logs import configure_logging


def _client_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not is_client_id(value):
        raise click.BadParameter(
            f"{shown(value)} is not a client id: 3 to 40 lowercase letters, digits and -, "
            "starting with a letter (the API prints the id of each client it registers)"
        )
    return value


@click.command("materialize")
@click.option(
    "--client",
    "client_id",
    default=DEMO_CLIENT_ID,
    show_default=True,
    callback=_client_id,
    help="Whose data: a registered client (the API registers them).",
)
@click.option(
    "--partition-range",
    "days",
    default=None,
    metavar="START...END",
    help="UTC days, e.g. 2025-03-01...2025-03-07 (default: yesterday).",
)
@click.option("--partition", "day", default=None, metavar="DAY", help="One UTC day.")
@click.option(
    "--select",
    "selection",
    default=None,
    help="Dagster asset selection, e.g. 'key:\"raw/crm/*\"' or "
    "'key:\"marts/*\"' (default: everything, raw to marts).",
)
@click.option("--full-refresh", is_flag=True, help="Ignore incremental marks: reload whole days.")
def materialize(
    client_id: str, days: str | None, day: str | None, selection: str | None, full_refresh: bool
) -> None:
    """Run the main job headless: a client's days of raw data, its reference data, then dbt
    (staging, entity resolution, marts), with a line per asset partition and a summary.

    Runs go to the Dagster instance of DAGSTER_HOME (default .dagster_home, as make run), so
    the UI shows them; they execute in this process, one stage after the other.
    """
    from integration_platform.runs.commands import materialize_command

    _finish(
        materialize_command(
            client_id=client_id,
            days=days,
            day=day,
            selection=selection,
            full_refresh=full_refresh,
            echo=_progress_console(),
        )
    )


@click.command("demo")
@click.option("--seed", default=42, show_default=True)
@click.option("--customers", default=1000, show_default=True, type=click.IntRange(1, 1_000_000))
def demo(seed: int, customers: int) -> None:
    """The whole job headless: sandbox, a week of raw data, dbt to the marts; prints what the
    marts hold, the entity-resolution figures and where the files are (data/demo/)."""
    with sandbox_for("demo"):
        from integration_platform.demo import run_demo
        from integration_platform_sandbox.world import SandboxSettings

    _finish(run_demo(SandboxSettings(seed=seed, customers=customers), echo=_progress_console()))


def _finish(success: bool) -> None:
    """Exit now, skipping the interpreter's teardown: after in-process runs, DuckDB 2.0's
    nanobind bindings report dozens of "leaked instance" lines on stderr at teardown (after a
    failed run, whose traceback keeps connections referenced), which would bury the one line
    that says what failed. Everything this command wrote is closed or flushed by now."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    # The one part of the teardown that must still run: multiprocessing's exit finalizers,
    # which unlink the named semaphores of its locks still alive (a failed dbt run's
    # traceback keeps dbt's adapter and its lock); skipped, the resource tracker reports
    # them as leaked on stderr. The standard library has no public name for this step.
    multiprocessing.util._run_finalizers(0)  # type: ignore[attr-defined]
    os._exit(0 if success else 1)


def _progress_console() -> Callable[[str], None]:
    """Where progress lines go: the console as it is now (runs redirect their own output to
    a log file). Logs only when LOG_LEVEL asks: the definitions configure logging again when
    they load, from LOG_LEVEL."""
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    configure_logging()
    console = sys.stdout

    def echo(line: str) -> None:
        click.echo(line, file=console)

    return echo
