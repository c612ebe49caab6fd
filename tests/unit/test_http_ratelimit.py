"""The shared rate limiter paces requests, obeys rate-limit headers and shares one budget."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import multiprocessing
import time
from collections.abc import Awaitable, Coroutine
from email.utils import formatdate
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from integration_platform.http.ratelimit import (
    QuotaReading,
    SharedRateLimiter,
    parse_ratelimit_field,
    parse_reset,
    parse_retry_after,
)
from tests.fake_clock import FakeClock

T0 = 1_750_000_000.0  # a whole second, so epoch reset headers land exactly
R = TypeVar("R")


def run(coro: Coroutine[Any, Any, R]) -> R:
    return asyncio.run(coro)


async def acquire_times(limiter: SharedRateLimiter, count: int) -> list[float]:
    return [await limiter.acquire() for _ in range(count)]


class VirtualClock:
    """Time that moves only when every task is asleep, straight to the next wake-up.

    FakeClock jumps forward on every sleep, so concurrent sleepers add up; this one wakes each
    sleeper exactly when it asked to, as a real clock would, without really waiting.
    """

    def __init__(self, start: float = T0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        wake = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), wake))
        await wake

    async def run_all(self, *work: Awaitable[R]) -> list[R]:
        tasks = [asyncio.ensure_future(w) for w in work]
        while not all(t.done() for t in tasks):
            for _ in range(10):  # let every runnable task reach its next sleep
                await asyncio.sleep(0)
            if self._sleepers:
                wake_at, _, wake = heapq.heappop(self._sleepers)
                self._now = max(self._now, wake_at)
                wake.set_result(None)
            elif not all(t.done() for t in tasks):
                raise AssertionError("tasks are stuck on something other than the clock")
        return [t.result() for t in tasks]


# --- pacing --------------------------------------------------------------------------------------


def test_requests_are_spaced_exactly_one_interval_apart_when_rate_is_configured() -> None:
    clock = FakeClock(T0)
    limiter = SharedRateLimiter("crm", 4, clock=clock)
    waits = run(acquire_times(limiter, 5))
    assert waits == pytest.approx([0.0, 0.25, 0.25, 0.25, 0.25])
    assert clock.now() == pytest.approx(T0 + 1.0)
    assert limiter.waited_seconds == pytest.approx(1.0)


def test_burst_requests_go_back_to_back_then_are_spaced_when_burst_is_configured() -> None:
    clock = FakeClock(T0)
    limiter = SharedRateLimiter("crm", 2, burst=3, clock=clock)
    assert run(acquire_times(limiter, 6)) == pytest.approx([0, 0, 0, 0.5, 0.5, 0.5])
    clock.advance(10)  # idle long enough for the whole burst to come back, and no more
    assert run(acquire_times(limiter, 4)) == pytest.approx([0, 0, 0, 0.5])


def test_fifty_concurrent_acquires_are_serialized_when_tasks_share_a_limiter() -> None:
    clock = VirtualClock(T0)
    limiter = SharedRateLimiter("crm", 10, clock=clock)

    async def request() -> tuple[float, float]:
        waited = await limiter.acquire()
        return waited, clock.now()

    async def main() -> list[tuple[float, float]]:
        return await clock.run_all(*(request() for _ in range(50)))

    results = run(main())
    waits = sorted(w for w, _ in results)
    sent_at = sorted(t - T0 for _, t in results)
    assert waits == pytest.approx([0.1 * k for k in range(50)])
    assert sent_at == pytest.approx([0.1 * k for k in range(50)])
    assert limiter.waited_seconds == pytest.approx(0.1 * sum(range(50)))  # 122.5 s in total


# --- quota headers -------------------------------------------------------------------------------


@pytest.mark.parametrize("reset", [str(int(T0) + 3), "3"], ids=["epoch", "delta"])
def test_next_acquire_waits_until_reset_when_x_ratelimit_remaining_is_zero(reset: str) -> None:
    clock = FakeClock(T0)
    limiter = SharedRateLimiter("crm", 100, clock=clock)
    run(limiter.acquire())
    headers = {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
    assert limiter.observe(headers, 200) is None
    assert run(limiter.acquire()) == pytest.approx(3.0)
    assert limiter.blocks == 1


def test_source_slows_down_before_being_refused_when_remaining_reaches_low_water_mark() -> None:
    clock = FakeClock(T0)
    limiter = SharedRateLimiter("crm", 100, clock=clock)
    limiter.observe({"x-ratelimit-remaining": "2", "x-ratelimit-reset": "3"}, 200)
    assert run(limiter.acquire()) == 0.0
    limiter.observe({"x-ratelimit-remaining": "1", "x-ratelimit-reset": "3"}, 200)
    assert run(limiter.acquire()) == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("headers", "expected_wait"),
    [
        ({"RateLimit-Policy": '"default";q=100;w=1', "RateLimit": '"default";r=0;t=2'}, 2.0),
        ({"RateLimit": '"burst";r=40;t=1, "daily";r=0;t=4'}, 4.0),
        ({"RateLimit": '"default";r=50;t=1'}, 0.0),
        ({"RateLimit-Limit": "100", "RateLimit-Remaining": "0", "RateLimit-Reset": "2"}, 2.0),
        ({"RateLimit-Remaining": "30", "RateLimit-Reset": "2"}, 0.0),
    ],
    ids=[
        "structured",
        "structured-two-policies",
        "structured-plenty-left",
        "separate",
        "separate-plenty-left",
    ],
)
def test_ietf_headers_block_until_reset_when_quota_is_exhausted(
    headers: dict[str, str], expected_wait: float
) -> None:
    clock = FakeClock(T0)
    limiter = SharedRateLimiter("crm", 100, clock=clock)
    run(limiter.acquire())
    clock.advance(1)
    limiter.observe(httpx.Headers(headers), 200)
    assert run(limiter.acquire()) == pytest.approx(expected_wait)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"default";r=50;t=1', [QuotaReading(50, 1)]),
        ('"a";r=0;t=30, "b";r=7', [QuotaReading(0, 30), QuotaReading(7, None)]),
        ('"semi;colon, comma";r=3;t=2', [QuotaReading(3, 2)]),
        ("limit=100, remaining=5, reset=9", [QuotaReading(5, 9)]),
        ('"default";r=abc;t=1', []),
        ('"default";q=100;w=1', []),
        ("", []),
    ],
)
def test_ratelimit_field_is_read_per_policy_when_parsed(
    value: str, expected: list[QuotaReading]
) -> None:
    assert parse_ratelimit_field(value, T0) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (str(int(T0) + 3), 3.0),
        ("3", 3.0),
        ("0", 0.0),
        (str(int(T0) - 5), 0.0),
        ("soon", None),
        ("-1", None),
        (None, None),
    ],
)
def test_reset_is_read_as_epoch_or_delta_when_parsed(
    value: str | None, expected: float | None
) -> None:
    assert parse_reset(value, T0) == expected


# --- Retry-After ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "value", "expected"),
    [
        (429, "3", 3.0),
        (429, "2.5", 2.5),
        (503, "4", 4.0),
    ],
)
def test_retry_after_seconds_block_the_source_when_api_refuses(
    status: int, value: str, expected: float
) -> None:
    clock = FakeClock(T0)
    limiter = SharedRateLimiter("crm", 100, clock=clock)
    run(limiter.acquire())
    assert limiter.observe({"Retry-After": value}, status) == pytest.approx(expected)
    assert run(limiter.acquire()) == pytest.approx(expected)


def test_retry_after_http_date_blocks_the_source_when_api_refuses() -> None:
    clock = FakeClock(T0)
    limiter = SharedRateLimiter("crm", 100, clock=clock)
    date = formatdate(T0 + 7, usegmt=True)  # e.g. "Sun, 15 Jun 2025 15:06:47 GMT"
    assert limiter.observe({"retry-after": date}, 429) == pytest.approx(7.0)
    assert run(limiter.acquire()) == pytest.approx(7.0)


def test_retry_after_wins_over_computed_delay_when_it_is_longer() -> None:
    clock = FakeClock(T0)
    limiter = SharedRateLimiter("crm", 1, clock=clock)  # pacing alone would wait 1 s
    run(limiter.acquire())
    limiter.observe({"Retry-After": "5"}, 429)
    assert run(limiter.acquire()) == pytest.approx(5.0)


def test_pacing_still_applies_when_retry_after_is_shorter() -> None:
    clock = FakeClock(T0)
    limiter = SharedRateLimiter("crm", 0.1, clock=clock)  # one request per 10 s
    run(limiter.acquire())
    limiter.observe({"Retry-After": "2"}, 429)
    assert run(limiter.acquire()) == pytest.approx(10.0)


def test_waiting_request_is_held_past_retry_after_when_it_arrives_during_the_wait() -> None:
    clock = VirtualClock(T0)
    limiter = SharedRateLimiter("crm", 1, clock=clock)

    async def refused_response_arrives() -> None:
        await clock.sleep(0.5)
        limiter.observe({"Retry-After": "5"}, 429)  # blocks until T0 + 5.5

    async def main() -> float:
        await limiter.acquire()
        waited, _ = await clock.run_all(limiter.acquire(), refused_response_arrives())
        assert waited is not None
        return waited

    assert run(main()) == pytest.approx(5.5)  # its slot was T0 + 1, inside the block
    assert clock.now() == pytest.approx(T0 + 5.5)


def test_retry_after_is_ignored_when_response_is_not_a_refusal() -> None:
    clock = FakeClock(T0)
    limiter = SharedRateLimiter("crm", 100, clock=clock)
    assert limiter.observe({"Retry-After": "30"}, 200) is None
    assert run(limiter.acquire()) == 0.0


def test_block_is_capped_when_retry_after_is_absurdly_long() -> None:
    clock = FakeClock(T0)
    limiter = SharedRateLimiter("crm", 100, clock=clock, max_block_seconds=60)
    assert limiter.observe({"Retry-After": "99999999"}, 429) == 99999999.0
    assert run(limiter.acquire()) == pytest.approx(60.0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        ("2.5", 2.5),
        (" 1 ", 1.0),
        ("0", 0.0),
        (formatdate(T0 + 7, usegmt=True), 7.0),
        (formatdate(T0 - 60, usegmt=True), 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("", None),
        ("soon", None),
        ("-3", None),
        ("nan", None),
        ("inf", None),
        ("1.2.3", None),
        ("Wed, 99 Foo 2015 07:28:00 GMT", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_http_date_when_parsed(
    value: str | None, expected: float | None
) -> None:
    assert parse_retry_after(value, T0) == (
        expected if expected is None else pytest.approx(expected)
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"X-RateLimit-Remaining": "lots", "X-RateLimit-Reset": "soon"},
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "whenever"},
        {"X-RateLimit-Remaining": "-1", "X-RateLimit-Reset": "nan"},
        {"RateLimit": '"default";r=;t=', "RateLimit-Policy": "garbage;;;"},
        {"RateLimit": '"unterminated;r=0;t=5'},
        {"RateLimit-Remaining": "0"},
        {"Retry-After": "tomorrow-ish"},
        {"Retry-After": "-5"},
        {"Retry-After": ""},
    ],
    ids=lambda h: "|".join(f"{k}={v}" for k, v in h.items()),
)
def test_malformed_headers_are_ignored_when_a_response_carries_them(
    headers: dict[str, str],
) -> None:
    clock = FakeClock(T0)
    limiter = SharedRateLimiter("crm", 100, clock=clock)
    assert limiter.observe(headers, 429) is None
    assert run(limiter.acquire()) == 0.0
    assert limiter.blocks == 0


def test_quota_headers_are_ignored_but_retry_after_obeyed_when_respect_headers_is_off() -> None:
    clock = FakeClock(T0)
    limiter = SharedRateLimiter("crm", 100, clock=clock, respect_headers=False)
    limiter.observe(
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "3", "RateLimit": '"default";r=0;t=3'},
        200,
    )
    assert run(limiter.acquire()) == 0.0
    assert limiter.observe({"Retry-After": "4"}, 429) == 4.0
    assert run(limiter.acquire()) == pytest.approx(4.0)


# --- shared state --------------------------------------------------------------------------------


def test_second_instance_waits_when_another_instance_used_the_shared_state(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    first = SharedRateLimiter("crm", 2, state_dir=tmp_path, clock=clock)
    second = SharedRateLimiter("crm", 2, state_dir=tmp_path, clock=clock)
    other_source = SharedRateLimiter("billing", 2, state_dir=tmp_path, clock=clock)
    assert run(first.acquire()) == 0.0
    assert run(second.acquire()) == pytest.approx(0.5)
    assert run(other_source.acquire()) == 0.0
    first.observe({"Retry-After": "3"}, 429)
    assert run(second.acquire()) == pytest.approx(3.0)
    assert (tmp_path / "crm.ratelimit").exists()


def test_limiter_starts_afresh_when_state_file_is_damaged(tmp_path: Path) -> None:
    (tmp_path / "crm.ratelimit").write_bytes(b"\x00garbage not floats")
    limiter = SharedRateLimiter("crm", 2, state_dir=tmp_path, clock=FakeClock(T0))
    assert run(acquire_times(limiter, 2)) == pytest.approx([0.0, 0.5])


def test_acquire_overhead_stays_well_under_a_millisecond_when_state_is_in_a_file(
    tmp_path: Path,
) -> None:
    limiter = SharedRateLimiter("crm", 1e9, burst=1000, state_dir=tmp_path, clock=FakeClock(T0))
    count = 500
    started = time.perf_counter()
    run(acquire_times(limiter, count))
    per_acquire = (time.perf_counter() - started) / count
    assert per_acquire < 0.001, f"{per_acquire * 1e6:.0f} us per acquire"


def _hammer(state_dir: str, start: Any, stamps: Any) -> None:
    """One partition process: 40 paced requests against the shared budget, with real time."""
    limiter = SharedRateLimiter("crm", 40, state_dir=Path(state_dir))

    async def requests() -> list[float]:
        sent = []
        for _ in range(40):
            await limiter.acquire()
            sent.append(time.time())
        return sent

    start.wait()
    stamps.put(asyncio.run(requests()))


def test_processes_share_one_budget_when_they_share_a_state_dir(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    start, stamps = context.Barrier(3), context.Queue()
    workers = [
        context.Process(target=_hammer, args=(str(tmp_path), start, stamps)) for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    try:
        sent = sorted(t for _ in workers for t in stamps.get(timeout=60))
    finally:
        for worker in workers:
            worker.join(timeout=10)
    assert len(sent) == 120
    # 120 requests at 40/s: the last one goes 119/40 = 2.975 s after the first.
    assert 2.7 <= sent[-1] - sent[0] <= 4.0
    busiest = max(sum(1 for t in sent[i:] if t < first + 1.0) for i, first in enumerate(sent))
    # Each process stamps a request just after it acquired it; on a loaded machine a stamp can
    # lag its grant by a scheduling slice, which can pull two grants into one stamped second.
    assert busiest <= 40 * 1 + 2, f"{busiest} requests in one second"
