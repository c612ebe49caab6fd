"""Opaque cursors: the position after which the next page starts, base64url-encoded JSON."""

from __future__ import annotations

import base64
import binascii
import json

from integration_platform.api.errors import ApiError, FieldError


def encode_cursor(after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        after = value["after"]
        if not isinstance(after, str):
            raise TypeError(after)
    except (ValueError, TypeError, KeyError, UnicodeError, binascii.Error):
        raise ApiError(
            400,
            "invalid_cursor",
            "cursor is not one this API handed out: pass "
            "next_cursor from the previous page unchanged, or leave it out to "
            "start from the first page",
            [FieldError(path="cursor", message="not a cursor of this API", location="query")],
        ) from None
    return after
