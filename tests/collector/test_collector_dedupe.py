"""Dedupe on event ID without a key constraint: the in-memory hash set and its checks."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
from _collector_events import T0, make_event
from _old_schemas import SCHEMA_2_EVENTS

from collector._event_keys import EventKeys
from collector._lineage_guard import end_transaction
from collector.lineage import DDL, LineageStore, batch_table


def _keys(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.uint64)


def test_event_keys_probe_and_merge() -> None:
    keys = EventKeys(_keys(9, 3))
    assert keys.probe(_keys(3, 4, 9, 2**64 - 1)).tolist() == [True, False, True, False]
    # Enough adds to merge the recent keys into the base array more than once.
    for start in range(0, 300_000, 50_000):
        keys.add(np.arange(start, start + 50_000, dtype=np.uint64) * 7 + 11)
    assert len(keys) == 300_002
    probe = keys.probe(np.array([11, 18, 12, 7 * 299_999 + 11, 7 * 300_000 + 11], np.uint64))
    assert probe.tolist() == [True, True, False, True, False]
    assert EventKeys().probe(_keys(1)).tolist() == [False]


def _open(path: Path | str = ":memory:") -> LineageStore:
    store = LineageStore(path)
    store.open()
    return store


def _count(store: LineageStore) -> int:
    row = store.read(lambda c: c.execute("SELECT count(*) FROM events").fetchone())
    return int(row[0]) if row else 0


def test_repeats_in_a_batch_and_across_batches_are_stored_once() -> None:
    store = _open()
    a, b, c = (make_event(f"c-{i}", n=i) for i in range(3))
    first = store.write_batch([a, b, a])
    assert (first.inserted, first.duplicates) == (2, 1)
    second = store.write_batch([b, c])
    assert (second.inserted, second.duplicates) == (1, 1)
    assert _count(store) == 3


def test_a_whole_batch_delivered_again_is_dropped(tmp_path: Path) -> None:
    # More possible repeats than point lookups: checked with one join instead.
    events = [make_event(f"c-{i % 7}", n=i, seconds=i) for i in range(500)]
    store = _open(tmp_path / "l.duckdb")
    assert store.write_batch(events).inserted == 500
    again = store.write_batch([*events[100:300], make_event("c-new", n=10_000)])
    assert (again.inserted, again.duplicates) == (1, 200)
    assert _count(store) == 501


def test_a_hash_match_alone_never_drops_an_event() -> None:
    store = _open()
    event = make_event("c-1", n=1)
    # As if another stored ID had the same 64-bit hash: the probe says "maybe",
    # the lookup by event ID says no, and the event is stored.
    key = store.read(lambda c: c.execute("SELECT hash(?)", [event.event_id]).fetchone())
    assert key is not None
    store._keys.add(np.array([key[0]], dtype=np.uint64))
    assert store.write_batch([event]).inserted == 1
    assert store.write_batch([event]).inserted == 0


def test_keys_are_loaded_again_on_open(tmp_path: Path) -> None:
    events = [make_event("c-1", n=i, seconds=i) for i in range(50)]
    store = _open(tmp_path / "l.duckdb")
    store.write_batch(events)
    store.close()
    store = _open(tmp_path / "l.duckdb")
    assert len(store._keys) == 50
    assert store.write_batch(events).inserted == 0
    assert _count(store) == 50


def test_a_rolled_back_batch_leaves_no_keys_behind(tmp_path: Path) -> None:
    store = _open(tmp_path / "l.duckdb")
    event = make_event("c-1", n=1)
    before = len(store._keys)
    conn = store._writer()
    with store._write_lock:
        conn.execute("BEGIN TRANSACTION")
        store._write_locked(conn, batch_table([event], T0), 1)
        end_transaction(conn)
        for name in ("_batch", "_insert", "_new"):
            conn.unregister(name)
    assert len(store._keys) == before
    assert store.write_batch([event]).inserted == 1


def test_a_file_from_before_schema_3_loses_its_key_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(SCHEMA_2_EVENTS)
    con.execute(DDL.replace("CREATE INDEX IF NOT EXISTS events_id ON events (event_id);", ""))
    con.execute("INSERT INTO schema_info VALUES (2)")
    con.close()
    seed = _open(tmp_path / "seed.duckdb")
    events = [make_event("c-1", n=i, seconds=i) for i in range(20)]
    seed.write_batch(events)
    seed.close()
    con = duckdb.connect(str(path))
    con.execute(f"ATTACH '{tmp_path / 'seed.duckdb'}' AS seed (READ_ONLY)")
    con.execute(
        "INSERT INTO events BY NAME SELECT * EXCLUDE (trace_flags, tracestate) FROM seed.events"
    )
    con.execute("INSERT INTO transactions SELECT * FROM seed.transactions")
    con.close()

    store = _open(path)

    def facts(c: duckdb.DuckDBPyConnection) -> tuple[object, ...]:
        keys = c.execute(
            "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'events' "
            "AND constraint_type = 'PRIMARY KEY'"
        ).fetchone()
        indexes = c.execute(
            "SELECT index_name FROM duckdb_indexes() WHERE table_name = 'events' ORDER BY 1"
        ).fetchall()
        version = c.execute("SELECT max(version) FROM schema_info").fetchone()
        return keys, indexes, version

    assert store.read(facts) == (
        (0,),
        [("events_correlation",), ("events_id",)],
        (4,),
    )
    assert _count(store) == 20
    assert store.write_batch(events[:5]).inserted == 0
    assert store.get_transaction("c-1") is not None
