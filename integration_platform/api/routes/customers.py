"""`/clients/{client_id}/customers`: a client's golden records and customer 360, read-only.

Answers carry an ETag derived from the published warehouse's version and the query, so a
client polling with `If-None-Match` gets 304 until a new copy is published.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from integration_platform.access.customers import to_json
from integration_platform.api.auth import require
from integration_platform.api.errors import ApiError, error_responses
from integration_platform.api.routes.clients import ClientIdPath, Found, visible_client
from integration_platform.api.schemas import CustomerOut, CustomerPageOut
from integration_platform.clients.api_keys import Principal
from integration_platform.clients.errors import ClientInactive

router = APIRouter(tags=["customers"])
IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match", max_length=1000)]
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Unchanged since the ETag sent in If-None-Match."}
}


def _etag(version: str | None, *parts: object) -> str:
    digest = hashlib.sha256(repr((version, *parts)).encode()).hexdigest()[:20]
    return f'W/"{digest}"'


def _not_modified(if_none_match: str | None, etag: str) -> bool:
    if if_none_match is None:
        return False
    given = {tag.strip() for tag in if_none_match.split(",")}
    return "*" in given or etag in given or etag.removeprefix("W/") in given


@router.get(
    "/clients/{client_id}/customers",
    response_model=CustomerPageOut,
    responses={**error_responses(401, 403, 404, 409, 422), **NOT_MODIFIED},
)
def list_customers(
    client_id: ClientIdPath,
    request: Request,
    found: Found,
    principal: Annotated[Principal, Depends(require("data:read"))],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="The page starts after this customer_id: the previous page's "
            "`next_cursor` (its last customer).",
        ),
    ] = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """The client's golden customer records (marts.dim_customers), ordered by customer_id."""
    client = visible_client(found, principal, client_id, request)
    if not client.active:
        raise ClientInactive(client_id)
    etag = _etag(found.customers.version(), client_id, cursor, limit)
    if _not_modified(if_none_match, etag):
        return Response(status_code=304, headers={"ETag": etag})
    page = found.customers.page(client_id, after=cursor, limit=limit)
    # Written straight to JSON: pages are large and already shaped as CustomerPageOut says.
    return Response(
        to_json(
            {
                "data": page.customers,
                "next_cursor": page.next_after,
            }
        ),
        media_type="application/json",
        headers={"ETag": etag, "Cache-Control": "private, no-cache"},
    )


@router.get(
    "/clients/{client_id}/customers/{customer_id}",
    response_model=CustomerOut,
    responses={**error_responses(401, 403, 404, 409, 422), **NOT_MODIFIED},
)
def get_customer(
    client_id: ClientIdPath,
    customer_id: Annotated[str, Path(min_length=1, max_length=200)],
    request: Request,
    found: Found,
    principal: Annotated[Principal, Depends(require("data:read"))],
    if_none_match: IfNoneMatch = None,
) -> Response:
    """One customer: the golden record, its customer_360 figures and where each field came from."""
    client = visible_client(found, principal, client_id, request)
    if not client.active:
        raise ClientInactive(client_id)
    etag = _etag(found.customers.version(), client_id, customer_id)
    if _not_modified(if_none_match, etag):
        return Response(status_code=304, headers={"ETag": etag})
    detail = found.customers.detail(client_id, customer_id)
    if detail is None:
        raise ApiError(
            404,
            "customer_not_found",
            f"client {client_id!r} has no customer "
            f"{customer_id!r} in the published warehouse; list them with GET "
            f"/clients/{client_id}/customers",
        )
    return Response(
        to_json(detail),
        media_type="application/json",
        headers={"ETag": etag, "Cache-Control": "private, no-cache"},
    )
