"""Token buckets: per-clinic call rates and upload bandwidth."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """A bucket of ``capacity`` tokens refilled at ``rate_per_s`` (Turner's token bucket). Thread-safe."""

    def __init__(self, rate_per_s: float, capacity: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s = float(rate_per_s)
        self.capacity = float(capacity)
        self._clock = clock
        self._tokens = float(capacity)
        self._stamp = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate_per_s)
        self._stamp = now

    def try_take(self, n: float = 1.0) -> bool:
        """Take ``n`` tokens if there are that many; never waits."""
        with self._lock:
            self._refill()
            if self._tokens >= n:
                self._tokens -= n
                return True
            return False

    def take_delay_s(self, n: float) -> float:
        """Take ``n`` tokens, going into debt if needed; returns how long the caller must wait to stay at the rate."""
        with self._lock:
            self._refill()
            self._tokens -= n
            return max(0.0, -self._tokens / self.rate_per_s) if self.rate_per_s > 0 else 0.0


class PerKeyBuckets:
    """One :class:`TokenBucket` per key (clinic), created on first use."""

    def __init__(self, rate_per_s: float, capacity: float) -> None:
        self.rate_per_s = rate_per_s
        self.capacity = capacity
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def __getitem__(self, key: str) -> TokenBucket:
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(self.rate_per_s, self.capacity)
            return bucket
