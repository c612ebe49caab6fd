"""HMAC request signing as the sandbox analytics vendor checks it, for its server and our client.

A signed request carries three headers: `X-Key-Id`, `X-Timestamp` (epoch seconds) and
`X-Signature`, the lowercase hex HMAC-SHA256 under the shared secret of the canonical request:

    METHOD \\n PATH[?QUERY] \\n TIMESTAMP \\n SHA256_HEX(BODY)

PATH[?QUERY] is the request target exactly as sent on the wire (percent-encoding untouched,
parameters in their sent order, no `?` when there is no query); with httpx it is
`request.url.raw_path`. TIMESTAMP is the `X-Timestamp` header value verbatim.
"""

from __future__ import annotations

import hashlib
import hmac
import time

KEY_ID_HEADER = "X-Key-Id"
TIMESTAMP_HEADER = "X-Timestamp"
SIGNATURE_HEADER = "X-Signature"


def canonical_request(
    method: str, path_with_query: str | bytes, timestamp: str | int, body: bytes = b""
) -> bytes:
    """The bytes that get signed: method, request target, timestamp and body hash, one a line."""
    target = path_with_query if isinstance(path_with_query, bytes) else path_with_query.encode()
    return b"\n".join(
        (
            method.upper().encode("ascii"),
            target,
            str(timestamp).encode("ascii"),
            hashlib.sha256(body).hexdigest().encode("ascii"),
        )
    )


def sign(
    secret: str | bytes,
    method: str,
    path_with_query: str | bytes,
    timestamp: str | int,
    body: bytes = b"",
) -> str:
    """Lowercase hex HMAC-SHA256 of `canonical_request(...)` under `secret`."""
    key = secret if isinstance(secret, bytes) else secret.encode()
    message = canonical_request(method, path_with_query, timestamp, body)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def signed_headers(
    key_id: str,
    secret: str | bytes,
    method: str,
    path_with_query: str | bytes,
    body: bytes = b"",
    timestamp: int | None = None,
) -> dict[str, str]:
    """The three headers that authenticate one request; `timestamp` defaults to now."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        KEY_ID_HEADER: key_id,
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: sign(secret, method, path_with_query, stamp, body),
    }
