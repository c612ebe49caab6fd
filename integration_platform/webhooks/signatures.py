"""Checks that a webhook request was signed by the vendor, on the raw body, before anything else.

Standard Webhooks goes through the `standardwebhooks` library (its HMAC and constant-time
comparison), with the spec's timestamp tolerance instead of the library's fixed five minutes.
Stripe-style `Stripe-Signature: t=...,v1=...` has no maintained library outside Stripe's SDK,
so it is written here: HMAC-SHA256 of `"<t>.<body>"`, compared with `hmac.compare_digest`.
Both refuse timestamps further than the tolerance from now, either way, against replays, and
timestamps that are not plain epoch seconds, before any arithmetic could overflow on them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from integration_platform.specs.models import WebhookSpec

Clock = Callable[[], float]


class SignatureError(Exception):
    """A request that must not be trusted; `reason` is a stable word for the rejection table."""

    status = 401
    reason = "invalid_signature"


class MalformedSignature(SignatureError):
    """Signature headers missing or unreadable: the sender did not sign the way the spec says."""

    status = 400
    reason = "malformed_signature"


class InvalidTimestamp(MalformedSignature):
    """A timestamp that is not epoch seconds a sender could have signed at (text, negative,
    fractional, or beyond year 5138)."""

    reason = "invalid_timestamp"


class StaleTimestamp(SignatureError):
    """Signed too long ago (or too far ahead): a replay, or a sender with a wrong clock.

    400 rather than 401: the credentials may be fine, the request is out of its time window.
    """

    status = 400
    reason = "stale_timestamp"


class InvalidSignature(SignatureError):
    """Well-formed, but no signature matches the body with our secret: forged or tampered."""


class SignatureVerifier(Protocol):
    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Return if the request is authentic; raise a SignatureError saying why not."""


# Whole epoch seconds in ASCII digits, at most 11 (year 5138). `int()` alone would also take
# signs, `_` separators, non-ASCII digits and numbers too large for the float arithmetic below.
_EPOCH_SECONDS = re.compile(r"[0-9]{1,11}")


def _check_timestamp(value: str, tolerance_seconds: float, clock: Clock) -> int:
    text = value.strip()
    if not _EPOCH_SECONDS.fullmatch(text):
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise InvalidTimestamp(
            f"timestamp {shown!r} is not whole epoch seconds (at most 11 digits, no sign)"
        )
    timestamp = int(text)
    drift = clock() - timestamp
    if abs(drift) > tolerance_seconds:
        when = "old" if drift > 0 else "far in the future"
        raise StaleTimestamp(
            f"timestamp is {abs(drift):.0f} s {when}; the tolerance is {tolerance_seconds:.0f} s"
        )
    return timestamp


class _TolerantWebhook(Webhook):
    """The library's verifier, with our tolerance and our error for the timestamp check.

    `Webhook.verify` calls its private `__verify_timestamp` (fixed at five minutes); this
    overrides it under its mangled name. Pinned standardwebhooks==1.1.0; a unit test fails if
    an upgrade stops calling it.
    """

    def __init__(self, secret: str, tolerance_seconds: float, clock: Clock) -> None:
        super().__init__(secret)
        self._tolerance_seconds = tolerance_seconds
        self._clock = clock

    def _Webhook__verify_timestamp(self, timestamp_header: str) -> datetime:
        timestamp = _check_timestamp(timestamp_header, self._tolerance_seconds, self._clock)
        return datetime.fromtimestamp(timestamp, UTC)


class StandardWebhooksVerifier:
    """`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64> [v1,<base64> ...]`."""

    HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")

    def __init__(
        self, secret: str, tolerance_seconds: float = 300.0, clock: Clock = time.time
    ) -> None:
        self._webhook = _TolerantWebhook(secret, tolerance_seconds, clock)

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        present = {name: headers.get(name) for name in self.HEADERS}
        missing = [name for name, value in present.items() if not value]
        if missing:
            raise MalformedSignature(f"missing header(s): {', '.join(missing)}")
        try:
            self._webhook.verify(body, {k: v for k, v in present.items() if v}, json_parse=False)
        except WebhookVerificationError as exc:
            raise InvalidSignature(f"no signature matches the body ({exc})") from None
        except ValueError as exc:
            # The library splits `v1,<sig>` and base64-decodes without catching: a garbled
            # header, or a body that is not UTF-8 text, surfaces here.
            raise MalformedSignature(f"unreadable signature header or body: {exc}") from None


class StripeVerifier:
    """`Stripe-Signature: t=<epoch>,v1=<hex>[,v1=<hex>...]`: HMAC-SHA256 over `"<t>.<body>"`.

    Several v1 entries are allowed (the sender signs with an old and a new secret while one is
    being rolled); any matching one passes. Other schemes (v0) are ignored.
    """

    HEADER = "stripe-signature"

    def __init__(
        self, secret: str, tolerance_seconds: float = 300.0, clock: Clock = time.time
    ) -> None:
        self._key = secret.encode()
        self._tolerance_seconds = tolerance_seconds
        self._clock = clock

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        header = headers.get(self.HEADER)
        if not header:
            raise MalformedSignature(f"missing header: {self.HEADER}")
        timestamps: list[str] = []
        signatures: list[bytes] = []
        for item in header.split(","):
            key, sep, value = item.strip().partition("=")
            if not sep:
                raise MalformedSignature(f"{self.HEADER} item {item[:40]!r} is not key=value")
            if key == "t":
                timestamps.append(value)
            elif key == "v1":
                try:
                    signatures.append(bytes.fromhex(value))
                except ValueError:
                    raise MalformedSignature("a v1 signature is not hexadecimal") from None
        if len(timestamps) != 1 or not signatures:
            raise MalformedSignature(f"{self.HEADER} needs exactly one t= and at least one v1=")
        _check_timestamp(timestamps[0], self._tolerance_seconds, self._clock)
        expected = hmac.new(
            self._key, timestamps[0].encode() + b"." + body, hashlib.sha256
        ).digest()
        # Check every candidate, so the time taken does not say which one matched.
        matched = False
        for signature in signatures:
            matched |= hmac.compare_digest(expected, signature)
        if not matched:
            raise InvalidSignature("no v1 signature matches the body")


def verifier_for(spec: WebhookSpec, clock: Clock = time.time) -> SignatureVerifier:
    secret = spec.secret.get_secret_value()
    if spec.signature == "stripe":
        return StripeVerifier(secret, spec.tolerance_seconds, clock)
    return StandardWebhooksVerifier(secret, spec.tolerance_seconds, clock)
