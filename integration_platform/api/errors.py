"""Every refusal as JSON: a machine code, a message saying what to do, and field paths.

`{"error": {"code": "validation_failed", "message": "...", "request_id": "...",
            "fields": [{"path": "credentials.crm.CRM_CLIENT_SECRET", "in": "body",
                        "message": "..."}]}}`
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from integration_platform.access.customers import WarehouseNotTenantAware
from integration_platform.clients.errors import (
    ClientExists,
    ClientInactive,
    ClientNotFound,
    InvalidRequest,
    StoreError,
)
from integration_platform.clients.syncs import IdempotencyKeyReused


class FieldError(BaseModel):
    path: str
    message: str
    location: str = "body"


class ErrorDetail(BaseModel):
    code: str
    message: str
    request_id: str | None = None
    fields: list[FieldError] = []


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.fields = fields or []
        self.headers = headers or {}


STORE_STATUS: dict[type[StoreError], int] = {
    InvalidRequest: 422,
    ClientNotFound: 404,
    ClientExists: 409,
    ClientInactive: 409,
    IdempotencyKeyReused: 409,
}
HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for these refusals (all share ErrorBody); every route may
    also answer 400 to a request it cannot parse at all."""
    return {status: {"model": ErrorBody} for status in sorted({400, *statuses})}


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (FastAPI keeps one route per method)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def _body(
    request: Request,
    status: int,
    code: str,
    message: str,
    fields: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    detail = ErrorDetail(
        code=code,
        message=message,
        fields=fields or [],
        request_id=getattr(request.state, "request_id", None),
    )
    return JSONResponse(ErrorBody(error=detail).model_dump(), status_code=status, headers=headers)


def _validation_fields(errors: Any) -> list[FieldError]:
    fields = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ())]
        where = (
            location[0]
            if location and location[0] in ("body", "query", "path", "header", "cookie")
            else "body"
        )
        parts = location[1:] if location and location[0] == where else location
        path = ""
        for part in parts:
            path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        fields.append(FieldError(path=path or where, message=message, location=where))
    return fields


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _body(request, exc.status, exc.code, exc.message, exc.fields, exc.headers)

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> JSONResponse:
        fields = (
            [FieldError(path=p.path, message=p.message) for p in exc.problems]
            if isinstance(exc, InvalidRequest)
            else []
        )
        message = (
            "the request has invalid fields; see fields for each one"
            if isinstance(exc, InvalidRequest)
            else str(exc)
        )
        return _body(request, STORE_STATUS.get(type(exc), 409), exc.code, message, fields)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = _validation_fields(exc.errors())
        return _body(
            request,
            422,
            "validation_failed",
            "the request has invalid fields; see fields for each one",
            fields,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "error")
        message = str(exc.detail)
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 404:
            message = f"no route {request.url.path}: see /docs for the API's routes"
        elif exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
            message = (
                f"{request.method} is not allowed on {request.url.path}; it allows "
                f"{headers['Allow']}"
            )
        elif exc.status_code == 400:
            message = f"the request could not be read ({exc.detail}): send JSON as documented"
        return _body(request, exc.status_code, code, message, headers=headers or None)

    @app.exception_handler(WarehouseNotTenantAware)
    async def not_tenant_aware(request: Request, exc: WarehouseNotTenantAware) -> JSONResponse:
        return _body(request, 503, "warehouse_not_tenant_aware", str(exc))


def reject_unknown_query_parameters(request: Request) -> None:
    """A misspelt parameter (`?limt=5`) is an error, never silently ignored."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.query_params:
        return
    known: set[str] = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        known |= {param.alias for param in current.query_params}
        pending += current.dependencies
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "no query parameters"
        raise ApiError(
            422,
            "validation_failed",
            "the request has invalid fields; see fields",
            [
                FieldError(
                    path=name,
                    location="query",
                    message=f"unknown query parameter; this route takes {takes}",
                )
                for name in unknown
            ],
        )
