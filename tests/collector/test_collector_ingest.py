"""The ingest pipeline on a real EmbeddedBus, bad raw messages, and exactly-once storage."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import threading
import time
from collections.abc import AsyncIterator

import pytest
from _collector_events import make_event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from collector import EmbeddedBus
from collector._ingest import INVALID_KIND, Collector
from collector.api import Metrics
from collector.lineage import AsyncLineage, LineageStore, WriteResult
from tracing import Event, Status


@pytest.fixture
async def lineage() -> AsyncIterator[AsyncLineage]:
    lin = AsyncLineage(LineageStore())
    await lin.open()
    yield lin
    await lin.close()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def _sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_collector_on_embedded_bus_stores_exactly_the_unique_events(
    lineage: AsyncLineage, metrics: Metrics
) -> None:
    rng = random.Random(7)
    unique: list[Event] = []
    for i in range(4_000):
        status = Status.DEAD_LETTERED if i % 100 == 0 else Status.OK
        unique.append(
            make_event(f"corr-{i % 500}", n=i + 1, seconds=i, status=status, duration_ms=20.0)
        )
    deliveries = unique + [rng.choice(unique) for _ in range(1_000)]
    rng.shuffle(deliveries)
    assert len(deliveries) == 5_000

    bus = EmbeddedBus(partitions=4)
    collector = Collector(lineage, metrics, batch_size=500, flush_interval=0.05)
    collector.attach(bus)
    await bus.start()
    await collector.start()
    for event in deliveries:
        await bus.publish(event)
    await bus.stop()
    await collector.stop()
    await collector.stop()

    stats = await lineage.stats()
    assert stats["events_total"] == 4_000
    assert stats["duplicates_dropped"] == 1_000
    assert stats["transactions_total"] == 500
    dead = {e.event_id for e in unique if e.status is Status.DEAD_LETTERED}
    assert stats["events_by_status"] == {"dead_lettered": len(dead), "ok": 4_000 - len(dead)}
    stored_ids = await lineage.read(
        lambda c: {r[0] for r in c.execute("SELECT event_id FROM events").fetchall()}
    )
    assert stored_ids == {e.event_id for e in unique}
    _, open_dead = await lineage.list_dead_letters(limit=1)
    # Each dead letter is resolved by a later ok event of its transaction and step,
    # except where none followed.
    assert _sample(metrics, "interlock_dead_letters_open") == float(open_dead)
    assert _sample(metrics, "interlock_duplicates_dropped_total") == 1_000.0
    ok = _sample(metrics, "interlock_events_total", system="erp", kind="order.created", status="ok")
    assert ok == float(4_000 - len(dead))
    assert _sample(metrics, "interlock_ingest_batch_size_sum") == 5_000.0
    assert (
        _sample(metrics, "interlock_step_duration_seconds_count", step="erp.create_order")
        == 4_000.0
    )
    assert collector.pending == 0


async def test_flush_interval_writes_a_partial_batch(
    lineage: AsyncLineage, metrics: Metrics
) -> None:
    collector = Collector(lineage, metrics, batch_size=1_000, flush_interval=0.02)
    await collector.start()
    await collector.ingest(make_event("c", n=1))
    for _ in range(200):
        if (await lineage.stats())["events_total"] == 1:
            break
        await asyncio.sleep(0.01)
    assert (await lineage.stats())["events_total"] == 1
    await collector.stop()


async def test_flush_returns_totals_and_stop_flushes(
    lineage: AsyncLineage, metrics: Metrics
) -> None:
    collector = Collector(lineage, metrics, batch_size=2, flush_interval=60)
    await collector.start()
    await collector.ingest(make_event("c", n=1))
    assert collector.pending == 1
    await collector.ingest(make_event("c", n=1))  # full: flushed at once
    assert collector.pending == 0
    await collector.ingest(make_event("c", n=2, status=Status.DEAD_LETTERED))
    await collector.stop()
    assert (await lineage.stats())["events_total"] == 2
    assert await collector.flush() == WriteResult(0, 0, 0, 0)


async def test_ingest_raw_garbage_becomes_an_invalid_dead_letter(
    lineage: AsyncLineage, metrics: Metrics
) -> None:
    collector = Collector(lineage, metrics, batch_size=100, flush_interval=60)
    await collector.ingest_raw(b"\xff\xfenot json at all, mail jane@acme.com")
    bad_schema = json.dumps(
        {"correlation_id": "corr-9", "kind": "nodot", "password": "hunter22"}
    ).encode()
    await collector.ingest_raw(bad_schema)
    await collector.ingest_raw(bad_schema)  # redelivered: stored once
    good = make_event("corr-ok", n=1)
    await collector.ingest_raw(good.to_json())
    result = await collector.flush()
    assert result == WriteResult(3, 1, 2, 0)

    items, total = await lineage.list_dead_letters()
    assert total == 2
    assert {i["kind"] for i in items} == {INVALID_KIND}
    assert {i["reason"] for i in items} == {"validation"}
    by_corr = {i["correlation_id"]: i for i in items}
    assert "corr-9" in by_corr  # the message's own correlation ID is kept
    schema_letter = await lineage.get_transaction("corr-9")
    assert schema_letter is not None
    event = schema_letter["events"][0]
    assert event["status"] == "dead_lettered"
    assert event["source"] == "interlock"
    raw = json.loads(event["payload"]["raw"])
    assert raw["password"] == "[REDACTED]"
    assert "kind" in event["error"]["message"]
    garbage = next(i for c, i in by_corr.items() if c != "corr-9")
    stored = await lineage.get_transaction(garbage["correlation_id"])
    assert stored is not None
    text = stored["events"][0]["payload"]["raw"]
    assert "jane@acme.com" not in text and "j***@acme.com" in text
    assert _sample(metrics, "interlock_invalid_events_total", reason="json") == 1.0
    assert _sample(metrics, "interlock_invalid_events_total", reason="schema") == 2.0
    assert (await lineage.get_transaction("corr-ok")) is not None


async def test_long_raw_messages_are_truncated(lineage: AsyncLineage, metrics: Metrics) -> None:
    collector = Collector(lineage, metrics)
    await collector.ingest_raw(b"x" * 10_000)
    await collector.flush()
    items, _ = await lineage.list_dead_letters()
    stored = await lineage.get_transaction(items[0]["correlation_id"])
    assert stored is not None
    raw = stored["events"][0]["payload"]["raw"]
    assert len(raw) < 2_100 and raw.endswith("[7952 more characters]")
    assert stored["events"][0]["payload"]["size"] == 10_000


async def test_a_flush_cancelled_mid_write_counts_its_batch_once(
    lineage: AsyncLineage, metrics: Metrics
) -> None:
    # The write runs on in the lineage's writer thread when the flush task is
    # cancelled (stop on a loaded machine); the batch must not go back into the
    # buffer and be written, and counted as duplicates, a second time.
    store = lineage.store
    real = store.write_batch_detailed
    writing = threading.Event()

    def slow_write(events):  # type: ignore[no-untyped-def]
        writing.set()
        time.sleep(0.3)
        return real(events)

    store.write_batch_detailed = slow_write  # type: ignore[method-assign]
    collector = Collector(lineage, metrics, batch_size=1_000, flush_interval=0.01)
    await collector.start()
    for n in range(1, 247):
        await collector.ingest(make_event(f"c-{n % 7}", n=n))
    await asyncio.to_thread(writing.wait, 5)
    await collector.stop()

    stats = await lineage.stats()
    assert stats["events_total"] == 246
    assert stats["duplicates_dropped"] == 0
    assert _sample(metrics, "interlock_duplicates_dropped_total") in (None, 0.0)
    assert _sample(metrics, "interlock_ingest_batch_size_sum") == 246.0
    assert collector.pending == 0


async def test_failed_flush_keeps_the_batch(metrics: Metrics) -> None:
    lineage = AsyncLineage(LineageStore())  # never opened: every write fails
    collector = Collector(lineage, metrics, batch_size=10, flush_interval=60)
    await collector.ingest(make_event("c", n=1))
    with pytest.raises(Exception, match="not open"):
        await collector.flush()
    assert collector.pending == 1
    await lineage.open()
    assert (await collector.flush()).inserted == 1
    await lineage.close()


def test_bad_settings_are_refused(metrics: Metrics) -> None:
    lineage = AsyncLineage(LineageStore())
    with pytest.raises(ValueError, match="batch_size"):
        Collector(lineage, metrics, batch_size=0)
    with pytest.raises(ValueError, match="flush_interval"):
        Collector(lineage, metrics, flush_interval=0)


_POOL = [make_event(f"p-{i % 3}", n=i + 1, seconds=i) for i in range(12)]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    deliveries=st.lists(st.sampled_from(range(len(_POOL))), min_size=1, max_size=60),
    cuts=st.lists(st.integers(min_value=1, max_value=60), max_size=6),
)
def test_any_interleaving_of_duplicates_stores_each_event_once(
    deliveries: list[int], cuts: list[int]
) -> None:
    store = LineageStore()
    store.open()
    try:
        order = [_POOL[i] for i in deliveries]
        bounds = sorted({0, len(order), *(c for c in cuts if c < len(order))})
        inserted = duplicates = 0
        for lo, hi in itertools.pairwise(bounds):
            result = store.write_batch(order[lo:hi])
            inserted += result.inserted
            duplicates += result.duplicates
        expected = {e.event_id for e in order}
        stored = store.read(
            lambda c: [r[0] for r in c.execute("SELECT event_id FROM events").fetchall()]
        )
        assert sorted(stored) == sorted(expected)
        assert inserted == len(expected)
        assert duplicates == len(order) - len(expected)
        counts = {t["correlation_id"]: t["event_count"] for t in store.list_transactions()[0]}
        assert sum(counts.values()) == len(expected)
    finally:
        store.close()
