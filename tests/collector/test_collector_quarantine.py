"""A journal record that keeps failing is quarantined after a bounded number of
replays (counted durably), visibly, and never replayed forever."""

from __future__ import annotations

import asyncio
import struct
import time
import zlib
from pathlib import Path
from typing import Any

from _collector_events import make_event
from prometheus_client import CollectorRegistry

from collector import EmbeddedBus
from collector._ingest import INVALID_KIND
from collector._wal import Journal
from collector.api import Metrics
from collector.lineage import AsyncLineage, Collector, LineageStore


async def _journal_with(directory: Path, *events: Any, raw: bytes | None = None) -> None:
    journal = Journal(directory)
    journal.replay()
    await journal.open()
    for event in events:
        await journal.append(event)
    await journal.close()
    if raw is not None:
        _append_raw(directory, raw)


def _append_raw(directory: Path, raw: bytes) -> None:
    """A record with a good frame whose body is not an event."""
    (segment,) = sorted(directory.glob("*.wal"))
    with open(segment, "ab") as fh:
        fh.write(struct.pack(">II", len(raw), zlib.crc32(raw)) + raw)


def _files(directory: Path, pattern: str) -> list[Path]:
    return sorted(directory.glob(pattern))


async def test_a_record_never_stored_is_quarantined_after_max_attempts(tmp_path: Path) -> None:
    poison = make_event("poison", n=1)
    await _journal_with(tmp_path, poison)
    # Each replay that is not followed by a confirm is a process that died with it.
    for attempt in range(1, 4):
        replayed = Journal(tmp_path, max_attempts=3).replay()
        assert [e.event_id for e in replayed] == [poison.event_id], attempt
    final = Journal(tmp_path, max_attempts=3)
    assert final.replay() == []
    assert [why for _, why in final.quarantined] == [
        "journal record replayed 3 times without being stored"
    ]
    assert final.quarantined_total == 1
    assert _files(tmp_path, "*.wal") == [] and _files(tmp_path, "*.tries") == []
    assert final.quarantined[0][0] == poison.to_json()
    # Reported until the bus has made it a dead letter; never replayed again.
    again = Journal(tmp_path, max_attempts=3)
    assert again.replay() == []
    assert [why for _, why in again.quarantined] == [
        "journal record replayed 3 times without being stored"
    ]
    again.mark_reported()
    later = Journal(tmp_path, max_attempts=3)
    assert later.replay() == [] and later.quarantined == [] and later.quarantined_total == 1


async def test_a_confirmed_record_does_not_keep_its_tries(tmp_path: Path) -> None:
    good = make_event("good", n=2)
    await _journal_with(tmp_path, good)
    journal = Journal(tmp_path, max_attempts=2)
    assert len(journal.replay()) == 1
    await journal.open()
    journal.confirm([good.event_id])
    await journal.close()
    assert _files(tmp_path, "*.tries") == []
    assert Journal(tmp_path).replay() == []


async def test_quarantined_records_become_dead_letters_and_ingest_goes_on(tmp_path: Path) -> None:
    journal_dir = tmp_path / "journal"
    poison = make_event("poison", n=3)
    await _journal_with(journal_dir, poison, raw=b'{"not": "an event", "correlation_id": "q-7"}')
    for _ in range(5):
        Journal(journal_dir).replay()  # five deaths with the record unconfirmed
    store = LineageStore()
    lineage = AsyncLineage(store)
    await lineage.open()
    metrics = Metrics(CollectorRegistry())
    bus = EmbeddedBus(journal=journal_dir)
    collector = Collector(lineage, metrics, flush_interval=0.01)
    collector.attach(bus)
    await bus.start()
    await collector.start()
    later = make_event("later", n=4)
    await bus.publish(later)
    deadline = time.monotonic() + 5
    while store.list_dead_letters()[1] < 2 or not store.get_transaction("later"):
        assert time.monotonic() < deadline, store.list_dead_letters()
        await asyncio.sleep(0.01)
    letters, _ = store.list_dead_letters()
    assert {d["kind"] for d in letters} == {INVALID_KIND}
    assert {d["reason"] for d in letters} == {"validation"}
    assert any("replayed 5 times" in d["error_message"] for d in letters)
    assert any(d["correlation_id"] == "q-7" for d in letters)
    assert metrics.registry.get_sample_value("interlock_journal_quarantined") == 2.0
    await bus.drain()
    await collector.flush()
    await bus.stop()
    await collector.stop()
    await lineage.close()
    # The dead letters were journaled and stored; nothing is replayed again.
    assert Journal(journal_dir).replay() == []
