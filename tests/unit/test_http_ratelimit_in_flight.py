"""The limiter counts requests already in flight against the quota a response reports."""

from __future__ import annotations

import asyncio
from pathlib import Path

from integration_platform.http.ratelimit import SharedRateLimiter
from tests.fake_clock import FakeClock

T0 = 1_750_000_000.0


async def _one_request(
    limiter: SharedRateLimiter, sent: asyncio.Event, answer: asyncio.Event, remaining: int
) -> None:
    """Acquire, then observe this request's own response once told to (as GovernedTransport)."""
    await limiter.acquire()
    sent.set()
    await answer.wait()
    limiter.observe({"X-RateLimit-Remaining": str(remaining), "X-RateLimit-Reset": "2"}, 200)


async def _send_then_answer_first(limiter: SharedRateLimiter, remaining: int, after: int) -> None:
    answer = asyncio.Event()
    events = [asyncio.Event() for _ in range(after + 1)]
    tasks = []
    for event in events:  # the first request, then `after` more, all still unanswered
        tasks.append(asyncio.create_task(_one_request(limiter, event, answer, remaining)))
        await event.wait()
    answer_first = tasks[0]
    answer.set()
    await answer_first
    for task in tasks[1:]:
        task.cancel()


def test_source_waits_for_reset_when_requests_in_flight_would_spend_the_quota() -> None:
    clock = FakeClock(T0)
    limiter = SharedRateLimiter("api", 1000, burst=10, clock=clock)
    # The answer to the first request says 4 left, but 4 more requests are already on their way.
    asyncio.run(_send_then_answer_first(limiter, remaining=4, after=4))
    assert limiter.blocked_until() == T0 + 2


def test_source_keeps_going_when_the_quota_outlasts_the_requests_in_flight() -> None:
    clock = FakeClock(T0)
    limiter = SharedRateLimiter("api", 1000, burst=10, clock=clock)
    asyncio.run(_send_then_answer_first(limiter, remaining=10, after=4))
    assert limiter.blocked_until() == 0.0


def test_processes_sharing_state_count_each_others_requests_in_flight(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    mine = SharedRateLimiter("api", 1000, burst=10, clock=clock, state_dir=tmp_path)
    other = SharedRateLimiter("api", 1000, burst=10, clock=clock, state_dir=tmp_path)

    async def scenario() -> None:
        answer, sent = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(_one_request(mine, sent, answer, remaining=3))
        await sent.wait()
        for _ in range(3):  # another process sends three requests after mine
            await other.acquire()
        answer.set()
        await task

    asyncio.run(scenario())
    assert mine.blocked_until() == T0 + 2
