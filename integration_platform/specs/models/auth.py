"""How a source authenticates: the `auth:` block of a spec, one model per `type`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from integration_platform.specs.models.base import EnvStr, MaskedEnvStr, SecretRef, Strict


class NoAuth(Strict):
    type: Literal["none"]


class ApiKeyAuth(Strict):
    type: Literal["api_key"]
    name: EnvStr = Field(description="header or query parameter name")
    value: SecretRef
    location: Literal["header", "query"] = Field("header", alias="in")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class BearerAuth(Strict):
    type: Literal["bearer"]
    token: SecretRef


class BasicAuth(Strict):
    type: Literal["basic"]
    username: EnvStr
    password: SecretRef


class OAuth2ClientCredentials(Strict):
    type: Literal["oauth2_client_credentials"]
    token_url: EnvStr = Field(description="absolute, or relative to base_url")
    client_id: EnvStr
    client_secret: SecretRef
    scope: EnvStr | None = None
    client_auth: Literal["body", "basic"] = "body"
    refresh_margin_seconds: float = Field(30.0, ge=0, description="renew this long before expiry")


class HmacAuth(Strict):
    """Signs each request: HMAC over a canonical string built from a template."""

    type: Literal["hmac"]
    key_id: EnvStr
    secret: SecretRef
    algorithm: Literal["sha256", "sha512", "sha1"] = "sha256"
    canonical: str = Field(
        "{method}\n{path_query}\n{timestamp}\n{body_sha256}",
        description="placeholders: method, path, query, path_query, timestamp, body_sha256, key_id",
    )
    headers: dict[str, str] = Field(
        default_factory=lambda: {
            "X-Key-Id": "{key_id}",
            "X-Timestamp": "{timestamp}",
            "X-Signature": "{signature}",
        },
        description="headers to send; placeholders as in canonical, plus signature",
    )
    encoding: Literal["hex", "base64"] = "hex"


class CustomAuth(Strict):
    """A Python class `module:Name` implementing httpx.Auth, built with `options`."""

    type: Literal["custom"]
    class_path: str = Field(alias="class", pattern=r"^[\w.]+:\w+$")
    options: dict[str, MaskedEnvStr] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


AuthSpec = Annotated[
    NoAuth | ApiKeyAuth | BearerAuth | BasicAuth | OAuth2ClientCredentials | HmacAuth | CustomAuth,
    Field(discriminator="type"),
]
