"""`integration-platform api ...`: serve the Integration Platform API, manage its keys."""

from __future__ import annotations

import contextlib
import sys

import click


@click.group()
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
