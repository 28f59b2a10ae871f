"""Reading one transaction's lineage from the lake, as the control API shows it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from _events import make_event

from collector._columns import batch_table
from collector._lineage import LineageStore
from collector.lake import LakeSettings, LakeStore, PartitionOffset, lake_schema, transaction_events
from tracing import Event

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def chain(n: int) -> list[Event]:
    # One transaction whose steps each cause the next, a second apart.
    events: list[Event] = []
    for i in range(n):
        e = make_event(i, correlations=1).model_copy(
            update={
                "event_time": NOW + timedelta(seconds=i),
                "causation_id": events[-1].event_id if events else None,
            }
        )
        events.append(e)
    return events


def test_a_transaction_reads_as_the_duckdb_lineage_shows_it(tmp_path: Path) -> None:
    events = chain(4)
    other = [
        make_event(100 + i, correlations=1).model_copy(update={"correlation_id": "x"})
        for i in range(3)
    ]
    with LakeStore(LakeSettings(tmp_path / "lake"), lake_schema()) as lake:
        # Two collectors' batches (two partitions), in either order.
        lake.commit_batch(
            "g", "t", batch_table(events[2:] + other, NOW), {1: PartitionOffset(0, 5)}
        )
        lake.commit_batch("g", "t", batch_table(events[:2], NOW), {0: PartitionOffset(0, 2)})
        from_lake = transaction_events(lake, events[0].correlation_id)
        assert transaction_events(lake, "nobody") == []
    store = LineageStore(":memory:")
    store.open()
    try:
        store.write_batch(events + other)
        detail = store.get_transaction(events[0].correlation_id)
    finally:
        store.close()
    assert detail is not None
    assert from_lake == detail["events"]
    assert [e["since_cause_ms"] for e in from_lake] == [None, 1000.0, 1000.0, 1000.0]
