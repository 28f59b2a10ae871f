"""A token bucket, so a replay cannot flood a recovering system."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """At most ``rate`` acquisitions per second on average, ``burst`` at once.

    A generic cell rate algorithm: each acquisition is scheduled ``1/rate`` after
    the previous one's theoretical time, so a sleep that overshoots (timer
    granularity) does not lose capacity, and no one-second window ever holds
    more than ``rate + burst``. Waiters are served in arrival order.
    """

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate = rate
        self.burst = burst
        self._monotonic = monotonic
        self._sleep = sleep
        self._interval = 1.0 / rate
        self._tolerance = (burst - 1) * self._interval
        self._tat = monotonic()  # theoretical arrival time of the next acquisition
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait for this caller's slot and take it."""
        async with self._lock:
            now = self._monotonic()
            tat = max(self._tat, now)
            wait = tat - now - self._tolerance
            self._tat = tat + self._interval
            if wait > 0:
                await self._sleep(wait)
