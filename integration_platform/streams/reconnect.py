"""When to reconnect an event stream: after the server's `retry:` delay, or longer after errors."""

from __future__ import annotations

from dataclasses import dataclass

from integration_platform.specs.models import RetrySpec

# Until the server sends `retry:`: the HTML spec leaves it to the client; browsers use ~3 s.
DEFAULT_RETRY_SECONDS = 3.0


@dataclass
class ReconnectDelay:
    """The server's `retry:` is the floor; consecutive failures back off exponentially above it.

    No jitter: a stream has exactly one consumer, so there is no herd of clients to spread out,
    and a delay that can be predicted can be tested.
    """

    initial_backoff_seconds: float
    max_backoff_seconds: float
    retry_seconds: float = DEFAULT_RETRY_SECONDS
    failures: int = 0
    retry_after_seconds: float | None = None

    @classmethod
    def from_spec(cls, retry: RetrySpec) -> ReconnectDelay:
        return cls(retry.initial_delay_seconds, retry.max_delay_seconds)

    def server_retry(self, milliseconds: int) -> None:
        """The stream's `retry:` field: how long the server wants us to wait before reconnecting."""
        if milliseconds >= 0:
            self.retry_seconds = milliseconds / 1000

    def delivered(self) -> None:
        """An event arrived: the connection works, so earlier failures no longer count."""
        self.failures = 0
        self.retry_after_seconds = None

    def failed(self, retry_after_seconds: float | None = None) -> None:
        self.failures += 1
        self.retry_after_seconds = retry_after_seconds

    def next_delay(self) -> float:
        backoff = (
            0.0
            if self.failures == 0
            else min(
                self.max_backoff_seconds,
                self.initial_backoff_seconds * 2 ** min(self.failures - 1, 30),
            )
        )
        return max(self.retry_seconds, backoff, self.retry_after_seconds or 0.0)
