"""The receiver's ASGI application: `POST /webhooks<path>` for every source whose spec has webhooks.

Per request, in this order: refuse a body over `max_body_bytes` (declared or counted while
streaming, never read whole first), verify the signature on the raw bytes, only then parse and
route the event, and acknowledge once the inbox has committed it. Whatever is refused is
recorded in the inbox's rejection table (reason, remote, headers without secrets) and never
reaches the events. Answers: 200 accepted / duplicate / ignored; 400 malformed, stale, or a
timestamp that is no epoch seconds; 401 forged; 409 an event id reused with another body; 413
too large; 422 a record that names no day; 503 when the inbox cannot commit (the sender will
retry).
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from integration_platform.logs import get_logger
from integration_platform.specs.loader import load_spec, load_specs
from integration_platform.specs.models import SourceSpec
from integration_platform.webhooks.inbox import (
    Ignored,
    Outcome,
    Receipt,
    Rejection,
    Synchronous,
    utc_now,
)
from integration_platform.webhooks.routing import EventRejected, EventRouter, WebhookConfigError
from integration_platform.webhooks.signatures import Clock, SignatureError, verifier_for
from integration_platform.webhooks.writer import InboxWriter

ROUTE_PREFIX = "/webhooks"
# Header names whose values are credentials or derived from them: never written down.
SECRET_HEADER = re.compile(r"authorization|cookie|signature|secret|token|api[-_]?key", re.I)
REDACTED = "***"

_log = get_logger("integration_platform.webhooks")


def route_path(spec: SourceSpec) -> str:
    assert spec.webhooks is not None
    return ROUTE_PREFIX + spec.webhooks.path


def safe_headers(headers: Mapping[str, str]) -> str:
    """The request's headers as JSON, credential values redacted and long values cut."""
    kept = {
        name: REDACTED if SECRET_HEADER.search(name) else value[:256]
        for name, value in list(headers.items())[:64]
    }
    return orjson.dumps(kept).decode()


class _Refused(Exception):
    def __init__(
        self,
        status: int,
        reason: str,
        detail: str,
        event_id: str | None = None,
        body_bytes: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail
        self.event_id, self.body_bytes = event_id, body_bytes


class _Disconnected(Exception):
    """The sender hung up before its body was read: nobody is left to answer."""


class _InboxUnavailable(Exception):
    pass


Answer = tuple[int, dict[str, Any]]


class SourceEndpoint:
    """`POST /webhooks<path>` of one source: a plain ASGI app under Starlette's router.

    Plain ASGI rather than Starlette's Request and Response: measured, those wrappers cost
    as much CPU per event as verifying the signature does.
    """

    def __init__(self, spec: SourceSpec, writer: InboxWriter, clock: Clock = time.time) -> None:
        assert spec.webhooks is not None
        self.source = spec.source
        self.max_body_bytes = spec.webhooks.max_body_bytes
        self.router = EventRouter(spec)
        try:
            self.verifier = verifier_for(spec.webhooks, clock)
        except ValueError as exc:  # a Standard Webhooks secret that is not base64
            raise WebhookConfigError(
                f"{spec.source}: the webhook secret cannot be used for "
                f"{spec.webhooks.signature} signatures ({exc}); Standard Webhooks secrets are "
                "base64, optionally prefixed whsec_"
            ) from None
        self.writer = writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extra: list[tuple[bytes, bytes]] = []
        try:
            status, content = await self.answer(scope, receive)
        except _Disconnected:
            return
        except _InboxUnavailable:
            # Not acknowledged, so the sender keeps the event and tries again later.
            status, content = 503, {"error": "inbox_unavailable"}
            extra = [(b"retry-after", b"5")]
        body = orjson.dumps(content)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def answer(self, scope: Scope, receive: Receive) -> Answer:
        headers = Headers(scope=scope)
        body_bytes: int | None = None
        try:
            body = await self._read_body(headers, receive)
            body_bytes = len(body)
            self.verifier.verify(body, headers)
            routed = self.router.route(body)
        except _Refused as refused:
            return await self._reject(scope, headers, refused)
        except SignatureError as exc:
            return await self._reject(
                scope, headers, _Refused(exc.status, exc.reason, str(exc), body_bytes=body_bytes)
            )
        except EventRejected as exc:
            return await self._reject(
                scope,
                headers,
                _Refused(exc.status, exc.reason, exc.detail, exc.event_id, body_bytes),
            )
        now = utc_now()
        if routed.endpoint is None or routed.partition_key is None:
            await self._write(Ignored(self.source, routed.event_id, routed.event_type, now))
            return 200, {"status": Outcome.IGNORED.value, "event_id": routed.event_id}
        outcome = await self._write(
            Receipt(
                self.source,
                routed.event_id,
                routed.event_type,
                routed.endpoint,
                routed.partition_key,
                body,
                now,
            )
        )
        if outcome is Outcome.CONFLICT:
            return await self._reject(
                scope,
                headers,
                _Refused(
                    409,
                    "event_id_reused",
                    "this event id was accepted before with another body",
                    routed.event_id,
                    body_bytes,
                ),
            )
        return 200, {"status": outcome.value, "event_id": routed.event_id}

    async def _read_body(self, headers: Headers, receive: Receive) -> bytes:
        declared = headers.get("content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                raise _Refused(
                    400, "malformed_request", f"Content-Length {declared[:20]!r} is not a number"
                ) from None
            if length > self.max_body_bytes:
                raise _Refused(
                    413,
                    "body_too_large",
                    f"Content-Length {length} is over {self.max_body_bytes} bytes",
                    body_bytes=length,
                )
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _Refused(
                    413,
                    "body_too_large",
                    f"the body went over {self.max_body_bytes} bytes",
                    body_bytes=size,
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _write(self, item: Receipt | Ignored | Rejection) -> Outcome:
        try:
            return await self.writer.write(item)
        except sqlite3.Error as exc:
            _log.error("webhook_inbox_unavailable", source=self.source, error=str(exc))
            raise _InboxUnavailable(str(exc)) from exc

    async def _reject(self, scope: Scope, headers: Headers, refused: _Refused) -> Answer:
        client = scope.get("client")
        remote = f"{client[0]}:{client[1]}" if client else None
        _log.warning(
            "webhook_rejected",
            source=self.source,
            status=refused.status,
            reason=refused.reason,
            detail=refused.detail,
            remote=remote,
            event_id=refused.event_id,
        )
        await self._write(
            Rejection(
                self.source,
                refused.status,
                refused.reason,
                refused.detail,
                refused.event_id,
                remote,
                safe_headers(headers),
                refused.body_bytes,
                utc_now(),
            )
        )
        return refused.status, {"error": refused.reason, "detail": refused.detail}


def webhook_specs(env: Mapping[str, str]) -> dict[str, SourceSpec]:
    """The specs with webhooks, resolved from `env` (the receiver needs their secrets only)."""
    unresolved = load_specs()
    return {
        name: load_spec(spec.file, env=env)
        for name, spec in unresolved.items()
        if spec.webhooks is not None and spec.file is not None
    }


def create_receiver_app(
    specs: Mapping[str, SourceSpec],
    inbox: Path,
    *,
    synchronous: Synchronous = "NORMAL",
    clock: Clock = time.time,
) -> Starlette:
    """The receiver for every spec with webhooks (resolved specs: the secrets are needed)."""
    with_webhooks = [spec for spec in specs.values() if spec.webhooks is not None]
    if not with_webhooks:
        raise WebhookConfigError(
            "no source spec declares `webhooks:`, so there is nothing "
            "to receive (see sources/billing.yaml for an example)"
        )
    writer = InboxWriter(inbox, synchronous=synchronous)
    routes: list[Route] = []
    seen: dict[str, str] = {}
    for spec in with_webhooks:
        path = route_path(spec)
        if path in seen:
            raise WebhookConfigError(
                f"sources {seen[path]!r} and {spec.source!r} both "
                f"receive webhooks at {path}: give each its own path"
            )
        seen[path] = spec.source
        routes.append(Route(path, SourceEndpoint(spec, writer, clock), methods=["POST"]))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "routes": sorted(seen), "inbox": str(inbox)})

    routes.append(Route("/_health", health, methods=["GET"]))

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await writer.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.writer = writer
    app.state.routes = dict(seen)
    return app
