"""The connector engine against the four sandbox vendors over real HTTP, chaos included.

Every extraction must return exactly the sandbox's records (its stats and ground truth say
which), whatever the vendors throw at it; the errors it cannot get past must say what happened.
Heavy chaos here is PROFILES["heavy"] with slow responses shortened to 0.5 s: still well under
the specs' 10 s read timeout, so a slow page costs half a second rather than two, and the
timeout-then-retry path is proven on its own below with a read timeout shorter than the stall.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from integration_platform import environment
from integration_platform.cli import main
from integration_platform.extraction.runner import EndpointExtractor, ExtractionSummary
from integration_platform.extraction.state import IncrementalState
from integration_platform.extraction.to_files import extract_to_directory, state_root
from integration_platform.extraction.windows import daily_window, format_instant, parse_instant
from integration_platform.http.client import SourceClient
from integration_platform.http.errors import (
    CircuitOpenError,
    GraphQLResponseError,
    PaginationLoopError,
    PermanentHTTPError,
    RetriesExhausted,
)
from integration_platform.http.graphql import GraphQLClient
from integration_platform.http.pagination import PageRequest, PageResponse, build_paginator
from integration_platform.specs.loader import load_specs
from integration_platform.specs.models import SourceSpec
from integration_platform_sandbox.chaos import PROFILES, ChaosSettings
from integration_platform_sandbox.server import Sandbox
from tests.conftest import ChaosSwitch
from tests.fake_clock import FakeClock
from tests.integration.sandbox_client import ground_truth_ids

SOURCES = environment.PROJECT_ROOT / "sources"
VENDORS = ("crm", "billing", "support", "analytics")
HEAVY = PROFILES["heavy"].model_copy(update={"slow_seconds": 0.5})
# The endpoints whose records the ground truth lists, by source.
CUSTOMER_ENDPOINTS = {
    "crm": "contacts",
    "billing": "customers",
    "support": "customers",
    "analytics": "users",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own data dir: incremental marks and rate-limit state never leak."""
    folder = tmp_path / "data"
    monkeypatch.setenv("INTEGRATION_PLATFORM_DATA_DIR", str(folder))
    return folder


@pytest.fixture
def env(sandbox: Sandbox, sandbox_credentials: object) -> dict[str, str]:
    return sandbox_env(sandbox)


def sandbox_env(sandbox: Sandbox) -> dict[str, str]:
    return {
        **os.environ,
        "SOURCES_PATH": str(SOURCES),
        **{f"{vendor.upper()}_BASE_URL": url for vendor, url in sandbox.urls.items()},
    }


def heavy_chaos_everywhere(chaos: ChaosSwitch) -> None:
    for vendor in VENDORS:
        chaos(vendor, HEAVY)


# -- specs --------------------------------------------------------------------------------------


def shipped(env: dict[str, str]) -> dict[str, SourceSpec]:
    return load_specs(sorted(SOURCES.glob("*.yaml")), env)


def variant(
    env: dict[str, str],
    source: str,
    endpoint: str,
    *,
    source_changes: dict[str, Any] | None = None,
    **endpoint_changes: Any,
) -> SourceSpec:
    """The shipped spec of `source` with `endpoint` (and the source) changed as given."""
    raw = yaml.safe_load((SOURCES / f"{source}.yaml").read_text())
    raw["endpoints"][endpoint] = {**raw["endpoints"][endpoint], **endpoint_changes}
    raw.update(source_changes or {})
    spec = SourceSpec.model_validate(raw, context={"env": env})
    spec._file = SOURCES / f"{source}.yaml"  # its .graphql files sit beside it
    return spec


# -- reading what landed ------------------------------------------------------------------------


def landed_records(spec: SourceSpec, endpoint: str, folder: Path) -> list[dict[str, Any]]:
    """Every record of the page files, in page order, read the way the engine reads pages."""
    settings = spec.endpoints[endpoint]
    graphql = spec.kind == "graphql"
    paginator = build_paginator(settings.pagination, "" if graphql else settings.records)
    records: list[dict[str, Any]] = []
    files = sorted(folder.glob("page-*.json"))
    assert [f.name for f in files] == [f"page-{i:06d}.json" for i in range(1, len(files) + 1)]
    for file in files:
        body = json.loads(file.read_bytes())
        records += paginator.records(PageResponse(body=body["data"] if graphql else body))
    return records


def ids(records: list[dict[str, Any]], key: str = "id") -> list[Any]:
    return [record[key] for record in records]


def sandbox_stats(sandbox: Sandbox, vendor: str) -> dict[str, Any]:
    response = httpx.get(f"{sandbox.urls[vendor]}/_sandbox/stats", timeout=10)
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    return stats


def counts(sandbox: Sandbox, vendor: str) -> dict[str, int]:
    return dict(sandbox_stats(sandbox, vendor)["counts"])


def injected(sandbox: Sandbox, vendor: str) -> int:
    return sum(sandbox_stats(sandbox, vendor)["chaos_injected"].values())


def run_cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["extract", *args], env=env)
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


# -- watching requests --------------------------------------------------------------------------


class InFlight:
    """Requests a fetch method was given, and the most it had running at once."""

    def __init__(self, counts: Callable[[PageRequest], bool]) -> None:
        self.counts = counts
        self.requests: list[PageRequest] = []
        self.running = 0
        self.most = 0


def watch(
    monkeypatch: pytest.MonkeyPatch,
    owner: type,
    *,
    counts: Callable[[PageRequest], bool] = lambda _: True,
) -> InFlight:
    """Wrap `owner.fetch` (SourceClient or GraphQLClient) to record requests and concurrency."""
    seen = InFlight(counts)
    original = owner.fetch  # type: ignore[attr-defined]

    async def fetch(self: Any, *args: Any, **kwargs: Any) -> Any:
        request = next(arg for arg in args if isinstance(arg, PageRequest))
        seen.requests.append(request)
        counted = seen.counts(request)
        seen.running += counted
        seen.most = max(seen.most, seen.running)
        try:
            return await original(self, *args, **kwargs)
        finally:
            seen.running -= counted

    monkeypatch.setattr(owner, "fetch", fetch)
    return seen


async def extract(
    spec: SourceSpec, endpoint: str, out: Path, *, within: float = 45, **options: Any
) -> ExtractionSummary:
    """The library path of `integration-platform extract`, bounded so a loop fails, not hangs."""
    async with asyncio.timeout(within):
        return await extract_to_directory(spec, endpoint, out, **options)


# -- 1. every endpoint, heavy chaos, through the CLI --------------------------------------------


def test_every_shipped_endpoint_returns_exactly_the_sandbox_records_when_vendors_run_heavy_chaos(
    sandbox: Sandbox, env: dict[str, str], chaos: ChaosSwitch, tmp_path: Path
) -> None:
    specs = shipped(env)
    before = {vendor: injected(sandbox, vendor) for vendor in VENDORS}
    for vendor in VENDORS:
        # Heavy chaos, plus one 429 first thing, so "429s > 0" never rests on luck.
        chaos(vendor, HEAVY, script=["429"])
    totals = {"retries": 0, "429s": 0}
    for source, spec in specs.items():
        for endpoint, settings in spec.endpoints.items():
            out = tmp_path / source / endpoint
            summary = run_cli(env, f"{source}.{endpoint}", "--out", str(out), "--full-refresh")
            records = landed_records(spec, endpoint, out)
            keys = ids(records, settings.primary_keys[0])
            expected = counts(sandbox, source)[endpoint]
            assert summary["records"] == len(records) == expected, f"{source}.{endpoint}"
            assert len(set(keys)) == expected, f"{source}.{endpoint} has duplicates"
            if CUSTOMER_ENDPOINTS[source] == endpoint:
                truth = ground_truth_ids(sandbox.urls[source], endpoint)
                assert set(keys) == set(truth), f"{source}.{endpoint}"
            totals["retries"] += summary["retries"]
            totals["429s"] += summary["429s"]
    assert totals["retries"] > 0
    assert totals["429s"] > 0
    assert all(injected(sandbox, vendor) > before[vendor] for vendor in VENDORS)


# -- 2. every pagination style, heavy chaos -----------------------------------------------------

PAGINATION_STYLES = {
    "cursor": (
        "crm",
        "contacts",
        {
            "type": "cursor",
            "cursor_path": "next_cursor",
            "cursor_param": "cursor",
            "page_size": 25,
            "size_param": "limit",
        },
    ),
    "next_url": (
        "crm",
        "contacts",
        {"type": "next_url", "next_url_path": "links.next", "page_size": 25, "size_param": "limit"},
    ),
    "link_header": (
        "crm",
        "contacts",
        {"type": "link_header", "page_size": 25, "size_param": "limit"},
    ),
    "offset": ("billing", "customers", {"type": "offset", "page_size": 25, "total_path": "total"}),
    "page_number": (
        "analytics",
        "users",
        {"type": "page_number", "page_size": 25, "total_pages_path": "total_pages"},
    ),
    "relay": (
        "support",
        "customers",
        {"type": "relay", "connection_path": "customers", "page_size": 25},
    ),
}


@pytest.mark.anyio
@pytest.mark.parametrize("style", list(PAGINATION_STYLES))
async def test_pagination_returns_exactly_the_ground_truth_ids_when_the_vendor_runs_heavy_chaos(
    style: str, sandbox: Sandbox, env: dict[str, str], chaos: ChaosSwitch, tmp_path: Path
) -> None:
    source, endpoint, pagination = PAGINATION_STYLES[style]
    spec = variant(env, source, endpoint, pagination=pagination)
    chaos(source, HEAVY)
    summary = await extract(spec, endpoint, tmp_path / "out", full_refresh=True)
    key = spec.endpoints[endpoint].primary_keys[0]
    found = ids(landed_records(spec, endpoint, tmp_path / "out"), key)
    truth = ground_truth_ids(sandbox.urls[source], endpoint)
    assert len(found) == len(set(found)) == len(truth)
    assert set(found) == set(truth)
    assert summary.pages >= len(truth) // 25


# -- 3. Retry-After, on a clock the test controls -----------------------------------------------


@pytest.mark.anyio
async def test_client_waits_exactly_the_retry_after_seconds_when_billing_answers_429(
    sandbox: Sandbox, env: dict[str, str], chaos: ChaosSwitch, tmp_path: Path
) -> None:
    chaos("billing", ChaosSettings(retry_after_seconds=7), script=["429"])
    clock = FakeClock(start=time.time())
    spec = shipped(env)["billing"]
    summary = await extract(spec, "customers", tmp_path / "out", clock=clock, full_refresh=True)
    assert 7.0 in clock.sleeps, clock.sleeps
    # Waited once: the limiter saw the same Retry-After but the retry already waited it out.
    assert sum(clock.sleeps) < 8, clock.sleeps
    assert (summary.throttled, summary.retries) == (1, 1)
    assert summary.records == counts(sandbox, "billing")["customers"]


@pytest.mark.anyio
async def test_client_waits_until_the_date_when_the_crm_gives_retry_after_as_an_http_date(
    sandbox: Sandbox, env: dict[str, str], chaos: ChaosSwitch, tmp_path: Path
) -> None:
    # The first request is the token request; the second, the first page, gets the 429.
    chaos(
        "crm", ChaosSettings(retry_after_seconds=7, retry_after_http_date=1.0), script=[None, "429"]
    )
    clock = FakeClock(start=time.time())
    spec = shipped(env)["crm"]
    summary = await extract(spec, "contacts", tmp_path / "out", clock=clock, full_refresh=True)
    # The sandbox dates 8 s ahead in whole seconds: 7 to 8 s from the clock's start.
    assert [s for s in clock.sleeps if s >= 1] == [pytest.approx(7.5, abs=0.6)], clock.sleeps
    assert (summary.throttled, summary.retries) == (1, 1)
    assert summary.records == counts(sandbox, "crm")["contacts"]


@pytest.mark.anyio
async def test_token_request_waits_until_the_date_when_the_token_endpoint_answers_429(
    sandbox: Sandbox, env: dict[str, str], chaos: ChaosSwitch, tmp_path: Path
) -> None:
    chaos("crm", ChaosSettings(retry_after_seconds=7, retry_after_http_date=1.0), script=["429"])
    started = time.time()
    clock = FakeClock(start=started)
    spec = shipped(env)["crm"]
    summary = await extract(spec, "companies", tmp_path / "out", clock=clock, full_refresh=True)
    elapsed = time.time() - started
    # The date is the sandbox's clock plus 8 s (7, and 1 so that cutting it to whole seconds
    # never makes it early); the fake clock stands at `started` (plus the short sleeps before
    # it) while real time runs on, more of it on a busy machine: the wait is what is left until
    # that date, read on the fake clock.
    waits = [s for s in clock.sleeps if s >= 1]
    before = sum(s for s in clock.sleeps if s < 1)
    assert len(waits) == 1, clock.sleeps
    assert 7 - before < waits[0] <= 8 + elapsed, (clock.sleeps, elapsed)
    assert summary.records == counts(sandbox, "crm")["companies"]


@pytest.mark.anyio
async def test_token_request_is_retried_when_its_body_is_cut_off(
    sandbox: Sandbox, env: dict[str, str], chaos: ChaosSwitch, tmp_path: Path
) -> None:
    chaos("crm", ChaosSettings(), script=["malformed"])  # the first request is the token's
    spec = shipped(env)["crm"]
    summary = await extract(
        spec, "companies", tmp_path / "out", full_refresh=True, clock=FakeClock(start=time.time())
    )
    assert summary.records == counts(sandbox, "crm")["companies"]
    assert summary.retries == 1


@pytest.mark.anyio
async def test_slow_response_is_retried_when_it_outlasts_the_read_timeout(
    sandbox: Sandbox, env: dict[str, str], chaos: ChaosSwitch, tmp_path: Path
) -> None:
    chaos("billing", ChaosSettings(slow_seconds=2.0), script=["slow"])
    spec = variant(
        env,
        "billing",
        "subscriptions",
        source_changes={"timeout": {"connect_seconds": 5, "read_seconds": 0.3, "total_seconds": 5}},
    )
    async with SourceClient(spec, state_dir=state_root() / "ratelimit") as client:
        page = await client.fetch(PageRequest("/v1/subscriptions", {"limit": 5}))
    assert len(page.body["data"]) == 5
    assert (client.stats.transport_errors, client.stats.retries) == (1, 1)


# -- 4. permanent errors are not retried --------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "params", "status", "says"),
    [
        ("/v2/nope", {}, 404, "Not Found"),
        ("/v2/contacts", {"limit": 999}, 400, "limit=999 is out of range"),
    ],
)
async def test_permanent_error_raises_after_one_request_when_the_crm_refuses_it(
    path: str, params: dict[str, Any], status: int, says: str, sandbox: Sandbox, env: dict[str, str]
) -> None:
    spec = shipped(env)["crm"]
    async with SourceClient(spec, clock=FakeClock()) as client:
        with pytest.raises(PermanentHTTPError) as caught:
            await client.fetch(PageRequest(path, params))
    assert caught.value.status_code == status
    message = str(caught.value)
    assert f"HTTP {status}" in message
    assert f"{sandbox.urls['crm']}{path}" in message
    assert says in message
    assert (client.stats.requests, client.stats.retries) == (1, 0)


# -- 5. retries run out; the circuit opens -----------------------------------------------------

ALWAYS_5XX = ChaosSettings(server_error_burst=1.0, burst_length=10_000)


@pytest.mark.anyio
async def test_retries_exhausted_lists_every_attempt_when_billing_keeps_answering_5xx(
    env: dict[str, str], chaos: ChaosSwitch
) -> None:
    chaos("billing", ALWAYS_5XX)
    # No rate limit: every sleep on the clock is then a back-off (full jitter may draw one
    # shorter than the limiter's own pacing, so the two could not be told apart).
    spec = variant(
        env,
        "billing",
        "customers",
        source_changes={
            "retry": {"max_attempts": 4, "initial_delay_seconds": 0.5, "max_delay_seconds": 5},
            "circuit_breaker": {"failure_threshold": 50},
            "rate_limit": None,
        },
    )
    clock = FakeClock(start=time.time())
    async with SourceClient(spec, clock=clock) as client:
        with pytest.raises(RetriesExhausted) as caught:
            await client.fetch(PageRequest("/v1/customers", {"limit": 10}))
    error = caught.value
    assert [a.number for a in error.attempts] == [1, 2, 3, 4]
    message = str(error)
    assert "failed after 4 attempts" in message
    for number in (1, 2, 3, 4):
        assert f"#{number} billing: GET " in message
    assert message.count("HTTP 50") == 4
    assert client.stats.requests == 4
    assert len(clock.sleeps) == 3, clock.sleeps  # slept on the fake clock between attempts


@pytest.mark.anyio
async def test_circuit_opens_and_refuses_calls_when_billing_fails_past_the_threshold(
    env: dict[str, str], chaos: ChaosSwitch
) -> None:
    chaos("billing", ALWAYS_5XX)
    spec = variant(
        env,
        "billing",
        "customers",
        source_changes={
            "retry": {"max_attempts": 8, "initial_delay_seconds": 0.1, "max_delay_seconds": 1},
            "circuit_breaker": {"failure_threshold": 3, "cooldown_seconds": 60},
        },
    )
    async with SourceClient(spec, clock=FakeClock(start=time.time())) as client:
        with pytest.raises(CircuitOpenError, match="failed 3 times in a row"):
            await client.fetch(PageRequest("/v1/customers", {"limit": 10}))
        assert client.stats.requests == 3
        with pytest.raises(CircuitOpenError):
            await client.fetch(PageRequest("/v1/customers", {"limit": 10}))
        assert client.stats.requests == 3, "an open circuit sends nothing"


# -- 6. GraphQL errors are never dropped --------------------------------------------------------


@pytest.mark.anyio
async def test_extraction_fails_naming_the_error_and_path_when_graphql_answers_partial_errors(
    env: dict[str, str], chaos: ChaosSwitch, tmp_path: Path
) -> None:
    chaos("support", ChaosSettings(graphql_partial_errors=0.3))
    spec = shipped(env)["support"]
    with pytest.raises(GraphQLResponseError) as caught:
        await extract(spec, "tickets", tmp_path / "out", full_refresh=True)
    message = str(caught.value)
    assert "comments service unavailable" in message
    assert "at tickets.edges." in message and ".node.comments" in message
    assert "graphql_errors: record" in message
    assert caught.value.errors
    assert not IncrementalState(state_root() / "incremental").get("support", "tickets", None)


@pytest.mark.anyio
async def test_pages_keep_data_and_errors_when_the_endpoint_records_graphql_errors(
    sandbox: Sandbox, env: dict[str, str], chaos: ChaosSwitch, tmp_path: Path
) -> None:
    chaos("support", ChaosSettings(graphql_partial_errors=0.3))
    failures_before = sandbox_stats(sandbox, "support")["comment_failures"]
    spec = variant(env, "support", "tickets", graphql_errors="record")
    out = tmp_path / "out"
    summary = await extract(spec, "tickets", out, full_refresh=True)
    failures = sandbox_stats(sandbox, "support")["comment_failures"] - failures_before
    records = landed_records(spec, "tickets", out)
    assert summary.records == len(records) == counts(sandbox, "support")["tickets"]
    assert summary.graphql_errors == failures > 0
    landed_errors = [
        error
        for file in sorted(out.glob("page-*.json"))
        for error in json.loads(file.read_bytes()).get("errors", [])
    ]
    assert len(landed_errors) == failures
    assert {e["message"] for e in landed_errors} == {
        "comments service unavailable: try again later"
    }
    assert sum(record["comments"] is None for record in records) == failures


# -- 7. a repeated cursor or page is a loop, not a hang -----------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("style", ["cursor", "next_url", "link_header"])
async def test_pagination_loop_error_when_the_crm_hands_back_the_cursor_it_was_given(
    style: str, env: dict[str, str], chaos: ChaosSwitch, tmp_path: Path
) -> None:
    chaos("crm", ChaosSettings(repeat_cursor_at_page=2))
    _, endpoint, pagination = PAGINATION_STYLES[style]
    spec = variant(env, "crm", endpoint, pagination={**pagination, "page_size": 50})
    with pytest.raises(PaginationLoopError, match="already made"):
        await extract(spec, endpoint, tmp_path / "out", full_refresh=True, within=15)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("style", "repeat", "says"),
    [
        ("offset", 2, "page 2 holds exactly the records of page 1"),
        ("page_number", 1, "page 2 holds exactly the records of page 1"),
        ("relay", 2, "already made"),
    ],
)
async def test_pagination_loop_error_when_the_vendor_serves_a_page_again(
    style: str, repeat: int, says: str, env: dict[str, str], chaos: ChaosSwitch, tmp_path: Path
) -> None:
    source, endpoint, pagination = PAGINATION_STYLES[style]
    chaos(source, ChaosSettings(repeat_cursor_at_page=repeat))
    spec = variant(env, source, endpoint, pagination=pagination)
    with pytest.raises(PaginationLoopError, match=says):
        await extract(spec, endpoint, tmp_path / "out", full_refresh=True, within=15)


# -- 8. incremental marks -----------------------------------------------------------------------


def updated(record: dict[str, Any]) -> datetime:
    instant = parse_instant(record["updated_at"])
    assert instant is not None, record["updated_at"]
    return instant


def mark_of(records: list[dict[str, Any]]) -> str:
    """The high-water mark these records should leave: the latest update, as ISO 8601."""
    return str(format_instant(max(updated(r) for r in records), "iso"))


@pytest.mark.anyio
async def test_second_run_asks_only_from_the_high_water_mark_when_contacts_are_incremental(
    sandbox: Sandbox, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = shipped(env)["crm"]
    state = IncrementalState(state_root() / "incremental")
    first = await extract(spec, "contacts", tmp_path / "first")
    everything = landed_records(spec, "contacts", tmp_path / "first")
    assert len(everything) == counts(sandbox, "crm")["contacts"] == first.records
    mark = mark_of(everything)
    assert state.get("crm", "contacts", None) == first.high_water_mark == mark

    seen = watch(monkeypatch, SourceClient)
    second = await extract(spec, "contacts", tmp_path / "second")
    assert seen.requests[0].params["updated_since"] == mark
    newer = [r for r in everything if updated(r) >= parse_instant(mark)]  # type: ignore[operator]
    assert 0 < second.records == len(newer) < len(everything)
    assert set(ids(landed_records(spec, "contacts", tmp_path / "second"))) == set(ids(newer))

    seen.requests.clear()
    refreshed = await extract(spec, "contacts", tmp_path / "third", full_refresh=True)
    assert "updated_since" not in seen.requests[0].params
    assert refreshed.records == len(everything)
    assert state.get("crm", "contacts", None) == mark


@pytest.mark.anyio
async def test_mark_stays_put_when_the_run_fails_half_way(
    env: dict[str, str], chaos: ChaosSwitch, tmp_path: Path
) -> None:
    spec = variant(
        env,
        "crm",
        "contacts",
        pagination=PAGINATION_STYLES["cursor"][2],
        source_changes={"retry": {"max_attempts": 2}},
    )
    state = IncrementalState(state_root() / "incremental")
    earlier = "2025-01-01T00:00:00Z"
    state.set("crm", "contacts", None, earlier)
    # Token and page 1 go through; page 2 fails on both attempts.
    chaos("crm", ChaosSettings(), script=[None, None, "503", "503"])
    out = tmp_path / "out"
    with pytest.raises(RetriesExhausted):
        await extract(spec, "contacts", out, clock=FakeClock(start=time.time()))
    landed = landed_records(spec, "contacts", out)
    assert len(landed) == 25, "page 1 landed, so the run got half way"
    assert max(updated(r) for r in landed) > parse_instant(earlier)  # type: ignore[operator]
    assert state.get("crm", "contacts", None) == earlier


# -- 9. parent → child, with bounded concurrency ------------------------------------------------

CUSTOMER_TICKETS_QUERY = """
query($customer_id: ID!, $first: Int!, $after: String) {
  customer(id: $customer_id) {
    tickets(first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      edges { node { id } }
    }
  }
}
"""


@pytest.mark.anyio
async def test_child_endpoint_returns_every_ticket_within_the_concurrency_when_run_per_customer(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small private sandbox (one request per customer and per two tickets adds up), heavy
    # chaos without HTTP-date Retry-Afters (each would stall the whole source for 1-2 s).
    sandbox = make_sandbox(
        customers=60, chaos=HEAVY.model_copy(update={"retry_after_http_date": 0.0})
    )
    shutil.copytree(SOURCES / "queries", tmp_path / "queries")
    (tmp_path / "queries" / "customer_tickets.graphql").write_text(CUSTOMER_TICKETS_QUERY)
    raw = yaml.safe_load((SOURCES / "support.yaml").read_text())
    raw["endpoints"]["customer_tickets"] = {
        "query_file": "queries/customer_tickets.graphql",
        "primary_key": "id",
        "parent": {"endpoint": "customers", "fields": {"customer_id": "id"}, "concurrency": 3},
        "variables": {"customer_id": "{customer_id}"},
        "pagination": {"type": "relay", "connection_path": "customer.tickets", "page_size": 2},
    }
    raw["rate_limit"] = {"requests_per_second": 200, "burst": 10}  # the fan-out, not the pacing
    spec = SourceSpec.model_validate(raw, context={"env": sandbox_env(sandbox)})
    spec._file = tmp_path / "support.yaml"
    children = watch(
        monkeypatch,
        GraphQLClient,
        counts=lambda request: "customer_id" in (request.variables or {}),
    )
    out = tmp_path / "out"
    summary = await extract(spec, "customer_tickets", out, full_refresh=True)
    tickets = ids(landed_records(spec, "customer_tickets", out))
    assert summary.records == len(tickets) == len(set(tickets))
    assert len(tickets) == counts(sandbox, "support")["tickets"]
    asked = {str((r.variables or {}).get("customer_id")) for r in children.requests}
    assert set(ground_truth_ids(sandbox.urls["support"], "customers")) <= asked
    assert 1 < children.most <= 3
    assert injected(sandbox, "support") > 0


# -- 10. known totals: concurrent pages, yielded in order ---------------------------------------


@pytest.mark.anyio
async def test_pages_are_fetched_concurrently_and_yielded_in_order_when_the_total_is_known(
    sandbox: Sandbox, env: dict[str, str], chaos: ChaosSwitch, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = variant(
        env,
        "billing",
        "invoices",
        pagination={"type": "offset", "page_size": 40, "total_path": "total"},
    )
    assert spec.concurrency == 4
    chaos("billing", HEAVY)  # slow pages and retries: later pages often finish first
    seen = watch(monkeypatch, SourceClient)
    async with SourceClient(spec, state_dir=state_root() / "ratelimit") as client:
        extractor = EndpointExtractor(spec, "invoices", client, full_refresh=True)
        async with asyncio.timeout(45):
            pages = [page async for page in extractor.pages()]
    total = counts(sandbox, "billing")["invoices"]
    assert [page.index for page in pages] == list(range(-(-total // 40)))
    assert [page.fetched.body["offset"] for page in pages] == [40 * i for i in range(len(pages))]
    invoices = [record["id"] for page in pages for record in page.records]
    assert len(invoices) == len(set(invoices)) == total
    assert 1 < seen.most <= spec.concurrency


# -- 11. a daily partition ----------------------------------------------------------------------


def test_partition_returns_exactly_the_contacts_updated_that_day_when_run_for_one_day(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(customers=3000)  # about seven contacts a day
    env = sandbox_env(sandbox)
    spec = shipped(env)["crm"]
    run_cli(env, "crm.contacts", "--out", str(tmp_path / "all"), "--full-refresh")
    summary = run_cli(
        env, "crm.contacts", "--partition", "2025-03-01", "--out", str(tmp_path / "day")
    )
    window = daily_window("2025-03-01")
    everything = landed_records(spec, "contacts", tmp_path / "all")
    that_day = {r["id"] for r in everything if window.start <= updated(r) < window.end}
    found = ids(landed_records(spec, "contacts", tmp_path / "day"))
    assert len(everything) == counts(sandbox, "crm")["contacts"]
    assert 0 < len(that_day) < len(everything)
    assert len(found) == len(set(found)) == summary["records"]
    assert set(found) == that_day
