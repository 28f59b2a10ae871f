"""The envelope's fields are declared once: a field added to a copy of the envelope
reaches the lineage, the control API, the Kafka headers and replay's row access
with no other edit."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import duckdb
import httpx
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, Field

from collector import Role, TokenStore
from collector.api import Metrics, create_app
from collector.kafka import encode_event
from collector.lineage import DDL, AsyncLineage, EnvelopeColumns, LineageStore, event_dict
from tracing import (
    ENVELOPE,
    ErrorInfo,
    Event,
    Reason,
    Status,
    Stored,
    System,
    envelope_bounds_error,
    layout_of,
)


class RegionalEvent(Event):
    """The envelope with one more field, as a future schema version would add it."""

    region: Annotated[str | None, Stored(header="region")] = None
    shards: int = Field(default=1, ge=1, le=64)


LAYOUT = layout_of(RegionalEvent)
T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)


def _event(n: int, *, region: str | None = "emea", **extra: object) -> RegionalEvent:
    return RegionalEvent(
        event_id=f"e-{n}",
        correlation_id="c-1",
        idempotency_key=f"k-{n}",
        source=System.CRM,
        kind="opportunity.closed_won",
        step="crm.close",
        entity_type="opportunity",
        entity_id="006A",
        event_time=T0,
        recorded_at=T0,
        amount=Decimal("1250"),
        currency="EUR",
        payload={"customer": {"name": "Acme GmbH"}},
        region=region,
        **extra,  # type: ignore[arg-type]
    )


def _columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("DESCRIBE events").fetchall()]


def test_every_envelope_field_has_its_column_and_none_is_listed_by_hand() -> None:
    flat: list[str] = []
    for name, info in Event.model_fields.items():
        if name == "error":
            flat += ["error_reason", "error_message", "error_retriable", "error_status"]
            flat += ["error_type"]
        else:
            flat.append(name)
        assert info is not None
    assert list(ENVELOPE.names) == flat
    assert LAYOUT.names == (*ENVELOPE.names, "region", "shards")
    assert LAYOUT.column("shards").type == "int"
    con = duckdb.connect()
    con.execute(DDL)
    assert _columns(con) == [*ENVELOPE.names, "ingested_at"]


def test_a_new_field_reaches_the_lineage_on_both_decode_paths(tmp_path: Path) -> None:
    store = LineageStore(tmp_path / "l.duckdb", envelope=LAYOUT)
    store.open()
    columns = EnvelopeColumns(LAYOUT)
    # Fast path (msgspec struct derived from the model) and the exact path (an
    # envelope without an event ID goes through pydantic, which makes one).
    assert columns.add_json(_event(1, region="apac").to_json()) is None
    slow = json.loads(_event(2, region="amer").to_json())
    del slow["event_id"]
    assert isinstance(columns.add_json(json.dumps(slow).encode()), RegionalEvent)
    assert store.write_columns(columns).result.inserted == 2
    assert store.write_batch([_event(3, region=None)]).inserted == 1
    regions = store.read(
        lambda c: c.execute("SELECT region FROM events ORDER BY event_time, region").fetchall()
    )
    assert sorted(r[0] or "" for r in regions) == ["", "amer", "apac"]
    store.close()


def test_the_fast_path_keeps_the_new_fields_constraints() -> None:
    body = json.loads(_event(1).to_json())
    body["shards"] = 65
    columns = EnvelopeColumns(LAYOUT)
    try:
        columns.add_json(json.dumps(body).encode())
    except Exception as exc:  # pydantic's ValidationError, exactly as Event would raise
        assert "shards" in str(exc)
    else:
        raise AssertionError("an out-of-range field was stored")
    assert len(columns) == 0


async def test_a_new_field_reaches_the_api(tmp_path: Path) -> None:
    lineage = AsyncLineage(LineageStore(tmp_path / "l.duckdb", envelope=LAYOUT))
    await lineage.open()
    try:
        await lineage.write_batch([_event(1)])
        tokens = TokenStore()
        tokens.add("view", Role.VIEWER, "view-token")

        async def health() -> dict[str, str]:
            return {"bus": "ok"}

        app = create_app(
            lineage=lineage, metrics=Metrics(CollectorRegistry()), tokens=tokens, health=health
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://test",
            headers={"Authorization": "Bearer view-token"},
        ) as client:
            answer = await client.get("/api/v1/transactions/c-1")
        assert answer.status_code == 200, answer.text
        (event,) = answer.json()["events"]
        assert event["region"] == "emea"
        assert event["shards"] == 1
    finally:
        await lineage.close()


def test_an_existing_file_gains_the_new_column_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    old = LineageStore(path)
    old.open()
    old.write_batch([Event.model_validate(_event(1).model_dump(exclude={"region", "shards"}))])
    old.close()
    new = LineageStore(path, envelope=LAYOUT)
    new.open()
    new.write_batch([_event(2)])
    rows = new.read(lambda c: c.execute("SELECT event_id, region FROM events").fetchall())
    assert sorted(rows) == [("e-1", None), ("e-2", "emea")]
    detail = new.get_transaction("c-1")
    assert detail is not None
    assert [e.get("shards") for e in detail["events"]] == [1, 1]  # the default for old rows
    new.close()


def test_the_new_field_travels_as_a_kafka_header() -> None:
    _, _, headers = encode_event(_event(1), {})
    assert ("region", b"emea") in headers
    assert ("correlation-id", b"c-1") in headers
    _, _, plain = encode_event(
        Event.model_validate(_event(1).model_dump(exclude={"region", "shards"})), {}
    )
    assert "region" not in dict(plain)


def test_a_stored_row_reads_back_as_the_same_envelope() -> None:
    event = _event(
        1,
        status=Status.DEAD_LETTERED,
        error=ErrorInfo(reason=Reason.CONFLICT, message="held", status_code=409, error_type="X"),
        tracestate="",
        trace_flags=1,
    )
    # The row as the store writes it: the columns' own getters, the payload as JSON.
    columns = EnvelopeColumns(LAYOUT)
    assert columns.add_json(event.to_json()) is None
    row = columns.row_values(0)
    assert LAYOUT.event(row) == event
    assert event_dict(row, LAYOUT)["error"]["status_code"] == 409


def test_a_long_new_text_field_breaks_the_identifier_bound() -> None:
    assert "region" in LAYOUT.identifiers
    assert envelope_bounds_error(_event(1, region="x" * 600)) == (
        "region: 600 characters, more than 512"
    )


class _Unstorable(BaseModel):
    when: complex


def test_a_field_with_no_column_type_is_refused_with_its_name() -> None:
    class Odd(Event):
        extra: _Unstorable | None = None

    try:
        layout_of(Odd)
    except Exception as exc:
        assert "extra.when" in str(exc)
    else:
        raise AssertionError("a complex field got a column")
