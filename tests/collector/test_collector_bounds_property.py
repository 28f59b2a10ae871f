"""Property: envelopes with extreme values mixed with good ones. Every good event
lands as itself; every bad one is refused at the edge with a named reason, and
when it reaches the store anyway (an old journal, a producer without the check)
it becomes a validation dead letter while the rest of its batch lands."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from collector._ingest import INVALID_KIND, Collector
from collector._kafka_codec import decode_columns
from collector.api import Metrics
from collector.lineage import AsyncLineage, LineageStore
from tracing import (
    EnvelopeBoundsError,
    ErrorInfo,
    Event,
    Reason,
    System,
    check_envelope_bounds,
    envelope_bounds_error,
)

_T0 = datetime(2026, 3, 1, tzinfo=UTC)
# Text of every kind: the whole Unicode range, and lone surrogates on their own.
_TEXT = st.text(min_size=1, max_size=40)
_EXTREME_TEXT = st.one_of(
    _TEXT,
    st.sampled_from(["\ud800", "a\udfffb", "x" * 600, "é" * 513, "\x00", "😀" * 200]),
)
_GOOD_AMOUNT = st.one_of(
    st.none(),
    st.decimals(
        min_value=Decimal("-9999999999999999.99"),
        max_value=Decimal("9999999999999999.99"),
        places=2,
        allow_nan=False,
        allow_infinity=False,
    ),
)
_EXTREME_AMOUNT = st.one_of(
    _GOOD_AMOUNT,
    st.decimals(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(10**30), max_value=10**30).map(Decimal),
    st.sampled_from(
        [Decimal(10) ** 18, Decimal("1E+999999"), Decimal("-1E+999999"), Decimal("1E-999999")]
    ),
)
_GOOD_TIME = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2199, 1, 1), timezones=st.just(UTC)
)
_EXTREME_TIME = st.one_of(_GOOD_TIME, st.datetimes(timezones=st.just(UTC)))
_PAYLOAD = st.dictionaries(_TEXT, st.one_of(_TEXT, st.integers(), st.none()), max_size=4)
_EXTREME_PAYLOAD = st.one_of(
    _PAYLOAD,
    st.dictionaries(_EXTREME_TEXT, _EXTREME_TEXT, max_size=3),
    st.just({"blob": "x" * 300_000}),
)


def _event(
    text: st.SearchStrategy[str],
    amount: st.SearchStrategy[Decimal | None],
    when: st.SearchStrategy[datetime],
    payload: st.SearchStrategy[dict[str, Any]],
    attempt: st.SearchStrategy[int],
    duration: st.SearchStrategy[float | None],
) -> st.SearchStrategy[Event]:
    return st.builds(
        Event,
        correlation_id=text,
        idempotency_key=text,
        source=st.sampled_from(System),
        kind=st.sampled_from(["invoice.paid", "order.created", "opportunity.closed_won"]),
        step=text,
        entity_type=text,
        entity_id=text,
        customer_id=st.one_of(st.none(), text),
        amount=amount,
        attempt=attempt,
        event_time=when,
        recorded_at=when,
        duration_ms=duration,
        payload=payload,
        error=st.one_of(
            st.none(),
            st.builds(
                ErrorInfo,
                reason=st.sampled_from(Reason),
                message=text,
                status_code=st.one_of(st.none(), st.integers(-(2**40), 2**40)),
            ),
        ),
    )


def _good_error(e: Event) -> Event:
    if e.error is not None and e.error.status_code is not None:
        return e.model_copy(
            update={"error": e.error.model_copy(update={"status_code": e.error.status_code % 600})}
        )
    return e


GOOD = _event(
    _TEXT,
    _GOOD_AMOUNT,
    _GOOD_TIME,
    _PAYLOAD,
    st.integers(1, 1000),
    st.one_of(st.none(), st.floats(0, 1e9)),
).map(_good_error)
EXTREME = _event(
    _EXTREME_TEXT,
    _EXTREME_AMOUNT,
    _EXTREME_TIME,
    _EXTREME_PAYLOAD,
    st.integers(-5, 2**40).filter(lambda n: n >= 1),
    st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
)
MIXED = st.lists(st.tuples(st.booleans(), st.one_of(GOOD, EXTREME)), min_size=1, max_size=8)
_SETTINGS = settings(
    max_examples=30, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _stored(store: LineageStore) -> dict[str, tuple[str, Any]]:
    rows = store.read(
        lambda c: c.execute("SELECT event_id, kind, payload, amount FROM events").fetchall()
    )
    return {r[0]: (r[1], json.loads(r[2])) for r in rows}


@_SETTINGS
@given(good=st.lists(GOOD, min_size=1, max_size=6))
def test_good_envelopes_are_never_refused(good: list[Event]) -> None:
    for event in good:
        assert envelope_bounds_error(event) is None, event


@_SETTINGS
@given(batch=MIXED, split=st.integers(0, 8))
def test_every_good_event_lands_and_every_bad_one_is_refused_or_dead_lettered(
    batch: list[tuple[bool, Event]], split: int
) -> None:
    events = [e for _, e in batch]
    for event in events:
        problem = envelope_bounds_error(event)
        if problem is None:
            check_envelope_bounds(event)
        else:
            # The edge (``publish``) refuses with the field named.
            try:
                check_envelope_bounds(event)
            except EnvelopeBoundsError as exc:
                assert exc.message == problem and exc.field == problem.split(":")[0]
            else:
                raise AssertionError("an out-of-bounds event was not refused")
    # What reaches the collector anyway (an old journal, a producer without the
    # check) goes through its admission and into the store, in two batches.
    collector = Collector(AsyncLineage(LineageStore()), Metrics(CollectorRegistry()))
    store = LineageStore()
    store.open()
    try:
        for part in (events[:split], events[split:]):
            store.write_batch_detailed([collector._admit(e) for e in part])
        stored = _stored(store)
        good = [e for e in events if envelope_bounds_error(e) is None]
        bad = [e for e in events if envelope_bounds_error(e) is not None]
        for event in good:
            assert stored[event.event_id][0] == event.kind
        assert not {e.event_id for e in bad} & set(stored)
        letters = {p["refused_event_id"]: p for k, p in stored.values() if k == INVALID_KIND}
        for event in bad:
            assert letters[event.event_id]["errors"] == envelope_bounds_error(event)
        dead, total = store.list_dead_letters(limit=1000)
        assert total == len(bad) and {d["reason"] for d in dead} <= {"validation"}
    finally:
        store.close()


@_SETTINGS
@given(batch=MIXED)
def test_the_columns_path_takes_the_good_and_names_the_bad(batch: list[tuple[bool, Event]]) -> None:
    events = [e for _, e in batch]
    bodies: list[bytes | None] = []
    for event in events:
        try:
            bodies.append(event.to_json())
        except ValueError:
            # Lone surrogates cannot be UTF-8 JSON; ASCII JSON escapes them.
            bodies.append(json.dumps(event.model_dump(mode="json"), ensure_ascii=True).encode())
    columns, rejected = decode_columns(bodies, [[] for _ in bodies])
    good = [e for e in events if envelope_bounds_error(e) is None]
    assert [e.event_id for e in good] == list(columns.event_ids)
    assert len(rejected) == len(events) - len(good)
    assert all(r.reason is Reason.VALIDATION and r.message for r in rejected)
    store = LineageStore()
    store.open()
    try:
        outcome = store.write_columns(columns)
        assert outcome.refused_ids == ()
        assert set(_stored(store)) == {e.event_id for e in good}
    finally:
        store.close()


def test_the_strategies_reach_every_bound() -> None:
    # Not a property: the extremes above do produce each kind of refusal.
    samples = [
        {"amount": Decimal(10) ** 18},
        {"event_time": _T0 + timedelta(days=365 * 500)},
        {"correlation_id": "\ud800"},
        {"payload": {"blob": "x" * 300_000}},
        {"attempt": 2**40},
        {"duration_ms": float("inf")},
    ]
    base = Event(
        correlation_id="c",
        idempotency_key="k",
        source=System.BILLING,
        kind="invoice.paid",
        step="s",
        entity_type="invoice",
        entity_id="in_1",
        event_time=_T0,
        recorded_at=_T0,
    )
    named = {envelope_bounds_error(base.model_copy(update=s)).split(":")[0] for s in samples}  # type: ignore[union-attr]
    assert named == {"amount", "event_time", "correlation_id", "payload", "attempt", "duration_ms"}
