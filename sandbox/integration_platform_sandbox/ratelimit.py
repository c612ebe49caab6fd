"""A vendor-side request quota per API key: a fixed window of N requests, like many real APIs."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Quota:
    """The state of one key's window after counting a request."""

    limit: int
    remaining: int
    reset_at: float  # epoch seconds when the window resets
    allowed: bool

    @property
    def reset_in(self) -> float:
        return max(0.0, self.reset_at - time.time())

    def x_ratelimit_headers(self) -> dict[str, str]:
        """GitHub-style headers; Reset is the epoch second at which the window resets."""
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-reset": str(math.ceil(self.reset_at)),
        }

    def ietf_headers(self, window_seconds: float) -> dict[str, str]:
        """IETF draft-ietf-httpapi-ratelimit-headers structured fields."""
        return {
            "ratelimit-policy": f'"default";q={self.limit};w={math.ceil(window_seconds)}',
            "ratelimit": f'"default";r={self.remaining};t={math.ceil(self.reset_in)}',
        }

    def retry_after(self) -> str:
        return str(max(1, math.ceil(self.reset_in)))


class WindowQuota:
    """Counts requests per key in fixed windows of `window_seconds`."""

    def __init__(self, limit: int, window_seconds: float = 1.0) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._windows: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()
        self.rejected = 0

    def take(self, key: str) -> Quota:
        now = time.time()
        window_start = now - (now % self.window_seconds)
        with self._lock:
            start, used = self._windows.get(key, (window_start, 0))
            if start != window_start:
                start, used = window_start, 0
            allowed = used < self.limit
            if allowed:
                used += 1
            else:
                self.rejected += 1
            self._windows[key] = (start, used)
        return Quota(self.limit, self.limit - used, start + self.window_seconds, allowed)
