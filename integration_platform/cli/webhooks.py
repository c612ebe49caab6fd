"""`integration-platform webhooks serve`: the webhook receiver."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import click


@click.group()
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
