"""Property tests for the window and burn-rate maths, and for the multiwindow policy."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sla_rules._maths import BucketSeries, budget_remaining, burn_rate, sli

objectives = st.sampled_from([0.9, 0.95, 0.99, 0.995, 0.999])
counts = st.integers(min_value=0, max_value=10**6)


@given(counts, counts, objectives)
def test_burn_rate_is_bad_ratio_over_budget(good, bad, objective):
    rate = burn_rate(good, bad, objective)
    assert rate >= 0
    if good + bad == 0:
        assert rate == 0 and sli(good, bad) == 1.0
    else:
        assert abs(rate * (1 - objective) - bad / (good + bad)) < 1e-9
        # Exactly the objective spends exactly the budget.
        assert (sli(good, bad) >= objective) == (budget_remaining(good, bad, objective) >= -1e-9)


@given(st.floats(min_value=0.001, max_value=1.0), objectives)
def test_sustained_burn_spends_budget_in_proportion(error_ratio, objective):
    # A constant burn rate b over a window w of the 30-day period spends b * w / 30d.
    good, bad = round((1 - error_ratio) * 10**6), round(error_ratio * 10**6)
    rate = burn_rate(good, bad, objective)
    spent_in_one_hour = rate * 1 / (30 * 24)
    assert abs(spent_in_one_hour - (bad / (good + bad)) / (1 - objective) / 720) < 1e-9


@settings(max_examples=60)
@given(
    st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=200),
    st.integers(1, 250),
    st.integers(0, 300),
)
def test_series_windows_match_brute_force(minutes, n, shift):
    size = 240
    series = BucketSeries.empty(size, 1000)
    for i, (g, b) in enumerate(minutes):
        series.put(1000 - len(minutes) + i, g, b)
    series.advance(1000 + shift)
    # Brute force: the minutes that are still inside the last n of the span.
    lo = max(1000 + shift - min(n, size), 1000 + shift - size)
    expected_good = sum(
        g
        for i, (g, _) in enumerate(minutes)
        if 1000 - len(minutes) + i >= lo and 1000 - len(minutes) + i >= 1000 - size
    )
    expected_bad = sum(
        b
        for i, (_, b) in enumerate(minutes)
        if 1000 - len(minutes) + i >= lo and 1000 - len(minutes) + i >= 1000 - size
    )
    assert series.window(n) == (expected_good, expected_bad)


def _pages(errors: np.ndarray, traffic: int, objective: float) -> bool:
    """The fast-page condition on per-minute error counts: 1h and 5m both over 14.4x."""
    hour, five = errors[-60:], errors[-5:]
    long = burn_rate(traffic * len(hour) - hour.sum(), hour.sum(), objective)
    short = burn_rate(traffic * len(five) - five.sum(), five.sum(), objective)
    return long > 14.4 and short > 14.4


@given(
    st.lists(st.integers(0, 100), min_size=60, max_size=180),
    objectives,
)
def test_no_page_after_five_clean_minutes(history, objective):
    # Whatever happened before, five clean minutes silence the fast page: the short
    # window resets, so a blip that is over never keeps paging.
    errors = np.array([*history, 0, 0, 0, 0, 0], dtype=np.int64)
    assert not _pages(errors, 100, objective)


@given(st.floats(min_value=0.15, max_value=1.0), st.integers(60, 120))
def test_a_sustained_fast_burn_pages(error_ratio, duration):
    # 99% objective: anything over 14.4% bad for an hour must page.
    errors = np.full(duration, round(error_ratio * 100), dtype=np.int64)
    assert _pages(errors, 100, 0.99)


@given(st.integers(1, 8))
def test_a_short_full_outage_blip_does_not_page(blip_minutes):
    # 99% objective: a total outage shorter than 8.6 minutes stays under 14.4% of the hour.
    errors = np.zeros(60, dtype=np.int64)
    errors[-blip_minutes:] = 100
    assert not _pages(errors, 100, 0.99)
