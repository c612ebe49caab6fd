"""How our ASGI apps are served by uvicorn: slow clients cut off, logs as redacted JSON lines.

uvicorn bounds only the idle time between requests (`timeout_keep_alive`); a request's head
and body may take forever (its issue #157 asks for `--timeout-request-start/-complete`; not
implemented as of 0.54), and a fresh connection that sends nothing is never timed out at all.
ASGI middleware cannot help: it runs once the head is parsed. So `ClientLimits` go into a
small subclass of uvicorn's httptools protocol, the one place that sees the bytes arrive:

- the request head (request line and headers) must be complete `headers_seconds` after the
  connection opened or its first byte arrived, and be at most `max_head_bytes`;
- the body must be complete `body_seconds` after the head.

Any ASGI app gets this through `uvicorn_config(app, limits=...)`, which also leaves logging to
the project (`log_config=None`): uvicorn's lines, tracebacks included, are JSON with secrets
redacted like every other line.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from integration_platform.logs import ensure_logging, get_logger

_log = get_logger("integration_platform.serving")


@dataclass(frozen=True)
class ClientLimits:
    """How long and how large a client may take to deliver one request."""

    headers_seconds: float = 10.0
    body_seconds: float = 30.0
    max_head_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        if min(self.headers_seconds, self.body_seconds) <= 0 or self.max_head_bytes <= 0:
            raise ValueError(f"client limits must be positive: {self}")


_TIMEOUT_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 31\r\nconnection: close\r\n\r\nrequest not received in time.\r\n"
)
_TOO_LARGE_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\ncontent-length: 28\r\n"
    b"connection: close\r\n\r\nrequest headers too large.\r\n"
)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline per request phase and a head-size cap.

    One timer per connection: armed for the head when the connection opens or a new request's
    first byte arrives, re-armed for the body when the head is complete, disarmed when the
    request is complete. An idle kept-alive connection has no timer (uvicorn closes it).
    """

    limits = ClientLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._in_head = False  # between a request's first byte and its complete head
        self._head_bytes = 0  # of the request line and headers so far
        self._head_too_large = False

    # -- the timer ------------------------------------------------------------------------------

    def _arm(self, phase: str, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, phase, seconds)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, phase: str, seconds: float) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        _log.warning(
            "slow_client_cut_off", phase=phase, limit_seconds=seconds, client=self._client_text()
        )
        idle = self.cycle is None or self.cycle.response_complete
        if phase == "headers" and self._in_head and idle:
            self.transport.write(_TIMEOUT_408)  # a request is half-sent and nothing answers it
        # A body still arriving belongs to a running app: closing shows it a disconnect.
        self.transport.close()

    def _client_text(self) -> str | None:
        return f"{self.client[0]}:{self.client[1]}" if self.client else None

    # -- uvicorn's protocol, phase by phase -----------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("headers", self.limits.headers_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None:  # the first byte of a request on a kept-alive connection
            self._arm("headers", self.limits.headers_seconds)
        super().data_received(data)

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.limits.max_head_bytes:
            self._head_too_large = True
            # Raised inside the parser: httptools stops and uvicorn answers through
            # send_400_response, which sends 431 instead (below).
            raise ValueError("request head too large")

    def send_400_response(self, msg: str) -> None:
        if not self._head_too_large:
            super().send_400_response(msg)
            return
        self._disarm()
        _log.warning(
            "request_head_too_large",
            limit_bytes=self.limits.max_head_bytes,
            client=self._client_text(),
        )
        self.transport.write(_TOO_LARGE_431)
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        if self._deadline is None:
            self._arm("headers", self.limits.headers_seconds)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._arm("body", self.limits.body_seconds)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the websocket protocol takes the connection over
        super().handle_websocket_upgrade()


def limited_protocol(limits: ClientLimits) -> type[LimitedHttpToolsProtocol]:
    """The protocol class to give uvicorn as `http=` (uvicorn instantiates it per connection)."""
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})


def uvicorn_config(
    app: ASGIApp, *, limits: ClientLimits | None = None, **options: Any
) -> uvicorn.Config:
    """A uvicorn.Config for `app` with slow clients cut off and logs through the project's JSON.

    `options` are uvicorn.Config's (host, port, lifespan, ...); `http` and `log_config` are
    decided here. Logging is configured now if the process has not done it yet.
    """
    ensure_logging()
    options = {"loop": "uvloop", "log_level": "warning", "access_log": False, **options}
    return uvicorn.Config(
        app, http=limited_protocol(limits or ClientLimits()), log_config=None, **options
    )
