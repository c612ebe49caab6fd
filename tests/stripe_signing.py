"""What a Stripe-style sender puts in `Stripe-Signature`, for the receiver's tests."""

from __future__ import annotations

import hashlib
import hmac


def stripe_signature_header(secret: str, body: bytes, timestamp: int | str) -> str:
    """`t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`, as Stripe signs."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"
