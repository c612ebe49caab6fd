"""Sandbox analytics' records: users and usage events (historical, then live past the data
year), built from the population and hash bits when read, timestamps in whole microseconds."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from integration_platform_sandbox.chaos import ChaosEngine
from integration_platform_sandbox.identity import noisy_identity
from integration_platform_sandbox.population import DATA_END, mix64, rng_for
from integration_platform_sandbox.roster import ChildIndex, Timeline
from integration_platform_sandbox.vendors.common import TruthRow
from integration_platform_sandbox.world import World

VENDOR = "analytics"
USER_PREFIX = "usr"
EVENTS_PER_USER = 20
# Live events (after the data year) are one second apart plus jitter: deterministic by id, and
# a long rate-0 benchmark stays far inside datetime's range.
LIVE_SPACING_US = 1_000_000
_EVENT_TIME_SALT, _EVENT_OWNER_SALT, _EVENT_BODY_SALT = 0xA7E0, 0xA7E1, 0xA7E2

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


class AnalyticsRecords:
    """One tenant's product analytics records: its users and their events."""

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

    # -- records ---------------------------------------------------------------------------

    def user(self, position: int) -> dict[str, Any]:
        world = self.world
        ident = noisy_identity(world.population, self.roster, position, world.settings.noise)
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


def ground_truth(world: World) -> Iterator[TruthRow]:
    roster = world.roster(VENDOR)
    for position in range(len(roster)):
        yield TruthRow("users", world.record_id(USER_PREFIX, position), roster.entity(position))
