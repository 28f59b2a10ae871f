"""What the lineage cannot take: refused at the edge with a named reason, or
dead-lettered row by row while the rest of its batch lands; and a flush loop that
no error can end."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from _collector_events import make_event
from prometheus_client import CollectorRegistry

from collector import EmbeddedBus
from collector._ingest import INVALID_KIND, Collector
from collector._wal import Journal
from collector.api import Metrics
from collector.lineage import AsyncLineage, BatchOutcome, EnvelopeColumns, LineageStore
from tracing import EnvelopeBoundsError, ErrorInfo, Event, Reason, envelope_bounds_error


@pytest.fixture
async def lineage() -> AsyncIterator[AsyncLineage]:
    lin = AsyncLineage(LineageStore())
    await lin.open()
    yield lin
    await lin.close()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def _stored(store: LineageStore) -> list[tuple[str, str, str, Any]]:
    return store.read(
        lambda c: c.execute(
            "SELECT event_id, kind, correlation_id, payload FROM events ORDER BY event_id"
        ).fetchall()
    )


async def _until(check: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# -- the bounds, named ------------------------------------------------------------------


def _with(**fields: Any) -> Event:
    return make_event("c", n=1).model_copy(update=fields)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"amount": Decimal(10) ** 18}, "amount"),
        ({"amount": Decimal("-1E+999999")}, "amount"),
        ({"amount": Decimal("9999999999999999.995")}, "amount"),
        ({"event_time": datetime(9999, 12, 31, tzinfo=UTC)}, "event_time"),
        ({"recorded_at": datetime(1, 1, 1, tzinfo=UTC)}, "recorded_at"),
        ({"correlation_id": "x" * 513}, "correlation_id"),
        ({"entity_id": "\ud800"}, "entity_id"),
        ({"attempt": 2**31}, "attempt"),
        ({"duration_ms": float("nan")}, "duration_ms"),
        ({"payload": {"blob": "x" * 300_000}}, "payload"),
        ({"payload": {"text": "\udfff"}}, "payload"),
        (
            {"error": ErrorInfo(reason=Reason.UNKNOWN, message="m", status_code=2**40)},
            "error.status_code",
        ),
    ],
)
def test_out_of_bounds_values_are_named(fields: dict[str, Any], named: str) -> None:
    problem = envelope_bounds_error(_with(**fields))
    assert problem is not None and problem.startswith(f"{named}: ")


def test_values_at_the_edge_of_the_bounds_pass() -> None:
    for amount in ("9999999999999999.99", "-9999999999999999.99", "0.001", "1E-30"):
        assert envelope_bounds_error(_with(amount=Decimal(amount))) is None
    assert envelope_bounds_error(_with(entity_id="ü€😀" * 100)) is None


async def test_the_bus_refuses_an_out_of_range_event_before_journaling_it(
    tmp_path: Path,
) -> None:
    bus = EmbeddedBus(journal=tmp_path / "journal")
    await bus.start()
    try:
        with pytest.raises(EnvelopeBoundsError, match="decimal") as info:
            await bus.publish(_with(amount=Decimal(10) ** 18))
        assert info.value.reason is Reason.VALIDATION and info.value.field == "amount"
        assert bus.journal is not None and bus.journal.unconfirmed == 0
        assert bus.published == 0
    finally:
        await bus.stop()


# -- a row the store cannot take: a dead letter, the rest of the batch lands -------------


def test_a_bad_row_is_dead_lettered_and_its_batch_lands() -> None:
    store = LineageStore()
    store.open()
    good = [make_event(f"g-{i}", n=i + 1) for i in range(5)]
    bad = _with(event_id="bad-1", correlation_id="q-1", amount=Decimal(10) ** 18)
    outcome = store.write_batch_detailed([good[0], good[1], bad, good[2], good[3], good[4]])
    assert outcome.refused_ids == ("bad-1",)
    rows = _stored(store)
    assert {r[0] for r in rows if r[1] != INVALID_KIND} == {e.event_id for e in good}
    (dead,) = [r for r in rows if r[1] == INVALID_KIND]
    assert dead[2] == "q-1"  # stays in its transaction
    payload = json.loads(dead[3])
    assert payload["refused_event_id"] == "bad-1"
    assert json.loads(payload["raw"])["amount"] == "1000000000000000000"
    letters, total = store.list_dead_letters()
    assert total == 1 and letters[0]["reason"] == "validation"
    assert letters[0]["error_message"].startswith("amount: ")
    # Delivered again, the same bad event is the same dead letter.
    again = store.write_batch_detailed([bad])
    assert again.result.inserted == 0 and store.list_dead_letters()[1] == 1
    store.close()


def test_a_row_duckdb_refuses_on_insert_is_dead_lettered_on_the_columns_path() -> None:
    store = LineageStore()
    store.open()
    columns = EnvelopeColumns()
    for i in range(3):
        columns.add_event(make_event(f"c-{i}", n=i + 1))
    # A payload that is not JSON: the Arrow table builds, DuckDB's JSON cast refuses it.
    columns._payloads[1] = "{not json"
    outcome = store.write_columns(columns)
    assert outcome.refused_ids == (make_event("c-1", n=2).event_id,)
    kinds = sorted((r[2], r[1]) for r in _stored(store))
    assert kinds == [("c-0", "order.created"), ("c-1", INVALID_KIND), ("c-2", "order.created")]
    (letter,), _ = store.list_dead_letters()
    assert "cannot insert" in letter["error_message"]
    store.close()


async def test_an_out_of_range_event_in_an_old_journal_is_dead_lettered_and_ingest_goes_on(
    tmp_path: Path, metrics: Metrics
) -> None:
    # A journal written before the bus checked bounds holds a poisonous event.
    journal = Journal(tmp_path / "journal")
    journal.replay()
    await journal.open()
    await journal.append(_with(event_id="poison", amount=Decimal(10) ** 18))
    await journal.close()

    store = LineageStore()
    lineage = AsyncLineage(store)
    await lineage.open()
    bus = EmbeddedBus(journal=tmp_path / "journal")
    collector = Collector(lineage, metrics, flush_interval=0.01)
    collector.attach(bus)
    await bus.start()
    await collector.start()
    later = make_event("later", n=7)
    await bus.publish(later)
    await _until(
        lambda: collector.pending == 0 and bus.journal is not None and bus.journal.unconfirmed == 0
    )
    await bus.stop()
    await collector.stop()
    ids = {r[0] for r in _stored(store)}
    assert later.event_id in ids and "poison" not in ids
    assert store.list_dead_letters()[1] == 1
    assert (
        metrics.registry.get_sample_value("interlock_invalid_events_total", {"reason": "bounds"})
        == 1.0
    )
    assert collector.health() == "ok"
    await lineage.close()
    # Confirmed as dead-lettered: a restart does not replay it again.
    assert Journal(tmp_path / "journal").replay() == []


# -- the flush loop is supervised ---------------------------------------------------------


class _FailingLineage(AsyncLineage):
    """A real lineage whose first ``failures`` batch writes raise ``error``."""

    def __init__(self, failures: int, error: Exception) -> None:
        super().__init__(LineageStore())
        self.failures = failures
        self.error = error
        self.calls = 0

    async def write_batch_detailed(self, events: Sequence[Event]) -> BatchOutcome:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return await super().write_batch_detailed(events)


async def test_an_unexpected_flush_error_is_counted_reported_and_retried_with_backoff(
    metrics: Metrics,
) -> None:
    lineage = _FailingLineage(3, RuntimeError("a defect in the writer"))
    await lineage.open()
    collector = Collector(lineage, metrics, flush_interval=0.01, max_backoff=0.05)
    await collector.start()
    await collector.ingest(make_event("c", n=1))
    await _until(lambda: lineage.calls >= 1)
    assert collector.health().startswith("error: ")
    assert "RuntimeError: a defect in the writer" in collector.health()
    assert collector.backoff() > collector.flush_interval
    await _until(lambda: collector.health() == "ok")
    assert collector._task is not None and not collector._task.done()
    assert (
        metrics.registry.get_sample_value(
            "interlock_ingest_flush_errors_total", {"reason": "RuntimeError"}
        )
        == 3.0
    )
    assert collector.health() == "ok" and collector.backoff() == collector.flush_interval
    # Ingest goes on after the failures.
    await collector.ingest(make_event("c", n=2))
    await _until(lambda: len(_stored(lineage.store)) == 2)
    await collector.stop()
    await lineage.close()


def test_backoff_doubles_and_is_capped(metrics: Metrics) -> None:
    collector = Collector(AsyncLineage(LineageStore()), metrics, flush_interval=0.2, max_backoff=30)
    waits = []
    for failures in range(12):
        collector.failures_in_row = failures
        waits.append(collector.backoff())
    assert waits[:4] == [0.2, 0.4, 0.8, 1.6]
    assert max(waits) == 30 and waits[-1] == 30
