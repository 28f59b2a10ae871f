"""The columnar ingest path: raw bodies decoded straight into lineage columns.

It must store exactly what the ``Event`` path stores, reject exactly what
``Event`` rejects (with the same reasons), keep PII masked and keep the
lineage's guarantees (dedupe, dead letters, summaries).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pydantic
import pytest
from _collector_events import make_event

from collector._kafka_codec import H_CORRELATION, H_SCHEMA, decode_batch, decode_columns
from collector.lineage import EnvelopeColumns, LineageStore
from tracing import Event, Reason, Status, System

NOW = datetime(2026, 3, 2, tzinfo=UTC)


def _variety() -> list[Event]:
    return [
        make_event("c-1", n=1, amount="1499.005", currency="EUR", customer_id="cu-1"),
        make_event(
            "c-1",
            n=2,
            seconds=1,
            kind="invoice.posted",
            target=System.BILLING,
            payload={"customer": {"name": "Acme GmbH", "email": "j***@acme.com"}, "n": [1, 2]},
            causation_id="00000000-0000-7000-8000-000000000001",
            duration_ms=12.5,
        ),
        make_event("c-2", n=3, status=Status.DEAD_LETTERED, reason=Reason.VALIDATION),
        make_event("c-2", n=4, payload={"customer_name": "Beta AG", "note": "ü ✓"}, attempt=3),
        make_event("c-3", n=5, status=Status.FAILED, payload={"customer": "not a mapping"}),
    ]


def _table(columns: EnvelopeColumns) -> pa.Table:
    table, _ = columns.table(NOW)
    return table


def test_raw_bodies_become_the_same_columns_as_events() -> None:
    events = _variety()
    fast = EnvelopeColumns()
    for event in events:
        assert fast.add_json(event.to_json()) is None  # the fast decoder took each one
    exact = EnvelopeColumns()
    exact.extend_events(events)
    assert _table(fast).equals(_table(exact))
    assert _table(fast)["customer_name"].to_pylist() == [None, "Acme GmbH", None, "Beta AG", None]


def _body(**changes: Any) -> bytes:
    data = json.loads(make_event("c-9", n=9).to_json())
    for key, value in changes.items():
        if value is _DROP:
            del data[key]
        else:
            data[key] = value
    return json.dumps(data).encode()


_DROP = object()


@pytest.mark.parametrize(
    "changes",
    [
        {"attempt": "2"},  # Event accepts a numeric string
        {"amount": 12.5},  # and a number for a decimal
        {"event_id": _DROP},  # and fills in a new event ID
        {"event_time": _DROP},  # and "now"
        {"payload": {"k": "\u00e9"}},  # plain text, but stored after a second look
    ],
)
def test_bodies_the_fast_decoder_leaves_to_event_are_stored_like_event(
    changes: dict[str, Any],
) -> None:
    body = _body(**changes)
    columns = EnvelopeColumns()
    columns.add_json(body)
    reference = Event.model_validate_json(body)
    assert len(columns) == 1
    assert columns.last("attempt") == reference.attempt
    assert columns.last("correlation_id") == reference.correlation_id


def test_a_system_no_adapter_ships_is_a_valid_source_on_both_paths() -> None:
    body = _body(source="servicenow", target="mainframe_2")
    assert Event.model_validate_json(body).source == "servicenow"
    columns = EnvelopeColumns()
    assert columns.add_json(body) is None  # the fast path took it
    assert (columns.last("source"), columns.last("target")) == ("servicenow", "mainframe_2")


@pytest.mark.parametrize(
    "changes",
    [
        {"kind": "no dots"},
        {"attempt": 0},
        {"event_time": "2026-03-01T09:00:00"},  # no time zone
        {"amount": "NaN"},
        {"source": "Main Frame"},  # not a system name (any lowercase name is one)
        {"payload": [1, 2]},
        {"extra": 1},
        {"correlation_id": _DROP},
        {"error": {"reason": "nope", "message": "x"}},
    ],
)
def test_bad_bodies_raise_exactly_as_event_does(changes: dict[str, Any]) -> None:
    body = _body(**changes)
    with pytest.raises(pydantic.ValidationError):
        Event.model_validate_json(body)
    columns = EnvelopeColumns()
    with pytest.raises(pydantic.ValidationError):
        columns.add_json(body)
    assert len(columns) == 0


def test_decode_columns_rejects_what_decode_batch_rejects_with_the_same_reasons() -> None:
    good = make_event("c-1", n=1).to_json()
    values: list[bytes | None] = [
        good,
        b"not json",
        None,
        _body(kind="bad kind"),
        _body(schema_version=99),
        good,
        make_event("c-2", n=2).to_json(),
    ]
    headers: list[list[tuple[str, bytes]]] = [[] for _ in values]
    headers[5] = [(H_CORRELATION, b"someone-else")]
    headers[6] = [(H_SCHEMA, b"x")]
    columns, rejected = decode_columns(values, headers)
    reference = decode_batch(values, headers)
    assert rejected == reference.rejected
    assert [r.index for r in rejected] == [1, 2, 3, 4, 5, 6]
    assert columns.event_ids == [e.event_id for _, e in reference.events]


def test_pii_in_a_raw_payload_is_masked_before_storage() -> None:
    plain = _body(payload={"contact": {"email": "jane.doe@acme.com"}})
    # An escaped "@" must not slip past the check.
    escaped = plain.replace(b"jane.doe@acme.com", b"jane.doe\\u0040acme.com").replace(
        b'"c-9"', b'"c-8"'
    )
    assert b"\\u0040" in escaped
    columns = EnvelopeColumns()
    columns.add_json(plain)
    columns.add_json(escaped)
    for text in _table(columns)["payload"].to_pylist():
        assert "jane.doe@acme.com" not in text
        assert "@acme.com" in text  # masked, not dropped


def test_write_columns_keeps_dedupe_dead_letters_and_summaries() -> None:
    events = _variety()
    bodies = [e.to_json() for e in events]
    with_columns, with_events = LineageStore(), LineageStore()
    with_columns.open()
    with_events.open()
    try:
        first = EnvelopeColumns()
        for body in [*bodies, bodies[0]]:  # a repeat inside the batch
            first.add_json(body)
        outcome = with_columns.write_columns(first)
        assert (outcome.result.inserted, outcome.result.duplicates) == (5, 1)
        assert outcome.result.dead_letters_opened == 1
        again = EnvelopeColumns()
        again.add_json(bodies[2])  # a redelivery of a stored event
        assert with_columns.write_columns(again).result.duplicates == 1
        with_events.write_batch([*events, events[0]])
        with_events.write_batch([events[2]])
        for cid in ("c-1", "c-2", "c-3"):
            a = with_columns.get_transaction(cid)
            b = with_events.get_transaction(cid)
            assert a == b
        assert with_columns.stats() == with_events.stats()
        # Opened, then resolved by the later ok event of the same step (c-2, n=4).
        assert with_columns.list_dead_letters(state=None)[1] == 1
        assert with_columns.write_columns(EnvelopeColumns()).result.inserted == 0
    finally:
        with_columns.close()
        with_events.close()
