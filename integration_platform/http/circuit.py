"""A circuit breaker per source: after N failures in a row, stop calling the API for a while."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from integration_platform.http.clock import Clock, SystemClock
from integration_platform.http.errors import CircuitOpenError

if TYPE_CHECKING:
    from integration_platform.specs.models import CircuitBreakerSpec

CircuitState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """closed → (failure_threshold failures in a row) → open → (cooldown) → half_open.

    Half-open lets exactly one trial call through; its success closes the circuit, its failure
    opens it for another cooldown. A trial that never reports back (a cancelled task) is given up
    after one cooldown, so the circuit cannot stay stuck half-open. One event loop per instance:
    the methods never await, so its tasks cannot interleave inside them.
    """

    def __init__(
        self,
        failure_threshold: int,
        cooldown_seconds: float,
        clock: Clock | None = None,
        *,
        source: str = "This source",
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, not {failure_threshold!r}")
        if cooldown_seconds <= 0:
            raise ValueError(f"cooldown_seconds must be positive, not {cooldown_seconds!r}")
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self.clock: Clock = clock or SystemClock()
        self.source = source
        self.consecutive_failures = 0
        self.last_failure: str | None = None
        self.times_opened = 0
        self._opened_at: float | None = None
        self._trial_started_at: float | None = None

    @classmethod
    def from_spec(
        cls, spec: CircuitBreakerSpec, source: str, clock: Clock | None = None
    ) -> CircuitBreaker:
        return cls(spec.failure_threshold, spec.cooldown_seconds, clock, source=source)

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:
            return "closed"
        if self.clock.now() < self._opened_at + self.cooldown_seconds:
            return "open"
        return "half_open"

    def check(self) -> None:
        """Return if a call may go ahead now; raise CircuitOpenError if it may not.

        In half-open, the caller that gets through is the trial: report its outcome with
        record_success() or record_failure().
        """
        if self._opened_at is None:
            return
        now = self.clock.now()
        retry_at = self._opened_at + self.cooldown_seconds
        if now < retry_at:
            raise CircuitOpenError(self._refusal(retry_at, now))
        trial = self._trial_started_at
        if trial is not None and now < trial + self.cooldown_seconds:
            raise CircuitOpenError(
                f"{self.source} failed {self.consecutive_failures} times in a row and one trial "
                "call is checking whether it recovered; calls are refused until it reports. "
                "Retry in a moment."
            )
        self._trial_started_at = now

    def record_success(self) -> None:
        """A call succeeded: close the circuit and forget past failures.

        A success while still open (cooldown not over) came from a call sent before the circuit
        opened; it says nothing about recovery, so it is ignored.
        """
        if self.state == "open":
            return
        self.consecutive_failures = 0
        self.last_failure = None
        self._opened_at = None
        self._trial_started_at = None

    def record_failure(self, reason: str | None = None) -> None:
        """A call failed in a way that says the source is unwell (5xx, timeouts, 429s)."""
        self.consecutive_failures += 1
        if reason is not None:
            self.last_failure = reason
        state = self.state
        if state == "open":
            return  # a straggler sent before the circuit opened: the cooldown stands
        if state == "half_open" or self.consecutive_failures >= self.failure_threshold:
            self._opened_at = self.clock.now()
            self._trial_started_at = None
            self.times_opened += 1

    def _refusal(self, retry_at: float, now: float) -> str:
        when = datetime.fromtimestamp(retry_at, UTC).strftime("%H:%M:%S UTC")
        last = f" (last: {self.last_failure})" if self.last_failure else ""
        return (
            f"{self.source} failed {self.consecutive_failures} times in a row{last}, so "
            f"calls to it are paused; one trial call will go through at {when} "
            f"(in {retry_at - now:.1f}s). Check the API's status and the source's base_url "
            "and credentials, then re-run; if these failures are expected, raise "
            "circuit_breaker.failure_threshold in the source spec."
        )
