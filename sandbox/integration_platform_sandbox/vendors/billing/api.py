"""Sandbox billing's HTTP API: the list endpoints (offset pages under a per-key rate limit,
optionally served from a page cache), the webhook emit route and the admin routes."""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from integration_platform_sandbox.chaos import ChaosEngine
from integration_platform_sandbox.ratelimit import WindowQuota
from integration_platform_sandbox.roster import Timeline
from integration_platform_sandbox.tenants import PerTenant, Tenants
from integration_platform_sandbox.vendors.billing.records import (
    ENDPOINTS,
    VENDOR,
    BillingRecords,
    ground_truth,
)
from integration_platform_sandbox.vendors.billing.webhooks import BillingWebhooks
from integration_platform_sandbox.vendors.common import (
    VendorAdmin,
    authenticated,
    build_vendor_app,
    error_response,
    int_param,
    parse_timestamp,
)
from integration_platform_sandbox.world import World

MAX_OFFSET = 2**62


class PageCache:
    """Rendered list pages, least recently used first out, bounded in bytes (0: off)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self._pages: OrderedDict[Hashable, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pages)

    def get(self, key: Hashable) -> bytes | None:
        body = self._pages.get(key)
        if body is not None:
            self._pages.move_to_end(key)
            self.hits += 1
        return body

    def put(self, key: Hashable, body: bytes) -> None:
        if len(body) > self.max_bytes:
            return
        self._pages[key] = body
        self.bytes += len(body)
        while self.bytes > self.max_bytes:
            self.bytes -= len(self._pages.popitem(last=False)[1])


class Billing(BillingRecords):
    """One tenant's billing API: its records, quota, counters, and for the default tenant the
    webhooks. `pages` may be shared by every tenant's Billing (its keys name the tenant), so
    the cache's bound holds for the vendor as a whole."""

    def __init__(
        self,
        world: World,
        engine: ChaosEngine,
        *,
        pages: PageCache | None = None,
        webhook_max_attempts: int = 5,
        webhook_backoff_seconds: float = 0.2,
    ) -> None:
        super().__init__(world, engine)
        self.quota = WindowQuota(world.settings.billing_requests_per_second, 1.0)
        self.requests: Counter[str] = Counter()
        self.pages = (
            pages
            if pages is not None
            else PageCache(world.settings.billing_page_cache_mb * 1024 * 1024)
        )
        self.webhooks = BillingWebhooks(
            self, max_attempts=webhook_max_attempts, backoff_seconds=webhook_backoff_seconds
        )

    def _page(
        self,
        request: Request,
        endpoint: str,
        timeline: Timeline,
        make: Callable[[int], dict[str, Any]],
    ) -> Response:
        quota = self.quota.take(self.world.credentials.billing_api_key)
        headers = quota.x_ratelimit_headers()
        if not quota.allowed:
            return error_response(
                429,
                "rate_limited",
                f"more than {quota.limit} requests per second for this API key",
                {"retry-after": quota.retry_after(), **headers},
            )
        try:
            offset = int_param(request, "offset", 0, lo=0, hi=MAX_OFFSET)
            limit = int_param(request, "limit", 100, lo=1, hi=500)
            since = parse_timestamp(request.query_params.get("created_since"), "created_since")
            until = parse_timestamp(request.query_params.get("created_before"), "created_before")
        except HTTPException as exc:
            return error_response(exc.status_code, "bad_request", exc.detail, headers)
        window = timeline.positions_between(since, until)
        start = window.start + offset
        if self.engine.settings.repeat_cursor_at_page == offset // limit + 1 and offset >= limit:
            start -= limit  # a buggy API serving the previous page again
        end = min(window.stop, start + limit)
        self.requests[endpoint] += 1
        key = (
            self.world.tenant,
            endpoint,
            start,
            end,
            len(window),
            offset,
            limit,
            self.engine.settings.schema_drift_from,
        )
        body = self.pages.get(key)
        if body is None:
            body = orjson.dumps(
                {
                    "data": [make(p) for p in range(start, end)],
                    "total": len(window),
                    "offset": offset,
                    "limit": limit,
                }
            )
            self.pages.put(key, body)
        return Response(body, media_type="application/json", headers=headers)

    async def customers(self, request: Request) -> Response:
        return self._page(request, "customers", self.roster.timeline, self.customer)

    async def subscriptions(self, request: Request) -> Response:
        return self._page(request, "subscriptions", self.roster.timeline, self.subscription)

    async def invoices(self, request: Request) -> Response:
        return self._page(request, "invoices", self.invoice_timeline, self.invoice)

    async def payments(self, request: Request) -> Response:
        return self._page(request, "payments", self.payment_timeline, self.payment)

    # -- admin -------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        sender = self.webhooks.sender.counts if self.webhooks.sender else None
        return {
            "counts": {
                "customers": len(self.roster),
                "subscriptions": len(self.roster),
                "invoices": self.invoice_count,
                "payments": self.invoice_count,
            },
            "requests": {endpoint: self.requests[endpoint] for endpoint in ENDPOINTS},
            "rate_limited": self.quota.rejected,
            "page_cache": {
                "pages": len(self.pages),
                "bytes": self.pages.bytes,
                "hits": self.pages.hits,
            },
            "webhooks": {
                **vars(self.webhooks.counts),
                "attempts": sender.attempts if sender else 0,
                "retries": sender.retries if sender else 0,
            },
            "revenue": self.revenue(),
        }


def create_app(tenants: Tenants, engine: ChaosEngine) -> ASGIApp:
    pages = PageCache(tenants.settings.billing_page_cache_mb * 1024 * 1024)
    accounts = PerTenant(tenants, lambda world: Billing(world, engine, pages=pages))
    default = accounts[0]

    async def authenticate(request: Request) -> int | Response:
        tenant = tenants.find(billing_api_key=request.headers.get("x-api-key", ""))
        if tenant is None:
            return error_response(
                401, "invalid_api_key", "missing or wrong API key: send it in the X-API-Key header"
            )
        return tenant

    routes: list[BaseRoute] = [
        Route(f"/v1/{endpoint}", authenticated(authenticate, accounts, handler))
        for endpoint, handler in (
            ("customers", Billing.customers),
            ("subscriptions", Billing.subscriptions),
            ("invoices", Billing.invoices),
            ("payments", Billing.payments),
        )
    ]
    routes.append(Route("/_sandbox/webhooks/emit", default.webhooks.emit, methods=["POST"]))
    admin = VendorAdmin(VENDOR, ground_truth, lambda tenant: accounts[tenant].stats())
    return build_vendor_app(tenants, engine, admin, routes, lifespan=default.webhooks.lifespan)
