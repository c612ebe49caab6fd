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

from integration_platform_sandbox.vendors.analytics import api, feed
from integration_platform_sandbox.vendors.analytics.api import (
    REQUESTS_PER_SECOND,
    Analytics,
    Signatures,
    create_app,
)
from integration_platform_sandbox.vendors.analytics.feed import (
    STREAM_PATH,
    STREAM_RETRY_MS,
    AnalyticsFeed,
    StreamChaos,
)
from integration_platform_sandbox.vendors.analytics.records import (
    EVENTS_PER_USER,
    USER_PREFIX,
    VENDOR,
    AnalyticsRecords,
    ground_truth,
)

__all__ = [
    "EVENTS_PER_USER",
    "REQUESTS_PER_SECOND",
    "STREAM_PATH",
    "STREAM_RETRY_MS",
    "USER_PREFIX",
    "VENDOR",
    "Analytics",
    "AnalyticsFeed",
    "AnalyticsRecords",
    "Signatures",
    "StreamChaos",
    "api",
    "create_app",
    "feed",
    "ground_truth",
]
