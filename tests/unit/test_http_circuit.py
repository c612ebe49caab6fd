"""The circuit breaker stops calling a failing source, then lets one trial call test it."""

from __future__ import annotations

import pytest

from integration_platform.http.circuit import CircuitBreaker
from integration_platform.http.errors import CircuitOpenError
from integration_platform.specs.models import CircuitBreakerSpec
from tests.fake_clock import FakeClock


def open_breaker(clock: FakeClock, threshold: int = 3, cooldown: float = 30.0) -> CircuitBreaker:
    breaker = CircuitBreaker(threshold, cooldown, clock, source="crm")
    for _ in range(threshold):
        breaker.check()
        breaker.record_failure("HTTP 503")
    return breaker


def test_calls_go_through_when_failures_stay_below_threshold() -> None:
    breaker = CircuitBreaker(3, 30.0, FakeClock())
    for _ in range(5):  # two failures, a success, two failures: never three in a row
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    breaker.check()
    assert breaker.state == "closed"


def test_circuit_opens_when_failures_in_a_row_reach_threshold() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(3, 30.0, clock, source="crm")
    breaker.record_failure()
    breaker.record_failure()
    before = breaker.state
    breaker.record_failure()
    assert (before, breaker.state) == ("closed", "open")
    assert breaker.times_opened == 1


def test_calls_are_refused_with_what_to_do_when_circuit_is_open() -> None:
    clock = FakeClock()
    breaker = open_breaker(clock, threshold=3, cooldown=30.0)
    clock.advance(10)
    with pytest.raises(CircuitOpenError) as refused:
        breaker.check()
    message = str(refused.value)
    assert "crm failed 3 times in a row" in message
    assert "HTTP 503" in message
    assert "in 20.0s" in message
    assert "failure_threshold" in message
    assert breaker.state == "open"


def test_one_trial_call_is_allowed_when_cooldown_has_passed() -> None:
    clock = FakeClock()
    breaker = open_breaker(clock, cooldown=30.0)
    clock.advance(30)
    assert breaker.state == "half_open"
    breaker.check()  # the trial
    with pytest.raises(CircuitOpenError, match="one trial call"):
        breaker.check()
    assert breaker.state == "half_open"


def test_circuit_closes_when_trial_call_succeeds() -> None:
    clock = FakeClock()
    breaker = open_breaker(clock)
    clock.advance(30)
    breaker.check()
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.consecutive_failures == 0
    breaker.check()
    breaker.check()


def test_circuit_reopens_for_a_full_cooldown_when_trial_call_fails() -> None:
    clock = FakeClock()
    breaker = open_breaker(clock, cooldown=30.0)
    clock.advance(31)
    breaker.check()
    breaker.record_failure("timeout")
    assert breaker.state == "open"
    clock.advance(29)
    with pytest.raises(CircuitOpenError, match="timeout"):
        breaker.check()
    clock.advance(1)
    breaker.check()
    assert breaker.times_opened == 2


def test_late_results_do_not_change_the_cooldown_when_circuit_is_open() -> None:
    clock = FakeClock()
    breaker = open_breaker(clock, cooldown=30.0)
    clock.advance(20)
    breaker.record_success()  # a call sent before the circuit opened
    breaker.record_failure()
    still = breaker.state
    clock.advance(10)
    assert (still, breaker.state) == ("open", "half_open")


def test_new_trial_is_allowed_when_previous_trial_never_reported() -> None:
    clock = FakeClock()
    breaker = open_breaker(clock, cooldown=30.0)
    clock.advance(30)
    breaker.check()  # this trial's task is cancelled and never reports back
    clock.advance(29)
    with pytest.raises(CircuitOpenError):
        breaker.check()
    clock.advance(1)
    breaker.check()


def test_breaker_takes_threshold_and_cooldown_when_built_from_spec() -> None:
    clock = FakeClock()
    spec = CircuitBreakerSpec(failure_threshold=2, cooldown_seconds=5)
    breaker = CircuitBreaker.from_spec(spec, "billing", clock)
    breaker.record_failure()
    breaker.record_failure()
    with pytest.raises(CircuitOpenError, match="billing failed 2 times"):
        breaker.check()
    clock.advance(5)
    breaker.check()
