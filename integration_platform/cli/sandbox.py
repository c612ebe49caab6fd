"""`integration-platform sandbox ...`: the sandbox vendors alone, their ground truth and their
tenants' credentials; and the sandbox options `up` shares. Needs the sandbox package (loaded
on demand by the command group, see `cli/__init__.py`)."""

from __future__ import annotations

import contextlib
import csv
import sys
from collections.abc import Callable
from pathlib import Path

import click

from integration_platform import environment
from integration_platform_sandbox.chaos import PROFILES, ChaosConfigError, parse_chaos
from integration_platform_sandbox.noise_levels import NOISE_LEVELS
from integration_platform_sandbox.server import (
    DEFAULT_BASE_PORT,
    Sandbox,
    parse_vendors,
    vendor_urls,
)
from integration_platform_sandbox.tenants import MAX_TENANTS
from integration_platform_sandbox.world import (
    MissingCredentialError,
    SandboxCredentials,
    SandboxSettings,
)


@click.group()
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
        click.option(
            "--noise",
            default="default",
            show_default=True,
            type=click.Choice(list(NOISE_LEVELS)),
            help="How noisy the customer records are: default, or heavier levels with more "
            "typos, missing values, swapped names and dates, families sharing an address "
            "and twins.",
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


def address_options(
    base_port_help: str, host_help: str | None = None
) -> Callable[[click.decorators.FC], click.decorators.FC]:
    """`--host` and `--base-port`: where the sandbox vendors listen."""
    host = click.option("--host", default="127.0.0.1", show_default=True, help=host_help)
    base_port = click.option(
        "--base-port", default=DEFAULT_BASE_PORT, show_default=True, help=base_port_help
    )

    def decorate(func: click.decorators.FC) -> click.decorators.FC:
        return host(base_port(func))

    return decorate


def serving_options(
    tenants: int, *, base_port_help: str, host_help: str | None = None
) -> Callable[[click.decorators.FC], click.decorators.FC]:
    """The options of a command that serves the sandbox vendors (`sandbox up`, `up`): what
    they serve (the sandbox options, --tenants) and where (--host, --base-port)."""
    address = address_options(base_port_help, host_help)

    def decorate(func: click.decorators.FC) -> click.decorators.FC:
        return sandbox_options(tenants_option(tenants)(address(func)))

    return decorate


def build_settings(
    seed: int,
    customers: int,
    chaos_profile: str,
    chaos_overrides: tuple[str, ...],
    noise: str = "default",
    **extra: object,
) -> SandboxSettings:
    try:
        chaos = parse_chaos(chaos_profile, chaos_overrides)
    except ChaosConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--chaos-set") from exc
    return SandboxSettings(
        seed=seed,
        customers=customers,
        chaos=chaos,
        noise=NOISE_LEVELS[noise],
        **extra,  # type: ignore[arg-type]
    )


@sandbox.command("up")
@serving_options(
    1,
    base_port_help="CRM on this port, billing +1, support +2, analytics +3, clinic +4, "
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
    noise: str,
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
        noise,
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
        f"sandbox: seed={seed} customers={customers} chaos={chaos_profile} noise={noise} "
        f"tenants={tenants}"
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
    noise: str,
    tenant: int,
    out: Path | None,
) -> None:
    """Write which true customer every vendor record of one tenant belongs to, as CSV."""
    from integration_platform_sandbox.truth import ground_truth

    settings = build_settings(seed, customers, chaos_profile, chaos_overrides, noise)
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
@address_options(
    "The sandbox's base port (CRM; the other vendors follow).", host_help="Sandbox host."
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

    from integration_platform_sandbox.tenants import Tenants, UnknownTenantError, client_listing

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


def _sandbox_credentials() -> SandboxCredentials:
    environment.load_env()
    try:
        return SandboxCredentials.from_env()
    except MissingCredentialError as exc:
        raise click.ClickException(str(exc)) from exc
