"""One JSON log line and one latency observation per request, with its request id.

`X-Request-ID` is honoured when it is a sane token (else one is made) and returned on every
answer; the id rides along on every line logged while the request runs.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from integration_platform.api.metrics import ApiMetrics
from integration_platform.logs import get_logger

REQUEST_ID_HEADER = b"x-request-id"
_SANE_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")

_log = get_logger("integration_platform.api")


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER, b"")
        request_id = given.decode() if _SANE_ID.fullmatch(given) else uuid.uuid4().hex
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER, request_id.encode()),
                ]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                latency = time.perf_counter() - started
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                client_id = state.get("client_id") or scope.get("path_params", {}).get("client_id")
                self.metrics.request_seconds.labels(route, scope["method"], str(status)).observe(
                    latency
                )
                _log.info(
                    "api_request",
                    method=scope["method"],
                    route=route,
                    status=status,
                    latency_ms=round(latency * 1000, 2),
                    client_id=client_id,
                    key_id=state.get("key_id"),
                )
