"""A clock for the HTTP engine's tests: it jumps instead of waiting, so no test sleeps."""

from __future__ import annotations

import asyncio


class FakeClock:
    """A clock that jumps instead of waiting, and remembers every sleep it was asked for."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self._now = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds > 0:
            self._now += seconds
        await asyncio.sleep(0)  # still let other tasks run, as a real sleep would
