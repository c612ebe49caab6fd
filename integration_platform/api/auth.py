"""Bearer API keys: 401 when the caller is not known, 403 when the key may not do this.

Routes declare the scope they need with `Depends(require("clients:write"))`; a key limited
to one client may only touch that client (`authorize_client`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from integration_platform.api.errors import ApiError
from integration_platform.api.services import Services, services
from integration_platform.clients.api_keys import Principal

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer ipk_...`")
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    found: Annotated[Services, Depends(services)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(
            401,
            "unauthenticated",
            "send an API key as `Authorization: Bearer "
            "<key>` (create one with `integration-platform api keys create`)",
            headers=CHALLENGE,
        )
    principal = found.api_keys.authenticate(credentials.credentials)
    if principal is None:
        raise ApiError(
            401,
            "invalid_api_key",
            "this API key is unknown or revoked: check "
            "the key, or create a new one with `integration-platform api keys "
            "create`",
            headers=CHALLENGE,
        )
    request.state.key_id = principal.key_id
    return principal


def require(scope: str) -> Callable[..., Principal]:
    def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if scope not in principal.scopes:
            raise ApiError(
                403,
                "missing_scope",
                f"this API key lacks the {scope} scope; create a key with --scope {scope}",
            )
        return principal

    return check


def authorize_client(principal: Principal, client_id: str, request: Request) -> None:
    request.state.client_id = client_id
    if not principal.may_see(client_id):
        raise ApiError(
            403,
            "client_forbidden",
            f"this API key is limited to client "
            f"{principal.client_id!r} and cannot reach {client_id!r}",
        )
