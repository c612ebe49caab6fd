"""The `integration-platform` command: the sandbox, the platform, the demo."""

from __future__ import annotations

import contextlib
import csv
import logging
import multiprocessing.util
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from integration_platform import environment
from integration_platform.client_ids import DEMO_CLIENT_ID, is_client_id
from integration_platform.logs import configure_logging, get_logger, scrub_text
from integration_platform.sandbox.chaos import PROFILES, ChaosConfigError, parse_chaos
from integration_platform.sandbox.server import (
    DEFAULT_BASE_PORT,
    Sandbox,
    parse_vendors,
    vendor_urls,
)
from integration_platform.sandbox.tenants import MAX_TENANTS
from integration_platform.sandbox.world import (
    MissingCredentialError,
    SandboxCredentials,
    SandboxSettings,
)


class ScrubbedErrorsGroup(click.Group):
    """Every command error passes the secret scrubber before it is printed.

    An error a command did not expect is logged with its traceback as one JSON line (scrubbed
    like every log line) and printed in one line, instead of a raw traceback on stderr.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort):
            raise
        except click.UsageError as exc:
            raise click.UsageError(scrub_text(exc.format_message()), exc.ctx) from None
        except click.ClickException as exc:  # every other kind exits with 1, as this does
            raise click.ClickException(scrub_text(exc.format_message())) from None
        except Exception as exc:
            get_logger("integration_platform.cli").error(
                "command_failed", command=ctx.invoked_subcommand, exc_info=True
            )
            raise click.ClickException(
                scrub_text(
                    f"{type(exc).__name__}: {exc} (traceback in the command_failed log line)"
                )
            ) from None


@click.group(cls=ScrubbedErrorsGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Integration Platform: API sources into one DuckDB warehouse, modelled with dbt."""
    environment.load_env()
    configure_logging()


@main.group()
def sandbox() -> None:
    """The local third-party APIs the demo, the tests and the benchmarks run against."""


def _vendors(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    try:
        return parse_vendors(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def sandbox_options(func: click.decorators.FC) -> click.decorators.FC:
    options = [
        click.option(
            "--vendors",
            default="saas",
            show_default=True,
            callback=_vendors,
            help="Vendors to serve, comma-separated: names (crm, billing, support, "
            "analytics, clinic, insurer) or groups (saas = the first four, "
            "registry = clinic and insurer, all).",
        ),
        click.option("--seed", default=42, show_default=True, help="Seed of the population."),
        click.option(
            "--customers",
            default=1000,
            show_default=True,
            type=click.IntRange(1, 5_000_000),
            help="Number of true customers.",
        ),
        click.option(
            "--chaos",
            "chaos_profile",
            default="none",
            show_default=True,
            type=click.Choice(list(PROFILES)),
            help="Chaos profile.",
        ),
        click.option(
            "--chaos-set",
            "chaos_overrides",
            multiple=True,
            metavar="KNOB=VALUE",
            help="Override one chaos knob, e.g. drop=0.1 or schema_drift_from=2025-07-01.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


# `integration-platform up` serves a second tenant, so a second client can be registered.
PLATFORM_TENANTS = 2


def tenants_option(default: int) -> Callable[[click.decorators.FC], click.decorators.FC]:
    return click.option(
        "--tenants",
        default=default,
        show_default=True,
        type=click.IntRange(1, MAX_TENANTS),
        help="Customer accounts each vendor serves: tenant 0 with the credentials of "
        "config/sandbox.env, tenants 1.. with their own credentials (derived from the "
        "seed; `sandbox tenants` prints them) and their own population.",
    )


def build_settings(
    seed: int, customers: int, chaos_profile: str, chaos_overrides: tuple[str, ...], **extra: object
) -> SandboxSettings:
    try:
        chaos = parse_chaos(chaos_profile, chaos_overrides)
    except ChaosConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--chaos-set") from exc
    return SandboxSettings(seed=seed, customers=customers, chaos=chaos, **extra)  # type: ignore[arg-type]


@sandbox.command("up")
@sandbox_options
@tenants_option(1)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--base-port",
    default=DEFAULT_BASE_PORT,
    show_default=True,
    help="CRM on this port, billing +1, support +2, analytics +3, clinic +4, "
    "insurer +5 (0: free ports).",
)
@click.option(
    "--token-ttl", default=3600.0, show_default=True, help="Seconds a CRM access token lives."
)
@click.option(
    "--billing-rate-limit",
    default=50,
    show_default=True,
    help="Billing requests per second per API key.",
)
@click.option(
    "--billing-page-cache-mb",
    default=0,
    show_default=True,
    help="Keep up to this many MB of rendered billing list pages in memory and "
    "serve repeats from it (benchmarks: measure the client, not the sandbox).",
)
@click.option(
    "--support-introspection/--no-support-introspection",
    default=True,
    show_default=True,
    help="Whether support answers GraphQL introspection (off: refused with 400, as Apollo "
    "Server does in production).",
)
@click.option("--webhook-url", default=None, help="Where billing sends signed webhooks.")
@click.option(
    "--webhook-rate", default=5.0, show_default=True, help="Billing webhook events per second."
)
@click.option(
    "--stream-rate",
    default=50.0,
    show_default=True,
    help="Analytics SSE events per second (0: as fast as possible).",
)
def sandbox_up(
    vendors: tuple[str, ...],
    seed: int,
    customers: int,
    chaos_profile: str,
    chaos_overrides: tuple[str, ...],
    tenants: int,
    host: str,
    base_port: int,
    token_ttl: float,
    billing_rate_limit: int,
    billing_page_cache_mb: int,
    support_introspection: bool,
    webhook_url: str | None,
    webhook_rate: float,
    stream_rate: float,
) -> None:
    """Serve the sandbox vendors (by default the four SaaS ones) until interrupted."""
    settings = build_settings(
        seed,
        customers,
        chaos_profile,
        chaos_overrides,
        token_ttl_seconds=token_ttl,
        billing_requests_per_second=billing_rate_limit,
        billing_page_cache_mb=billing_page_cache_mb,
        support_introspection=support_introspection,
        webhook_url=webhook_url,
        webhook_events_per_second=webhook_rate,
        stream_events_per_second=stream_rate,
        tenants=tenants,
    )
    try:
        server = Sandbox(
            settings, _sandbox_credentials(), host=host, base_port=base_port, vendors=vendors
        )
    except OSError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"sandbox: seed={seed} customers={customers} chaos={chaos_profile} tenants={tenants}"
    )
    for vendor, url in server.urls.items():
        click.echo(f"  {vendor:<10} {url}")
    if tenants > 1:
        click.echo(
            f"tenants' credentials: GET <vendor URL>/_sandbox/tenants, or "
            f"integration-platform sandbox tenants --tenants {tenants} --seed {seed}"
        )
    click.echo("Ctrl-C to stop.", err=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()


@sandbox.command("ground-truth")
@sandbox_options
@click.option(
    "--tenant",
    default=0,
    show_default=True,
    type=click.IntRange(0, MAX_TENANTS - 1),
    help="Whose records: 0 is the default tenant.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="CSV file to write (default: stdout).",
)
def sandbox_ground_truth(
    vendors: tuple[str, ...],
    seed: int,
    customers: int,
    chaos_profile: str,
    chaos_overrides: tuple[str, ...],
    tenant: int,
    out: Path | None,
) -> None:
    """Write which true customer every vendor record of one tenant belongs to, as CSV."""
    from integration_platform.sandbox.truth import ground_truth

    settings = build_settings(seed, customers, chaos_profile, chaos_overrides)
    handle = out.open("w", newline="") if out else sys.stdout
    try:
        writer = csv.writer(handle)
        writer.writerow(["vendor", "endpoint", "record_id", "entity_id"])
        for vendor, row in ground_truth(settings, _sandbox_credentials(), vendors, tenant):
            writer.writerow([vendor, row.endpoint, row.record_id, row.entity_id])
    finally:
        if out:
            handle.close()


@sandbox.command("tenants")
@click.option(
    "--vendors",
    default="saas",
    show_default=True,
    callback=_vendors,
    help="Vendors whose credentials to print (as for `sandbox up`).",
)
@click.option("--seed", default=42, show_default=True, help="Seed the sandbox runs with.")
@tenants_option(PLATFORM_TENANTS)
@click.option(
    "--tenant", default=None, type=click.IntRange(0, MAX_TENANTS - 1), help="Only this tenant."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Sandbox host.")
@click.option(
    "--base-port",
    default=DEFAULT_BASE_PORT,
    show_default=True,
    help="The sandbox's base port (CRM; the other vendors follow).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='JSON: {"tenants": [{"tenant": K, "credentials": {SOURCE: {VARIABLE: '
    "value}}}]}, the shape of a client's credentials in the API.",
)
def sandbox_tenants(
    vendors: tuple[str, ...],
    seed: int,
    tenants: int,
    tenant: int | None,
    host: str,
    base_port: int,
    as_json: bool,
) -> None:
    """Print each tenant's credentials and base URLs, named as the source specs' variables.

    Without --json, as an env file per tenant: `--tenant 1 > tenant1.env` gives what the
    specs need to read tenant 1's data.
    """
    import json

    from integration_platform.sandbox.tenants import Tenants, UnknownTenantError, client_listing

    directory = Tenants(SandboxSettings(seed=seed, tenants=tenants), _sandbox_credentials())
    try:
        listing = client_listing(
            directory,
            directory if tenant is None else [tenant],
            vendor_urls(host, base_port, vendors),
        )
    except UnknownTenantError as exc:
        raise click.BadParameter(str(exc), param_hint="--tenant") from exc
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    for index, entry in enumerate(listing["tenants"]):
        if index:
            click.echo()
        default = " (the default: config/sandbox.env)" if entry["tenant"] == 0 else ""
        click.echo(f"# tenant {entry['tenant']}{default}")
        for variables in entry["credentials"].values():
            for name, value in variables.items():
                click.echo(f"{name}={value}")


@main.command("up")
@sandbox_options
@tenants_option(PLATFORM_TENANTS)
@click.option("--host", default="127.0.0.1", show_default=True, help="Sandbox host.")
@click.option(
    "--base-port",
    default=DEFAULT_BASE_PORT,
    show_default=True,
    help="First sandbox port (CRM); the other vendors follow.",
)
@click.option("--ui-port", default=3000, show_default=True, help="Dagster UI port.")
@click.option(
    "--webhook-port",
    default=None,
    type=int,
    help="Webhook receiver port (default: base port + 10, i.e. 8710).",
)
@click.option("--api-port", default=8000, show_default=True, help="Integration Platform API port.")
@click.option(
    "--status-every",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0.5),
    help="Seconds between the status lines (one per process); each process's "
    "whole output is in data/logs/<process>.log.",
)
@click.option(
    "--grace-seconds",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="On Ctrl-C or SIGTERM, how long the Dagster runs in progress may take to finish "
    "before they are canceled (CANCELED, not FAILURE); queued runs are canceled at once.",
)
def up(
    vendors: tuple[str, ...],
    seed: int,
    customers: int,
    chaos_profile: str,
    chaos_overrides: tuple[str, ...],
    tenants: int,
    host: str,
    base_port: int,
    ui_port: int,
    webhook_port: int | None,
    api_port: int,
    status_every: float,
    grace_seconds: float,
) -> None:
    """Run the platform: webhook receiver, sandbox vendors, Dagster UI and the API."""
    from integration_platform.launcher import run_platform

    build_settings(seed, customers, chaos_profile, chaos_overrides)  # fail fast on bad knobs
    sandbox_args = [
        "--seed",
        str(seed),
        "--customers",
        str(customers),
        "--chaos",
        chaos_profile,
        "--tenants",
        str(tenants),
    ]
    for override in chaos_overrides:
        sandbox_args += ["--chaos-set", override]
    sys.exit(
        run_platform(
            host=host,
            base_port=base_port,
            ui_port=ui_port,
            sandbox_args=sandbox_args,
            webhook_port=webhook_port,
            vendors=vendors,
            api_port=api_port,
            status_every=status_every,
            grace_seconds=grace_seconds,
        )
    )


def _shown(value: str, limit: int = 60) -> str:
    """A value a user typed, quoted and cut short: an error must not echo a page of it."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _client_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not is_client_id(value):
        raise click.BadParameter(
            f"{_shown(value)} is not a client id: 3 to 40 lowercase letters, digits and -, "
            "starting with a letter (the API prints the id of each client it registers)"
        )
    return value


@main.command("materialize")
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


@main.command("demo")
@click.option("--seed", default=42, show_default=True)
@click.option("--customers", default=1000, show_default=True, type=click.IntRange(1, 1_000_000))
def demo(seed: int, customers: int) -> None:
    """The whole job headless: sandbox, a week of raw data, dbt to the marts; prints what the
    marts hold, the entity-resolution figures and where the files are (data/demo/)."""
    from integration_platform.demo import run_demo

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


@main.command("prepare")
def prepare() -> None:
    """Generate the spec-derived dbt files and parse the dbt project, once, so the first run
    does not (make install runs this; any command redoes it when a spec or model changed)."""
    from integration_platform.runs.main_job import quiet_dagster
    from integration_platform.specs.loader import load_specs
    from integration_platform.transform.dbt_assets import prepare_dbt_project

    with quiet_dagster():
        project = prepare_dbt_project(load_specs())
    click.echo(f"dbt project ready: {project.manifest_path}")


@main.command("validate")
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


@main.command("extract")
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
            f"{_shown(target)} is not SOURCE.ENDPOINT: expected two names joined by a dot, "
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


@main.group()
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
        where = Locations.under(environment.data_dir(), environment.warehouse_path())
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


@main.group()
def webhooks() -> None:
    """The webhook receiver: signed pushes acknowledged into a durable inbox."""


@webhooks.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8710, show_default=True, help="Port (0: a free one, printed).")
@click.option(
    "--inbox",
    "inbox_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite inbox (default: $WEBHOOK_INBOX_PATH or data/inbox/webhooks.sqlite).",
)
@click.option(
    "--synchronous",
    type=click.Choice(["NORMAL", "FULL"]),
    default="NORMAL",
    show_default=True,
    help="NORMAL survives a receiver crash; FULL also a power cut (an fsync per group commit).",
)
@click.option(
    "--header-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a client may take to send a request's headers, then it is cut off.",
)
@click.option(
    "--body-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a client may take to send a request's body after its headers.",
)
def webhooks_serve(
    host: str,
    port: int,
    inbox_file: Path | None,
    synchronous: str,
    header_timeout: float,
    body_timeout: float,
) -> None:
    """Receive signed webhooks at POST /webhooks<path> for every spec with `webhooks:`."""
    from integration_platform.serving import ClientLimits
    from integration_platform.specs.loader import SpecError
    from integration_platform.webhooks.app import create_receiver_app, route_path, webhook_specs
    from integration_platform.webhooks.inbox import inbox_path
    from integration_platform.webhooks.routing import WebhookConfigError
    from integration_platform.webhooks.server import ReceiverServer

    inbox = inbox_file or inbox_path()
    try:
        specs = webhook_specs(os.environ)
        app = create_receiver_app(
            specs, inbox, synchronous="FULL" if synchronous == "FULL" else "NORMAL"
        )
        server = ReceiverServer(
            app,
            host=host,
            port=port,
            limits=ClientLimits(headers_seconds=header_timeout, body_seconds=body_timeout),
        )
    except (SpecError, WebhookConfigError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"webhooks: listening on {server.url}")
    for spec in specs.values():
        assert spec.webhooks is not None
        click.echo(
            f"  POST {server.url}{route_path(spec)}  ({spec.source}, {spec.webhooks.signature})"
        )
    click.echo(f"  inbox: {inbox}")
    sys.stdout.flush()
    click.echo("Ctrl-C to stop.", err=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()


@main.group()
def api() -> None:
    """The Integration Platform API: clients, syncs, status and their customers over HTTP."""


@api.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, help="Port (0: a free one, printed).")
def api_serve(host: str, port: int) -> None:
    """Serve the API (Swagger UI at /docs) until interrupted."""
    from integration_platform.api.app import create_app
    from integration_platform.clients.crypto import local_key_file
    from integration_platform.webhooks.server import ReceiverServer

    try:
        server = ReceiverServer(create_app(), host=host, port=port, name="API server")
    except OSError as exc:
        raise click.ClickException(str(exc)) from exc
    key_file = local_key_file()
    click.echo(
        f"api: listening on {server.url}  (Swagger UI: {server.url}/docs"
        + (f"; credentials encrypted with the key in {key_file}" if key_file else "")
        + ")"
    )
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        server.run()


@api.group("keys")
def api_keys() -> None:
    """API keys: bearer tokens with scopes, optionally limited to one client."""


@api_keys.command("create")
@click.option("--name", default="api key", show_default=True, help="Who or what uses the key.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    metavar="SCOPE",
    help="clients:read, clients:write, syncs:write, status:read, data:read "
    "(repeatable); --all-scopes for every one.",
)
@click.option("--all-scopes", is_flag=True, help="Every scope.")
@click.option("--client", "client_id", default=None, help="Limit the key to this client.")
def api_keys_create(
    name: str, scopes: tuple[str, ...], all_scopes: bool, client_id: str | None
) -> None:
    """Create a key and print its token (shown once: only a hash is stored)."""
    from integration_platform.clients.api_keys import SCOPES, ApiKeys
    from integration_platform.clients.database import open_store
    from integration_platform.clients.errors import StoreError

    try:
        issued = ApiKeys(open_store()).create(
            name, list(SCOPES) if all_scopes else list(scopes), client_id
        )
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(issued.token)
    click.echo(
        f"key {issued.principal.key_id}: scopes {', '.join(sorted(issued.principal.scopes))}"
        + (f", limited to client {client_id}" if client_id else "")
        + "; the token is shown only now",
        err=True,
    )


@api_keys.command("revoke")
@click.argument("key_id")
def api_keys_revoke(key_id: str) -> None:
    """Revoke a key by its id (the part after `ipk_`)."""
    from integration_platform.clients.api_keys import ApiKeys
    from integration_platform.clients.database import open_store

    if not ApiKeys(open_store()).revoke(key_id):
        raise click.ClickException(f"no active key {key_id!r}")
    click.echo(f"revoked {key_id}")


def _sandbox_credentials() -> SandboxCredentials:
    environment.load_env()
    try:
        return SandboxCredentials.from_env()
    except MissingCredentialError as exc:
        raise click.ClickException(str(exc)) from exc


if __name__ == "__main__":
    main()
