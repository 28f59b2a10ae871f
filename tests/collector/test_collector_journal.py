"""The collector tells a journaled embedded bus what the lineage holds, so a
restart re-delivers only what was acknowledged but never stored."""

from __future__ import annotations

from pathlib import Path

from _collector_events import make_event

from collector import EmbeddedBus
from collector.api import Metrics
from collector.lineage import AsyncLineage, Collector, LineageStore
from tracing import Event


async def _run(journal: Path, db: Path, events: list[Event], *, store_them: bool) -> EmbeddedBus:
    bus = EmbeddedBus(partitions=2, journal=journal)
    store = LineageStore(db)
    store.open()
    lineage = AsyncLineage(store)
    collector = Collector(lineage, Metrics(), batch_size=10, flush_interval=0.05)
    if store_them:
        collector.attach(bus)
    else:
        # A process that dies before its collector stores anything: nothing consumes.
        async def lost(_: Event) -> None:
            raise RuntimeError("crashed before the lineage commit")

        bus.subscribe("collector", lost)
    await bus.start()
    await collector.start()
    for event in events:
        await bus.publish(event)
    # The runtime's shutdown order: drain, store, then close the journal.
    await bus.drain()
    if store_them:
        await collector.flush()
    await bus.stop()
    await collector.stop()
    await lineage.close()
    return bus


async def test_stored_events_are_not_replayed_after_a_restart(tmp_path: Path) -> None:
    events = [make_event(f"corr-j{i}", n=5000 + i) for i in range(30)]
    await _run(tmp_path / "journal", tmp_path / "a.duckdb", events, store_them=True)
    again = await _run(tmp_path / "journal", tmp_path / "a.duckdb", [], store_them=True)
    assert again.replayed == 0


async def test_unstored_events_are_replayed_into_the_lineage(tmp_path: Path) -> None:
    events = [make_event(f"corr-k{i}", n=6000 + i) for i in range(30)]
    await _run(tmp_path / "journal", tmp_path / "b.duckdb", events, store_them=False)
    again = await _run(tmp_path / "journal", tmp_path / "b.duckdb", [], store_them=True)
    assert again.replayed == 30
    store = LineageStore(tmp_path / "b.duckdb")
    store.open()
    try:
        assert store.read(lambda c: c.execute("SELECT count(*) FROM events").fetchone())[0] == 30
    finally:
        store.close()
