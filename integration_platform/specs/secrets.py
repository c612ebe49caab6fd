"""Which values of a resolved spec are secrets, for the redaction to hide wherever they go."""

from __future__ import annotations

import httpx
from pydantic import BaseModel

from integration_platform.redaction import ALWAYS_SECRET_PARAMS, basic_credentials
from integration_platform.specs.models import (
    ApiKeyAuth,
    BasicAuth,
    OAuth2ClientCredentials,
    SourceSpec,
)

# Not secret by themselves, but they name the account: kept out of messages and logs too.
IDENTIFIER_FIELDS = frozenset({"client_id", "key_id"})


def secret_query_params(spec: SourceSpec) -> frozenset[str]:
    names = set(ALWAYS_SECRET_PARAMS)
    if isinstance(spec.auth, ApiKeyAuth) and spec.auth.location == "query":
        names.add(spec.auth.name.lower())
    return frozenset(names)


def secret_values(spec: SourceSpec) -> list[str]:
    """Every secret value the spec resolved, for scrubbing free text: its secret fields (auth,
    webhook signing secret), the client identifiers that go with them, what the environment put
    into its paths, query parameters and headers, a password in its base URL, and the Basic
    headers built from these."""
    holders: list[BaseModel] = [spec.auth] + ([spec.webhooks] if spec.webhooks else [])
    values = []
    for holder in holders:
        for name in type(holder).model_fields:
            value = getattr(holder, name)
            if hasattr(value, "get_secret_value"):
                value = value.get_secret_value()
            elif name not in IDENTIFIER_FIELDS:
                continue
            if isinstance(value, str) and value and not value.startswith("${"):
                values.append(value)
    values += spec.masked_values
    auth = spec.auth
    pairs = []
    if isinstance(auth, BasicAuth):
        pairs.append((auth.username, auth.password.get_secret_value()))
    elif isinstance(auth, OAuth2ClientCredentials):  # client_auth: basic
        pairs.append((auth.client_id, auth.client_secret.get_secret_value()))
    base = httpx.URL(spec.base_url) if "@" in spec.base_url else None
    if base is not None and base.password:  # httpx sends a base URL's userinfo as Basic auth
        values.append(base.password)
        pairs.append((base.username, base.password))
    values += [basic_credentials(user, password) for user, password in pairs if password]
    return [value for value in dict.fromkeys(values) if not value.startswith("${")]
