"""What every sandbox vendor shares: JSON responses, parameter parsing, tenant resolution and
the admin routes.

A vendor authenticates each request to a tenant (`authenticated`) and answers from that
tenant's state only. Admin routes live under `/_sandbox/` (no auth, no chaos): health, the
ground truth of which person each record belongs to, each person's true identity (`people`)
and record counts (per tenant, `?tenant=K`, default 0), each tenant's client credentials, and
the chaos switchboard tests use.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from integration_platform_sandbox.chaos import ChaosEngine, ChaosMiddleware, ChaosSettings
from integration_platform_sandbox.population import true_people_csv
from integration_platform_sandbox.tenants import PerTenant, Tenants, VendorState, client_listing
from integration_platform_sandbox.world import World


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def parse_timestamp(value: str | None, name: str) -> datetime | None:
    """Accept ISO 8601 (with or without offset; naive means UTC) or epoch seconds."""
    if value is None or value == "":
        return None
    try:
        if value.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(value), tz=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(
            400, f"{name}={value!r} is not a timestamp: use ISO 8601 or epoch seconds"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def int_param(request: Request, name: str, default: int, *, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPException(400, f"{name}={raw!r} is not an integer") from None
    if not lo <= value <= hi:
        raise HTTPException(400, f"{name}={value} is out of range: expected {lo}..{hi}")
    return value


@dataclass(frozen=True)
class TruthRow:
    """One vendor record and the true person behind it."""

    endpoint: str
    record_id: str
    entity_id: int


@dataclass(frozen=True)
class VendorAdmin:
    """What a vendor tells the admin routes about itself, per tenant."""

    name: str
    ground_truth: Callable[[World], Iterator[TruthRow]]
    stats: Callable[[int], dict[str, Any]]


Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]
Endpoint = Callable[[Request], Awaitable[Response]]
# A vendor's check of a request's credentials: the tenant they belong to, or the refusal.
Authenticate = Callable[[Request], Awaitable[int | Response]]


def authenticated(
    authenticate: Authenticate,
    states: PerTenant[VendorState],
    handler: Callable[[VendorState, Request], Awaitable[Response]],
) -> Endpoint:
    """An endpoint that answers from the state of the tenant whose credentials came with the
    request, and refuses requests whose credentials are no tenant's."""

    async def endpoint(request: Request) -> Response:
        tenant = await authenticate(request)
        if isinstance(tenant, Response):
            return tenant
        return await handler(states[tenant], request)

    return endpoint


def tenant_param(request: Request, tenants: Tenants) -> int:
    """`?tenant=K` of an admin route (default 0, the default tenant)."""
    return int_param(request, "tenant", 0, lo=0, hi=tenants.count - 1)


def build_vendor_app(
    tenants: Tenants,
    engine: ChaosEngine,
    admin: VendorAdmin,
    routes: Sequence[BaseRoute],
    lifespan: Lifespan | None = None,
) -> ASGIApp:
    """A vendor's Starlette app with the admin routes added and chaos wrapped around it."""
    settings = tenants.settings

    async def health(_: Request) -> Response:
        return JSONResponse(
            {
                "vendor": admin.name,
                "status": "ok",
                "seed": settings.seed,
                "customers": settings.customers,
                "noise": settings.noise.name,
                "tenants": tenants.count,
            }
        )

    async def ground_truth(request: Request) -> Response:
        world = tenants.world(tenant_param(request, tenants))

        def lines() -> Iterator[bytes]:
            yield b"endpoint,record_id,entity_id\n"
            for row in admin.ground_truth(world):
                yield f"{row.endpoint},{row.record_id},{row.entity_id}\n".encode()

        return StreamingResponse(lines(), media_type="text/csv")

    async def people(request: Request) -> Response:
        world = tenants.world(tenant_param(request, tenants))
        return StreamingResponse(true_people_csv(world.population), media_type="text/csv")

    async def stats(request: Request) -> Response:
        tenant = tenant_param(request, tenants)
        return JSONResponse(
            {
                "vendor": admin.name,
                "tenant": tenant,
                "seed": tenants.world(tenant).settings.seed,
                **admin.stats(tenant),
                "chaos_injected": engine.injected,
            }
        )

    async def tenant_credentials(request: Request) -> Response:
        chosen = (
            [tenant_param(request, tenants)] if "tenant" in request.query_params else list(tenants)
        )
        base_url = str(request.base_url).rstrip("/")
        return JSONResponse(
            {"vendor": admin.name, **client_listing(tenants, chosen, {admin.name: base_url})}
        )

    async def chaos(request: Request) -> Response:
        if request.method == "POST":
            body = orjson.loads(await request.body() or b"{}")
            try:
                chaos_settings = ChaosSettings.model_validate(body.get("settings", {}))
            except ValidationError as exc:
                return error_response(422, "bad_chaos_settings", str(exc))
            engine.configure(chaos_settings, body.get("script"))
        return JSONResponse(engine.settings.model_dump(mode="json"))

    admin_routes: list[BaseRoute] = [
        Route("/_sandbox/health", health),
        Route("/_sandbox/ground-truth", ground_truth),
        Route("/_sandbox/people", people),
        Route("/_sandbox/stats", stats),
        Route("/_sandbox/tenants", tenant_credentials),
        Route("/_sandbox/chaos", chaos, methods=["GET", "POST"]),
    ]

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error_response(
            exc.status_code,
            "bad_request" if exc.status_code == 400 else "error",
            exc.detail,
            headers=exc.headers,
        )

    app = Starlette(
        routes=[*routes, *admin_routes],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error},
    )
    return ChaosMiddleware(app, engine)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")
