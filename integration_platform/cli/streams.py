"""`integration-platform streams consume`: event streams (SSE) into raw, long-lived."""

from __future__ import annotations

import os

import click


@click.group()
def streams() -> None:
    """Event streams (SSE) consumed into raw by a long-lived process."""


@streams.command("consume")
@click.option("--source", default=None, help="Only this source's streams (default: every spec's).")
@click.option("--stream", "stream_name", default=None, help="Only the streams with this name.")
@click.option(
    "--max-events",
    type=click.IntRange(min=1),
    default=None,
    help="Stop cleanly once this many events per stream are in raw.",
)
@click.option(
    "--idle-timeout",
    default=60.0,
    show_default=True,
    help="Reconnect after this many seconds without a byte from the server.",
)
@click.option(
    "--publish-every",
    default=60.0,
    show_default=True,
    help="Seconds between refreshes of the read-only copy (and one at the end).",
)
@click.option(
    "--report-every",
    default=300.0,
    show_default=True,
    envvar="STREAM_REPORT_EVERY_SECONDS",
    type=click.FloatRange(min=0),
    help="Seconds between reports of the loads to Dagster (runless materializations of the "
    "raw partitions written; one more on stopping). Env: STREAM_REPORT_EVERY_SECONDS.",
)
def streams_consume(
    source: str | None,
    stream_name: str | None,
    max_events: int | None,
    idle_timeout: float,
    publish_every: float,
    report_every: float,
) -> None:
    """Consume event streams into raw until SIGTERM or Ctrl-C, which flush the open batch.

    Resumes after each stream's checkpoint in the warehouse; prints a JSON summary on exit.
    """
    import json

    from integration_platform.http.errors import ExtractionError
    from integration_platform.specs.loader import SpecError, load_specs, resolve_spec
    from integration_platform.streams.dagster_reports import reporter_for_dagster_home
    from integration_platform.streams.service import Locations, run_streams, select_streams

    try:
        selected = select_streams(load_specs(), source, stream_name)
        # Only the sources whose streams are consumed need their variables set.
        resolved = {spec.source: resolve_spec(spec, os.environ) for spec, _ in selected}
        chosen = [(resolved[spec.source], name) for spec, name in selected]
        where = Locations.from_environment()
        with reporter_for_dagster_home(report_every) as reporter:
            stats = run_streams(
                chosen,
                where,
                max_events=max_events,
                idle_timeout_seconds=idle_timeout,
                publish_every_seconds=publish_every,
                reporter=reporter,
            )
    except (SpecError, ValueError, ExtractionError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps([s.as_dict() for s in stats], indent=2))
