"""A client's credentials for a run: the client store as the raw assets' credentials provider.

A client's credentials are, per source, values for the `${VAR}` references of that source's
spec. The definitions give each source's API resource a `StoredCredentials`, whose
`credentials_for()` resolves a spec for a client when a Dagster run needs it.
"""

from __future__ import annotations

import os

from integration_platform.clients.variables import SourceVariables, source_variables
from integration_platform.specs.credentials import MissingCredentialsError


class StoredCredentials:
    """The `CredentialsProvider` the definitions hand to each source's API resource."""

    def credentials_for(self, client_id: str, source: str) -> dict[str, str]:
        return credentials_for(client_id, source)


def credentials_for(client_id: str, source: str) -> dict[str, str]:
    """The variables to resolve `source`'s spec with when running for `client_id`.

    A client's stored credentials for the source, decrypted; for a client that uses the
    process environment (the demo client), the environment's values of the spec's variables.
    Raises MissingCredentialsError for an unknown or inactive client, or one that has no
    credentials for the source.
    """
    # The store (SQLAlchemy, Alembic, cryptography: over half a second) is imported by the run
    # that needs a client's credentials, not by every process that loads the definitions.
    from integration_platform.clients.registry import ClientRegistry

    registry = ClientRegistry.open_default()
    client = registry.get(client_id)
    if client is None or not client.active:
        raise MissingCredentialsError(f"no active client {client_id!r} in the client store")
    stored = registry.decrypted_credentials(client_id, source)
    if stored is not None:
        return stored
    if client.credentials_from_environment:
        names = source_variables().get(source, SourceVariables(frozenset(), frozenset())).all
        return {name: os.environ[name] for name in sorted(names) if name in os.environ}
    raise MissingCredentialsError(
        f"client {client_id!r} has no credentials for {source}: PATCH /clients/{client_id} "
        f"with credentials.{source}"
    )
