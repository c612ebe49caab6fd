"""Chaos profiles: the failures real APIs produce, injected into the sandbox on purpose.

`ChaosMiddleware` wraps a vendor app and, per request, may answer 429 or 5xx, stall, drop the
connection half-way through the body, or send a body that is not valid JSON. Data-level chaos
(a page that repeats its cursor, schema drift from a date, GraphQL partial errors) is read by
the vendors themselves from `ChaosSettings`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections import deque
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Fault = Literal["429", "500", "502", "503", "slow", "drop", "malformed"]
FAULTS: tuple[Fault, ...] = ("429", "500", "502", "503", "slow", "drop", "malformed")


class ChaosSettings(BaseModel):
    """Every knob, each off by default. Probabilities are per request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_limit_429: float = Field(0.0, ge=0, le=1, description="spurious 429 with Retry-After")
    server_error_burst: float = Field(0.0, ge=0, le=1, description="a burst of 500/502/503 starts")
    burst_length: int = Field(3, ge=1, description="requests in one 5xx burst")
    slow: float = Field(0.0, ge=0, le=1, description="response delayed by slow_seconds")
    slow_seconds: float = Field(3.0, ge=0, description="delay of a slow response")
    drop: float = Field(0.0, ge=0, le=1, description="connection dropped mid-body")
    malformed: float = Field(0.0, ge=0, le=1, description="body cut short: bad JSON, valid HTTP")
    retry_after_seconds: float = Field(1.0, ge=0, description="Retry-After on chaos 429s")
    retry_after_http_date: float = Field(
        0.0, ge=0, le=1, description="share of chaos 429s that give Retry-After as an HTTP date"
    )
    repeat_cursor_at_page: int | None = Field(
        None, ge=1, description="this page (1-based) returns the cursor it was asked with"
    )
    schema_drift_from: date | None = Field(
        None, description="records updated on or after this date come with a drifted schema"
    )
    graphql_partial_errors: float = Field(
        0.0, ge=0, le=1, description="share of GraphQL nested fields that fail (HTTP 200 + errors)"
    )


PROFILES: dict[str, ChaosSettings] = {
    "none": ChaosSettings(),
    "light": ChaosSettings(
        rate_limit_429=0.02,
        server_error_burst=0.01,
        drop=0.01,
        malformed=0.01,
        retry_after_seconds=0.2,
    ),
    "heavy": ChaosSettings(
        rate_limit_429=0.08,
        server_error_burst=0.04,
        burst_length=3,
        slow=0.02,
        slow_seconds=2.0,
        drop=0.04,
        malformed=0.04,
        retry_after_seconds=0.2,
        retry_after_http_date=0.3,
        graphql_partial_errors=0.0,
    ),
}


class ChaosConfigError(ValueError):
    """A chaos profile or knob that does not exist or has a bad value."""


def parse_chaos(profile: str, overrides: list[str] | tuple[str, ...] = ()) -> ChaosSettings:
    """`profile` is none, light or heavy; each override is `knob=value`, e.g. `drop=0.1`."""
    if profile not in PROFILES:
        raise ChaosConfigError(
            f"unknown chaos profile {profile!r}: choose one of {', '.join(PROFILES)}"
        )
    values: dict[str, Any] = PROFILES[profile].model_dump()
    for item in overrides:
        knob, sep, raw = item.partition("=")
        if not sep or knob not in ChaosSettings.model_fields:
            raise ChaosConfigError(
                f"bad chaos setting {item!r}: expected knob=value with knob one of "
                f"{', '.join(ChaosSettings.model_fields)}"
            )
        values[knob] = None if raw.lower() in ("", "none", "off") else raw
    try:
        return ChaosSettings.model_validate(values)
    except ValidationError as exc:
        raise ChaosConfigError(f"bad chaos settings: {exc}") from exc


class ChaosEngine:
    """Decides each request's fault. Tests can queue exact faults with `script`."""

    def __init__(self, settings: ChaosSettings, seed: int) -> None:
        self.settings = settings
        self._rng = random.Random(seed)
        self._burst_left = 0
        self._script: deque[Fault | None] = deque()
        self._lock = threading.Lock()
        self.injected: dict[str, int] = dict.fromkeys(FAULTS, 0)

    def configure(self, settings: ChaosSettings, script: list[Fault | None] | None = None) -> None:
        with self._lock:
            self.settings = settings
            self._burst_left = 0
            self._script = deque(script or [])

    def decide(self) -> Fault | None:
        with self._lock:
            fault = self._decide_locked()
            if fault:
                self.injected[fault] += 1
            return fault

    def _decide_locked(self) -> Fault | None:
        if self._script:
            return self._script.popleft()
        s, roll = self.settings, self._rng.random
        if self._burst_left:
            self._burst_left -= 1
            return self._rng.choice(("500", "502", "503"))
        if roll() < s.server_error_burst:
            self._burst_left = s.burst_length - 1
            return self._rng.choice(("500", "502", "503"))
        if roll() < s.rate_limit_429:
            return "429"
        if roll() < s.drop:
            return "drop"
        if roll() < s.malformed:
            return "malformed"
        if roll() < s.slow:
            return "slow"
        return None

    def retry_after(self) -> str:
        s = self.settings
        if self._rng.random() < s.retry_after_http_date:
            # HTTP dates have whole seconds: round up so the client never comes back early.
            when = datetime.now(UTC) + timedelta(seconds=max(1.0, s.retry_after_seconds) + 1)
            return format_datetime(when, usegmt=True)
        return f"{s.retry_after_seconds:g}"


class DroppedConnection(Exception):
    """Raised inside the server to cut a response off mid-body, as a dying proxy would."""


class _HideDroppedConnections(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DroppedConnection)


logging.getLogger("uvicorn.error").addFilter(_HideDroppedConnections())


class ChaosMiddleware:
    """Pure ASGI middleware applying `ChaosEngine` decisions to every non-admin request."""

    def __init__(self, app: ASGIApp, engine: ChaosEngine) -> None:
        self.app = app
        self.engine = engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox"):
            await self.app(scope, receive, send)
            return
        fault = self.engine.decide()
        if fault is None:
            await self.app(scope, receive, send)
        elif fault == "429":
            await _send_json(
                send,
                429,
                {"error": "rate_limited", "message": "slow down"},
                {"retry-after": self.engine.retry_after()},
            )
        elif fault in ("500", "502", "503"):
            await _send_json(send, int(fault), {"error": "server_error", "message": fault})
        elif fault == "slow":
            await asyncio.sleep(self.engine.settings.slow_seconds)
            await self.app(scope, receive, send)
        else:
            await self._damaged(scope, receive, send, drop=fault == "drop")

    async def _damaged(self, scope: Scope, receive: Receive, send: Send, *, drop: bool) -> None:
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            else:
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        cut = body[: max(1, len(body) // 2)]
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        if drop:
            # Promise the whole body, deliver half, then hang up.
            headers.append((b"content-length", str(len(body)).encode()))
            await send(
                {
                    "type": "http.response.start",
                    "status": start.get("status", 200),
                    "headers": headers,
                }
            )
            await send({"type": "http.response.body", "body": cut, "more_body": True})
            raise DroppedConnection("chaos: connection dropped mid-body")
        headers.append((b"content-length", str(len(cut)).encode()))
        await send(
            {"type": "http.response.start", "status": start.get("status", 200), "headers": headers}
        )
        await send({"type": "http.response.body", "body": cut})


async def _send_json(
    send: Send, status: int, payload: object, extra_headers: dict[str, str] | None = None
) -> None:
    body = orjson.dumps(payload)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra_headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
