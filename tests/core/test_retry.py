from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters import RetryPolicy, parse_retry_after, retry_call
from tracing import DownstreamUnavailable, RateLimited, ValidationError


@given(
    attempt=st.integers(1, 30),
    base=st.floats(0, 5),
    cap=st.floats(0, 60),
    seed=st.integers(0, 2**32),
)
def test_backoff_is_within_the_capped_exponential_bound(attempt, base, cap, seed):
    policy = RetryPolicy(base_delay=base, max_delay=cap)
    delay = policy.delay(attempt, DownstreamUnavailable("x"), random.Random(seed))
    assert 0 <= delay <= min(cap, base * 2 ** (attempt - 1)) + 1e-9


@given(st.floats(0, 10_000))
def test_retry_after_is_honoured_up_to_the_cap(seconds):
    policy = RetryPolicy(max_retry_after=60)
    assert policy.delay(1, RateLimited("429", retry_after=seconds)) == min(seconds, 60)


async def test_retries_transient_errors_then_succeeds():
    calls, waits, notes = [], [], []

    async def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RateLimited("slow down", retry_after=1.5)
        return "done"

    async def sleep(s):
        waits.append(s)

    async def on_retry(attempt, error, delay):
        notes.append((attempt, type(error).__name__, delay))

    assert (
        await retry_call(flaky, RetryPolicy(max_attempts=5), on_retry=on_retry, sleep=sleep)
        == "done"
    )
    assert waits == [1.5, 1.5]
    assert notes == [(1, "RateLimited", 1.5), (2, "RateLimited", 1.5)]


async def test_gives_up_after_max_attempts_with_the_last_error():
    async def down():
        raise DownstreamUnavailable("ERP down")

    async def sleep(_):
        return None

    with pytest.raises(DownstreamUnavailable):
        await retry_call(down, RetryPolicy(max_attempts=3), sleep=sleep)


async def test_does_not_retry_permanent_errors():
    calls = []

    async def bad():
        calls.append(1)
        raise ValidationError("missing amount")

    with pytest.raises(ValidationError):
        await retry_call(bad, RetryPolicy(max_attempts=5))
    assert len(calls) == 1


def test_parse_retry_after_forms():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


def test_policy_rejects_nonsense():
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
