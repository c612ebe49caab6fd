"""A spec's `${VAR}` references as credentials: which it names, and who supplies their values.

A run resolves a source's spec for a client through a `CredentialsProvider`. The client store
implements it (`clients.credentials.StoredCredentials`) and the definitions hand it to each
source's API resource; the raw layer knows the interface only, never the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from integration_platform.specs.models import ENV_REFERENCE


class MissingCredentialsError(LookupError):
    """A run asked for credentials a client does not have."""


class CredentialsProvider(Protocol):
    def credentials_for(self, client_id: str, source: str) -> dict[str, str]:
        """The variables to resolve `source`'s spec with when running for `client_id`;
        MissingCredentialsError when the client has none (or is unknown or inactive)."""
        ...


class NoClientStore:
    """The provider where there is no client store: runs serve the demo client only, whose
    values come from the environment."""

    def credentials_for(self, client_id: str, source: str) -> dict[str, str]:
        raise MissingCredentialsError(
            f"no client store here: {source} runs for the demo client only, not {client_id!r}"
        )


def referenced_variables(spec_file: Path) -> dict[str, bool]:
    """Variables a spec file references → whether the reference carries a default."""
    found: dict[str, bool] = {}
    for match in ENV_REFERENCE.finditer(spec_file.read_text()):
        has_default = match.group(2) is not None  # `${VAR:-}` has one: the empty string
        found[match.group(1)] = found.get(match.group(1), False) or has_default
    return found
