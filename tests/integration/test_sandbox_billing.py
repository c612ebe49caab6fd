"""The sandbox billing vendor's contract over real HTTP: API key, offset pages, rate limit, drift,
messy money and statuses, revenue totals, and Standard Webhooks deliveries with retries."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from integration_platform_sandbox.chaos import ChaosSettings
from integration_platform_sandbox.server import Sandbox
from integration_platform_sandbox.vendors import billing
from integration_platform_sandbox.world import SandboxCredentials
from tests.conftest import ChaosSwitch
from tests.integration.sandbox_client import TIMEOUT, ground_truth_ids

ENDPOINTS = ("customers", "subscriptions", "invoices", "payments")
PAID = {"paid", "PAID", "Paid", "1"}
SUCCEEDED = {"succeeded", "SUCCEEDED", "success"}
MAJOR_UNITS = re.compile(r"^\d+\.\d{2}$")

MakeSandbox = Callable[..., Sandbox]


# -- a small billing client ------------------------------------------------------------------


def billing_client(server: Sandbox, credentials: SandboxCredentials) -> httpx.Client:
    return httpx.Client(
        base_url=server.urls["billing"],
        timeout=TIMEOUT,
        headers={"x-api-key": credentials.billing_api_key},
    )


def get_page(client: httpx.Client, endpoint: str, **params: Any) -> dict[str, Any]:
    """One page, waiting out the vendor's per-second quota as a polite client does."""
    for _ in range(20):
        response = client.get(f"/v1/{endpoint}", params=params)
        if response.status_code != 429:
            response.raise_for_status()
            page: dict[str, Any] = response.json()
            return page
        time.sleep(float(response.headers["retry-after"]))
    raise AssertionError(f"/v1/{endpoint} stayed rate limited")


def all_pages(
    client: httpx.Client, endpoint: str, limit: int = 500, **params: Any
) -> list[dict[str, Any]]:
    pages = [get_page(client, endpoint, offset=0, limit=limit, **params)]
    while pages[-1]["offset"] + limit < pages[-1]["total"]:
        pages.append(
            get_page(client, endpoint, offset=pages[-1]["offset"] + limit, limit=limit, **params)
        )
    return pages


def all_records(
    client: httpx.Client, endpoint: str, limit: int = 500, **params: Any
) -> list[dict[str, Any]]:
    return [r for page in all_pages(client, endpoint, limit, **params) for r in page["data"]]


def stats(server: Sandbox) -> dict[str, Any]:
    response = httpx.get(f"{server.urls['billing']}/_sandbox/stats", timeout=30)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def emit(server: Sandbox, count: int) -> dict[str, Any]:
    response = httpx.post(
        f"{server.urls['billing']}/_sandbox/webhooks/emit", params={"count": count}, timeout=60
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def as_datetime(value: str | int) -> datetime:
    if isinstance(value, int):
        return datetime.fromtimestamp(value, UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- a webhook receiver on loopback ----------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    webhook_id: str
    body: bytes
    verified: bool
    answered: int
    at: float  # time.monotonic() on arrival


@dataclass
class WebhookReceiver:
    """Verifies Standard Webhooks signatures; answers 500 to the first `fail_first` requests."""

    secret: str
    fail_first: int = 0
    deliveries: list[Delivery] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/billing"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                try:
                    Webhook(receiver.secret).verify(body, dict(self.headers.items()))
                    verified = True
                except WebhookVerificationError:
                    verified = False
                with receiver._lock:
                    failing = len(receiver.deliveries) < receiver.fail_first
                    status = 500 if failing else 200 if verified else 401
                    receiver.deliveries.append(
                        Delivery(
                            self.headers["webhook-id"], body, verified, status, time.monotonic()
                        )
                    )
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test asserts on deliveries, not on the access log."""

        return Handler

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        with self._lock:
            return list(self.deliveries)

    def wait_for_events(self, count: int, timeout: float) -> list[Delivery]:
        """The deliveries once `count` distinct events arrived (a duplicate counts once)."""
        deadline = time.monotonic() + timeout
        while len({d.webhook_id for d in self.deliveries}) < count:
            assert time.monotonic() < deadline, f"{len(self.deliveries)} deliveries in {timeout} s"
            time.sleep(0.02)
        with self._lock:
            return list(self.deliveries)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver(sandbox_credentials: SandboxCredentials) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(sandbox_credentials.billing_webhook_secret) as started:
        yield started


# -- paging and ground truth -----------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_offset_paging_returns_exactly_total_unique_records_when_walking_an_endpoint(
    sandbox: Sandbox, sandbox_credentials: SandboxCredentials, endpoint: str
) -> None:
    with billing_client(sandbox, sandbox_credentials) as client:
        pages = all_pages(client, endpoint, limit=37)
    ids = [record["id"] for page in pages for record in page["data"]]
    total = pages[0]["total"]
    assert len(ids) == total == stats(sandbox)["counts"][endpoint]
    assert len(set(ids)) == total, "a record was served twice"
    assert all(len(page["data"]) == 37 for page in pages[:-1])
    assert [page["offset"] for page in pages] == list(range(0, total, 37))
    assert {page["total"] for page in pages} == {total}


def test_customers_equal_the_ground_truth_when_paged_completely(
    sandbox: Sandbox, sandbox_credentials: SandboxCredentials
) -> None:
    with billing_client(sandbox, sandbox_credentials) as client:
        ids = {r["id"] for r in all_records(client, "customers", limit=50)}
    truth = ground_truth_ids(sandbox.urls["billing"], "customers")
    assert ids == set(truth)
    assert truth == {row.record_id: row.entity_id for row in billing.ground_truth(sandbox.world)}
    assert all(record_id.startswith("cus_") for record_id in ids)


def test_every_reference_resolves_when_joining_the_four_endpoints(
    sandbox: Sandbox, sandbox_credentials: SandboxCredentials
) -> None:
    with billing_client(sandbox, sandbox_credentials) as client:
        customers = {r["id"]: r for r in all_records(client, "customers")}
        subscriptions = {r["id"]: r for r in all_records(client, "subscriptions")}
        invoices = {r["id"]: r for r in all_records(client, "invoices")}
        payments = all_records(client, "payments")
    assert Counter(s["customer"] for s in subscriptions.values()) == Counter(list(customers))
    assert len(invoices) == 4 * len(subscriptions) == len(payments)
    assert all(
        i["customer"] == subscriptions[i["subscription"]]["customer"] for i in invoices.values()
    )
    assert all(
        i["amount_due"] == subscriptions[i["subscription"]]["amount"] for i in invoices.values()
    )
    assert Counter(p["invoice"] for p in payments) == Counter(list(invoices))
    for payment in payments:
        invoice = invoices[payment["invoice"]]
        assert payment["customer"] == invoice["customer"]
        assert Decimal(payment["amount"]) * 100 == invoice["amount_due"]
        assert as_datetime(payment["created"]) > as_datetime(invoice["created"])


def test_pages_are_identical_when_two_sandboxes_share_a_seed(
    make_sandbox: MakeSandbox, sandbox_credentials: SandboxCredentials
) -> None:
    first, second = make_sandbox(customers=120), make_sandbox(customers=120)
    other_seed = make_sandbox(customers=120, seed=8)
    for endpoint in ENDPOINTS:
        with (
            billing_client(first, sandbox_credentials) as a,
            billing_client(second, sandbox_credentials) as b,
            billing_client(other_seed, sandbox_credentials) as c,
        ):
            params = {"offset": 10, "limit": 25}
            page = get_page(a, endpoint, **params)
            assert page == get_page(b, endpoint, **params)
            assert page["data"] != get_page(c, endpoint, **params)["data"]


# -- auth, rate limit, parameters ------------------------------------------------------------


@pytest.mark.parametrize("how", ["missing", "wrong", "bearer-instead-of-header"])
def test_request_is_refused_with_401_when_the_api_key_is_missing_or_wrong(
    sandbox: Sandbox, sandbox_credentials: SandboxCredentials, how: str
) -> None:
    key = sandbox_credentials.billing_api_key
    headers = {
        "missing": {},
        "wrong": {"x-api-key": key[:-1]},
        "bearer-instead-of-header": {"authorization": f"Bearer {key}"},
    }[how]
    for endpoint in ENDPOINTS:
        response = httpx.get(f"{sandbox.urls['billing']}/v1/{endpoint}", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_api_key"
        assert "x-ratelimit-remaining" not in response.headers


def test_requests_get_429_with_retry_after_when_the_per_second_quota_is_spent(
    make_sandbox: MakeSandbox, sandbox_credentials: SandboxCredentials
) -> None:
    server = make_sandbox(customers=50, billing_requests_per_second=5)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            base_url=server.urls["billing"],
            timeout=TIMEOUT,
            headers={"x-api-key": sandbox_credentials.billing_api_key},
        ) as client:
            await client.get("/v1/customers", params={"limit": 1})  # warm up the record pools
            await asyncio.sleep(1.02 - time.time() % 1.0)  # start at the top of a window
            return list(
                await asyncio.gather(
                    *(client.get("/v1/customers", params={"limit": 1}) for _ in range(12))
                )
            )

    responses = asyncio.run(burst())
    # The windows are whole seconds. On a busy machine the burst may straddle two of them, so
    # each response is judged within its own window, which x-ratelimit-reset names.
    windows: dict[str, list[httpx.Response]] = {}
    for response in responses:
        windows.setdefault(response.headers["x-ratelimit-reset"], []).append(response)
    for window in windows.values():
        accepted = [r for r in window if r.status_code == 200]
        assert len(accepted) == min(len(window), 5), [r.status_code for r in window]
        remaining = sorted(int(r.headers["x-ratelimit-remaining"]) for r in accepted)
        assert remaining == list(range(5 - len(accepted), 5))
    rejected = [r for r in responses if r.status_code == 429]
    assert len(rejected) == sum(max(len(w) - 5, 0) for w in windows.values()) > 0
    for response in rejected:
        assert response.headers["x-ratelimit-remaining"] == "0"
        assert response.headers["x-ratelimit-limit"] == "5"
        assert 1 <= int(response.headers["retry-after"]) <= 2
        assert response.json()["error"] == "rate_limited"
    assert all(int(r.headers["x-ratelimit-reset"]) > time.time() - 2 for r in responses)
    time.sleep(float(rejected[-1].headers["retry-after"]))
    with billing_client(server, sandbox_credentials) as client:
        assert client.get("/v1/customers", params={"limit": 1}).status_code == 200
    assert stats(server)["rate_limited"] == len(rejected)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 501},
        {"offset": -1},
        {"offset": "x"},
        {"created_since": "last tuesday"},
    ],
)
def test_bad_paging_parameters_get_400_when_the_client_asks_for_the_impossible(
    sandbox: Sandbox, sandbox_credentials: SandboxCredentials, params: dict[str, Any]
) -> None:
    with billing_client(sandbox, sandbox_credentials) as client:
        response = client.get("/v1/invoices", params=params)
    assert response.status_code == 400
    assert next(iter(params)) in response.json()["message"]
    assert "x-ratelimit-limit" in response.headers


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_created_filters_return_exactly_the_window_when_since_and_before_are_given(
    sandbox: Sandbox, sandbox_credentials: SandboxCredentials, endpoint: str
) -> None:
    since, before = datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 9, 1, tzinfo=UTC)
    with billing_client(sandbox, sandbox_credentials) as client:
        everything = all_records(client, endpoint)
        iso_pages = all_pages(
            client,
            endpoint,
            limit=40,
            created_since=since.isoformat(),
            created_before=before.isoformat().replace("+00:00", "Z"),
        )
        epoch = all_records(
            client,
            endpoint,
            created_since=int(since.timestamp()),
            created_before=int(before.timestamp()),
        )
    expected = [r["id"] for r in everything if since <= as_datetime(r["created"]) < before]
    assert 0 < len(expected) < len(everything)
    assert [r["id"] for p in iso_pages for r in p["data"]] == expected
    assert iso_pages[0]["total"] == len(expected)
    assert [r["id"] for r in epoch] == expected
    created = [as_datetime(r["created"]) for r in everything]
    assert created == sorted(created), "created must grow with position"


def test_a_page_serves_the_previous_page_again_when_repeat_cursor_at_page_is_set(
    sandbox: Sandbox, sandbox_credentials: SandboxCredentials, chaos: ChaosSwitch
) -> None:
    chaos("billing", ChaosSettings(repeat_cursor_at_page=2))
    with billing_client(sandbox, sandbox_credentials) as client:
        first = get_page(client, "payments", offset=0, limit=10)
        second = get_page(client, "payments", offset=10, limit=10)
        third = get_page(client, "payments", offset=20, limit=10)
    assert second["data"] == first["data"]
    assert {r["id"] for r in third["data"]}.isdisjoint(r["id"] for r in first["data"])


# -- messy data ------------------------------------------------------------------------------


def test_invoices_change_schema_only_from_the_drift_date_when_drift_is_on(
    sandbox: Sandbox, sandbox_credentials: SandboxCredentials, chaos: ChaosSwitch
) -> None:
    drift_from = date(2025, 7, 1)
    with billing_client(sandbox, sandbox_credentials) as client:
        plain = all_records(client, "invoices")
        chaos("billing", ChaosSettings(schema_drift_from=drift_from))
        drifted = all_records(client, "invoices")
        payments = all_records(client, "payments", limit=50)
    before = [r for r in drifted if as_datetime(r["created"]).date() < drift_from]
    after = [r for r in drifted if as_datetime(r["created"]).date() >= drift_from]
    assert before and after
    assert before == plain[: len(before)], "records before the drift date must not change"
    assert all("status" in r and isinstance(r["amount_due"], int) for r in before)
    assert all("status" not in r and "state" in r for r in after)
    assert all(
        isinstance(r["amount_due"], str) and MAJOR_UNITS.match(r["amount_due"]) for r in after
    )
    for old, new in zip(plain[len(before) :], after, strict=True):
        assert Decimal(new["amount_due"]) * 100 == old["amount_due"]
        assert new["state"] == old["status"]
    assert all("status" in p for p in payments)


def test_cached_pages_are_the_rendered_ones_and_follow_the_drift_switch_when_caching_is_on(
    make_sandbox: MakeSandbox, sandbox_credentials: SandboxCredentials
) -> None:
    plain_server = make_sandbox(customers=60, billing_requests_per_second=1000)
    cached_server = make_sandbox(
        customers=60, billing_requests_per_second=1000, billing_page_cache_mb=4
    )
    with (
        billing_client(plain_server, sandbox_credentials) as plain,
        billing_client(cached_server, sandbox_credentials) as cached,
    ):
        expected = all_pages(plain, "invoices", limit=50)
        first, second = (all_pages(cached, "invoices", limit=50) for _ in range(2))
        stats = cached.get("/_sandbox/stats").json()["page_cache"]
        uncached = plain.get("/_sandbox/stats").json()["page_cache"]
        cached_server.engines["billing"].configure(
            ChaosSettings(schema_drift_from=date(2025, 1, 1))
        )
        drifted = all_pages(cached, "invoices", limit=50)
    assert first == second == expected
    assert stats["pages"] == len(expected) and stats["hits"] == len(expected)
    assert all("state" in r and "status" not in r for page in drifted for r in page["data"])
    assert uncached == {"pages": 0, "bytes": 0, "hits": 0}  # off unless asked for


def test_statuses_and_money_are_messy_when_reading_raw_records(
    sandbox: Sandbox, sandbox_credentials: SandboxCredentials
) -> None:
    with billing_client(sandbox, sandbox_credentials) as client:
        customers = all_records(client, "customers")
        subscriptions = all_records(client, "subscriptions")
        invoices = all_records(client, "invoices")
        payments = all_records(client, "payments")
    subscription_statuses = {s["status"] for s in subscriptions}
    assert {"active", "ACTIVE", "Active"} <= subscription_statuses
    assert {"canceled", "cancelled"} & subscription_statuses
    assert {i["status"] for i in invoices} >= PAID
    assert {"open", "void"} <= {i["status"].lower() for i in invoices}
    payment_statuses = {p["status"] for p in payments}
    assert payment_statuses >= SUCCEEDED
    assert {"failed", "pending"} <= {s.lower() for s in payment_statuses}
    assert {s["plan"] for s in subscriptions} == {"starter", "pro", "business"}
    assert {s["amount"] for s in subscriptions} == {2900, 9900, 29900}
    assert all(isinstance(i["amount_due"], int) for i in invoices)
    assert all(MAJOR_UNITS.match(p["amount"]) for p in payments)
    assert {"usd", "USD"} <= {i["currency"] for i in invoices}
    assert {c["currency"] for c in customers} <= {"USD", "GBP", "EUR", "CAD"}
    names = [c["name"] for c in customers if c["name"]]
    assert any(", " in n for n in names) and any(", " not in n for n in names)
    assert all(isinstance(c["created"], int) and c["metadata"] == {} for c in customers)
    assert all(
        set(c["address"]) == {"line1", "city", "state", "postal_code", "country"}
        for c in customers
        if c["address"]
    )


def test_revenue_stats_match_the_records_when_statuses_are_normalized(
    sandbox: Sandbox, sandbox_credentials: SandboxCredentials
) -> None:
    with billing_client(sandbox, sandbox_credentials) as client:
        invoices = all_records(client, "invoices")
        payments = all_records(client, "payments")
    paid: Counter[str] = Counter()
    succeeded: dict[str, Decimal] = {}
    for invoice in invoices:
        if invoice["status"] in PAID:
            paid[invoice["currency"].upper()] += invoice["amount_due"]
    for payment in payments:
        if payment["status"] in SUCCEEDED:
            currency = payment["currency"].upper()
            succeeded[currency] = succeeded.get(currency, Decimal(0)) + Decimal(payment["amount"])
    revenue = stats(sandbox)["revenue"]
    assert {c: r["invoices_paid_amount_due_minor"] for c, r in revenue.items()} == dict(paid)
    assert {c: Decimal(r["payments_succeeded_amount"]) for c, r in revenue.items()} == succeeded
    assert sum(r["invoices_paid"] for r in revenue.values()) == sum(
        1 for i in invoices if i["status"] in PAID
    )


# -- webhooks --------------------------------------------------------------------------------


def test_webhook_is_retried_until_accepted_when_the_receiver_first_answers_500(
    make_sandbox: MakeSandbox, sandbox_credentials: SandboxCredentials
) -> None:
    with WebhookReceiver(sandbox_credentials.billing_webhook_secret, fail_first=1) as hooks:
        server = make_sandbox(customers=50, webhook_url=hooks.url, webhook_events_per_second=0)
        result = emit(server, 1)
        deliveries = hooks.wait_for(2)
    assert result["sent"] == 1 and result["failed"] == 0
    assert [d.answered for d in deliveries[:2]] == [500, 200]
    assert len({d.webhook_id for d in deliveries}) == 1
    assert all(d.verified for d in deliveries)
    assert stats(server)["webhooks"]["retries"] == 1


def test_some_webhooks_arrive_twice_with_the_same_id_when_many_are_emitted(
    make_sandbox: MakeSandbox, sandbox_credentials: SandboxCredentials, receiver: WebhookReceiver
) -> None:
    server = make_sandbox(webhook_url=receiver.url, webhook_events_per_second=0)
    result = emit(server, 200)
    deliveries = receiver.wait_for(200 + result["duplicated"])
    assert result["emitted"] == result["sent"] == 200
    assert all(d.verified and d.answered == 200 for d in deliveries)
    counts = Counter(d.webhook_id for d in deliveries)
    twice = {webhook_id for webhook_id, n in counts.items() if n == 2}
    assert len(counts) == 200 and set(counts.values()) <= {1, 2}
    assert len(twice) == result["duplicated"] == stats(server)["webhooks"]["duplicated"] > 0
    for webhook_id in twice:
        bodies = {d.body for d in deliveries if d.webhook_id == webhook_id}
        assert len(bodies) == 1, "a duplicate must carry the same body"

    events = [json.loads(d.body) for d in deliveries]
    assert {e["type"] for e in events} == {"invoice.paid", "payment.succeeded", "payment.failed"}
    assert all(
        e["id"] == d.webhook_id and e["id"].startswith("evt_")
        for e, d in zip(events, deliveries, strict=True)
    )
    with billing_client(server, sandbox_credentials) as client:
        for event in events[:20]:
            obj = event["data"]["object"]
            endpoint = "payments" if event["type"].startswith("payment.") else "invoices"
            position = server.world.position_of(obj["id"].split("_")[0], obj["id"])
            assert get_page(client, endpoint, offset=position, limit=1)["data"] == [obj]


def test_webhooks_flow_at_the_configured_rate_when_a_webhook_url_is_set(
    make_sandbox: MakeSandbox, receiver: WebhookReceiver
) -> None:
    # Two a second, well below the default five: five intervals take 2.5 s at this rate, 1 s
    # at the default, a few ms unthrottled. The pacing counts from when a send starts, so a
    # slow delivery (the first builds the record pools; any, on a busy machine) can shorten
    # the gap after it: the clock starts at the second arrival, with 0.5 s of margin.
    server = make_sandbox(customers=50, webhook_url=receiver.url, webhook_events_per_second=2)
    deliveries = receiver.wait_for_events(7, timeout=60)
    first_arrivals: dict[str, float] = {}
    for delivery in deliveries:
        first_arrivals.setdefault(delivery.webhook_id, delivery.at)
    arrivals = sorted(first_arrivals.values())
    assert len(arrivals) >= 7 and all(d.verified for d in deliveries)
    assert 2.0 <= arrivals[6] - arrivals[1] <= 10.0, arrivals
    assert stats(server)["webhooks"]["sent"] >= 7


def test_emit_is_refused_with_409_when_no_webhook_url_is_set(sandbox: Sandbox) -> None:
    response = httpx.post(f"{sandbox.urls['billing']}/_sandbox/webhooks/emit")
    assert response.status_code == 409
    assert "webhook" in response.json()["message"]


def test_webhook_counts_as_failed_after_bounded_retries_when_the_receiver_is_down(
    make_sandbox: MakeSandbox,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    server = make_sandbox(
        customers=50,
        webhook_url=f"http://127.0.0.1:{closed_port}/hooks",
        webhook_events_per_second=0,
    )
    started = time.monotonic()
    result = emit(server, 1)
    assert result["failed"] == 1 and result["sent"] == 0
    # Five attempts and ~3 s of backoff between them; the bound catches an endless retry,
    # with room for a crowded machine (where the emit alone can take 20 s).
    assert time.monotonic() - started < 60
    webhooks = stats(server)["webhooks"]
    assert webhooks["attempts"] == 5 and webhooks["failed"] == 1
