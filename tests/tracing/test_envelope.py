from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tracing import (
    ErrorInfo,
    Event,
    RateLimited,
    Reason,
    Status,
    System,
    correlation_id_for,
    new_event_id,
)


def _event(**kw) -> Event:
    base = dict(
        correlation_id="c1",
        idempotency_key="k",
        source=System.CRM,
        kind="opportunity.closed_won",
        step="crm.opportunity.closed_won",
        entity_type="opportunity",
        entity_id="006x",
    )
    return Event(**{**base, **kw})


def test_event_ids_are_uuid7_and_time_ordered():
    ids = [new_event_id() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 7 for i in ids[:10])


def test_correlation_id_is_deterministic_per_source_record():
    a = correlation_id_for("crm", "opportunity", "006A")
    assert a == correlation_id_for("crm", "opportunity", "006A")
    assert a != correlation_id_for("crm", "opportunity", "006B")


def test_round_trip_through_json_keeps_every_field():
    event = _event(
        amount=Decimal("1250.50"),
        currency="USD",
        status=Status.DEAD_LETTERED,
        error=ErrorInfo.from_exception(RateLimited("slow down", retry_after=2.0)),
        payload={"nested": {"a": [1, 2]}},
    )
    again = Event.from_json(event.to_json())
    assert again == event
    assert again.error is not None and again.error.reason is Reason.RATE_LIMIT
    assert again.error.retriable is True


@pytest.mark.parametrize("kind", ["closedwon", "order created", " order.created", ""])
def test_kind_must_be_dotted(kind):
    with pytest.raises(ValidationError):
        _event(kind=kind)


def test_naive_timestamps_are_refused():
    with pytest.raises(ValidationError):
        _event(event_time=datetime(2026, 1, 1))


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError):
        Event.model_validate({**_event().model_dump(), "surprise": 1})


def test_traceparent_only_when_ids_are_complete():
    assert _event().traceparent is None
    e = _event(trace_id="a" * 32, span_id="b" * 16)
    assert e.traceparent == f"00-{'a' * 32}-{'b' * 16}-01"


@pytest.mark.parametrize("flags", [0x00, 0x01, 0x02, 0x03])
def test_traceparent_carries_the_flags_that_were_recorded(flags):
    e = _event(trace_id="a" * 32, span_id="b" * 16, trace_flags=flags, tracestate="congo=1")
    assert e.traceparent == f"00-{'a' * 32}-{'b' * 16}-{flags:02x}"
    again = Event.from_json(e.to_json())
    assert (again.trace_flags, again.tracestate) == (flags, "congo=1")


def test_an_envelope_of_schema_1_still_decodes():
    old = _event(trace_id="a" * 32, span_id="b" * 16).model_dump(mode="json")
    del old["trace_flags"], old["tracestate"]
    old["schema_version"] = 1
    e = Event.model_validate(old)
    assert (e.trace_flags, e.tracestate, e.schema_version) == (None, "", 1)
    assert e.traceparent == f"00-{'a' * 32}-{'b' * 16}-01"  # as schema 1 wrote it


@pytest.mark.parametrize(
    "bad", [{"trace_flags": 256}, {"trace_flags": -1}, {"tracestate": "a=" + "x" * 600}]
)
def test_out_of_range_trace_context_is_refused(bad):
    with pytest.raises(ValidationError):
        _event(**bad)


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_error_info_from_foreign_exception_is_unknown(message, name):
    info = ErrorInfo.from_exception(RuntimeError(message))
    assert info.reason is Reason.UNKNOWN
    assert info.retriable is False
