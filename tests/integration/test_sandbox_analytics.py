"""The sandbox analytics vendor over real HTTP: signing, paging, rate limits, the SSE feed."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Generator, Iterator
from datetime import date, datetime
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, connect_sse

from integration_platform_sandbox import signing
from integration_platform_sandbox.chaos import ChaosSettings
from integration_platform_sandbox.server import Sandbox
from integration_platform_sandbox.vendors import analytics
from integration_platform_sandbox.world import SandboxCredentials

ChaosSwitch = Callable[..., None]


class AnalyticsSignature(httpx.Auth):
    """Signs each request as the vendor expects, over the path and query exactly as sent."""

    requires_request_body = True

    def __init__(self, key_id: str, secret: str) -> None:
        self.key_id = key_id
        self.secret = secret

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(
            signing.signed_headers(
                self.key_id, self.secret, request.method, request.url.raw_path, request.content
            )
        )
        yield request


def signed_client(sandbox: Sandbox) -> httpx.Client:
    creds = sandbox.world.credentials
    return httpx.Client(
        base_url=sandbox.urls["analytics"],
        timeout=10,
        auth=AnalyticsSignature(creds.analytics_key_id, creds.analytics_signing_secret),
    )


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with signed_client(sandbox) as http:
        yield http


def all_pages(client: httpx.Client, path: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every record by page number, and the total the API announced."""
    records: list[dict[str, Any]] = []
    first = client.get(path, params={**params, "page": 1}).raise_for_status().json()
    records += first["data"]
    for page in range(2, first["total_pages"] + 1):
        records += (
            client.get(path, params={**params, "page": page}).raise_for_status().json()["data"]
        )
    return records, first["total"]


def usage_events(events: Iterator[ServerSentEvent], count: int) -> list[ServerSentEvent]:
    """The next `count` usage events, skipping the retry-only block at the start."""
    out: list[ServerSentEvent] = []
    for sse in events:
        if sse.event == "usage":
            out.append(sse)
            if len(out) == count:
                break
    return out


def historical_total(client: httpx.Client) -> int:
    return int(client.get("/v1/events", params={"per_page": 1}).raise_for_status().json()["total"])


# -- paging ------------------------------------------------------------------------------------


def test_paging_users_returns_exactly_the_ground_truth_when_signed(
    sandbox: Sandbox, client: httpx.Client
) -> None:
    users, total = all_pages(client, "/v1/users", per_page=50)
    ids = [user["user_id"] for user in users]

    csv_text = httpx.get(sandbox.urls["analytics"] + "/_sandbox/ground-truth").text
    truth_csv = [
        row["record_id"]
        for row in csv.DictReader(io.StringIO(csv_text))
        if row["endpoint"] == "users"
    ]
    truth = [
        row.record_id for row in analytics.ground_truth(sandbox.world) if row.endpoint == "users"
    ]
    assert len(ids) == len(set(ids)) == total
    assert ids == truth_csv == truth
    assert all(user["email"] and "phone" not in user for user in users)
    assert all(user["user_id"].startswith("usr_") for user in users)
    beyond = client.get("/v1/users", params={"per_page": 50, "page": -(-total // 50) + 1})
    assert beyond.json()["data"] == []


def test_paging_events_returns_every_event_once_when_signed(
    sandbox: Sandbox, client: httpx.Client
) -> None:
    events, total = all_pages(client, "/v1/events", per_page=500)
    users = {row.record_id for row in analytics.ground_truth(sandbox.world)}

    assert total == analytics.EVENTS_PER_USER * len(users)
    assert [event["event_id"] for event in events] == list(range(1, total + 1))
    assert {event["user_id"] for event in events} <= users
    assert [e["occurred_at"] for e in events] == sorted(e["occurred_at"] for e in events)
    assert {"page_view", "feature_used", "api_call"} <= {e["event_type"] for e in events}


def test_since_and_until_select_half_open_range_when_given_events_own_timestamps(
    client: httpx.Client,
) -> None:
    events = client.get("/v1/events", params={"per_page": 500}).json()["data"]
    since, until = events[100]["occurred_at"], events[300]["occurred_at"]

    selected, total = all_pages(client, "/v1/events", per_page=150, since=since, until=until)

    assert total == 200
    assert [e["event_id"] for e in selected] == [e["event_id"] for e in events[100:300]]
    epoch_since = datetime.fromisoformat(events[300]["occurred_at"]).timestamp() - 1
    later = client.get("/v1/events", params={"since": f"{epoch_since:.0f}"}).json()
    assert later["data"][0]["event_id"] == events[300]["event_id"]
    # An incremental load resumes from the last occurred_at it saw: that event must come first,
    # every time, not only when float rounding happens to fall its way.
    for index in range(7, 500, 37):
        event = events[index]
        resumed = client.get("/v1/events", params={"since": event["occurred_at"], "per_page": 1})
        before = client.get("/v1/events", params={"until": event["occurred_at"], "per_page": 1})
        assert resumed.json()["data"][0]["event_id"] == event["event_id"]
        assert before.json()["total"] == index


def test_out_of_range_paging_is_a_400_when_per_page_exceeds_500(client: httpx.Client) -> None:
    response = client.get("/v1/users", params={"per_page": 501})

    assert response.status_code == 400
    assert "per_page" in response.json()["message"]


# -- signing -----------------------------------------------------------------------------------


def _bad_request(creds: SandboxCredentials, case: str) -> tuple[str, dict[str, str], bytes]:
    """(path with query, headers, body) of one wrongly signed request."""
    path, body, now = "/v1/users?per_page=5", b'{"page": 1}', int(time.time())

    def headers(
        secret: str = creds.analytics_signing_secret,
        signed_path: str = path,
        signed_body: bytes = body,
        stamp: int = now,
        key_id: str = creds.analytics_key_id,
    ) -> dict[str, str]:
        return signing.signed_headers(key_id, secret, "GET", signed_path, signed_body, stamp)

    cases = {
        "correct": headers(),
        "unsigned": {},
        "stale": headers(stamp=now - 600),
        "future": headers(stamp=now + 600),
        "tampered_body": headers(signed_body=b'{"page": 2}'),
        "tampered_query": headers(signed_path="/v1/users?per_page=500"),
        "wrong_secret": headers(secret=creds.analytics_signing_secret + "x"),
        "unknown_key": headers(key_id="not-a-key"),
    }
    return path, cases[case], body


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("unsigned", "missing_signature"),
        ("stale", "stale_timestamp"),
        ("future", "stale_timestamp"),
        ("tampered_body", "bad_signature"),
        ("tampered_query", "bad_signature"),
        ("wrong_secret", "bad_signature"),
        ("unknown_key", "unknown_key"),
    ],
)
def test_request_is_rejected_with_401_naming_the_problem_when_badly_signed(
    sandbox: Sandbox, case: str, error: str
) -> None:
    path, headers, body = _bad_request(sandbox.world.credentials, case)

    response = httpx.request("GET", sandbox.urls["analytics"] + path, headers=headers, content=body)

    assert response.status_code == 401
    assert response.json()["error"] == error
    assert error.split("_")[-1] in response.json()["message"]


def test_request_with_a_body_is_accepted_when_signed_over_that_body(sandbox: Sandbox) -> None:
    path, headers, body = _bad_request(sandbox.world.credentials, "correct")

    response = httpx.request("GET", sandbox.urls["analytics"] + path, headers=headers, content=body)

    assert response.status_code == 200
    assert len(response.json()["data"]) == 5


# -- rate limit --------------------------------------------------------------------------------


def test_rate_limit_headers_are_sent_and_excess_gets_429_when_quota_is_exceeded(
    make_sandbox: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(analytics.api, "REQUESTS_PER_SECOND", 5)
    with signed_client(make_sandbox()) as http:
        responses = [http.get("/v1/users", params={"per_page": 1}) for _ in range(12)]
        rejected = [r for r in responses if r.status_code == 429]
        time.sleep(float(rejected[0].headers["retry-after"]) if rejected else 0)
        after_wait = http.get("/v1/users", params={"per_page": 1})

    assert responses[0].status_code == 200
    assert responses[0].headers["ratelimit-policy"] == '"default";q=5;w=1'
    assert responses[0].headers["ratelimit"].startswith('"default";r=4;')
    assert len(rejected) >= 2
    assert rejected[0].headers["ratelimit"].startswith('"default";r=0;')
    assert rejected[0].json()["error"] == "rate_limited"
    assert after_wait.status_code == 200


# -- the SSE feed ------------------------------------------------------------------------------


def test_stream_sends_retry_then_consecutive_ids_after_the_history_when_connected(
    sandbox: Sandbox, client: httpx.Client
) -> None:
    history = historical_total(client)
    users = {row.record_id for row in analytics.ground_truth(sandbox.world)}

    with connect_sse(client, "GET", "/v1/stream") as source:
        assert source.response.status_code == 200
        events = source.iter_sse()
        first = next(events)
        received = usage_events(events, 10)

    assert first.retry == 2000
    assert first.data == ""
    assert [int(sse.id) for sse in received] == list(range(history + 1, history + 11))
    payloads = [sse.json() for sse in received]
    assert [p["event_id"] for p in payloads] == [int(sse.id) for sse in received]
    assert {p["user_id"] for p in payloads} <= users
    assert all(p["occurred_at"] >= "2026-01-01" for p in payloads)


def test_stream_resumes_right_after_last_event_id_when_the_server_disconnects_it(
    sandbox: Sandbox, client: httpx.Client
) -> None:
    with connect_sse(client, "GET", "/v1/stream") as source:
        events = source.iter_sse()
        before = usage_events(events, 5)
        hangup = httpx.post(sandbox.urls["analytics"] + "/_sandbox/stream/disconnect")
        # The rest of what was in flight, then the end of the body (bounded, in case it never ends).
        before += usage_events(events, 200)
    last_id = int(before[-1].id)

    with connect_sse(
        client, "GET", "/v1/stream", headers={"Last-Event-ID": str(last_id)}
    ) as source:
        after = usage_events(source.iter_sse(), 5)
    with connect_sse(
        client, "GET", "/v1/stream", headers={"Last-Event-ID": str(int(before[0].id) - 1)}
    ) as source:
        replay = usage_events(source.iter_sse(), len(before))

    assert hangup.json()["disconnected"] >= 1
    assert len(before) < 205, "the stream did not end after /_sandbox/stream/disconnect"
    ids = [int(sse.id) for sse in before + after]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert [sse.data for sse in replay] == [sse.data for sse in before]


def test_last_event_id_query_parameter_resumes_the_stream_when_no_header_is_sent(
    client: httpx.Client,
) -> None:
    with connect_sse(client, "GET", "/v1/stream?last_event_id=41") as source:
        from_query = usage_events(source.iter_sse(), 1)
    with connect_sse(
        client, "GET", "/v1/stream?last_event_id=41", headers={"Last-Event-ID": "99"}
    ) as source:
        from_header = usage_events(source.iter_sse(), 1)
    bad = client.get("/v1/stream", headers={"Last-Event-ID": "abc"})

    assert from_query[0].id == "42"
    assert from_header[0].id == "100"
    assert bad.status_code == 400


def test_stream_serves_tens_of_thousands_of_events_quickly_when_rate_is_zero(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    unthrottled = make_sandbox(stream_events_per_second=0)
    started = time.perf_counter()
    with signed_client(unthrottled) as http, connect_sse(http, "GET", "/v1/stream") as source:
        received = usage_events(source.iter_sse(), 20_000)
    elapsed = time.perf_counter() - started

    ids = [int(sse.id) for sse in received]
    assert ids == list(range(ids[0], ids[0] + 20_000))
    # 50 events/s (the default rate) would need 400 s; unthrottled it is about a second.
    assert elapsed < 15


@pytest.mark.parametrize("fault", ["drop", "malformed"])
def test_stream_resumes_without_gap_when_chaos_breaks_it_off_mid_event(
    chaos: ChaosSwitch, client: httpx.Client, fault: str
) -> None:
    start_after = 5000
    chaos("analytics", script=[fault])
    received: list[ServerSentEvent] = []
    broken_off = False
    with connect_sse(
        client, "GET", "/v1/stream", headers={"Last-Event-ID": str(start_after)}
    ) as source:
        try:
            received = usage_events(source.iter_sse(), 200)
        except httpx.RemoteProtocolError:
            broken_off = True
    last_id = int(received[-1].id) if received else start_after
    with connect_sse(
        client, "GET", "/v1/stream", headers={"Last-Event-ID": str(last_id)}
    ) as source:
        resumed = usage_events(source.iter_sse(), 3)

    assert len(received) < 100
    assert broken_off == (fault == "drop")
    assert all(sse.json()["event_id"] == int(sse.id) for sse in received)
    ids = [int(sse.id) for sse in received + resumed]
    assert ids == list(range(start_after + 1, start_after + 1 + len(ids)))


# -- data-level chaos and determinism ----------------------------------------------------------


@pytest.mark.parametrize(("path", "key"), [("/v1/users", "user_id"), ("/v1/events", "event_id")])
def test_page_after_the_repeat_page_serves_it_again_when_the_repeat_knob_is_set(
    chaos: ChaosSwitch, client: httpx.Client, path: str, key: str
) -> None:
    clean = [client.get(path, params={"per_page": 20, "page": p}).json() for p in (1, 2, 3, 4)]
    chaos("analytics", ChaosSettings(repeat_cursor_at_page=2))
    buggy = [client.get(path, params={"per_page": 20, "page": p}).json() for p in (1, 2, 3, 4)]

    def ids(body: dict[str, Any]) -> list[Any]:
        return [record[key] for record in body["data"]]

    assert buggy[2]["data"] == buggy[1]["data"] == clean[1]["data"]
    assert buggy[2]["page"] == 3
    assert ids(buggy[0]) == ids(clean[0]) and ids(buggy[3]) == ids(clean[3])
    assert ids(clean[2]) != ids(clean[1])


def test_events_from_the_drift_date_use_type_and_string_quantity_when_schema_drifts(
    chaos: ChaosSwitch, client: httpx.Client
) -> None:
    chaos("analytics", ChaosSettings(schema_drift_from=date(2025, 7, 1)))
    events, _ = all_pages(client, "/v1/events", per_page=500)
    with connect_sse(client, "GET", "/v1/stream") as source:
        live = usage_events(source.iter_sse(), 1)[0].json()

    before = [e for e in events if e["occurred_at"] < "2025-07-01"]
    after = [e for e in events if e["occurred_at"] >= "2025-07-01"]
    assert before and after
    assert all(
        "event_type" in e and "type" not in e and isinstance(e["quantity"], int) for e in before
    )
    assert all(
        "type" in e and "event_type" not in e and isinstance(e["quantity"], str) for e in after
    )
    assert "type" in live and isinstance(live["quantity"], str)


def test_same_seed_serves_identical_pages_when_another_sandbox_starts(
    sandbox: Sandbox, client: httpx.Client, make_sandbox: Callable[..., Sandbox]
) -> None:
    twin = make_sandbox(seed=sandbox.world.settings.seed)
    other = make_sandbox(seed=sandbox.world.settings.seed + 1)
    params = {"per_page": 30, "page": 2}

    def pages(server: Sandbox) -> list[Any]:
        with signed_client(server) as http:
            return [
                http.get(path, params=params).raise_for_status().json()
                for path in ("/v1/users", "/v1/events")
            ]

    assert pages(twin) == pages(sandbox)
    assert pages(other) != pages(sandbox)
