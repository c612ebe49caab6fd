"""`/clients`: register, list (cursor paged), read, rotate credentials, deactivate."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from integration_platform.api.auth import authorize_client, require
from integration_platform.api.errors import ApiError, error_responses
from integration_platform.api.schemas import (
    ClientCreate,
    ClientOut,
    ClientPage,
    ClientPatch,
    CredentialSummary,
)
from integration_platform.api.services import Services, services
from integration_platform.client_ids import CLIENT_ID_PATTERN, client_id_from_name
from integration_platform.clients.api_keys import Principal
from integration_platform.clients.errors import ClientNotFound
from integration_platform.clients.registry import Client
from integration_platform.logs import get_logger
from integration_platform.orchestration.dagster_graphql import DagsterRefused, DagsterUnavailable

_log = get_logger("integration_platform.api")

router = APIRouter(tags=["clients"])
ClientIdPath = Annotated[str, Path(pattern=CLIENT_ID_PATTERN, description="The client's id.")]
Found = Annotated[Services, Depends(services)]


def client_out(client: Client) -> ClientOut:
    return ClientOut(
        id=client.id,
        name=client.name,
        active=client.active,
        uses_environment_credentials=client.credentials_from_environment,
        credentials={
            source: CredentialSummary(variables=info.variables, rotated_at=info.rotated_at)
            for source, info in client.credentials.items()
        },
        dagster_partition_registered_at=client.partition_registered_at,
        created_at=client.created_at,
        updated_at=client.updated_at,
        deactivated_at=client.deactivated_at,
    )


def visible_client(
    found: Services, principal: Principal, client_id: str, request: Request
) -> Client:
    """The client, when it exists and this key may reach it (else 403 / 404)."""
    authorize_client(principal, client_id, request)
    client = found.registry.get(client_id)
    if client is None:
        raise ClientNotFound(client_id)
    return client


@router.post(
    "/clients",
    status_code=201,
    response_model=ClientOut,
    responses=error_responses(401, 403, 409, 422),
)
def create_client(
    body: ClientCreate,
    request: Request,
    response: Response,
    found: Found,
    principal: Annotated[Principal, Depends(require("clients:write"))],
) -> ClientOut:
    """Register a client, with its credentials per source (stored encrypted, never returned)."""
    if principal.client_id is not None:
        raise ApiError(
            403,
            "client_forbidden",
            "this API key is limited to one client and "
            "cannot register clients; use a key without --client",
        )
    client_id = body.id or client_id_from_name(body.name)
    request.state.client_id = client_id
    client = found.registry.create(client_id, body.name, body.credentials)
    client = _register_partition(found, client)
    response.headers["Location"] = f"/clients/{client.id}"
    return client_out(client)


def _register_partition(found: Services, client: Client) -> Client:
    """Make the client a partition of `clients` now, so schedules include it; when Dagster
    cannot take it, its first sync does (that sync needs Dagster anyway)."""
    try:
        if not found.orchestrator.register_client(client.id):
            return client
    except (DagsterUnavailable, DagsterRefused) as exc:
        _log.info("client_partition_pending", client_id=client.id, reason=str(exc))
        return client
    found.registry.mark_partition_registered(client.id)
    return found.registry.get(client.id) or client


@router.get("/clients", response_model=ClientPage, responses=error_responses(401, 403, 422))
def list_clients(
    found: Found,
    principal: Annotated[Principal, Depends(require("clients:read"))],
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[
        str | None,
        Query(
            pattern=CLIENT_ID_PATTERN,
            description="The page starts after this client id: the previous page's "
            "`next_cursor` (its last client).",
        ),
    ] = None,
    include_inactive: bool = False,
) -> ClientPage:
    """Clients ordered by id; pass `next_cursor` back as `cursor` for the next page."""
    clients = found.registry.page(
        limit=limit + 1, after=cursor, only=principal.client_id, include_inactive=include_inactive
    )
    more = len(clients) > limit
    clients = clients[:limit]
    return ClientPage(
        data=[client_out(c) for c in clients], next_cursor=clients[-1].id if more else None
    )


@router.get(
    "/clients/{client_id}", response_model=ClientOut, responses=error_responses(401, 403, 404, 422)
)
def get_client(
    client_id: ClientIdPath,
    request: Request,
    found: Found,
    principal: Annotated[Principal, Depends(require("clients:read"))],
) -> ClientOut:
    return client_out(visible_client(found, principal, client_id, request))


@router.patch(
    "/clients/{client_id}",
    response_model=ClientOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def update_client(
    client_id: ClientIdPath,
    body: ClientPatch,
    request: Request,
    found: Found,
    principal: Annotated[Principal, Depends(require("clients:write"))],
) -> ClientOut:
    """Rename a client or rotate its credentials (a JSON merge patch of them)."""
    authorize_client(principal, client_id, request)
    return client_out(
        found.registry.update(client_id, name=body.name, credentials=body.credentials)
    )


@router.delete(
    "/clients/{client_id}", response_model=ClientOut, responses=error_responses(401, 403, 404, 422)
)
def deactivate_client(
    client_id: ClientIdPath,
    request: Request,
    found: Found,
    principal: Annotated[Principal, Depends(require("clients:write"))],
) -> ClientOut:
    """Deactivate a client: no more syncs or data reads; its credentials are erased."""
    authorize_client(principal, client_id, request)
    return client_out(found.registry.deactivate(client_id))
