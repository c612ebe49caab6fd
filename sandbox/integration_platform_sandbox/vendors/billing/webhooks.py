"""Sandbox billing's webhooks: invoice and payment events in payment order, signed the Standard
Webhooks way and POSTed to one receiver at a steady rate, or N at once on request; a few are
delivered twice, as an at-least-once vendor does."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from integration_platform_sandbox.population import unit_interval
from integration_platform_sandbox.vendors.billing.records import BillingRecords
from integration_platform_sandbox.vendors.common import JSONResponse, error_response, int_param
from integration_platform_sandbox.webhook_sender import WebhookSender

EVENT_PREFIX = "evt"
WEBHOOK_DUPLICATE_RATE = 0.03
_SALT_DUPLICATE_EVENT = 0xBE1


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


class BillingWebhooks:
    """The webhooks of one tenant's billing: only the default tenant's are sent, as the one
    receiver they go to knows that tenant's secret only."""

    def __init__(
        self, records: BillingRecords, *, max_attempts: int = 5, backoff_seconds: float = 0.2
    ) -> None:
        self.records = records
        world = records.world
        self.counts = WebhookCounts()
        url = world.settings.webhook_url if world.tenant == 0 else None
        self.sender = (
            None
            if url is None
            else WebhookSender(
                url,
                world.credentials.billing_webhook_secret,
                max_attempts=max_attempts,
                backoff_base_seconds=backoff_seconds,
            )
        )
        self._events = self._event_stream()

    def _event_stream(self) -> Iterator[WebhookEvent]:
        """Events in payment order; records are built when the event is sent, not before."""
        records = self.records
        for payment in range(records.invoice_count):
            status = records.payment_status(payment)
            if status == "pending":
                continue
            record = records.payment(payment)
            created = int(records.payment_timeline.epoch(payment))
            if status == "succeeded":
                yield WebhookEvent(2 * payment, "invoice.paid", created, records.invoice(payment))
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
        event_id = self.records.world.record_id(EVENT_PREFIX, event.index)
        body = orjson.dumps(
            {
                "id": event_id,
                "type": event.type,
                "created": event.created,
                "data": {"object": event.obj},
            }
        )
        if not await sender.deliver(event_id, body):
            self.counts.failed += 1
            return
        self.counts.sent += 1
        duplicate = unit_interval(self.records.seed, _SALT_DUPLICATE_EVENT, event.index)
        if duplicate < WEBHOOK_DUPLICATE_RATE:
            # At-least-once delivery: the vendor missed the ack and sends the same message again.
            self.counts.duplicated += 1
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
            rate = self.records.world.settings.webhook_events_per_second
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
        before = WebhookCounts(**vars(self.counts))
        events = self.next_events(count)
        for event in events:
            await self.send_event(self.sender, event)
        after = self.counts
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
