"""Sandbox billing (Stripe-like REST): API key, offset pages, per-key rate limit, signed webhooks.

GET /v1/customers, /v1/subscriptions, /v1/invoices and /v1/payments take `offset` (>= 0),
`limit` (1..500, default 100), `created_since` and `created_before` (ISO 8601 or epoch
seconds) and answer `{"data": [...], "total": N, "offset": o, "limit": l}`. Money is messy on
purpose: invoices and subscriptions carry integer minor units, payments decimal strings in
major units. With `webhook_url` set, invoice and payment events are POSTed, signed the Standard
Webhooks way; POST /_sandbox/webhooks/emit?count=N sends the next N at once. An API key reads
its tenant's records; webhooks are the default tenant's (tenant 0), as the one receiver they go
to knows that tenant's secret only.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from array import array
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from integration_platform_sandbox.chaos import ChaosEngine
from integration_platform_sandbox.identity import noisy_identity
from integration_platform_sandbox.population import (
    COUNTRIES,
    DATA_END,
    DATA_SPAN_SECONDS,
    DATA_START,
    rng_for,
    unit_interval,
)
from integration_platform_sandbox.ratelimit import WindowQuota
from integration_platform_sandbox.roster import ChildIndex, Timeline
from integration_platform_sandbox.tenants import PerTenant, Tenants
from integration_platform_sandbox.vendors.common import (
    JSONResponse,
    TruthRow,
    VendorAdmin,
    authenticated,
    build_vendor_app,
    error_response,
    int_param,
    iso,
    parse_timestamp,
)
from integration_platform_sandbox.webhook_sender import WebhookSender
from integration_platform_sandbox.world import World

VENDOR = "billing"
CUSTOMER_PREFIX, SUBSCRIPTION_PREFIX, INVOICE_PREFIX, PAYMENT_PREFIX, EVENT_PREFIX = (
    "cus",
    "sub",
    "in",
    "py",
    "evt",
)
ENDPOINTS = ("customers", "subscriptions", "invoices", "payments")
MAX_OFFSET = 2**62

# Monthly prices in minor units; the number is the same whatever the customer's currency.
PLAN_PRICES = {"starter": 2900, "pro": 9900, "business": 29900}
INVOICES_PER_SUBSCRIPTION = 4
# Payments settle this long after their invoice; the invoice year is shortened to fit it.
PAYMENT_DELAY_SECONDS = 3 * 86400
WEBHOOK_DUPLICATE_RATE = 0.03
CURRENCIES = tuple(sorted({currency for _locale, currency, _cc, _share in COUNTRIES.values()}))

# Canonical status, its share, and the spellings the vendor's integrations have stored over
# the years (repeats weight the common spelling).
SUBSCRIPTION_STATUSES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("active", 0.75, ("active", "active", "active", "ACTIVE", "Active")),
    ("trialing", 0.06, ("trialing", "trialing", "Trialing")),
    ("canceled", 0.12, ("canceled", "canceled", "cancelled", "CANCELED")),
    ("past_due", 0.07, ("past_due", "past_due", "PAST_DUE")),
)
INVOICE_STATUSES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("paid", 0.86, ("paid", "paid", "paid", "paid", "PAID", "Paid", "1")),
    ("open", 0.07, ("open", "open", "OPEN")),
    ("void", 0.04, ("void", "void", "VOID")),
    ("uncollectible", 0.03, ("uncollectible", "uncollectible", "UNCOLLECTIBLE")),
)
PAYMENT_SPELLINGS = {
    "succeeded": ("succeeded", "succeeded", "succeeded", "SUCCEEDED", "success"),
    "failed": ("failed", "failed", "FAILED"),
    "pending": ("pending", "pending", "PENDING"),
}

# Salts keep each kind of record's random stream apart.
_SALT_SUBSCRIPTION, _SALT_SUBSCRIPTION_STATUS = 0xB5B, 0xB5C
_SALT_INVOICE, _SALT_INVOICE_STATUS, _SALT_INVOICE_PARENT = 0xB1A, 0xB1B, 0xB1C
_SALT_PAYMENT, _SALT_PAYMENT_STATUS, _SALT_PAYMENT_TIME = 0xBA1, 0xBA2, 0xBA3
_SALT_CUSTOMER, _SALT_DUPLICATE_EVENT = 0xBC1, 0xBE1


class _WindowTimeline(Timeline):
    """A timeline over part of the data year, so a record plus a fixed delay stays inside it."""

    def __init__(
        self,
        count: int,
        seed: int,
        salt: int,
        *,
        lead_seconds: float = 0.0,
        lag_seconds: float = 0.0,
    ) -> None:
        super().__init__(count, seed, salt)
        self._window_seed, self._window_salt = seed, salt
        self._origin = DATA_START.timestamp() + lead_seconds
        self._span = DATA_SPAN_SECONDS - lead_seconds - lag_seconds

    def epoch(self, position: int) -> float:
        jitter = unit_interval(self._window_seed, self._window_salt, position)
        return self._origin + (position + jitter) * self._span / max(1, self.count)


@dataclass(frozen=True)
class WebhookEvent:
    index: int  # unique per event: 2 * payment + (0 for the invoice event, 1 for the payment's)
    type: str
    created: int
    obj: dict[str, Any]


@dataclass
class WebhookCounts:
    sent: int = 0
    failed: int = 0
    duplicated: int = 0


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


class Billing:
    """One tenant's billing: rosters and timelines (indexes, not data), quota, counters, and
    for the default tenant the webhooks. `pages` may be shared by every tenant's Billing (its
    keys name the tenant), so the cache's bound holds for the vendor as a whole."""

    def __init__(
        self,
        world: World,
        engine: ChaosEngine,
        *,
        pages: PageCache | None = None,
        webhook_max_attempts: int = 5,
        webhook_backoff_seconds: float = 0.2,
    ) -> None:
        self.world = world
        self.engine = engine
        seed = world.settings.seed
        self.seed = seed
        self.roster = world.roster(VENDOR)
        subscriptions = len(self.roster)
        self.invoice_count = INVOICES_PER_SUBSCRIPTION * subscriptions
        self.invoice_parents = ChildIndex(
            self.invoice_count, subscriptions, seed, _SALT_INVOICE_PARENT
        )
        self.invoice_timeline = _WindowTimeline(
            self.invoice_count, seed, _SALT_INVOICE, lag_seconds=PAYMENT_DELAY_SECONDS
        )
        self.payment_timeline = _WindowTimeline(
            self.invoice_count, seed, _SALT_PAYMENT_TIME, lead_seconds=PAYMENT_DELAY_SECONDS
        )
        self.quota = WindowQuota(world.settings.billing_requests_per_second, 1.0)
        self.requests: Counter[str] = Counter()
        self.pages = (
            pages
            if pages is not None
            else PageCache(world.settings.billing_page_cache_mb * 1024 * 1024)
        )
        self.webhook_counts = WebhookCounts()
        # Webhooks go to one receiver, which knows the default tenant's secret only.
        url = world.settings.webhook_url if world.tenant == 0 else None
        self.sender = (
            None
            if url is None
            else WebhookSender(
                url,
                world.credentials.billing_webhook_secret,
                max_attempts=webhook_max_attempts,
                backoff_base_seconds=webhook_backoff_seconds,
            )
        )
        self._events = self._event_stream()
        self._revenue: dict[str, dict[str, Any]] | None = None

    # -- canonical facts (shared by the records, the webhooks and the revenue totals) -------

    def _account(self, position: int) -> tuple[str, str]:
        """(plan, currency) of the customer at `position`, from the true person."""
        person = self.world.population.person(self.roster.entity(position))
        return person.plan, person.currency

    def invoice_status(self, invoice: int) -> str:
        return _pick(INVOICE_STATUSES, unit_interval(self.seed, _SALT_INVOICE_STATUS, invoice))

    def payment_status(self, payment: int, invoice_status: str | None = None) -> str:
        """Payment j settles invoice j, so its outcome follows from the invoice's."""
        if invoice_status is None:
            invoice_status = self.invoice_status(payment)
        if invoice_status == "paid":
            return "succeeded"
        if invoice_status == "open":
            # An open invoice's payment is either still in flight or was declined.
            u = unit_interval(self.seed, _SALT_PAYMENT_STATUS, payment)
            return "pending" if u < 0.5 else "failed"
        return "failed"

    # -- records -----------------------------------------------------------------------------

    def customer(self, position: int) -> dict[str, Any]:
        world = self.world
        ident = noisy_identity(world.population, self.roster, position)
        r = rng_for(self.seed, self.roster.record_salt(position), _SALT_CUSTOMER)
        first, last = ident.first_name, ident.last_name
        name: str | None
        if first and last:
            name = f"{last}, {first}" if r.random() < 0.12 else f"{first} {last}"
        else:
            name = first or last
        if r.random() < 0.01:
            name = None  # created by a checkout that only asked for an email
        person_currency = self._account(position)[1]
        return {
            "id": world.record_id(CUSTOMER_PREFIX, position),
            "name": name,
            "email": ident.email,
            "phone": ident.phone,
            "address": None
            if ident.address is None
            else {
                "line1": ident.address.street,
                "city": ident.address.city,
                "state": ident.address.state,
                "postal_code": ident.address.postcode,
                "country": ident.address.country,
            },
            "currency": person_currency,
            "created": int(self.roster.timeline.epoch(position)),
            "metadata": {},
        }

    def subscription(self, position: int) -> dict[str, Any]:
        plan, currency = self._account(position)
        r = rng_for(self.seed, _SALT_SUBSCRIPTION, position)
        # Checkout creates the customer and the subscription together.
        created = int(self.roster.timeline.epoch(position))
        status = _pick(
            SUBSCRIPTION_STATUSES, unit_interval(self.seed, _SALT_SUBSCRIPTION_STATUS, position)
        )
        return {
            "id": self.world.record_id(SUBSCRIPTION_PREFIX, position),
            "customer": self.world.record_id(CUSTOMER_PREFIX, position),
            "plan": plan,
            "status": r.choice(_spellings(SUBSCRIPTION_STATUSES, status)),
            "amount": PLAN_PRICES[plan],
            "currency": _messy_case(currency, r),
            "current_period_start": iso(_current_period_start(created)),
            "created": created,
        }

    def invoice(self, invoice: int) -> dict[str, Any]:
        subscription = self.invoice_parents.parent_of(invoice)
        plan, currency = self._account(subscription)
        r = rng_for(self.seed, _SALT_INVOICE, invoice)
        created = int(self.invoice_timeline.epoch(invoice))
        period_start = datetime.fromtimestamp(created, UTC)
        status = r.choice(_spellings(INVOICE_STATUSES, self.invoice_status(invoice)))
        record: dict[str, Any] = {
            "id": self.world.record_id(INVOICE_PREFIX, invoice),
            "customer": self.world.record_id(CUSTOMER_PREFIX, subscription),
            "subscription": self.world.record_id(SUBSCRIPTION_PREFIX, subscription),
            "amount_due": PLAN_PRICES[plan],
            "currency": _messy_case(currency, r),
            "status": status,
            "created": created,
            "period_start": created,
            "period_end": int(_add_months(period_start, 1).timestamp()),
        }
        drift_from = self.engine.settings.schema_drift_from
        if drift_from is not None and period_start.date() >= drift_from:
            # The vendor's 2025 API version: amounts as major-unit strings, `status` → `state`.
            record["amount_due"] = _major_units(PLAN_PRICES[plan])
            del record["status"]
            record["state"] = status
        return record

    def payment(self, payment: int) -> dict[str, Any]:
        subscription = self.invoice_parents.parent_of(payment)
        plan, currency = self._account(subscription)
        r = rng_for(self.seed, _SALT_PAYMENT, payment)
        created = datetime.fromtimestamp(int(self.payment_timeline.epoch(payment)), UTC)
        return {
            "id": self.world.record_id(PAYMENT_PREFIX, payment),
            "invoice": self.world.record_id(INVOICE_PREFIX, payment),
            "customer": self.world.record_id(CUSTOMER_PREFIX, subscription),
            "amount": _major_units(PLAN_PRICES[plan]),
            "currency": _messy_case(currency, r),
            "status": r.choice(PAYMENT_SPELLINGS[self.payment_status(payment)]),
            "created": iso(created),
        }

    # -- HTTP --------------------------------------------------------------------------------

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

    # -- webhooks ----------------------------------------------------------------------------

    def _event_stream(self) -> Iterator[WebhookEvent]:
        """Events in payment order; records are built when the event is sent, not before."""
        for payment in range(self.invoice_count):
            status = self.payment_status(payment)
            if status == "pending":
                continue
            record = self.payment(payment)
            created = int(self.payment_timeline.epoch(payment))
            if status == "succeeded":
                yield WebhookEvent(2 * payment, "invoice.paid", created, self.invoice(payment))
            yield WebhookEvent(2 * payment + 1, f"payment.{status}", created, record)

    def next_events(self, count: int) -> list[WebhookEvent]:
        # No await in here, so the rate loop and the emit route never take the same event.
        events = []
        for event in self._events:
            events.append(event)
            if len(events) == count:
                break
        return events

    async def send_event(self, sender: WebhookSender, event: WebhookEvent) -> None:
        event_id = self.world.record_id(EVENT_PREFIX, event.index)
        body = orjson.dumps(
            {
                "id": event_id,
                "type": event.type,
                "created": event.created,
                "data": {"object": event.obj},
            }
        )
        if not await sender.deliver(event_id, body):
            self.webhook_counts.failed += 1
            return
        self.webhook_counts.sent += 1
        if unit_interval(self.seed, _SALT_DUPLICATE_EVENT, event.index) < WEBHOOK_DUPLICATE_RATE:
            # At-least-once delivery: the vendor missed the ack and sends the same message again.
            self.webhook_counts.duplicated += 1
            await sender.deliver(event_id, body)

    async def _send_at_rate(self, sender: WebhookSender, per_second: float) -> None:
        interval = 1.0 / per_second
        due = time.monotonic()
        while events := self.next_events(1):
            await self.send_event(sender, events[0])
            # No catching up after a slow delivery or a busy loop: a burst is not a rate.
            due = max(due + interval, time.monotonic())
            await asyncio.sleep(due - time.monotonic())

    @asynccontextmanager
    async def lifespan(self, _: Starlette) -> AsyncIterator[None]:
        if self.sender is None:
            yield
            return
        async with self.sender as sender:
            rate = self.world.settings.webhook_events_per_second
            task = asyncio.create_task(self._send_at_rate(sender, rate)) if rate > 0 else None
            try:
                yield
            finally:
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    async def emit(self, request: Request) -> Response:
        if self.sender is None:
            return error_response(
                409,
                "webhooks_disabled",
                "no webhook_url: start the sandbox with a webhook URL to emit",
            )
        count = int_param(request, "count", 1, lo=1, hi=100_000)
        before = WebhookCounts(**vars(self.webhook_counts))
        events = self.next_events(count)
        for event in events:
            await self.send_event(self.sender, event)
        after = self.webhook_counts
        return JSONResponse(
            {
                "requested": count,
                "emitted": len(events),
                "sent": after.sent - before.sent,
                "failed": after.failed - before.failed,
                "duplicated": after.duplicated - before.duplicated,
                "exhausted": len(events) < count,
            }
        )

    # -- admin -------------------------------------------------------------------------------

    def revenue(self) -> dict[str, dict[str, Any]]:
        """Per currency: paid invoices (minor units) and succeeded payments (major, Decimal).

        Computed from the canonical facts, so it holds whatever the drift or the spellings.
        """
        if self._revenue is None:
            # Compact per-subscription facts: a million customers cost a few megabytes here.
            plans, currencies = tuple(PLAN_PRICES), CURRENCIES
            plan_of, currency_of = array("b"), array("b")
            for position in range(len(self.roster)):
                plan, currency = self._account(position)
                plan_of.append(plans.index(plan))
                currency_of.append(currencies.index(currency))
            paid_minor, paid_count, succeeded = Counter[int](), Counter[int](), Counter[int]()
            for index in range(self.invoice_count):
                subscription = self.invoice_parents.parent_of(index)
                amount = PLAN_PRICES[plans[plan_of[subscription]]]
                currency_index = currency_of[subscription]
                invoice_status = self.invoice_status(index)
                if invoice_status == "paid":
                    paid_minor[currency_index] += amount
                    paid_count[currency_index] += 1
                if self.payment_status(index, invoice_status) == "succeeded":
                    succeeded[currency_index] += amount
            self._revenue = {
                currencies[c]: {
                    "invoices_paid": paid_count[c],
                    "invoices_paid_amount_due_minor": paid_minor[c],
                    "payments_succeeded_amount": _major_units(succeeded[c]),
                }
                for c in sorted(set(paid_minor) | set(succeeded), key=currencies.__getitem__)
            }
        return self._revenue

    def stats(self) -> dict[str, Any]:
        sender = self.sender.counts if self.sender else None
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
                **vars(self.webhook_counts),
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
    routes.append(Route("/_sandbox/webhooks/emit", default.emit, methods=["POST"]))
    admin = VendorAdmin(VENDOR, ground_truth, lambda tenant: accounts[tenant].stats())
    return build_vendor_app(tenants, engine, admin, routes, lifespan=default.lifespan)


def ground_truth(world: World) -> Iterator[TruthRow]:
    roster = world.roster(VENDOR)
    for position in range(len(roster)):
        yield TruthRow(
            "customers", world.record_id(CUSTOMER_PREFIX, position), roster.entity(position)
        )


def _pick(statuses: tuple[tuple[str, float, tuple[str, ...]], ...], u: float) -> str:
    for status, share, _spelling in statuses:
        if u < share:
            return status
        u -= share
    return statuses[-1][0]


def _spellings(
    statuses: tuple[tuple[str, float, tuple[str, ...]], ...], status: str
) -> tuple[str, ...]:
    return next(spellings for name, _share, spellings in statuses if name == status)


def _messy_case(currency: str, r: random.Random) -> str:
    return currency.lower() if r.random() < 0.5 else currency


def _major_units(minor: int) -> str:
    return str(Decimal(minor).scaleb(-2))


def _add_months(moment: datetime, months: int) -> datetime:
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    # Clamp the day: a subscription started on the 31st renews on the last day of short months.
    next_month = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=moment.tzinfo)
    last_day = (next_month - timedelta(days=1)).day
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


def _current_period_start(created: int) -> datetime:
    """The last monthly renewal before the end of the data year."""
    start = datetime.fromtimestamp(created, UTC)
    months = (DATA_END.year - start.year) * 12 + DATA_END.month - start.month
    period = _add_months(start, months)
    while period >= DATA_END:
        months -= 1
        period = _add_months(start, months)
    return period
