"""Sandbox product analytics (REST + SSE): HMAC-signed requests, page numbers, a live event feed.

Every /v1 request, the stream included, carries the headers `integration_platform_sandbox.signing`
describes (there are no query-string signatures); failures are 401 with `error` one of
missing_signature, unknown_key, bad_timestamp, stale_timestamp, bad_signature. GET /v1/users and
/v1/events take `page` (1-based), `per_page` (1..500, default 100), `since` and `until` (ISO 8601
or epoch seconds; since <= t < until on users' updated_at, events' occurred_at) and answer
`{"data", "page", "per_page", "total_pages", "total"}`. GET /v1/stream is an endless SSE feed of
the events after the historical ones: `retry: 2000` first, then `event: usage` blocks whose `id`
is the integer event_id; `Last-Event-ID` (or `last_event_id`) resumes right after that id.
POST /_sandbox/stream/disconnect ends every open stream. Each key may make
`REQUESTS_PER_SECOND` requests a second (IETF RateLimit headers, 429 with Retry-After beyond).
The key id names the tenant whose users and events a request reads, once its signature holds.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hmac
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson
from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from integration_platform_sandbox import signing
from integration_platform_sandbox.chaos import ChaosEngine, ChaosMiddleware, DroppedConnection
from integration_platform_sandbox.identity import noisy_identity
from integration_platform_sandbox.population import DATA_END, mix64, rng_for
from integration_platform_sandbox.ratelimit import WindowQuota
from integration_platform_sandbox.roster import ChildIndex, Timeline
from integration_platform_sandbox.tenants import PerTenant, Tenants
from integration_platform_sandbox.vendors.common import (
    JSONResponse,
    TruthRow,
    VendorAdmin,
    authenticated,
    build_vendor_app,
    error_response,
    int_param,
    parse_timestamp,
)
from integration_platform_sandbox.world import World

VENDOR = "analytics"
USER_PREFIX = "usr"
# Per key, in a fixed one-second window. A module constant rather than a SandboxSettings field:
# tests lower it with monkeypatch before starting a private sandbox.
REQUESTS_PER_SECOND = 100
EVENTS_PER_USER = 20
MAX_PER_PAGE = 500
MAX_PAGE = 2**31
STREAM_PATH = "/v1/stream"
STREAM_RETRY_MS = 2000
STREAM_PING_SECONDS = 15
# Events framed per write, by hand. Measured on a 2-core box at rate 0, counting events off the
# raw socket: one sse-starlette ServerSentEvent per event (one ASGI send each) gave 23-33k
# events/s; 500 pre-framed events per send gave 93-133k events/s, where generating the events
# is the limit. sse-starlette still runs the response (pings, client disconnects).
STREAM_BATCH = 500
# Live events (after the data year) are one second apart plus jitter: deterministic by id, and
# a long rate-0 benchmark stays far inside datetime's range.
LIVE_SPACING_US = 1_000_000
MAX_EVENT_ID = 10**10
_EVENT_TIME_SALT, _EVENT_OWNER_SALT, _EVENT_BODY_SALT, _CHAOS_CUT_SALT = (
    0xA7E0,
    0xA7E1,
    0xA7E2,
    0xA7E3,
)
# Set on the ASGI scope by `StreamChaos`: the stream then breaks off mid-event by itself.
_STREAM_FAULT_KEY = "sandbox.stream_fault"

_DAY_US = 86_400_000_000
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


@dataclass(frozen=True)
class EventKind:
    """One type of usage event: how common it is, its one property and its quantity range."""

    name: str
    share: float
    property: str
    values: tuple[str, ...]
    max_quantity: int


EVENT_KINDS = (
    EventKind(
        "page_view",
        0.40,
        "path",
        ("/dashboard", "/reports", "/settings", "/billing", "/integrations", "/home"),
        1,
    ),
    EventKind(
        "feature_used",
        0.25,
        "feature",
        ("search", "filters", "dashboards", "alerts", "sharing", "ai_assist"),
        5,
    ),
    EventKind(
        "api_call",
        0.15,
        "endpoint",
        ("/v1/reports", "/v1/users", "/v1/exports", "/v1/metrics"),
        1000,
    ),
    EventKind("login", 0.10, "method", ("password", "sso", "google", "magic_link"), 1),
    EventKind("export", 0.06, "format", ("csv", "xlsx", "pdf", "parquet"), 50_000),
    EventKind("invite_sent", 0.04, "role", ("member", "admin", "viewer"), 3),
)
PLATFORMS = ("web", "web", "web", "ios", "android")
# Upper bounds of each kind's share of the 16-bit range, for picking a kind from hash bits.
_KIND_BOUNDS = tuple(
    round(65536 * sum(kind.share for kind in EVENT_KINDS[: i + 1])) for i in range(len(EVENT_KINDS))
)


def to_micros(moment: datetime) -> int:
    """Whole microseconds since the Unix epoch, exactly (no float rounding)."""
    return (moment - _UNIX_EPOCH) // _ONE_US


@lru_cache(maxsize=4096)
def _day(day_number: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=day_number)).isoformat()


def iso_micros(micros: int) -> str:
    """`2025-03-04T05:06:07.123456Z`. Hand-formatted: datetime.isoformat costs 2.4 µs an event."""
    day_number, rest = divmod(micros, _DAY_US)
    seconds, fraction = divmod(rest, 1_000_000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return f"{_day(day_number)}T{hours:02d}:{minutes:02d}:{seconds:02d}.{fraction:06d}Z"


class MicrosecondTimeline:
    """A Timeline read in whole microseconds, so a timestamp a client was shown filters exactly.

    Timeline compares float epochs, and the float parsed back from a printed timestamp lands a
    fraction of a microsecond either side of the original: `since=<an event's own occurred_at>`
    would then skip that very event about half the time.
    """

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.count = timeline.count

    def micros(self, position: int) -> int:
        return int(self.timeline.epoch(position) * 1_000_000)

    def positions_between(self, since: datetime | None, until: datetime | None) -> range:
        """Positions whose timestamp t satisfies since <= t < until."""
        positions = range(self.count)
        lo = (
            0 if since is None else bisect.bisect_left(positions, to_micros(since), key=self.micros)
        )
        hi = (
            self.count
            if until is None
            else bisect.bisect_left(positions, to_micros(until), key=self.micros)
        )
        return range(lo, max(lo, hi))


class Analytics:
    """One tenant's product analytics: its users, events, stream and quota."""

    def __init__(self, world: World, engine: ChaosEngine) -> None:
        self.world = world
        self.engine = engine
        seed = world.settings.seed
        self.roster = world.roster(VENDOR)
        self.user_clock = MicrosecondTimeline(self.roster.timeline)
        users = len(self.roster)
        self.historical_events = EVENTS_PER_USER * users
        self.event_clock = MicrosecondTimeline(
            Timeline(self.historical_events, seed, _EVENT_TIME_SALT)
        )
        # Only parent_of is used: it is a pure hash, so it also places live events past the
        # historical ones; nothing here ever builds the reverse index.
        self.event_owner = ChildIndex(
            self.historical_events, max(1, users), seed, _EVENT_OWNER_SALT
        )
        self.live_start_us = to_micros(DATA_END)
        self.quota = WindowQuota(REQUESTS_PER_SECOND, 1.0)
        self._hangup = asyncio.Event()
        self.streams_opened = 0
        self.streams_open = 0
        self.events_streamed = 0

    # -- records ---------------------------------------------------------------------------

    def user(self, position: int) -> dict[str, Any]:
        world = self.world
        ident = noisy_identity(world.population, self.roster, position)
        person = world.population.person(ident.entity_id)
        r = rng_for(world.settings.seed, self.roster.record_salt(position), 11)
        updated = self.user_clock.micros(position)
        signup = updated - r.randrange(365 * _DAY_US)
        last_seen = updated - r.randrange(min(3 * _DAY_US, updated - signup + 1))
        full_name = (
            f"{ident.first_name} {ident.last_name}"
            if ident.first_name and ident.last_name
            else None
        )
        return {
            "user_id": world.record_id(USER_PREFIX, position),
            "email": ident.email,
            "name": full_name,
            "country": ident.address.country if ident.address else None,
            "plan": person.plan,
            "signup_at": iso_micros(signup),
            "last_seen_at": iso_micros(last_seen),
            "updated_at": iso_micros(updated),
        }

    def event(self, event_id: int, drift_from_us: int | None) -> dict[str, Any]:
        """Event `event_id` (1-based; the historical ones first, then the live feed's)."""
        position = event_id - 1
        bits = mix64(self.world.settings.seed, _EVENT_BODY_SALT, event_id)
        if position < self.historical_events:
            occurred = self.event_clock.micros(position)
        else:
            live = position - self.historical_events
            occurred = self.live_start_us + live * LIVE_SPACING_US + (bits >> 44) % LIVE_SPACING_US
        kind_roll = bits & 0xFFFF
        kind = EVENT_KINDS[min(bisect.bisect_right(_KIND_BOUNDS, kind_roll), len(EVENT_KINDS) - 1)]
        detail = (bits >> 16) & 0xFFFF
        quantity = 1 + ((bits >> 32) & 0xFFF) * kind.max_quantity // 0x1000
        # The vendor's v2 rollout: `event_type` renamed, `quantity` now a string.
        drifted = drift_from_us is not None and occurred >= drift_from_us
        return {
            "event_id": event_id,
            "user_id": self.world.record_id(USER_PREFIX, self.event_owner.parent_of(position)),
            "type" if drifted else "event_type": kind.name,
            "occurred_at": iso_micros(occurred),
            "properties": {
                kind.property: kind.values[detail % len(kind.values)],
                "platform": PLATFORMS[(detail >> 8) % len(PLATFORMS)],
            },
            "quantity": str(quantity) if drifted else quantity,
        }

    def _drift_from_us(self) -> int | None:
        drift_from = self.engine.settings.schema_drift_from
        if drift_from is None:
            return None
        return to_micros(datetime(drift_from.year, drift_from.month, drift_from.day, tzinfo=UTC))

    def _frame(self, event_id: int, drift_from_us: int | None) -> bytes:
        data = orjson.dumps(self.event(event_id, drift_from_us))
        return b"event: usage\nid: %d\ndata: %b\n\n" % (event_id, data)

    def _frames(self, first: int, stop: int, drift_from_us: int | None) -> bytes:
        return b"".join([self._frame(i, drift_from_us) for i in range(first, stop)])

    # -- quota -------------------------------------------------------------------------------

    def _admit(self) -> tuple[Response | None, dict[str, str]]:
        """A 429 to answer with, or None; plus the rate-limit headers to send."""
        quota = self.quota.take(self.world.credentials.analytics_key_id)
        headers = quota.ietf_headers(self.quota.window_seconds)
        if not quota.allowed:
            return error_response(
                429,
                "rate_limited",
                f"this key may make {quota.limit} requests per second: retry after the reset",
                {**headers, "retry-after": quota.retry_after()},
            ), headers
        return None, headers

    # -- HTTP --------------------------------------------------------------------------------

    async def _page(
        self, request: Request, clock: MicrosecondTimeline, make: Callable[[int], dict[str, Any]]
    ) -> Response:
        denied, headers = self._admit()
        if denied is not None:
            return denied
        per_page = int_param(request, "per_page", 100, lo=1, hi=MAX_PER_PAGE)
        page = int_param(request, "page", 1, lo=1, hi=MAX_PAGE)
        since = parse_timestamp(request.query_params.get("since"), "since")
        until = parse_timestamp(request.query_params.get("until"), "until")
        window = clock.positions_between(since, until)
        repeat = self.engine.settings.repeat_cursor_at_page
        served = repeat if repeat is not None and page == repeat + 1 else page
        start = window.start + (served - 1) * per_page
        data = [make(p) for p in range(start, min(window.stop, start + per_page))]
        total = len(window)
        return JSONResponse(
            {
                "data": data,
                "page": page,
                "per_page": per_page,
                "total_pages": -(-total // per_page),
                "total": total,
            },
            headers=headers,
        )

    async def users(self, request: Request) -> Response:
        return await self._page(request, self.user_clock, self.user)

    async def events(self, request: Request) -> Response:
        drift_from_us = self._drift_from_us()
        return await self._page(
            request, self.event_clock, lambda position: self.event(position + 1, drift_from_us)
        )

    async def stream(self, request: Request) -> Response:
        denied, headers = self._admit()
        if denied is not None:
            return denied
        last_id = self._last_event_id(request)
        fault = request.scope.get(_STREAM_FAULT_KEY)
        return EventSourceResponse(
            self._feed(last_id + 1, fault), headers=headers, ping=STREAM_PING_SECONDS, sep="\n"
        )

    def _last_event_id(self, request: Request) -> int:
        # The header wins: a browser's EventSource reconnects to its original URL, so a
        # last_event_id in the query is the starting point and the header the latest progress.
        raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
        if not raw:
            return self.historical_events
        try:
            value = int(raw)
        except ValueError:
            raise HTTPException(
                400, f"Last-Event-ID {raw!r} is not an event id: ids are integers"
            ) from None
        if not 0 <= value <= MAX_EVENT_ID:
            raise HTTPException(400, f"Last-Event-ID {value} is out of range 0..{MAX_EVENT_ID}")
        return value

    async def _feed(self, first_id: int, fault: str | None) -> AsyncIterator[bytes]:
        hangup = self._hangup
        self.streams_opened += 1
        self.streams_open += 1
        try:
            yield b"retry: %d\n\n" % STREAM_RETRY_MS
            if not len(self.roster):
                await hangup.wait()  # no users, no events: an idle feed
                return
            cut_at = None
            if fault is not None:
                cut_at = first_id + mix64(self.world.settings.seed, _CHAOS_CUT_SALT, first_id) % 100
            rate = self.world.settings.stream_events_per_second
            loop = asyncio.get_running_loop()
            started = loop.time()
            next_id = first_id
            while not hangup.is_set():
                stop = next_id + STREAM_BATCH
                if rate > 0:
                    elapsed = loop.time() - started
                    stop = min(stop, first_id + int(elapsed * rate) + 1)
                    if stop <= next_id:
                        await _pause(hangup, (next_id - first_id) / rate - elapsed)
                        continue
                drift_from_us = self._drift_from_us()
                if cut_at is not None and stop > cut_at:
                    broken = self._frame(cut_at, drift_from_us)
                    yield self._frames(next_id, cut_at, drift_from_us) + broken[: len(broken) // 2]
                    self.events_streamed += cut_at - next_id
                    if fault == "drop":
                        raise DroppedConnection("chaos: event stream dropped mid-event")
                    return  # "malformed": the body ends cleanly, half an event short
                yield self._frames(next_id, stop, drift_from_us)
                self.events_streamed += stop - next_id
                next_id = stop
                # Sends only yield to the loop when the socket is full; without this, a rate-0
                # feed would starve the disconnect listener and every other connection.
                await asyncio.sleep(0)
        finally:
            self.streams_open -= 1

    def disconnect_streams(self) -> int:
        """End every open stream; returns how many there were."""
        open_streams = self.streams_open
        self._hangup.set()
        self._hangup = asyncio.Event()
        return open_streams

    def stats(self) -> dict[str, Any]:
        return {
            "counts": {"users": len(self.roster), "events": self.historical_events},
            "rate_limited": self.quota.rejected,
            "stream": {
                "connections": self.streams_opened,
                "open": self.streams_open,
                "events_sent": self.events_streamed,
            },
        }


class StreamChaos:
    """Chaos for the endless SSE feed, which `ChaosMiddleware` must not damage itself.

    The middleware buffers a whole body before cutting it in half; an SSE body never ends, so a
    "drop" or "malformed" there would hang the client and, at rate 0, grow the buffer without
    bound. Here those faults make the feed break off mid-event; the others behave as usual.
    """

    def __init__(self, chaos_app: ChaosMiddleware) -> None:
        self.chaos_app = chaos_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != STREAM_PATH:
            await self.chaos_app(scope, receive, send)
            return
        engine = self.chaos_app.engine
        fault = engine.decide()
        if fault == "429":
            response = error_response(
                429, "rate_limited", "slow down", {"retry-after": engine.retry_after()}
            )
            await response(scope, receive, send)
            return
        if fault in ("500", "502", "503"):
            await error_response(int(fault), "server_error", fault)(scope, receive, send)
            return
        if fault == "slow":
            await asyncio.sleep(engine.settings.slow_seconds)
        elif fault is not None:
            scope = {**scope, _STREAM_FAULT_KEY: fault}
        await self.chaos_app.app(scope, receive, send)


async def _pause(hangup: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake at once when the admin route hangs up every stream."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, seconds)):
            await hangup.wait()


class Signatures:
    """Checks a request's HMAC signature under the secret of the tenant its key id names."""

    def __init__(self, tenants: Tenants) -> None:
        self.tenants = tenants

    async def authenticate(self, request: Request) -> int | Response:
        headers = request.headers
        key_id = headers.get(signing.KEY_ID_HEADER)
        stamp = headers.get(signing.TIMESTAMP_HEADER)
        signature = headers.get(signing.SIGNATURE_HEADER)
        if not (key_id and stamp and signature):
            return _unauthorized(
                "missing_signature",
                "missing signature: send X-Key-Id, X-Timestamp (epoch seconds) "
                "and X-Signature (hex HMAC-SHA256 of the canonical request)",
            )
        tenant = self.tenants.find(analytics_key_id=key_id)
        if tenant is None:
            return _unauthorized("unknown_key", f"unknown key id {key_id!r}")
        try:
            sent_at = float(stamp)
        except ValueError:
            sent_at = math.nan
        if not math.isfinite(sent_at):
            return _unauthorized("bad_timestamp", f"X-Timestamp {stamp!r} is not epoch seconds")
        max_age = self.tenants.settings.signature_max_age_seconds
        skew = time.time() - sent_at
        if abs(skew) > max_age:
            direction = "old" if skew > 0 else "in the future"
            return _unauthorized(
                "stale_timestamp",
                f"stale timestamp: X-Timestamp is {abs(skew):.0f} s {direction}, "
                f"allowed ±{max_age:g} s; sign each request (and retry) anew "
                "and check the client's clock",
            )
        scope = request.scope
        target = scope.get("raw_path") or scope["path"].encode()
        if scope["query_string"]:
            target += b"?" + scope["query_string"]
        secret = self.tenants.credentials(tenant).analytics_signing_secret
        expected = signing.sign(secret, request.method, target, stamp, await request.body())
        if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode("latin-1")):
            return _unauthorized(
                "bad_signature",
                "bad signature: it does not match METHOD, path?query as sent, "
                "X-Timestamp and the body's SHA-256 under this key's secret",
            )
        return tenant


def _unauthorized(code: str, message: str) -> Response:
    return error_response(401, code, message, {"www-authenticate": 'HMAC-SHA256 realm="analytics"'})


def create_app(tenants: Tenants, engine: ChaosEngine) -> ASGIApp:
    products = PerTenant(tenants, lambda world: Analytics(world, engine))
    signatures = Signatures(tenants)

    async def disconnect_streams(_: Request) -> Response:
        return JSONResponse(
            {"disconnected": sum(product.disconnect_streams() for product in products.built())}
        )

    routes: list[BaseRoute] = [
        Route(path, authenticated(signatures.authenticate, products, handler))
        for path, handler in (
            ("/v1/users", Analytics.users),
            ("/v1/events", Analytics.events),
            (STREAM_PATH, Analytics.stream),
        )
    ]
    routes.append(Route("/_sandbox/stream/disconnect", disconnect_streams, methods=["POST"]))
    admin = VendorAdmin(VENDOR, ground_truth, lambda tenant: products[tenant].stats())
    app = build_vendor_app(tenants, engine, admin, routes)
    if not isinstance(app, ChaosMiddleware):
        raise TypeError("analytics expects build_vendor_app to wrap its app in ChaosMiddleware")
    return StreamChaos(app)


def ground_truth(world: World) -> Iterator[TruthRow]:
    roster = world.roster(VENDOR)
    for position in range(len(roster)):
        yield TruthRow("users", world.record_id(USER_PREFIX, position), roster.entity(position))
