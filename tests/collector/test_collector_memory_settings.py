"""DuckDB memory settings of the lineage store, and metrics computed from columns."""

from __future__ import annotations

from pathlib import Path

import pytest
from _collector_events import make_event

from collector._memory import release_memory
from collector.api import Metrics
from collector.kafka import KafkaCollector, KafkaSettings
from collector.lineage import AsyncLineage, EnvelopeColumns, LineageStore
from tracing import Status, StoreError


def test_memory_limit_and_threads_reach_duckdb() -> None:
    store = LineageStore(memory_limit="64MB", threads=1)
    store.open()
    try:
        limit, threads = store.read(
            lambda c: c.execute(
                "SELECT current_setting('memory_limit'), current_setting('threads')"
            ).fetchone()
        )
    finally:
        store.close()
    assert (limit, threads) == ("61.0 MiB", 1)


def test_defaults_leave_duckdb_settings_alone() -> None:
    store = LineageStore()
    store.open()
    try:
        limit = store.read(lambda c: c.execute("SELECT current_setting('memory_limit')").fetchone())
    finally:
        store.close()
    assert limit is not None and limit[0] != "61.0 MiB"


def test_bad_memory_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="threads"):
        LineageStore(threads=0)
    store = LineageStore(memory_limit="a lot")
    with pytest.raises(StoreError, match="cannot open"):
        store.open()
    assert not store.is_open


def test_metrics_from_columns_equal_metrics_from_events() -> None:
    statuses = [Status.OK, Status.FAILED, Status.DEAD_LETTERED]
    events = [
        make_event(
            f"corr-{i % 7}",
            n=i,
            status=statuses[i % 3],
            kind="order.created" if i % 2 else "invoice.posted",
            duration_ms=float(i) if i % 4 else None,
        )
        for i in range(40)
    ]
    batch = events + events[:5]
    store = LineageStore()
    store.open()
    columns = EnvelopeColumns()
    columns.extend_events(batch)
    outcome = store.write_columns(columns)
    store.close()
    by_columns, by_events = Metrics(), Metrics()
    common = {
        "inserted_ids": outcome.inserted_ids,
        "duplicates": outcome.result.duplicates,
        "commit_seconds": 0.01,
        "dead_letters_open": outcome.dead_letters_open,
    }
    by_columns.record_columns(columns, **common)  # type: ignore[arg-type]
    by_events.record_batch(batch, delivered=len(batch), **common)  # type: ignore[arg-type]

    def samples(m: Metrics) -> list[tuple[str, list[tuple[str, str]], float]]:
        return sorted(
            (s.name, sorted(s.labels.items()), s.value)
            for metric in m.registry.collect()
            for s in metric.samples
            if not s.name.endswith("_created")
        )

    assert samples(by_columns) == samples(by_events)
    events_total = by_columns.registry.get_sample_value(
        "interlock_events_total", {"system": "erp", "kind": "order.created", "status": "failed"}
    )
    assert events_total == len([i for i in range(40) if i % 2 and i % 3 == 1])
    assert by_columns.registry.get_sample_value("interlock_duplicates_dropped_total") == 5


def test_checkpoint_threshold_reaches_duckdb() -> None:
    store = LineageStore(checkpoint_threshold="64MB")
    store.open()
    try:
        value = store.read(
            lambda c: c.execute("SELECT current_setting('checkpoint_threshold')").fetchone()
        )
    finally:
        store.close()
    assert value == ("61.0 MiB",)  # DuckDB reads MB as 10**6 bytes, shows MiB


def test_a_checkpoint_threshold_that_is_not_a_size_is_refused() -> None:
    with pytest.raises(ValueError, match="checkpoint_threshold"):
        LineageStore(checkpoint_threshold="64MB'; DROP TABLE events; --")


def test_release_memory_hands_freed_heap_back() -> None:
    # 64 KB blocks come from glibc's heap (below its mmap threshold); a live block
    # allocated last keeps the heap top in use, so only malloc_trim can return
    # the freed ones below it.
    blocks = [bytearray(64 * 1024) for _ in range(3000)]
    keep = bytearray(64 * 1024)
    del blocks
    before = _rss_kb()
    release_memory()
    after = _rss_kb()
    assert keep is not None
    assert after < before - 50_000, (before, after)


def test_a_negative_release_interval_is_refused() -> None:
    lineage = AsyncLineage(LineageStore())
    with pytest.raises(ValueError, match="release_every"):
        KafkaCollector(KafkaSettings(bootstrap="127.0.0.1:9"), lineage, release_every=-1)


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")
