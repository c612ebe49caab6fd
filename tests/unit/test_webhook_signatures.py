"""Webhook signature verification: Standard Webhooks (through the library) and Stripe-style."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from integration_platform.webhooks.signatures import (
    InvalidSignature,
    MalformedSignature,
    StaleTimestamp,
    StandardWebhooksVerifier,
    StripeVerifier,
)
from tests.stripe_signing import stripe_signature_header

SECRET = "whsec_" + base64.b64encode(b"unit-test-webhook-secret").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"somebody-else-entirely").decode()
NOW = 1_750_000_000
BODY = b'{"id":"evt_1","type":"invoice.paid","data":{"object":{"id":"in_1"}}}'


def clock() -> float:
    return float(NOW)


def standard_headers(
    secret: str = SECRET, body: bytes = BODY, timestamp: int = NOW, message_id: str = "evt_1"
) -> dict[str, str]:
    signature = Webhook(secret).sign(
        message_id, datetime.fromtimestamp(timestamp, UTC), body.decode()
    )
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def standard(tolerance: float = 300.0) -> StandardWebhooksVerifier:
    return StandardWebhooksVerifier(SECRET, tolerance, clock)


def test_standard_webhook_passes_when_signed_with_the_secret() -> None:
    standard().verify(BODY, standard_headers())


def test_standard_webhook_passes_when_one_of_several_signatures_matches() -> None:
    ours = standard_headers()["webhook-signature"]
    theirs = standard_headers(OTHER_SECRET)["webhook-signature"]
    standard().verify(BODY, {**standard_headers(), "webhook-signature": f"{theirs} {ours}"})


def test_standard_webhook_is_invalid_when_signed_with_another_secret() -> None:
    with pytest.raises(InvalidSignature):
        standard().verify(BODY, standard_headers(OTHER_SECRET))


def test_standard_webhook_is_invalid_when_the_body_was_changed_after_signing() -> None:
    with pytest.raises(InvalidSignature):
        standard().verify(BODY.replace(b"in_1", b"in_2"), standard_headers())


def test_standard_webhook_is_invalid_when_the_id_was_changed_after_signing() -> None:
    headers = {**standard_headers(), "webhook-id": "evt_2"}
    with pytest.raises(InvalidSignature):
        standard().verify(BODY, headers)


def test_standard_webhook_is_stale_when_older_than_the_tolerance() -> None:
    with pytest.raises(StaleTimestamp, match="old"):
        standard().verify(BODY, standard_headers(timestamp=NOW - 301))


def test_standard_webhook_is_stale_when_dated_beyond_the_tolerance_ahead() -> None:
    with pytest.raises(StaleTimestamp, match="future"):
        standard().verify(BODY, standard_headers(timestamp=NOW + 301))


def test_standard_webhook_passes_when_a_longer_tolerance_than_the_library_default_allows_it() -> (
    None
):
    # The library hard-codes five minutes; the spec's tolerance must win (both ways).
    standard(tolerance=900).verify(BODY, standard_headers(timestamp=NOW - 600))
    with pytest.raises(StaleTimestamp):
        standard(tolerance=60).verify(BODY, standard_headers(timestamp=NOW - 90))


@pytest.mark.parametrize("drop", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_standard_webhook_is_malformed_when_a_header_is_missing(drop: str) -> None:
    headers = {k: v for k, v in standard_headers().items() if k != drop}
    with pytest.raises(MalformedSignature, match=drop):
        standard().verify(BODY, headers)


@pytest.mark.parametrize("signature", ["v1", "v1,not*base64*", "v1,a,b"])
def test_standard_webhook_is_malformed_when_the_signature_header_is_garbled(
    signature: str,
) -> None:
    with pytest.raises(MalformedSignature):
        standard().verify(BODY, {**standard_headers(), "webhook-signature": signature})


def test_standard_webhook_is_malformed_when_the_timestamp_is_not_a_number() -> None:
    with pytest.raises(MalformedSignature):
        standard().verify(BODY, {**standard_headers(), "webhook-timestamp": "yesterday"})


def stripe(tolerance: float = 300.0) -> StripeVerifier:
    return StripeVerifier(SECRET, tolerance, clock)


def test_stripe_signature_passes_when_signed_with_the_secret() -> None:
    stripe().verify(BODY, {"stripe-signature": stripe_signature_header(SECRET, BODY, NOW)})


def test_stripe_signature_passes_when_any_v1_matches_during_a_secret_roll() -> None:
    old = stripe_signature_header(OTHER_SECRET, BODY, NOW).split(",")[1]
    header = stripe_signature_header(SECRET, BODY, NOW) + f",{old},v0=deadbeef"
    stripe().verify(BODY, {"stripe-signature": header})


def test_stripe_signature_is_invalid_when_signed_with_another_secret() -> None:
    with pytest.raises(InvalidSignature):
        stripe().verify(
            BODY, {"stripe-signature": stripe_signature_header(OTHER_SECRET, BODY, NOW)}
        )


def test_stripe_signature_is_invalid_when_the_body_was_changed_after_signing() -> None:
    header = stripe_signature_header(SECRET, BODY, NOW)
    with pytest.raises(InvalidSignature):
        stripe().verify(BODY + b" ", {"stripe-signature": header})


def test_stripe_signature_is_invalid_when_the_timestamp_was_changed_after_signing() -> None:
    header = stripe_signature_header(SECRET, BODY, NOW).replace(f"t={NOW}", f"t={NOW + 1}")
    with pytest.raises(InvalidSignature):
        stripe().verify(BODY, {"stripe-signature": header})


def test_stripe_signature_is_stale_when_older_than_the_tolerance() -> None:
    header = stripe_signature_header(SECRET, BODY, NOW - 301)
    with pytest.raises(StaleTimestamp):
        stripe().verify(BODY, {"stripe-signature": header})


@pytest.mark.parametrize(
    "header",
    [
        "",
        "v1=abc",
        f"t={NOW}",
        f"t={NOW},v1=zz",
        f"t=soon,v1={'0' * 64}",
        f"t={NOW},t={NOW},v1={'0' * 64}",
        "garbage",
    ],
)
def test_stripe_signature_is_malformed_when_the_header_cannot_be_read(header: str) -> None:
    with pytest.raises(MalformedSignature):
        stripe().verify(BODY, {"stripe-signature": header} if header else {})
