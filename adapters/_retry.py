"""Retry with exponential backoff and full jitter, honouring ``Retry-After``.

Whether to retry is read from the error's ``retriable`` attribute; how long to
wait from ``retry_after`` when the server said so, else from the backoff curve.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tracing import InterlockError, RateLimited

__all__ = ["RetryPolicy", "retry_call"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try one step.

    ``max_attempts`` counts the first try. Delays grow as ``base_delay * 2**n``
    up to ``max_delay``, each drawn uniformly from zero to that bound (full
    jitter), except a server's ``Retry-After``, which is waited out as given
    (capped at ``max_retry_after``).
    """

    max_attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 10.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")

    def delay(self, attempt: int, error: BaseException, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed ``attempt`` (1-based)."""
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.max_retry_after)
        bound = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return (rng or random).uniform(0, bound)


async def retry_call(
    func: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[int, InterlockError, float], Awaitable[None]] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Call ``func`` until it succeeds, fails for good, or the policy runs out.

    ``on_retry(attempt, error, delay)`` runs before each wait (to record a
    ``retrying`` event). The last error is re-raised unchanged.
    """
    attempt = 1
    while True:
        try:
            return await func()
        except InterlockError as exc:
            if not exc.retriable or attempt >= policy.max_attempts:
                raise
            wait = policy.delay(attempt, exc)
            if on_retry is not None:
                await on_retry(attempt, exc, wait)
            await sleep(wait)
            attempt += 1
