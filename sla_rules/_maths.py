"""Window and burn-rate arithmetic, kept pure so it can be property-tested.

Counts live in one-minute buckets. For a window of ``n`` minutes ending at ``now``
the SLI is ``good / (good + bad)``; the burn rate is the bad ratio divided by the
error budget (``1 - objective``): a burn rate of 1 spends exactly the budget over
the SLO window, 14.4 spends 2% of a 30-day budget in one hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import numpy.typing as npt

__all__ = [
    "MIN_OBSERVED_SHARE",
    "BucketSeries",
    "budget_consumed",
    "budget_remaining",
    "budget_remaining_observed",
    "burn_rate",
    "enough_data",
    "sli",
]


def sli(good: float, bad: float) -> float:
    """The good share; 1.0 when nothing was measured (no traffic breaks no promise)."""
    total = good + bad
    return 1.0 if total <= 0 else good / total


def burn_rate(good: float, bad: float, objective: float) -> float:
    """How many times faster than sustainable the error budget is being spent."""
    total = good + bad
    if total <= 0:
        return 0.0
    return (bad / total) / (1.0 - objective)


def budget_consumed(good: float, bad: float, objective: float) -> float:
    """The share of the window's error budget spent (over 1.0 when overspent)."""
    return burn_rate(good, bad, objective)


def budget_remaining(good: float, bad: float, objective: float) -> float:
    """``1 - consumed``: 1.0 untouched, 0 exhausted, negative overspent."""
    return 1.0 - budget_consumed(good, bad, objective)


#: Below this share of its window observed, a window has too little data to judge.
MIN_OBSERVED_SHARE = 0.1


def budget_remaining_observed(
    good: float, bad: float, objective: float, observed_minutes: int, window_minutes: int
) -> float:
    """The window's error budget left when only ``observed_minutes`` of it hold data.

    The budget belongs to the whole window (``1 - objective`` of the events it will
    hold); with traffic at the observed rate, the events seen so far are
    ``observed / window`` of those, so the share of the budget already spent is the burn
    rate times that fraction. Five minutes of a 30-day window at burn rate 34 spend
    0.4 % of the budget, not 3,400 %.

    >>> round(budget_remaining_observed(66, 34, 0.99, 5, 43_200), 4)
    0.9961
    >>> budget_remaining_observed(66, 34, 0.99, 43_200, 43_200) == budget_remaining(66, 34, 0.99)
    True
    """
    share = 0.0 if window_minutes <= 0 else min(1.0, max(0, observed_minutes) / window_minutes)
    return 1.0 - budget_consumed(good, bad, objective) * share


def enough_data(observed_minutes: int, window_minutes: int) -> bool:
    """Whether a window holds enough observed time (``MIN_OBSERVED_SHARE``) to judge."""
    return window_minutes > 0 and observed_minutes >= MIN_OBSERVED_SHARE * window_minutes


def minutes(window: timedelta) -> int:
    return max(1, int(window.total_seconds() // 60))


@dataclass
class BucketSeries:
    """Good/bad counts per minute over a sliding span ending at ``end`` (exclusive).

    Index ``i`` holds minute ``end - size + i``. ``advance`` slides the span forward,
    dropping the oldest minutes.
    """

    size: int
    end: int
    good: npt.NDArray[np.int64]
    bad: npt.NDArray[np.int64]

    @classmethod
    def empty(cls, size: int, end: int) -> BucketSeries:
        return cls(size, end, np.zeros(size, np.int64), np.zeros(size, np.int64))

    @property
    def start(self) -> int:
        return self.end - self.size

    def advance(self, end: int) -> None:
        shift = end - self.end
        if shift <= 0:
            return
        if shift >= self.size:
            self.good[:] = 0
            self.bad[:] = 0
        else:
            self.good[:-shift] = self.good[shift:]
            self.bad[:-shift] = self.bad[shift:]
            self.good[-shift:] = 0
            self.bad[-shift:] = 0
        self.end = end

    def clear(self, lo: int, hi: int) -> None:
        """Zero minutes ``[lo, hi)`` (those about to be recomputed)."""
        a, b = max(lo, self.start) - self.start, min(hi, self.end) - self.start
        if a < b:
            self.good[a:b] = 0
            self.bad[a:b] = 0

    def put(self, minute: int, good: int, bad: int) -> None:
        if self.start <= minute < self.end:
            self.good[minute - self.start] = good
            self.bad[minute - self.start] = bad

    def get(self, minute: int) -> tuple[int, int]:
        if self.start <= minute < self.end:
            i = minute - self.start
            return int(self.good[i]), int(self.bad[i])
        return 0, 0

    def range_sums(self, lo: int, hi: int) -> tuple[int, int]:
        """Good and bad over minutes ``[lo, hi)``."""
        a, b = max(lo, self.start) - self.start, min(hi, self.end) - self.start
        if a >= b:
            return 0, 0
        return int(self.good[a:b].sum()), int(self.bad[a:b].sum())

    def observed(self, n: int) -> int:
        """Minutes of the last ``n`` from the first one holding any count to the end."""
        n = min(n, self.size)
        counts = self.good[-n:] + self.bad[-n:]
        filled = np.flatnonzero(counts)
        return 0 if filled.size == 0 else int(n - filled[0])

    def window(self, n: int) -> tuple[int, int]:
        """Good and bad over the last ``n`` minutes of the span."""
        n = min(n, self.size)
        return int(self.good[-n:].sum()), int(self.bad[-n:].sum())
