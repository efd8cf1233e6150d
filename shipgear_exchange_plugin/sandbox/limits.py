"""Rate limiters the way the stores apply them, per account, on an injectable clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Clock = Callable[[], float]


class TokenBucket:
    """Amazon's usage plans (rate per second, burst) and Shopify's leaky bucket (a bucket
    of ``burst`` that leaks ``rate`` per second is the same arithmetic)."""

    def __init__(self, rate: float, burst: float, clock: Clock = time.monotonic) -> None:
        self.rate, self.burst, self.clock = float(rate), float(burst), clock
        self.tokens = float(burst)
        self.stamp = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, cost: float = 1.0) -> tuple[bool, float]:
        """(allowed, seconds until ``cost`` would be available)."""
        with self._lock:
            self._refill()
            if self.tokens >= cost:
                self.tokens -= cost
                return True, 0.0
            return False, (cost - self.tokens) / self.rate if self.rate else float("inf")

    @property
    def available(self) -> float:
        with self._lock:
            self._refill()
            return self.tokens


class FixedWindow:
    """BigCommerce's quota: ``limit`` requests per ``window`` seconds."""

    def __init__(self, limit: int, window: float, clock: Clock = time.monotonic) -> None:
        self.limit, self.window, self.clock = int(limit), float(window), clock
        self.start = clock()
        self.used = 0
        self._lock = threading.Lock()

    def take(self) -> tuple[bool, int, float]:
        """(allowed, requests left, seconds until the window resets)."""
        with self._lock:
            now = self.clock()
            if now - self.start >= self.window:
                self.start, self.used = now, 0
            reset = self.window - (now - self.start)
            if self.used >= self.limit:
                return False, 0, reset
            self.used += 1
            return True, self.limit - self.used, reset
