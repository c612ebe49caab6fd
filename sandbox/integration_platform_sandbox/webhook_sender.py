"""Sends sandbox webhooks as a vendor would: Standard Webhooks signatures, retried with backoff.

A delivery counts as received only on a 2xx answer; anything else, or a connection that fails,
is retried with exponential backoff (tenacity) until the attempts run out.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType

import httpx
from standardwebhooks.webhooks import Webhook
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

log = logging.getLogger(__name__)


class DeliveryRejected(Exception):
    """The receiver answered, but not with 2xx: the vendor will try again."""


@dataclass
class DeliveryCounts:
    attempts: int = 0
    retries: int = 0
    delivered: int = 0
    failed: int = 0


class WebhookSender:
    """POSTs signed JSON bodies to one URL; `deliver` returns whether the receiver took it.

    Use it as an async context manager: the HTTP client lives as long as the block.
    """

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        max_attempts: int = 5,
        backoff_base_seconds: float = 0.2,
        backoff_max_seconds: float = 5.0,
        timeout_seconds: float = 5.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.url = url
        self.max_attempts = max_attempts
        self.backoff_base_seconds = backoff_base_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.timeout_seconds = timeout_seconds
        self.counts = DeliveryCounts()
        self._signer = Webhook(secret)
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> WebhookSender:
        self._client = httpx.AsyncClient(timeout=self.timeout_seconds)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def signed_headers(self, message_id: str, body: bytes) -> dict[str, str]:
        # Whole seconds, so the header and the signed timestamp are the same number.
        now = datetime.fromtimestamp(int(time.time()), UTC)
        return {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._signer.sign(message_id, now, body.decode()),
        }

    async def deliver(self, message_id: str, body: bytes) -> bool:
        """Send one message, retrying failures; False once every attempt has failed."""
        if self._client is None:
            raise RuntimeError("WebhookSender.deliver called outside `async with sender:`")
        client = self._client
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_exponential(
                multiplier=self.backoff_base_seconds, max=self.backoff_max_seconds
            ),
            retry=retry_if_exception_type((httpx.TransportError, DeliveryRejected)),
            before_sleep=self._count_retry,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    self.counts.attempts += 1
                    # Signed per attempt: a retry carries a fresh timestamp, as real senders do.
                    response = await client.post(
                        self.url, content=body, headers=self.signed_headers(message_id, body)
                    )
                    if not response.is_success:
                        raise DeliveryRejected(f"{self.url} answered {response.status_code}")
        except RetryError as exc:
            self.counts.failed += 1
            log.warning(
                "webhook %s not delivered after %d attempts: %s",
                message_id,
                self.max_attempts,
                exc.last_attempt.exception(),
            )
            return False
        self.counts.delivered += 1
        return True

    def _count_retry(self, state: RetryCallState) -> None:
        self.counts.retries += 1
