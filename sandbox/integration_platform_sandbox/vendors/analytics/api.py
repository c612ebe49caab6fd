"""Sandbox analytics' HTTP API: signed requests (HMAC, per tenant key), a per-key quota, the
page-numbered lists, the stream route and the admin routes."""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from integration_platform_sandbox import signing
from integration_platform_sandbox.chaos import ChaosEngine, ChaosMiddleware
from integration_platform_sandbox.ratelimit import WindowQuota
from integration_platform_sandbox.tenants import PerTenant, Tenants
from integration_platform_sandbox.vendors.analytics.feed import (
    STREAM_FAULT_KEY,
    STREAM_PATH,
    STREAM_PING_SECONDS,
    AnalyticsFeed,
    StreamChaos,
)
from integration_platform_sandbox.vendors.analytics.records import (
    VENDOR,
    MicrosecondTimeline,
    ground_truth,
)
from integration_platform_sandbox.vendors.common import (
    JSONResponse,
    VendorAdmin,
    authenticated,
    build_vendor_app,
    error_response,
    int_param,
    parse_timestamp,
)
from integration_platform_sandbox.world import World

# Per key, in a fixed one-second window. A module constant rather than a SandboxSettings field:
# tests lower it with monkeypatch before starting a private sandbox.
REQUESTS_PER_SECOND = 100
MAX_PER_PAGE = 500
MAX_PAGE = 2**31


class Analytics(AnalyticsFeed):
    """One tenant's product analytics: its users, events, stream and quota."""

    def __init__(self, world: World, engine: ChaosEngine) -> None:
        super().__init__(world, engine)
        self.quota = WindowQuota(REQUESTS_PER_SECOND, 1.0)

    # -- quota -------------------------------------------------------------------------------

    def _admit(self) -> tuple[Response | None, dict[str, str]]:
        """A 429 to answer with, or None; plus the rate-limit headers to send."""
        quota = self.quota.take(self.world.credentials.analytics_key_id)
        headers = quota.ietf_headers(self.quota.window_seconds)
        if not quota.allowed:
            return error_response(
                429,
                "rate_limited",
                f"this key may make {quota.limit} requests per second: retry after the reset",
                {**headers, "retry-after": quota.retry_after()},
            ), headers
        return None, headers

    # -- HTTP --------------------------------------------------------------------------------

    async def _page(
        self, request: Request, clock: MicrosecondTimeline, make: Callable[[int], dict[str, Any]]
    ) -> Response:
        denied, headers = self._admit()
        if denied is not None:
            return denied
        per_page = int_param(request, "per_page", 100, lo=1, hi=MAX_PER_PAGE)
        page = int_param(request, "page", 1, lo=1, hi=MAX_PAGE)
        since = parse_timestamp(request.query_params.get("since"), "since")
        until = parse_timestamp(request.query_params.get("until"), "until")
        window = clock.positions_between(since, until)
        repeat = self.engine.settings.repeat_cursor_at_page
        served = repeat if repeat is not None and page == repeat + 1 else page
        start = window.start + (served - 1) * per_page
        data = [make(p) for p in range(start, min(window.stop, start + per_page))]
        total = len(window)
        return JSONResponse(
            {
                "data": data,
                "page": page,
                "per_page": per_page,
                "total_pages": -(-total // per_page),
                "total": total,
            },
            headers=headers,
        )

    async def users(self, request: Request) -> Response:
        return await self._page(request, self.user_clock, self.user)

    async def events(self, request: Request) -> Response:
        drift_from_us = self._drift_from_us()
        return await self._page(
            request, self.event_clock, lambda position: self.event(position + 1, drift_from_us)
        )

    async def stream(self, request: Request) -> Response:
        denied, headers = self._admit()
        if denied is not None:
            return denied
        last_id = self._last_event_id(request)
        fault = request.scope.get(STREAM_FAULT_KEY)
        return EventSourceResponse(
            self._feed(last_id + 1, fault), headers=headers, ping=STREAM_PING_SECONDS, sep="\n"
        )

    def stats(self) -> dict[str, Any]:
        return {
            "counts": {"users": len(self.roster), "events": self.historical_events},
            "rate_limited": self.quota.rejected,
            "stream": {
                "connections": self.streams_opened,
                "open": self.streams_open,
                "events_sent": self.events_streamed,
            },
        }


class Signatures:
    """Checks a request's HMAC signature under the secret of the tenant its key id names."""

    def __init__(self, tenants: Tenants) -> None:
        self.tenants = tenants

    async def authenticate(self, request: Request) -> int | Response:
        headers = request.headers
        key_id = headers.get(signing.KEY_ID_HEADER)
        stamp = headers.get(signing.TIMESTAMP_HEADER)
        signature = headers.get(signing.SIGNATURE_HEADER)
        if not (key_id and stamp and signature):
            return _unauthorized(
                "missing_signature",
                "missing signature: send X-Key-Id, X-Timestamp (epoch seconds) "
                "and X-Signature (hex HMAC-SHA256 of the canonical request)",
            )
        tenant = self.tenants.find(analytics_key_id=key_id)
        if tenant is None:
            return _unauthorized("unknown_key", f"unknown key id {key_id!r}")
        try:
            sent_at = float(stamp)
        except ValueError:
            sent_at = math.nan
        if not math.isfinite(sent_at):
            return _unauthorized("bad_timestamp", f"X-Timestamp {stamp!r} is not epoch seconds")
        max_age = self.tenants.settings.signature_max_age_seconds
        skew = time.time() - sent_at
        if abs(skew) > max_age:
            direction = "old" if skew > 0 else "in the future"
            return _unauthorized(
                "stale_timestamp",
                f"stale timestamp: X-Timestamp is {abs(skew):.0f} s {direction}, "
                f"allowed ±{max_age:g} s; sign each request (and retry) anew "
                "and check the client's clock",
            )
        scope = request.scope
        target = scope.get("raw_path") or scope["path"].encode()
        if scope["query_string"]:
            target += b"?" + scope["query_string"]
        secret = self.tenants.credentials(tenant).analytics_signing_secret
        expected = signing.sign(secret, request.method, target, stamp, await request.body())
        if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode("latin-1")):
            return _unauthorized(
                "bad_signature",
                "bad signature: it does not match METHOD, path?query as sent, "
                "X-Timestamp and the body's SHA-256 under this key's secret",
            )
        return tenant


def _unauthorized(code: str, message: str) -> Response:
    return error_response(401, code, message, {"www-authenticate": 'HMAC-SHA256 realm="analytics"'})


def create_app(tenants: Tenants, engine: ChaosEngine) -> ASGIApp:
    products = PerTenant(tenants, lambda world: Analytics(world, engine))
    signatures = Signatures(tenants)

    async def disconnect_streams(_: Request) -> Response:
        return JSONResponse(
            {"disconnected": sum(product.disconnect_streams() for product in products.built())}
        )

    routes: list[BaseRoute] = [
        Route(path, authenticated(signatures.authenticate, products, handler))
        for path, handler in (
            ("/v1/users", Analytics.users),
            ("/v1/events", Analytics.events),
            (STREAM_PATH, Analytics.stream),
        )
    ]
    routes.append(Route("/_sandbox/stream/disconnect", disconnect_streams, methods=["POST"]))
    admin = VendorAdmin(VENDOR, ground_truth, lambda tenant: products[tenant].stats())
    app = build_vendor_app(tenants, engine, admin, routes)
    if not isinstance(app, ChaosMiddleware):
        raise TypeError("analytics expects build_vendor_app to wrap its app in ChaosMiddleware")
    return StreamChaos(app)
