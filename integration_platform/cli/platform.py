"""`integration-platform up`: the whole platform locally (launcher.py). Needs the sandbox
package, whose vendors it serves (loaded on demand by the command group)."""

from __future__ import annotations

import sys

import click

from integration_platform.cli.sandbox import PLATFORM_TENANTS, build_settings, serving_options


@click.command("up")
@serving_options(
    PLATFORM_TENANTS,
    base_port_help="First sandbox port (CRM); the other vendors follow.",
    host_help="Sandbox host.",
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
    noise: str,
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

    build_settings(seed, customers, chaos_profile, chaos_overrides, noise)  # fail fast on bad knobs
    sandbox_args = [
        "--seed",
        str(seed),
        "--customers",
        str(customers),
        "--chaos",
        chaos_profile,
        "--noise",
        noise,
        "--tenants",
        str(tenants),
    ]
    for override in chaos_overrides:
        sandbox_args += ["--chaos-set", override]
    code = run_platform(
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
    sys.exit(code)
